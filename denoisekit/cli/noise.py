"""``noise``: placeholder until its issue lands."""

from denoisekit.cli import app
from denoisekit.errors import DenoiseKitError


@app.command()
def noise() -> None:
    """Not implemented yet."""
    raise DenoiseKitError("'noise' is not implemented yet")
