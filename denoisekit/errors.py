"""User-facing errors: the CLI prints their message on one line and exits 1."""


class DenoiseKitError(Exception):
    """Bad input or an impossible request; the message is shown to the user as is."""


class PluginError(DenoiseKitError):
    """A plugin misbehaved (duplicate name, missing capability, bad registration)."""
