"""``infer``: placeholder until its issue lands."""

from denoisekit.cli import app
from denoisekit.errors import DenoiseKitError


@app.command()
def infer() -> None:
    """Not implemented yet."""
    raise DenoiseKitError("'infer' is not implemented yet")
