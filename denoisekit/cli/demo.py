"""``demo``: placeholder until its issue lands."""

from denoisekit.cli import app
from denoisekit.errors import DenoiseKitError


@app.command()
def demo() -> None:
    """Not implemented yet."""
    raise DenoiseKitError("'demo' is not implemented yet")
