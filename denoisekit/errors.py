"""User-facing errors: the CLI prints their message on one line and exits 1 (2 for usage)."""


class DenoiseKitError(Exception):
    """Bad input or an impossible request; the message is shown to the user as is."""


class UsageError(DenoiseKitError):
    """A command line that cannot be right whatever the input (options that conflict, an option
    value out of its range): exit code 2, as for click's own usage errors, so a script can tell
    a wrong call from a scan that could not be read."""


class PluginError(DenoiseKitError):
    """A plugin misbehaved (duplicate name, missing capability, bad registration)."""
