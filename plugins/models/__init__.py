"""Built-in models, registered through the denoisekit entry-point group."""

from denoisekit.plugin import hookimpl


@hookimpl
def register_models(register):
    pass
