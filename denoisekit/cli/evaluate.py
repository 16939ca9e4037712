"""``evaluate``: placeholder until its issue lands."""

from denoisekit.cli import app
from denoisekit.errors import DenoiseKitError


@app.command()
def evaluate() -> None:
    """Not implemented yet."""
    raise DenoiseKitError("'evaluate' is not implemented yet")
