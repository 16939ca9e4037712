"""Blind training noise: each slice gets either low-dose CT noise or Gaussian noise, at a
level drawn for that slice, so one set of weights learns to handle the range of noise a
user's scans have instead of one fixed level.

``sample`` draws only a seed (plus the options); ``apply`` derives every slice's kind,
level and noise seed from it (``slice_levels``) and delegates to the ``lowdose`` and
``gaussian`` kinds, so the recorded parameters reproduce the output exactly.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

from denoisekit.plugin import NoiseKind


class Mixed(NoiseKind):
    """Per slice: with probability ``p_lowdose`` projection-domain low-dose noise at a dose
    log-uniform in [``dose_min``, ``dose_max``], else white Gaussian noise with sigma
    uniform in [``sigma_min``, ``sigma_max``] HU. ``aec``: the low-dose slices' tube-current
    modulation (see ``lowdose``); off by default, as the shipped weights were trained."""

    name = "mixed"
    #: simulated through projections and a reconstruction: meant for axial slices
    projection_domain = True
    description = "Blind training noise: lowdose from 1/2 to 1/16 dose or Gaussian 10-60 HU, drawn per slice"
    options = {
        "dose_min": 1.0 / 16.0,
        "dose_max": 0.5,
        "sigma_min": 10.0,
        "sigma_max": 60.0,
        "p_lowdose": 0.5,
        "aec": "off",
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        from denoisekit.errors import UsageError

        c = self.config
        for key in ("dose_min", "dose_max", "sigma_min", "sigma_max"):
            if not math.isfinite(float(c[key])):
                raise UsageError(f"mixed: {key} must be a finite number, got {c[key]}")
        if not 0 < float(c["dose_min"]) <= float(c["dose_max"]):
            raise UsageError(f"mixed: need 0 < dose_min <= dose_max, got {c['dose_min']}, {c['dose_max']}")
        if not 0 <= float(c["sigma_min"]) <= float(c["sigma_max"]):
            raise UsageError(f"mixed: need 0 <= sigma_min <= sigma_max, got {c['sigma_min']}, {c['sigma_max']}")
        if not 0 <= float(c["p_lowdose"]) <= 1:
            raise UsageError(f"mixed: p_lowdose must be in [0, 1], got {c['p_lowdose']}")
        from denoisekit_plugins.noise.lowdose import LowDose

        LowDose(aec=c["aec"])  # refuses an unknown choice now, not at the first slice

    @staticmethod
    def slice_levels(params: dict[str, Any], n: int) -> list[dict[str, Any]]:
        """Kind, level and noise seed of each of ``n`` slices, a function of ``params`` only.

        Every slice consumes the same four draws whichever kind it gets, so slice ``k``'s
        noise does not depend on the kinds of the slices before it.
        """
        import numpy as np

        rng = np.random.default_rng(int(params["seed"]))
        log_lo, log_hi = math.log(float(params["dose_min"])), math.log(float(params["dose_max"]))
        levels = []
        for _ in range(n):
            pick, u_dose, u_sigma = rng.random(3)
            seed = int(rng.integers(0, 2**63 - 1))
            if pick < float(params["p_lowdose"]):
                dose = math.exp(log_lo + u_dose * (log_hi - log_lo))
                levels.append({"kind": "lowdose", "dose": dose, "seed": seed})
            else:
                lo, hi = float(params["sigma_min"]), float(params["sigma_max"])
                levels.append({"kind": "gaussian", "sigma": lo + u_sigma * (hi - lo), "seed": seed})
        return levels

    def apply(
        self,
        hu: Any,
        params: dict[str, Any],
        spacing: tuple[float, ...] = (1.0, 1.0, 1.0),
        progress: Optional[Callable[[int], None]] = None,
    ) -> Any:
        import numpy as np

        from denoisekit_plugins.noise.gaussian import Gaussian
        from denoisekit_plugins.noise.lowdose import LowDose

        hu = np.asarray(hu, dtype=np.float32)
        out = np.empty_like(hu)
        kinds = {"lowdose": LowDose(aec=params.get("aec", "off")), "gaussian": Gaussian()}
        for k, level in enumerate(self.slice_levels(params, hu.shape[0])):
            kind = kinds[level["kind"]]
            # the sub-kind's own sample() adds its constants (e.g. lowdose's mu_water);
            # then this slice's level and seed replace the drawn ones
            sub = {**kind.sample(np.random.default_rng(0), hu[k : k + 1].shape), **level}
            out[k] = kind.apply(hu[k : k + 1], sub, spacing)[0]
            if progress is not None:
                progress(1)
        return out
