"""denoisekit: plugin-based denoising of CT volumes.

Plugin authors import from :mod:`denoisekit.plugin`; ``hookimpl`` is re-exported here
for convenience.
"""

__version__ = "0.1.0"

from denoisekit.hookspecs import hookimpl  # noqa: E402

__all__ = ["__version__", "hookimpl"]
