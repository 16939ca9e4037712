"""Additive white Gaussian noise, in HU or in the articles' slice-relative form."""

from __future__ import annotations

from typing import Any

from denoisekit.plugin import NoiseKind


#: A standard deviation above this is no CT noise (the HU scale spans about 4000).
MAX_SIGMA_HU = 1.0e4


class Gaussian(NoiseKind):
    """``sigma`` HU of white noise; with ``relative > 0`` the articles' form instead:
    ``relative * max(slice) * N(0, 1)`` per slice (the articles used 0.3)."""

    name = "gaussian"
    description = "Additive white Gaussian noise (sigma in HU, or the articles' relative * slice max)"
    options = {"sigma": 25.0, "relative": 0.0}

    def __init__(self, **options: Any) -> None:
        from denoisekit.errors import UsageError

        super().__init__(**options)
        for key in ("sigma", "relative"):
            if not float(self.config[key]) >= 0:  # NaN too
                raise UsageError(f"gaussian: {key} must be >= 0, got {self.config[key]}")
        if not float(self.config["sigma"]) <= MAX_SIGMA_HU:  # inf made NaN voxels, found after the run
            raise UsageError(f"gaussian: sigma must be at most {MAX_SIGMA_HU:g} HU, got {self.config['sigma']}")
        if not float(self.config["relative"]) <= 1e3:
            raise UsageError(f"gaussian: relative must be at most 1000, got {self.config['relative']}")

    def apply(self, hu: Any, params: dict[str, Any], spacing: tuple[float, ...] = (1.0, 1.0, 1.0)) -> Any:
        import numpy as np

        hu = np.asarray(hu, dtype=np.float32)
        rng = np.random.default_rng(params["seed"])
        field = rng.standard_normal(hu.shape, dtype=np.float32)
        relative = float(params.get("relative", 0.0))
        if relative > 0:
            # The articles scaled by the slice maximum of raw values; in HU an all-air
            # slice has a negative maximum, which must not flip or cancel the noise.
            peak = np.maximum(hu.reshape(hu.shape[0], -1).max(axis=1), 0.0)
            scale = (relative * peak).astype(np.float32)[:, None, None]
        else:
            scale = np.float32(params["sigma"])
        return (hu + scale * field).astype(np.float32)
