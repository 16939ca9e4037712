"""``train``: placeholder until its issue lands."""

from denoisekit.cli import app
from denoisekit.errors import DenoiseKitError


@app.command()
def train() -> None:
    """Not implemented yet."""
    raise DenoiseKitError("'train' is not implemented yet")
