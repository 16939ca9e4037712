"""``export``: placeholder until its issue lands."""

from denoisekit.cli import app
from denoisekit.errors import DenoiseKitError


@app.command()
def export() -> None:
    """Not implemented yet."""
    raise DenoiseKitError("'export' is not implemented yet")
