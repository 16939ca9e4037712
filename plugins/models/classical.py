"""Classical denoisers as model plugins, so users compare them with the learned models
in one tool: non-local means and total variation (scikit-image), and BM3D (the optional
``bm3d`` package).

They work slice by slice on HU scaled to about unit range (their parameters are tuned
for that), with the noise level given in HU by the ``sigma`` option or, when it is 0,
estimated per slice from the image itself (``estimate_noise_hu``: the noise in soft
tissue), since a user's scans do not come with their noise level. Nothing heavy is
imported until ``denoise`` runs.
"""

from __future__ import annotations

from typing import Any

from denoisekit.errors import DenoiseKitError
from denoisekit.plugin import Model

#: HU per model unit: filters see HU / SCALE, so CT's -1000..3000 HU becomes -1..3.
SCALE = 1000.0


#: Pixels at or below this HU (air clipped at -1024, padding outside the field of view
#: at -2000 or -3024) are flat, noise-free constants in many scans; they are left out when
#: estimating the noise, or a mostly-empty slice would look noise-free.
FLAT_BELOW_HU = -990.0
#: Fewer 2x2 blocks than this above FLAT_BELOW_HU: fall back to the whole slice.
MIN_BLOCKS = 256
#: Side (pixels) of the windows whose standard deviations give the noise level.
NOISE_WINDOW = 7
#: Windows whose mean lies in this range count as soft tissue (fat, muscle, organs, brain):
#: where noise is read on CT, away from lung, air and bone.
SOFT_TISSUE_HU = (-300.0, 300.0)
#: Fewer soft-tissue windows than this: too little tissue to read; the Haar estimate is used.
MIN_WINDOWS = 400


def estimate_noise_hu(image: Any) -> float:
    """Noise standard deviation (HU) of one slice: the most common standard deviation of
    small windows lying wholly in soft tissue (the "global noise level" of Christianson et
    al., AJR 2015), or the Haar estimate (``haar_noise_hu``) where there is too little
    soft tissue.

    Reconstructed CT noise is spatially correlated (the reconstruction filter takes its
    finest frequencies away), so a finest-scale wavelet estimate, as scikit-image's
    ``estimate_sigma``, reads it at about half its level; the classical denoisers then
    barely smooth. A window's standard deviation sees all of it; edges only add windows
    with larger values, which the most common value (the half-sample mode) ignores."""
    import numpy as np
    from scipy import ndimage

    a = np.asarray(image, dtype=np.float64)
    k = NOISE_WINDOW
    if min(a.shape) >= 3 * k:
        mean = ndimage.uniform_filter(a, k, mode="reflect")
        var = ndimage.uniform_filter(a * a, k, mode="reflect") - mean * mean
        lo, hi = SOFT_TISSUE_HU
        # whole windows in tissue: a window's centre k // 2 pixels from the tissue's border
        inside = ndimage.binary_erosion((mean > lo) & (mean < hi), iterations=k // 2, border_value=0)
        if inside.sum() >= MIN_WINDOWS:
            sd = np.sqrt(np.maximum(var[inside], 0.0) * (k * k) / (k * k - 1))
            return _half_sample_mode(sd)
    return haar_noise_hu(a)


def _half_sample_mode(values: Any) -> float:
    """The mode of 1-D data without bins (Bickel's half-sample mode): keep the half of the
    sorted values with the smallest range, again and again."""
    import numpy as np

    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    while v.size > 3:
        half = (v.size + 1) // 2
        i = int(np.argmin(v[half - 1 :] - v[: v.size - half + 1]))
        v = v[i : i + half]
    return float(np.median(v))


def haar_noise_hu(image: Any) -> float:
    """Noise standard deviation (HU) of one slice: the median absolute Haar diagonal
    detail (robust to edges, like scikit-image's ``estimate_sigma``), over the 2x2
    blocks that lie above ``FLAT_BELOW_HU``. Right for white noise; reads correlated
    (reconstructed CT) noise low."""
    import numpy as np

    a = np.asarray(image, dtype=np.float64)
    a = a[: a.shape[0] // 2 * 2, : a.shape[1] // 2 * 2]
    b = (a[0::2, 0::2], a[0::2, 1::2], a[1::2, 0::2], a[1::2, 1::2])
    detail = (b[0] - b[1] - b[2] + b[3]) / 2.0  # std sigma for white noise of std sigma
    keep = np.logical_and.reduce([x > FLAT_BELOW_HU for x in b])
    if keep.sum() < MIN_BLOCKS:
        from skimage.restoration import estimate_sigma

        return float(estimate_sigma(a))
    return float(np.median(np.abs(detail[keep])) / 0.6745)


def _noise_levels(slices: Any, sigma_hu: float) -> list[float]:
    """Noise standard deviation per slice in HU: given, or estimated."""
    if sigma_hu > 0:
        return [sigma_hu] * len(slices)
    return [estimate_noise_hu(s) for s in slices]


def _cores() -> int:
    """CPU cores this process may use (its affinity where the OS has one)."""
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


class _Classical(Model):
    """Shared slice loop: subclasses implement ``_filter(slice, sigma)`` in scaled units."""

    trainable = False

    #: Filter slices in parallel threads (one per core): only for filters that release the
    #: GIL (nl-means' compiled loop). tv is many short NumPy calls, slower in threads; bm3d
    #: runs its own thread pool, which aborts the process if entered from two threads.
    threaded: bool = False

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if float(self.config["sigma"]) < 0:  # refused before any volume is read
            raise DenoiseKitError(f"option sigma must be >= 0 HU (0 = estimate), got {self.config['sigma']}")

    def denoise(self, slices: Any) -> Any:
        import numpy as np
        from concurrent.futures import ThreadPoolExecutor

        hu = np.asarray(slices, dtype=np.float32)
        if hu.ndim != 3:
            raise ValueError(f"expected slices (n, y, x), got shape {hu.shape}")
        out = np.empty_like(hu)
        sigmas = _noise_levels(hu, float(self.config["sigma"]))

        def one(k: int) -> None:
            x = hu[k].astype(np.float64) / SCALE
            out[k] = hu[k] if sigmas[k] <= 0 else self._filter(x, sigmas[k] / SCALE) * SCALE

        workers = min(len(hu), _cores()) if self.threaded else 1
        if workers <= 1:
            for k in range(len(hu)):
                one(k)
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(one, range(len(hu))))  # list(): re-raises a slice's error here
        return out

    def _filter(self, image: Any, sigma: float) -> Any:
        raise NotImplementedError


class NLMeans(_Classical):
    name = "nl-means"
    description = "Non-local means (scikit-image); classical baseline. sigma: noise std in HU, 0 = estimated per slice."
    options = {"sigma": 0.0, "h": 0.8, "patch_size": 5, "patch_distance": 6}
    threaded = True

    def _filter(self, image, sigma):
        from skimage.restoration import denoise_nl_means

        return denoise_nl_means(
            image,
            h=float(self.config["h"]) * sigma,
            sigma=sigma,
            patch_size=int(self.config["patch_size"]),
            patch_distance=int(self.config["patch_distance"]),
            fast_mode=True,
        )


class TotalVariation(_Classical):
    name = "tv"
    description = "Total-variation denoising (scikit-image); classical baseline. sigma: noise std in HU, 0 = estimated per slice."
    options = {"sigma": 0.0, "strength": 1.0}

    def _filter(self, image, sigma):
        from skimage.restoration import denoise_tv_chambolle

        return denoise_tv_chambolle(image, weight=float(self.config["strength"]) * sigma)


class BM3D(_Classical):
    name = "bm3d"
    description = "BM3D (extra: denoisekit[bm3d]); classical baseline. sigma: noise std in HU, 0 = estimated per slice."
    options = {"sigma": 0.0, "profile": "np"}

    def __init__(self, **options: Any) -> None:
        import importlib.util

        super().__init__(**options)
        # Checked here, so 'infer --model bm3d' fails before reading any volume.
        if importlib.util.find_spec("bm3d") is None:
            raise DenoiseKitError("model 'bm3d' needs the bm3d package: install denoisekit[bm3d]")

    def _filter(self, image, sigma):
        import bm3d

        return bm3d.bm3d(image, sigma_psd=sigma, profile=str(self.config["profile"]))
