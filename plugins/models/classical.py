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

from denoisekit.cpu import usable_cores
from denoisekit.errors import DenoiseKitError, UsageError
from denoisekit.noise_level import estimate_noise_hu, haar_noise_hu  # noqa: F401  (re-exported)
from denoisekit.plugin import Model

#: HU per model unit: filters see HU / SCALE, so CT's -1000..3000 HU becomes -1..3.
SCALE = 1000.0


def _noise_levels(slices: Any, sigma_hu: float) -> list[float]:
    """Noise standard deviation per slice in HU: given, or estimated."""
    if sigma_hu > 0:
        return [sigma_hu] * len(slices)
    return [estimate_noise_hu(s) for s in slices]


class _Classical(Model):
    """Shared slice loop: subclasses implement ``_filter(slice, sigma)`` in scaled units."""

    trainable = False

    #: Filter slices in parallel threads (one per core): only for filters that release the
    #: GIL (nl-means' compiled loop). tv is many short NumPy calls, slower in threads; bm3d
    #: runs its own thread pool, which aborts the process if entered from two threads.
    threaded: bool = False

    #: Options that must be above 0 (checked before any volume is read: a negative strength
    #: or patch size gives garbage, not an error, from scikit-image).
    positive: tuple[str, ...] = ()

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if float(self.config["sigma"]) < 0:  # refused before any volume is read
            raise UsageError(f"option sigma must be >= 0 HU (0 = estimate), got {self.config['sigma']}")
        for key in self.positive:
            if not float(self.config[key]) > 0:
                raise UsageError(f"{self.name} option {key} must be above 0, got {self.config[key]}")
        self._unread = [0, 0]  # slices with no noise read, slices seen (for take_notes)

    def take_notes(self) -> list[str]:
        unread, seen = self._unread
        self._unread = [0, 0]
        if not unread:
            return []
        return [f"{self.name} read no noise in {unread} of {seen} slice{'' if seen == 1 else 's'} (an already "
                "smoothed or lossy-compressed scan?) and left them as they were; --option sigma=HU sets the level"]

    def denoise(self, slices: Any) -> Any:
        import numpy as np

        from denoisekit.volume import padding_as_air

        given = np.asarray(slices, dtype=np.float32)
        if given.ndim != 3:
            raise ValueError(f"expected slices (n, y, x), got shape {given.shape}")
        # Padding outside the field of view (-3024 HU and the like) is filtered as air and
        # comes back as the scanner wrote it, as the learned models do: filtered as image, its
        # step to the body's edge bled into both.
        return padding_as_air(given, self._filter_slices)

    def _filter_slices(self, hu: Any) -> Any:
        import numpy as np
        from concurrent.futures import ThreadPoolExecutor

        out = np.empty_like(hu)
        sigmas = _noise_levels(hu, float(self.config["sigma"]))
        self._unread[0] += sum(1 for s in sigmas if not s > 0)
        self._unread[1] += len(sigmas)

        def one(k: int) -> None:
            x = hu[k].astype(np.float64) / SCALE
            out[k] = hu[k] if sigmas[k] <= 0 else self._filter(x, sigmas[k] / SCALE) * SCALE

        workers = min(len(hu), usable_cores()) if self.threaded else 1
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
    positive = ("h", "patch_size", "patch_distance")
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
    positive = ("strength",)

    def _filter(self, image, sigma):
        from skimage.restoration import denoise_tv_chambolle

        return denoise_tv_chambolle(image, weight=float(self.config["strength"]) * sigma)


class BM3D(_Classical):
    name = "bm3d"
    description = ("BM3D (extra: denoisekit[bm3d]); classical baseline. sigma: noise std in HU, 0 = estimated per "
                   "slice; spectrum: estimated (the noise's power spectrum, read per slice) or white; profile: the "
                   "bm3d package's parameter set, np (normal), vn (very noisy) or high (finer, slower).")
    options = {"sigma": 0.0, "profile": "np", "spectrum": "estimated"}
    #: The bm3d package's profiles for denoising; its 'refilter' fails (bm3d 4.0.3), 'deb'
    #: is for deblurring.
    PROFILES = ("np", "vn", "high")

    def __init__(self, **options: Any) -> None:
        import importlib.util

        super().__init__(**options)
        if self.config["profile"] not in self.PROFILES:  # else bm3d fails on the first slice, obscurely
            raise UsageError(f"option profile must be one of {', '.join(self.PROFILES)}, "
                                  f"got {self.config['profile']!r}")
        # From Python, a measured spectrum (e.g. the scanner's, on a water phantom) may be given
        # as an array, as ``noise_spectrum`` returns it.
        spectrum = self.config["spectrum"]
        if isinstance(spectrum, str):
            if spectrum not in ("estimated", "white"):
                raise UsageError(f"option spectrum must be 'estimated' or 'white', got {spectrum!r}")
        else:
            import numpy as np

            array = np.asarray(spectrum, dtype=np.float64)
            if array.ndim != 2 or array.shape[0] != array.shape[1] or not np.isfinite(array).all() \
                    or (array < 0).any() or not array.sum() > 0:
                raise UsageError("option spectrum must be 'estimated', 'white' or a square array of "
                                      "non-negative powers over FFT frequencies, not all zero")
            self.config["spectrum"] = array
        # Checked here, so 'infer --model bm3d' fails before reading any volume.
        if importlib.util.find_spec("bm3d") is None:
            raise DenoiseKitError("model 'bm3d' needs the bm3d package: install denoisekit[bm3d]")

    #: bm3d works on 8x8 blocks with a search window around them; on smaller slices the
    #: package fails (an 8x8 slice crashes the whole process), so they are refused.
    MIN_SIDE = 16

    def _filter(self, image, sigma):
        from denoisekit.noise_level import noise_spectrum

        if min(image.shape) < self.MIN_SIDE:
            raise DenoiseKitError(f"bm3d needs slices of at least {self.MIN_SIDE}x{self.MIN_SIDE} pixels, "
                                  f"got {image.shape[0]}x{image.shape[1]}")

        spectrum = self.config["spectrum"]
        if isinstance(spectrum, str):
            spectrum = noise_spectrum(image * SCALE) if spectrum == "estimated" else None
        return bm3d_filter(image, sigma, spectrum, profile=str(self.config["profile"]))


def bm3d_filter(image: Any, sigma: float, spectrum: Any = None, profile: str = "np") -> Any:
    """BM3D of one slice with noise of std ``sigma`` (the image's units), white or with the
    power spectrum's shape ``spectrum`` (``noise_spectrum``'s), which BM3D (since version 4,
    Makinen et al. 2020) is built to use: reconstructed CT noise is far from white, and
    given only its level BM3D leaves its coarse grain in place."""
    import bm3d

    if spectrum is None:
        return bm3d.bm3d(image, sigma_psd=sigma, profile=profile)
    _bm4d_numpy2()
    return bm3d.bm3d(image, sigma_psd=_psd(spectrum, image.shape, sigma), profile=profile)


def _psd(spectrum: Any, shape: tuple, sigma: float) -> Any:
    """``spectrum`` (a square array over FFT frequencies, any mean) as the bm3d package's
    noise PSD for an image of ``shape``: interpolated onto the image's frequencies and
    scaled to the package's convention, mean = pixels x variance."""
    from denoisekit.noise_level import spectrum_on

    return spectrum_on(spectrum, shape) * (sigma**2 * shape[0] * shape[1])


def _bm4d_numpy2() -> None:
    """bm4d (which bm3d calls) still uses ``np.trapz`` for PSD input, removed in NumPy 2.4:
    give bm4d alone a NumPy that has it, rather than add the name to NumPy for everyone."""
    import types

    import bm4d
    import numpy as np

    if hasattr(bm4d.np, "trapz"):
        return

    class _NumPy(types.ModuleType):
        trapz = staticmethod(np.trapezoid)

        def __getattr__(self, name: str) -> Any:
            return getattr(np, name)

    bm4d.np = _NumPy("numpy")
