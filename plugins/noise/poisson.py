"""Image-domain signal-dependent noise: a quick stand-in for photon noise."""

from __future__ import annotations

import math
from typing import Any

from denoisekit.plugin import NoiseKind


class Poisson(NoiseKind):
    """Each voxel becomes a Poisson count with mean ``photons * mu / mu_water``
    (``mu / mu_water = 1 + HU / 1000``), scaled back to HU. Noise std is
    ``1000 * sqrt((1 + HU/1000) / photons)`` HU: about 32 HU in water for the default,
    more in bone, none in air. Not CT-textured: use ``lowdose`` for that."""

    name = "poisson"
    description = "Image-domain Poisson noise growing with density (photons per water voxel)"
    options = {"photons": 1000.0}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        photons = float(self.config["photons"])
        if not (math.isfinite(photons) and photons > 0):  # said now, not after reading the input
            from denoisekit.errors import UsageError

            raise UsageError(f"poisson: photons must be a positive finite number, got {photons}")

    def apply(self, hu: Any, params: dict[str, Any], spacing: tuple[float, ...] = (1.0, 1.0, 1.0)) -> Any:
        import numpy as np

        hu = np.asarray(hu, dtype=np.float32)
        photons = float(params["photons"])
        if photons <= 0:
            from denoisekit.errors import UsageError

            raise UsageError(f"poisson: photons must be positive, got {photons}")
        rng = np.random.default_rng(params["seed"])
        relative = np.clip(1.0 + hu.astype(np.float64) / 1000.0, 0.0, None)
        counts = rng.poisson(photons * relative)
        noisy = hu + 1000.0 * (counts / photons - relative)
        return noisy.astype(np.float32)
