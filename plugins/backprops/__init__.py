"""Built-in backprops, registered through the denoisekit entry-point group."""

from denoisekit.plugin import hookimpl


@hookimpl
def register_backprops(register):
    from denoisekit_plugins.backprops.autodiff import Autodiff
    from denoisekit_plugins.backprops.dilated import Dilated
    from denoisekit_plugins.backprops.manual import Manual

    for cls in (Autodiff, Manual, Dilated):
        register(cls)
