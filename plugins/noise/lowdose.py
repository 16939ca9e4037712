"""Low-dose CT noise simulated in the projection domain.

Each slice is converted to attenuation, forward-projected (parallel beam, detector
covering the whole field of view), given Poisson photon noise at ``dose * i0`` photons
per detector bin plus Gaussian electronic noise, log-transformed and reconstructed by
filtered back-projection. Only the noise ``FBP(noisy) - FBP(clean)`` is added to the
original slice, so its resolution is kept. The result has CT noise texture (ramp-shaped
spectrum: little power at the lowest frequencies, streaks along strongly attenuating
paths) and a level that grows about as ``1 / sqrt(dose)``.

Scanners modulate the tube current (automatic exposure control, AEC); without it a chest
protocol's flux gives a thick abdomen or the shoulders several times the noise a real scan
of them has. The ``aec`` option models the two standard kinds: along z, each slice's flux
follows its attenuation so that noise stays near the level of a reference patient; by
angle, each view's flux follows the square root of its attenuation, which lowers the noise
of wide bodies at the same dose (Gies et al., Med Phys 1999).
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

from denoisekit.plugin import NoiseKind

#: Linear attenuation of water near 70 keV, per mm (recorded in the parameters).
MU_WATER = 0.02
#: Slices per forward/back-projection batch (memory: about 10 MB per 512 slice).
BATCH = 8
#: Detected counts are clipped to at least this before the log (photon starvation).
MIN_COUNTS = 1.0
#: ``aec`` choices: which tube-current modulations are on.
AEC_MODES = ("off", "z", "angle", "z+angle")
#: Tube limits for z modulation: a slice's flux stays within these factors of ``i0``.
AEC_LIMITS = (1.0 / 16.0, 16.0)


class LowDose(NoiseKind):
    """Projection-domain low-dose simulation.

    ``i0`` is the full-dose photon count per detector bin (one pixel wide, the slice thick)
    and view, at the default 720 views; ``dose`` scales it. The default (2e5, Hann filter)
    is a chest protocol's flux: about 9 HU at full dose and 18 HU at quarter dose in the
    mediastinum of the embedded chest phantom (33 x 24 cm with lungs), the level of
    clinical chest CT. A thick abdomen at the same flux is far noisier (a 34 x 25 cm water
    body gets about 117 HU in its centre at quarter dose), as on a scanner without dose
    modulation; ``aec`` models one. Fewer views at the same ``i0`` mean less dose: noise
    variance grows as ``720 / views``.

    ``aec``: ``z`` scales a slice's flux by ``exp(mu_water * strength * (P - reference))``,
    with P its water-equivalent path in mm (from the attenuation of each view's longest ray,
    averaged over views: what the noise at the centre follows) and ``reference``
    ``aec_reference_mm``, so ``i0`` is the flux of a patient with that path (default 225 mm:
    the embedded chest phantom, whose noise hardly changes);
    ``aec_strength`` 1 keeps the noise about constant, lower values let big patients get
    noisier as on scanners with a weaker setting; the factor is kept within ``AEC_LIMITS``
    (the tube's range). ``angle`` shares each slice's flux over its views in proportion to
    ``sqrt`` of the longest ray's attenuation, the same dose spent where it counts.
    ``z+angle`` does both.
    """

    name = "lowdose"
    description = "Realistic low-dose CT noise: Poisson + electronic noise in projections, FBP"
    options = {
        "dose": 0.25,
        "i0": 2.0e5,
        "electronic_noise": 8.0,
        "views": 720,
        "filter": "hann",
        "aec": "off",
        "aec_reference_mm": 225.0,
        "aec_strength": 1.0,
    }

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        from denoisekit.errors import DenoiseKitError
        from denoisekit_plugins.noise.projector import FILTERS

        c = self.config
        if not 0 < float(c["dose"]):
            raise DenoiseKitError(f"lowdose: dose must be positive, got {c['dose']}")
        if not 0 < float(c["i0"]):
            raise DenoiseKitError(f"lowdose: i0 must be positive, got {c['i0']}")
        if float(c["electronic_noise"]) < 0:
            raise DenoiseKitError("lowdose: electronic_noise must be >= 0")
        if int(c["views"]) < 2:
            raise DenoiseKitError(f"lowdose: views must be at least 2, got {c['views']}")
        if c["filter"] not in FILTERS:
            raise DenoiseKitError(f"lowdose: unknown filter {c['filter']!r} (choose from {', '.join(FILTERS)})")
        if c["aec"] not in AEC_MODES:
            raise DenoiseKitError(f"lowdose: unknown aec {c['aec']!r} (choose from {', '.join(AEC_MODES)})")
        if not 0 < float(c["aec_reference_mm"]):
            raise DenoiseKitError(f"lowdose: aec_reference_mm must be positive, got {c['aec_reference_mm']}")
        if float(c["aec_strength"]) < 0:
            raise DenoiseKitError(f"lowdose: aec_strength must be >= 0, got {c['aec_strength']}")

    def sample(self, rng: Any, shape: tuple[int, ...]) -> dict[str, Any]:
        params = super().sample(rng, shape)
        params["mu_water"] = MU_WATER
        return params

    def apply(
        self,
        hu: Any,
        params: dict[str, Any],
        spacing: tuple[float, ...] = (1.0, 1.0, 1.0),
        progress: Optional[Callable[[int], None]] = None,
    ) -> Any:
        """Noisy HU for clean HU (z, y, x); ``progress(n)`` is called after each batch
        with the number of slices just finished."""
        import numpy as np

        from denoisekit_plugins.noise.projector import get_projector

        hu = np.asarray(hu, dtype=np.float32)
        z, ny, nx = hu.shape
        n = max(ny, nx)
        proj = get_projector(n, int(params["views"]))
        pixel = math.sqrt(float(spacing[0]) * float(spacing[1]))  # mm
        mu_water = float(params["mu_water"])
        flux = float(params["i0"]) * float(params["dose"])
        aec = str(params.get("aec", "off"))  # records from before the option: off
        sigma_e = float(params["electronic_noise"])
        rng = np.random.default_rng(params["seed"])
        oy, ox = (n - ny) // 2, (n - nx) // 2
        out = hu.copy()
        for start in range(0, z, BATCH):
            stop = min(start + BATCH, z)
            mu = np.zeros((stop - start, n, n), dtype=np.float32)  # air outside the slice
            mu[:, oy:oy + ny, ox:ox + nx] = np.clip(1.0 + hu[start:stop] / 1000.0, 0.0, None)
            mu *= mu_water * pixel  # attenuation per pixel: line integrals come out unitless
            line = np.clip(proj.forward(mu), 0.0, None).astype(np.float64)
            delta = np.empty(line.shape, dtype=np.float32)
            for i in range(line.shape[0]):  # slice by slice: draws do not depend on BATCH
                views_flux = flux * _modulation(line[i], aec, mu_water, params)
                expected = views_flux * np.exp(-line[i])
                counts = rng.poisson(expected).astype(np.float64)
                if sigma_e > 0:
                    counts += rng.normal(0.0, sigma_e, size=counts.shape)
                counts = np.maximum(counts, MIN_COUNTS)
                # -log of a noisy count overestimates the line integral by var/(2 counts^2)
                # (second-order Taylor); scanners correct that bias, and so do we, so the
                # added noise has zero mean instead of a low-frequency cupping at low dose.
                bias = (counts + sigma_e**2) / (2.0 * counts**2)
                delta[i] = -np.log(counts / views_flux) - bias - line[i]
            noise = proj.fbp(delta, str(params["filter"]))  # FBP is linear: FBP(noisy) - FBP(clean)
            noise *= 1000.0 / (mu_water * pixel)  # attenuation per pixel -> HU
            out[start:stop] += noise[:, oy:oy + ny, ox:ox + nx]
            if progress is not None:
                progress(stop - start)
        return out


def _modulation(line: Any, aec: str, mu_water: float, params: dict[str, Any]) -> Any:
    """Flux factor per view, shape (views, 1), for one slice's clean sinogram (views, bins)."""
    import numpy as np

    longest = line.max(axis=1)  # the most attenuating ray of each view
    top = float(longest.max())  # attenuations are taken relative to it: no overflow
    factor = np.ones((line.shape[0], 1))
    if aec in ("z", "z+angle"):
        path_mm = (top + math.log(float(np.mean(np.exp(longest - top))))) / mu_water  # mean attenuation
        excess = (path_mm - float(params["aec_reference_mm"])) * mu_water
        factor *= np.clip(np.exp(float(params["aec_strength"]) * excess), *AEC_LIMITS)
    if aec in ("angle", "z+angle"):
        share = np.exp(0.5 * (longest - top))  # sqrt of attenuation
        factor *= (share / share.mean())[:, None]
    return factor
