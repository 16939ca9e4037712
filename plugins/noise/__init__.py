"""Built-in noise, registered through the denoisekit entry-point group."""

from denoisekit.plugin import hookimpl


@hookimpl
def register_noise(register):
    pass
