"""Image quality in Hounsfield units: RMSE, PSNR and SSIM of a test image against a reference.

Both images are clipped to a HU window first (default -1000..1000: air to dense bone), so a
few extreme voxels (metal, the air outside the body at -3024) cannot dominate the score and
the numbers are comparable between scanners. PSNR's peak is the window width.

``mask`` (boolean, the images' shape) scores only the voxels it marks: air around the body,
which any denoiser gets right, otherwise flatters every number.
"""

from __future__ import annotations

import numpy as np

DEFAULT_WINDOW = (-1000.0, 1000.0)


def _pair(ref, test, window):
    ref = np.asarray(ref, dtype=np.float64)
    test = np.asarray(test, dtype=np.float64)
    if ref.shape != test.shape:
        raise ValueError(f"images differ in shape: {ref.shape} vs {test.shape}")
    if window is not None:
        lo, hi = window
        ref, test = np.clip(ref, lo, hi), np.clip(test, lo, hi)
    return ref, test


class NoSSIMThere(ValueError):
    """The mask marks voxels only where SSIM is not read: within half a window of the edge."""


def _mask(mask, shape) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape:
        raise ValueError(f"mask differs in shape from the images: {mask.shape} vs {shape}")
    if not mask.any():
        raise ValueError("the mask marks no voxel")
    return mask


def _masked(ref, test, mask):
    if mask is None:
        return ref, test
    mask = _mask(mask, ref.shape)
    return ref[mask], test[mask]


def rmse(ref, test, window=None, mask=None) -> float:
    """Root mean squared error in HU (unclipped unless a window is given)."""
    ref, test = _masked(*_pair(ref, test, window), mask)
    return float(np.sqrt(np.mean((ref - test) ** 2)))


def psnr(ref, test, window=DEFAULT_WINDOW, mask=None) -> float:
    """Peak signal-to-noise ratio in dB, with the window width as the peak; inf if equal."""
    ref, test = _masked(*_pair(ref, test, window), mask)
    mse = np.mean((ref - test) ** 2)
    if mse == 0:
        return float("inf")
    peak = (window[1] - window[0]) if window is not None else ref.max() - ref.min()
    return float(10.0 * np.log10(peak**2 / mse))


def ssim(ref, test, window=DEFAULT_WINDOW, mask=None) -> float:
    """Structural similarity (scikit-image, 7x7 window), mean over slices for (z, y, x);
    with a mask, the mean of the SSIM map over the voxels it marks."""
    from skimage.metrics import structural_similarity

    ref, test = _pair(ref, test, window)
    data_range = (window[1] - window[0]) if window is not None else float(ref.max() - ref.min())
    if ref.ndim == 2:
        ref, test = ref[None], test[None]
        mask = None if mask is None else np.asarray(mask)[None]
    if ref.ndim != 3:
        raise ValueError(f"ssim takes 2-D slices or (z, y, x) stacks, got {ref.ndim}-D")
    side = min(ref.shape[1:])
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        raise ValueError(f"slices of {ref.shape[1:]} are too small for SSIM")
    if mask is None:
        scores = [structural_similarity(r, t, win_size=win, data_range=data_range) for r, t in zip(ref, test)]
        return float(np.mean(scores))
    mask = _mask(mask, ref.shape)
    # scikit-image's mean leaves out a border of half a window (its filters' edge): so does
    # the mask, or an all-ones mask would not give the unmasked score
    pad = (win - 1) // 2
    inner = np.zeros(mask.shape[1:], dtype=bool)
    inner[pad : inner.shape[0] - pad, pad : inner.shape[1] - pad] = True
    mask = mask & inner
    if not mask.any():
        raise NoSSIMThere(f"the mask marks no voxel away from the slices' {pad}-pixel border, where SSIM is not read")
    total = 0.0
    for r, t, m in zip(ref, test, mask):
        if m.any():
            _, full = structural_similarity(r, t, win_size=win, data_range=data_range, full=True)
            total += float(full[m].sum())
    return total / float(mask.sum())
