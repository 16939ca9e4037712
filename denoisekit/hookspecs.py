"""The hooks a denoisekit plugin may implement.

Every registration hook passes a ``register`` callback rather than collecting return
values, so the core owns name checks and the spec can grow new arguments without
breaking plugins that implement fewer of them.
"""

import pluggy

PROJECT = "denoisekit"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_models(register):
    """Register denoising models: ``register(ModelClass)``."""


@hookspec
def register_backprops(register):
    """Register training rules: ``register(BackpropClass)``."""


@hookspec
def register_noise(register):
    """Register noise kinds: ``register(NoiseClass)``."""


@hookspec
def register_commands(app):
    """Add Typer commands to the ``denoisekit`` CLI app."""
