"""How noisy a CT slice is, read from the slice itself: scans do not come with their
noise level, and both the classical filters (their strength) and inference's blending
(``denoisekit.strength``) need it. NumPy and SciPy are imported by the functions."""

from __future__ import annotations

from typing import Any


#: Pixels at or below this HU (air clipped at -1024, padding outside the field of view
#: at -2000 or -3024) are flat, noise-free constants in many scans; they are left out when
#: estimating the noise, or a mostly-empty slice would look noise-free.
FLAT_BELOW_HU = -990.0
#: Fewer 2x2 blocks than this above FLAT_BELOW_HU: fall back to the whole slice. Few, so
#: that a small body on a slice of air is read from its own pixels, not from the air.
MIN_BLOCKS = 16
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

    level = soft_tissue_noise_hu(image)
    return haar_noise_hu(np.asarray(image, dtype=np.float64)) if level is None else level


def soft_tissue_noise_hu(image: Any, tissue: Any = None) -> float | None:
    """The soft-tissue half of ``estimate_noise_hu``: None where fewer than ``MIN_WINDOWS``
    windows lie wholly in soft tissue. ``tissue`` (default ``image``) chooses the windows,
    so a noise field alone can be read where a clean slice has tissue, as the slice's own
    noise would be."""
    return soft_tissue_reading(image, tissue)[0]


def soft_tissue_reading(image: Any, tissue: Any = None) -> tuple[float | None, int]:
    """``soft_tissue_noise_hu`` and the number of windows it read the noise in: how far to
    trust the reading (its variance goes about as one over that number)."""
    import numpy as np
    from scipy import ndimage

    a = np.asarray(image, dtype=np.float64)
    t = a if tissue is None else np.asarray(tissue, dtype=np.float64)
    k = NOISE_WINDOW
    if min(a.shape) < 3 * k:
        return None, 0
    mean = ndimage.uniform_filter(a, k, mode="reflect")
    var = ndimage.uniform_filter(a * a, k, mode="reflect") - mean * mean
    t_mean = mean if tissue is None else ndimage.uniform_filter(t, k, mode="reflect")
    lo, hi = SOFT_TISSUE_HU
    # whole windows in tissue: a window's centre k // 2 pixels from the tissue's border
    inside = ndimage.binary_erosion((t_mean > lo) & (t_mean < hi), iterations=k // 2, border_value=0)
    windows = int(inside.sum())
    if windows < MIN_WINDOWS:
        return None, windows
    sd = np.sqrt(np.maximum(var[inside], 0.0) * (k * k) / (k * k - 1))
    return _half_sample_mode(sd), windows


#: Slices ``volume_noise_hu`` reads, evenly spaced: a level, not a per-slice profile.
VOLUME_SLICES = 16


def volume_noise_hu(array: Any, reference: Any = None) -> float | None:
    """A volume's noise level as a reader would measure it in soft tissue: the median of
    ``soft_tissue_noise_hu`` over up to ``VOLUME_SLICES`` evenly spaced slices that have
    enough soft tissue; None if none has. With ``reference``, that of ``array - reference``
    where the reference is soft tissue (the noise added to it), a slice at a time."""
    import numpy as np

    def level(k: int) -> float | None:
        if reference is None:
            return soft_tissue_noise_hu(array[k])
        return soft_tissue_noise_hu(array[k] - reference[k], tissue=reference[k])

    picks = evenly_spaced(len(array), VOLUME_SLICES)
    levels = [v for k in picks if (v := level(k)) is not None]
    return float(np.median(levels)) if levels else None


def evenly_spaced(nz: int, most: int) -> list[int]:
    """Up to ``most`` slice indices spread evenly over ``nz`` slices, first and last included."""
    import numpy as np

    return [int(k) for k in np.unique(np.linspace(0, nz - 1, min(most, nz)).round().astype(int))] if nz else []


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
        # the whole slice (a mostly flat one reads about 0); none at all if one pixel wide
        return float(np.median(np.abs(detail)) / 0.6745) if detail.size else 0.0
    return float(np.median(np.abs(detail[keep])) / 0.6745)


#: Side (pixels) of the square blocks whose power spectra are averaged into the noise's:
#: small enough that thin soft tissue (chest wall, mediastinum) holds some, and fine enough
#: for BM3D, which works on 8x8 blocks.
SPECTRUM_BLOCK = 16
#: A block counts as flat (noise only) when its standard deviation, after removing its
#: best-fit plane, is at most this many times the most common such value over the slice's
#: soft-tissue blocks: edges and texture would add power of their own.
FLAT_BLOCK = 1.25
#: Fewer flat soft-tissue blocks than this: the spectrum is not read (``None``).
MIN_SPECTRUM_BLOCKS = 16


def noise_spectrum(image: Any) -> Any:
    """The shape of one slice's noise power spectrum: a ``SPECTRUM_BLOCK``-square array over
    the FFT's frequencies (zero first), mean 1. ``None`` where too little flat soft tissue.

    Reconstructed CT noise is not white: the reconstruction kernel shapes it, and a
    denoiser that knows the shape (BM3D since version 4) removes it far better. The shape
    is read as a CT noise power spectrum is measured on a water phantom: the average power
    spectrum of detrended blocks, here the blocks that lie wholly in soft tissue and are
    flat (``FLAT_BLOCK``)."""
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view

    a = np.asarray(image, dtype=np.float64)
    b = SPECTRUM_BLOCK
    if min(a.shape) < b:
        return None
    lo, hi = SOFT_TISSUE_HU
    blocks = sliding_window_view(a, (b, b))[:: b // 2, :: b // 2].reshape(-1, b * b)
    blocks = blocks[(blocks.min(axis=1) > lo) & (blocks.max(axis=1) < hi)]
    if len(blocks) < MIN_SPECTRUM_BLOCKS:
        return None
    detrended = detrend(blocks.reshape(-1, b, b))
    sd = detrended.std(axis=(1, 2))
    level = _half_sample_mode(sd)
    flat = sd <= FLAT_BLOCK * level
    if not level > 0.01 or flat.sum() < MIN_SPECTRUM_BLOCKS:  # HU are stored in steps of 1 or more
        return None
    return mean_spectrum(detrended[flat])


def detrend(blocks: Any) -> Any:
    """Square blocks ``(n, b, b)`` less each one's best-fit plane (its mean and slopes)."""
    import numpy as np

    b = blocks.shape[-1]
    yy, xx = np.mgrid[:b, :b]
    plane = np.stack([np.ones(b * b), yy.ravel(), xx.ravel()], axis=1)
    flat = np.asarray(blocks, dtype=np.float64).reshape(len(blocks), b * b)
    return (flat - (flat @ np.linalg.pinv(plane).T) @ plane.T).reshape(blocks.shape)


def mean_spectrum(detrended: Any) -> Any:
    """The mean power spectrum of detrended blocks, scaled to mean 1. Detrending took each
    block's mean, so the zero frequency reads 0; the mean of its four axial neighbours
    stands in (CT noise spectra are smooth there, and often near 0 themselves)."""
    import numpy as np

    power = (np.abs(np.fft.fft2(detrended)) ** 2).mean(axis=0)
    power[0, 0] = power[[0, 0, 1, -1], [1, -1, 0, 0]].mean()
    return power / power.mean()


def spectrum_on(spectrum: Any, shape: tuple) -> Any:
    """``spectrum`` (square, over FFT frequencies, zero first) interpolated onto the FFT
    frequencies of an image of ``shape`` (periodically, linearly), scaled to mean 1."""
    import numpy as np
    from scipy import ndimage

    b = spectrum.shape[0]
    grid = np.meshgrid(*(np.fft.fftfreq(n) * b for n in shape), indexing="ij")
    power = ndimage.map_coordinates(np.asarray(spectrum, dtype=np.float64), grid, order=1, mode="grid-wrap")
    return power / power.mean()
