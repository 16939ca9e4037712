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

A scan already carries its own noise. ``dose`` is a fraction of the flux ``i0`` (a chest
protocol's), what training and the benchmark need on clean references. ``scan_relative``
makes it a fraction of the scan's own dose instead: each slice's own noise is read in its soft
tissue and noise is added until it has grown as ``1 / sqrt(dose)``, as a real scan of that
patient at that fraction of its dose would (the added noise is that of the flux
``dose / (1 - dose)`` of the slice's own; Zeng et al., Med Phys 2015). A slice's reading is
noisy, so where the series records each slice's tube current the fluxes follow it, the flux
per mA read from the slices near each one; elsewhere each slice's flux is pooled with its
neighbours'.
"""

from __future__ import annotations

import functools
import math
from typing import Any, Callable, Optional

from denoisekit.plugin import NoiseKind

#: Linear attenuation of water near 70 keV, per mm (recorded in the parameters).
MU_WATER = 0.02
#: Slices per forward/back-projection batch (memory: about 10 MB per 512 slice).
BATCH = 8
#: Detected counts are clipped to at least this before the log (photon starvation).
MIN_COUNTS = 1.0
#: Flux cap for a relative dose: a nearly noise-free slice would ask for more photons than
#: NumPy's Poisson sampler takes (its noise is then about 1e-4 HU).
MAX_FLUX = 1e15
#: A relative dose's second trial corrects the flux only where the noise to add has at least
#: this share of the scan's own variance (doses up to 2/3), and by 1/2..2 at most.
CORRECT_ABOVE = 0.5
#: A relative dose pools each slice's flux with those of the readable slices up to this many
#: slices away on either side (tube current changes smoothly along z).
POOL_SLICES = 2
#: ... and keeps a share ``n / (n + POOL_WINDOWS)`` of its own estimate's departure from the
#: pool's, n the soft-tissue windows its noise was read in (a 512 slice: 50000-100000, so it
#: keeps 20-33%): on 12 slices of LIDC-IDRI-0001 at one tube current, whole 512 slices read
#: their own noise from 7.7 to 16.9 HU, adjacent ones 2x apart, while the noise in their
#: contrast-filled vessels was 13-16 HU on each (new-user pass).
POOL_WINDOWS = 200000
#: A slice whose noise is read in fewer windows is unreadable for a relative dose (it takes a
#: neighbour's flux, or the dose is refused): crops of 64-96 pixels of a chest read 27-112 HU
#: where the noise was 13-20, and the flux made of that added up to 2000 HU.
READ_WINDOWS = 2500
#: With the series' tube currents, a relative dose reads its flux per mA from the readable
#: slices up to this many slices away on either side (``_scaled_by_current``).
SCALE_SLICES = 8
#: ... and then averages those scales over the slices up to this many away, weighted by a
#: triangle: a median that steps as its window slides banded the added noise from slice to
#: slice (``_smoothed``).
SMOOTH_SLICES = 4
#: Without tube currents, a relative dose keeps each slice's flux from this factor below to
#: this factor above the median reading of the slices up to ``SCALE_SLICES`` away
#: (``_bounded``). Tighter below: too low a flux starves the rays through bone or metal of
#: photons (noise grows far faster than 1 / flux there), too high a one only adds too little.
BOUND = (1.25, 2.0)
#: The volume tag (and ``params`` key) holding each slice's tube current in mA
#: (``denoisekit.io.dicom_tags.tube_currents``): a relative dose's fluxes follow it.
TUBE_CURRENTS = "TubeCurrents"
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
    #: simulated through projections and a reconstruction: meant for axial slices
    projection_domain = True
    description = "Realistic low-dose CT noise: Poisson + electronic noise in projections, FBP"
    options = {
        "dose": 0.25,
        "scan_relative": False,
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
        from denoisekit.errors import UsageError
        from denoisekit_plugins.noise.projector import FILTERS

        self._notes: list[str] = []
        c = self.config
        for key in ("dose", "i0", "electronic_noise", "aec_reference_mm", "aec_strength"):
            if not math.isfinite(float(c[key])):  # inf failed late, as 'lam value too large' (code review)
                raise UsageError(f"lowdose: {key} must be a finite number, got {c[key]}")
        if not 0 < float(c["dose"]):
            raise UsageError(f"lowdose: dose must be positive, got {c['dose']}")
        if not 0 < float(c["i0"]) <= MAX_I0:  # far above, the Poisson draws overflow ('lam value too large')
            raise UsageError(f"lowdose: i0 must be positive and at most {MAX_I0:g}, got {c['i0']}")
        if float(c["i0"]) * float(c["dose"]) > MAX_I0:
            raise UsageError(f"lowdose: i0 x dose must be at most {MAX_I0:g} photons, got {float(c['i0']) * float(c['dose']):g}")
        if float(c["electronic_noise"]) < 0:
            raise UsageError("lowdose: electronic_noise must be >= 0")
        if int(c["views"]) < 2:
            raise UsageError(f"lowdose: views must be at least 2, got {c['views']}")
        if c["filter"] not in FILTERS:
            raise UsageError(f"lowdose: unknown filter {c['filter']!r} (choose from {', '.join(FILTERS)})")
        if c["aec"] not in AEC_MODES:
            raise UsageError(f"lowdose: unknown aec {c['aec']!r} (choose from {', '.join(AEC_MODES)})")
        if not 0 < float(c["aec_reference_mm"]):
            raise UsageError(f"lowdose: aec_reference_mm must be positive, got {c['aec_reference_mm']}")
        if float(c["aec_strength"]) < 0:
            raise UsageError(f"lowdose: aec_strength must be >= 0, got {c['aec_strength']}")
        if c["scan_relative"] and not float(c["dose"]) < 1:
            raise UsageError(
                f"lowdose: a relative dose must be below 1 (adding noise only lowers a scan's dose), got {c['dose']}"
            )
        if c["scan_relative"] and c["aec"] in ("z", "z+angle"):
            raise UsageError(
                f"lowdose: aec {c['aec']} with scan_relative: the scan's own noise already sets each slice's flux"
            )

    @property
    def volume_tags(self) -> tuple[str, ...]:
        """The volume's tags the noise stage puts into ``params`` (so the record keeps them): a
        relative dose's per-slice tube currents."""
        return (TUBE_CURRENTS,) if self.config["scan_relative"] else ()

    def take_notes(self) -> list[str]:
        """What the last ``apply`` did that the user should hear: where a relative dose's
        fluxes came from."""
        notes, self._notes = self._notes, []
        return notes

    @property
    def passes(self) -> int:
        """Passes over the slices ``apply`` reports to ``progress``: a relative dose first
        measures the noise two trial fluxes give each slice."""
        return 3 if self.config["scan_relative"] else 1

    def sample(self, rng: Any, shape: tuple[int, ...]) -> dict[str, Any]:
        params = super().sample(rng, shape)
        params["mu_water"] = MU_WATER
        params["log_bias"] = "expected"  # absent in records from before: the noisy count's (``_Simulator``)
        if params.get("scan_relative"):  # a record without it (before 2026-11-22) replays unsmoothed
            params["flux_smoothing"] = SMOOTH_SLICES
        return params

    def apply(
        self,
        hu: Any,
        params: dict[str, Any],
        spacing: tuple[float, ...] = (1.0, 1.0, 1.0),
        progress: Optional[Callable[[int], None]] = None,
    ) -> Any:
        """Noisy HU for clean HU (z, y, x); ``progress(n)`` is called after each batch
        with the number of slices just finished, in each of ``passes`` passes."""
        import numpy as np

        hu = np.asarray(hu, dtype=np.float32)
        sim = _Simulator(hu, params, spacing)
        rng = np.random.default_rng(params["seed"])
        flux = float(params["i0"]) * float(params["dose"])
        fluxes = [flux] * hu.shape[0]
        if params.get("scan_relative", False):  # records from before the option: absolute
            fluxes = _relative_fluxes(sim, hu, params, progress)
            self._notes = [_flux_note(params, hu.shape[0])]
        out = hu.copy()
        for start in range(0, hu.shape[0], BATCH):
            stop = min(start + BATCH, hu.shape[0])
            out[start:stop] += sim.noise(start, stop, fluxes[start:stop], rng)
            if progress is not None:
                progress(stop - start)
        return out


#: Photons per detector bin and view a scanner could deliver, far above any (2e5 is a chest's).
MAX_I0 = 1.0e12
#: How far (ratio) a slice's pixels may be from square for the projections to hold.
SQUARE_PIXELS = 1.05
#: Expected counts below which ``log_bias`` reads an exact table; above, the second-order
#: expansion ``(e + sigma_e^2) / (2 e^2)`` is within 1e-5 of it.
EXACT_BIAS_BELOW = 300.0


def log_bias(expected: Any, sigma_e: float) -> Any:
    """The bias of ``-log`` of a measured count as an estimate of ``-log(expected)``, per bin:
    ``log(e) - E[log(max(c, MIN_COUNTS))]`` for ``c`` Poisson of mean ``e`` plus Gaussian
    electronic noise of std ``sigma_e``. Exact (``_bias_table``) where few photons arrive, the
    second-order expansion where many do."""
    import numpy as np

    e = np.asarray(expected, dtype=np.float64)
    grid, table, floor = _bias_table(float(sigma_e))
    safe = np.maximum(e, 1e-300)
    bias = (safe + sigma_e**2) / (2.0 * safe**2)
    low = e < EXACT_BIAS_BELOW
    if np.any(low):
        le = np.log(safe[low])
        # below the table, the count is the electronic noise alone: E[log] no longer moves
        bias[low] = np.where(le < grid[0], le - floor, np.interp(le, grid, table))
    return bias


@functools.lru_cache(maxsize=8)
def _bias_table(sigma_e: float) -> tuple[Any, Any, float]:
    """(log e grid, bias at each, E[log max(c, MIN_COUNTS)] with no photons) for expected
    counts ``e`` from 1e-3 to ``EXACT_BIAS_BELOW``: Poisson probabilities times each count's
    expected log under the electronic noise (a Gaussian on 641 points over +-8 std)."""
    import numpy as np

    top = int(EXACT_BIAS_BELOW + 12 * math.sqrt(EXACT_BIAS_BELOW) + 50)
    k = np.arange(top + 1, dtype=np.float64)
    if sigma_e > 0:
        z = np.linspace(-8.0, 8.0, 641)
        w = np.exp(-0.5 * z**2)
        w /= w.sum()
        per_count = np.log(np.maximum(k[:, None] + sigma_e * z[None, :], MIN_COUNTS)) @ w
    else:
        per_count = np.log(np.maximum(k, MIN_COUNTS))
    grid = np.linspace(math.log(1e-3), math.log(EXACT_BIAS_BELOW), 600)
    log_factorial = np.concatenate([[0.0], np.cumsum(np.log(k[1:]))])
    probabilities = np.exp(k[None, :] * grid[:, None] - np.exp(grid)[:, None] - log_factorial[None, :])
    table = grid - probabilities @ per_count
    return grid, table, float(per_count[0])


class _Simulator:
    """Noise fields of a volume's slices at given fluxes: the projection, modulation and
    reconstruction shared by the absolute and relative doses."""

    def __init__(self, hu: Any, params: dict[str, Any], spacing: tuple[float, ...]) -> None:
        from denoisekit_plugins.noise.projector import get_projector

        self.hu = hu
        self.params = params
        _, ny, nx = hu.shape
        self.n = max(ny, nx)
        self.proj = get_projector(self.n, int(params["views"]))
        sx, sy = float(spacing[0]), float(spacing[1])
        if max(sx, sy) > SQUARE_PIXELS * min(sx, sy):
            # projected on the pixel grid, such a slice is another body: a round 30 cm body
            # of 1.98 x 0.99 mm pixels got 1042 HU of noise where square ones get 41 (code review)
            from denoisekit.errors import DenoiseKitError

            raise DenoiseKitError(f"lowdose simulates projections through square pixels; these are {sx:g} x {sy:g} mm "
                                  "(x, y): resample the slices to square pixels first, or use --kind gaussian")
        self.pixel = math.sqrt(sx * sy)  # mm
        self.mu_water = float(params["mu_water"])
        self.aec = str(params.get("aec", "off"))  # records from before the option: off
        self.sigma_e = float(params["electronic_noise"])
        self.exact_bias = params.get("log_bias") == "expected"

    def noise(self, start: int, stop: int, fluxes: list[float], rng: Any) -> Any:
        """The noise (HU) of slices ``start:stop``, slice i at flux ``fluxes[i - start]``."""
        import numpy as np

        _, ny, nx = self.hu.shape
        n, mu_water, sigma_e = self.n, self.mu_water, self.sigma_e
        oy, ox = (n - ny) // 2, (n - nx) // 2
        mu = np.zeros((stop - start, n, n), dtype=np.float32)  # air outside the slice
        mu[:, oy:oy + ny, ox:ox + nx] = np.clip(1.0 + self.hu[start:stop] / 1000.0, 0.0, None)
        mu *= mu_water * self.pixel  # attenuation per pixel: line integrals come out unitless
        line = np.clip(self.proj.forward(mu), 0.0, None).astype(np.float64)
        delta = np.empty(line.shape, dtype=np.float32)
        for i in range(line.shape[0]):  # slice by slice: draws do not depend on BATCH
            views_flux = fluxes[i] * _modulation(line[i], self.aec, mu_water, self.params)
            expected = views_flux * np.exp(-line[i])
            counts = rng.poisson(expected).astype(np.float64)
            if sigma_e > 0:
                counts += rng.normal(0.0, sigma_e, size=counts.shape)
            counts = np.maximum(counts, MIN_COUNTS)
            # -log of a noisy count is a biased estimate of the line integral; taken out, so
            # the added noise has zero mean (no cupping at low dose, no dark streaks behind
            # metal). Read from the expected count: from the noisy one, a starved ray's bias
            # (var / (2 counts^2) at a count of 1) came out 30 times too large (code review)
            if self.exact_bias:
                bias = log_bias(expected, sigma_e)
            else:  # a record from before 2026-11-22 replays as it was made
                bias = (counts + sigma_e**2) / (2.0 * counts**2)
            delta[i] = -np.log(counts / views_flux) - bias - line[i]
        noise = self.proj.fbp(delta, str(self.params["filter"]))  # FBP is linear: FBP(noisy) - FBP(clean)
        noise *= 1000.0 / (mu_water * self.pixel)  # attenuation per pixel -> HU
        return noise[:, oy:oy + ny, ox:ox + nx]


def _relative_fluxes(sim: _Simulator, hu: Any, params: dict[str, Any], progress: Any) -> list[float]:
    """Per slice, the flux whose noise, added to the slice's own, makes it look scanned at
    ``dose`` of its own dose: from the series' tube currents where ``params`` has them
    (``_scaled_by_current``), else from each slice's own reading pooled with its neighbours'
    (``_pooled_along_z``); a slice with too little soft tissue to read then takes the flux of
    the nearest one that has enough (tube current changes smoothly along z)."""
    fluxes, windows = _read_fluxes(sim, hu, params, progress)
    currents = _tube_currents(params, hu.shape[0])
    if currents is not None:
        return _scaled_by_current(fluxes, currents, windows, int(params.get("flux_smoothing", 0)))
    known = [k for k, f in enumerate(fluxes) if f is not None]
    pooled = _pooled_along_z(fluxes, windows)
    pooled = [f if f is not None else pooled[min(known, key=lambda j: abs(j - k))] for k, f in enumerate(pooled)]
    return _bounded(pooled, fluxes, windows)


def _flux_note(params: dict[str, Any], slices: int) -> str:
    """Where a relative dose's fluxes came from, for the user."""
    currents = _tube_currents(params, slices)
    if currents is None:
        return ("flux from each slice's own noise, pooled with its neighbours': the input does not record a "
                "tube current on every slice, all at one kV, exposure time, pitch, slice thickness and kernel")
    lo, hi = min(currents), max(currents)
    spread = f"{lo:g}-{hi:g} mA over {slices} slices" if lo != hi else f"{lo:g} mA" + (f" on all {slices} slices" if slices > 1 else "")
    return f"flux from the series' tube current ({spread}), scaled to the scan's own noise"


def _read_fluxes(sim: _Simulator, hu: Any, params: dict[str, Any], progress: Any) -> tuple[list[float | None], list[int]]:
    """Each slice's flux as its own noise reads it (None where it cannot be read), and the
    soft-tissue windows it was read in (how far to trust it).

    A slice's own noise s (soft tissue, ``soft_tissue_noise_hu``) and the noise r that the
    flux i0 gives it (read in the same windows of a trial field) make its own flux
    ``i0 (r / s)^2`` (noise variance goes as 1 / flux); noise of the level
    ``t = s sqrt(1 / dose - 1)`` is that of the flux ``dose / (1 - dose)`` times it. At low
    flux electronic noise and photon starvation add more than 1 / flux, so a second trial
    at that flux, added to the slice, reads the level it really gives, and the flux is
    corrected once by the ratio of added variances (``CORRECT_ABOVE``)."""
    import numpy as np

    from denoisekit.errors import DenoiseKitError
    from denoisekit.noise_level import soft_tissue_noise_hu, soft_tissue_reading

    unreadable = DenoiseKitError(
        f"lowdose: no slice has enough soft tissue (-300..300 HU, {READ_WINDOWS} windows of 7x7 pixels: "
        "a crop or a small slice has too few) with noise to read the scan's own noise from, which a "
        "relative dose needs; give the dose as a fraction of i0 instead (scan_relative off)"
    )
    readings = [soft_tissue_reading(s) for s in hu]  # (level, windows it was read in)
    # 0: a noise-free phantom's flat tissue; few windows: a reading that may be edges, not noise
    own = [s if s is not None and s > 0 and n >= READ_WINDOWS else None for s, n in readings]
    if all(s is None for s in own):
        raise unreadable
    i0, dose = float(params["i0"]), float(params["dose"])
    trial = np.random.default_rng([int(params["seed"]), 1])  # not the output's draws
    fluxes: list[float | None] = []
    for start in range(0, hu.shape[0], BATCH):
        stop = min(start + BATCH, hu.shape[0])
        first: list[float | None] = []
        field = sim.noise(start, stop, [i0] * (stop - start), trial)
        for k in range(start, stop):
            r = None if own[k] is None else _added_level(hu[k], own[k], field[k - start])
            first.append(None if r is None else min(i0 * (r / own[k]) ** 2 * dose / (1.0 - dose), MAX_FLUX))
        if progress is not None:
            progress(stop - start)
        field = sim.noise(start, stop, [f or i0 for f in first], trial)
        for k, f in zip(range(start, stop), first):
            if f is None:
                fluxes.append(None)
                continue
            # read as the result will be: the whole slice's level, against own / sqrt(dose); only
            # where the added noise stands well above the reading's scatter (near dose 1 a 2%
            # error in the total would move the flux fourfold, and there is no starvation)
            wanted = own[k] ** 2 * (1.0 / dose - 1.0)
            factor = 1.0
            if wanted >= CORRECT_ABOVE * own[k] ** 2:
                added = (soft_tissue_noise_hu(hu[k] + field[k - start]) or 0.0) ** 2 - own[k] ** 2
                factor = min(max(added / wanted, 0.5), 2.0) if added > 0 else 1.0
            fluxes.append(min(f * factor, MAX_FLUX))
        if progress is not None:
            progress(stop - start)
    if all(f is None for f in fluxes):
        raise unreadable
    return fluxes, [n for _, n in readings]


def _tube_currents(params: dict[str, Any], slices: int) -> list[float] | None:
    """The series' tube current of each slice (mA, ``TUBE_CURRENTS`` in ``params``, which the
    noise stage fills from the volume's tags), or None where there is none for every slice:
    a volume without the tag (NIfTI, a series missing it on a slice or mixing kV), a record
    from before it, or a list that does not fit the volume."""
    currents = params.get(TUBE_CURRENTS)
    if not isinstance(currents, list) or len(currents) != slices:
        return None
    try:
        currents = [float(c) for c in currents]
    except (TypeError, ValueError):
        return None
    return currents if all(math.isfinite(c) and c > 0 for c in currents) else None


def _scaled_by_current(fluxes: list[float | None], currents: list[float], windows: list[int],
                       smoothing: int = SMOOTH_SLICES) -> list[float]:
    """``scale_k * currents[k]`` for every slice: a slice's photon flux is its tube current
    times what kV, rotation time and pitch give per mA, which the series keeps
    (``dicom_tags.tube_currents``), so only the scale is unknown, and it changes slowly.

    ``scale_k`` is the median of ``flux / current`` (in log) of the readable slices up to
    ``SCALE_SLICES`` away, each weighted by the soft-tissue windows its noise was read in (a
    reading's variance goes about as one over that); with none that near, of all of them. A
    median, not a mean: a slice whose windows fall on fine anatomy reads its noise far too high
    (its flux far too low), and over 12 slices of one LIDC chest series at one tube current the
    readings ran from 7.7 to 16.9 HU; a mean would pass a share of each misreading on, a median
    ignores a minority of them. Not one scale for the whole volume: the simulator's noise
    follows anatomy unlike the scanner's (parallel beam, no bowtie), so at one tube current the
    flux that doubles a slice's noise drifts along a whole series (about 20x over LIDC-IDRI-0001's
    133 chest slices), and one scale grew the noise of whole 16-slice blocks by 1.3 to 2.3 where
    2 was asked; a volume of up to 9 slices has one scale. Unreadable slices need no
    neighbour's flux: they have their own current.

    The medians are then smoothed along z (``_smoothed``): a median of 17 readings steps when
    one enters or leaves its window, and on LIDC-IDRI-0001 the added noise jumped from one
    slice to the next by 16% or more (in flux) on a tenth of the slices; smoothed, 10%."""
    logs = {k: math.log(f / c) for k, (f, c) in enumerate(zip(fluxes, currents)) if f is not None}
    centres = _smoothed(_local_medians(logs, windows), smoothing)
    return [min(math.exp(centre) * c, MAX_FLUX) for centre, c in zip(centres, currents)]


def _smoothed(values: list[float], reach: int) -> list[float]:
    """Each value averaged with those up to ``reach`` away (``SMOOTH_SLICES``; 0: as they are),
    weighted by a triangle (1 at the slice, falling to 0 one slice past the reach; cut at the
    ends): steps become ramps, and a constant stays exactly itself."""
    out = []
    for k in range(len(values)):
        near = range(max(k - reach, 0), min(k + reach + 1, len(values)))
        weights = [1.0 - abs(j - k) / (reach + 1) for j in near]
        out.append(sum(w * values[j] for w, j in zip(weights, near)) / sum(weights))
    return out


def _local_medians(logs: dict[int, float], windows: list[int]) -> list[float]:
    """Per slice, the median of ``logs`` (slice -> value, readable slices only) over the slices
    up to ``SCALE_SLICES`` away, each weighted by the soft-tissue windows it was read in; with
    none that near, over all of them."""
    import numpy as np

    def weighted_median(keys: list[int]) -> float:
        pairs = sorted((logs[j], windows[j]) for j in keys)
        values = np.array([v for v, _ in pairs])
        weight = np.cumsum([n for _, n in pairs], dtype=float)
        half = weight[-1] / 2.0
        i = int(np.searchsorted(weight, half))  # the first slice at which half the weight is reached
        return float((values[i] + values[i + 1]) / 2.0 if weight[i] == half and i + 1 < len(values) else values[i])

    out = []
    for k in range(len(windows)):
        near = [j for j in range(max(k - SCALE_SLICES, 0), min(k + SCALE_SLICES + 1, len(windows))) if j in logs]
        out.append(weighted_median(near or list(logs)))
    return out


def _bounded(fluxes: list[float], raw: list[float | None], windows: list[int]) -> list[float]:
    """Each flux kept within ``BOUND`` of the median of the readings around it
    (``_local_medians``): a run of slices that reads far more noise than the slices around it
    has read something else, and a median of two slices either side cannot outvote it. On the
    dental slices of a head CT (ct_head, slices 23-28) metal streaks read as 23-42 HU of noise
    against 9-10 around them, so their flux came out 5x lower and a relative quarter dose
    added noise of 100-1500 HU std there (photon starvation through the metal) instead of
    about twice the scan's own; within 2x of the median, still 670 and 460; within 1.25x, 200
    and 150 (at the median, 70: the streaks a lower dose gives metal). A tube current changes
    smoothly along z, and a slice's own noise in LIDC-IDRI-0001's chest changes by up to 20%
    (1.44x in flux) over 3 slices: such a slice gets up to 10% less noise than asked."""
    logs = {k: math.log(f) for k, f in enumerate(raw) if f is not None}
    if not logs:
        return fluxes
    below, above = BOUND
    return [min(max(f, math.exp(c) / below), math.exp(c) * above) for f, c in zip(fluxes, _local_medians(logs, windows))]


def _pooled_along_z(fluxes: list[float | None], windows: list[int]) -> list[float | None]:
    """Each readable slice's flux pulled towards the median (in log-flux) of its own and those
    of the readable slices up to ``POOL_SLICES`` away, keeping the share
    ``n / (n + POOL_WINDOWS)`` of its own departure from it, n = ``windows[k]``, the soft-tissue
    windows the slice's noise was read in.

    The flux is pooled, not the noise: the tube current changes smoothly along z, the noise
    follows each slice's anatomy. A median, not a mean: a slice whose windows fall on fine
    anatomy reads its noise far too high, and a mean would pass a share of that to four
    neighbours; the median of a monotone ramp (or a step) is the middle slice's, so a smooth
    change of tube current is kept (at the ends, where the window is one-sided, it lags by
    about a slice). Not a median alone: a reading's variance goes about as 1 / n, and a
    512 x 512 slice's (50000-100000 windows in a trunk) is finer than a real scan's own
    changes from slice to slice (helical scans' noise varies with the table feed: by up to
    about 20% every 3 slices in LIDC-IDRI-0001's chest series), which a median would
    flatten, while a 128 x 128 slice's (at most 15000) is coarser; ``POOL_WINDOWS`` is
    about where the two meet. A slice with no readable neighbour keeps its flux as is (a
    one-slice volume is as before)."""
    import numpy as np

    logs = {k: math.log(f) for k, f in enumerate(fluxes) if f is not None}
    pooled = list(fluxes)
    for k, own in logs.items():
        near = [logs[j] for j in range(k - POOL_SLICES, k + POOL_SLICES + 1) if j in logs]
        if len(near) > 1:
            centre = float(np.median(near))
            keep = windows[k] / (windows[k] + POOL_WINDOWS)
            pooled[k] = math.exp(centre + keep * (own - centre))
    return pooled


def _added_level(image: Any, own: float, field: Any) -> float | None:
    """How much noise ``field`` adds to ``image`` (whose own level reads ``own``), as the
    soft-tissue estimate reads it: that estimate also sees some anatomy, and reading the
    field alone would scale the dose by a different yardstick than the image's own noise.
    The field is scaled to about twice ``own`` first, well above the estimate's scatter."""
    from denoisekit.noise_level import soft_tissue_noise_hu

    alone = soft_tissue_noise_hu(field, tissue=image)  # the same windows as ``own``'s
    if not alone:
        return None
    c = 2.0 * own / alone
    total = soft_tissue_noise_hu(image + c * field)
    if total is None or total <= own:
        return None
    return math.sqrt(total * total - own * own) / c


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
