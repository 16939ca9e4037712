"""Built-in backprops, registered through the denoisekit entry-point group."""

from denoisekit.plugin import hookimpl


@hookimpl
def register_backprops(register):
    pass
