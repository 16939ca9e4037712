"""``gradcheck``: placeholder until its issue lands."""

from denoisekit.cli import app
from denoisekit.errors import DenoiseKitError


@app.command()
def gradcheck() -> None:
    """Not implemented yet."""
    raise DenoiseKitError("'gradcheck' is not implemented yet")
