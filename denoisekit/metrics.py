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
    """SSIM is not read where the images are: a mask marks voxels only within half a window
    of the edge, or the slices are under 3 pixels on a side."""


def _mask(mask, shape) -> np.ndarray:
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != shape:
        raise ValueError(f"mask differs in shape from the images: {mask.shape} vs {shape}")
    if not mask.any():
        raise ValueError("the mask marks no voxel")
    return mask


def _squared_error(ref, test, window, mask) -> tuple[float, int]:
    """The sum of squared differences (float64) and the number of voxels summed, a slice at a
    time: a whole volume in float64, clipped, took about 8 times the float32 volume's memory."""
    ref, test = np.asarray(ref), np.asarray(test)
    if ref.shape != test.shape:
        raise ValueError(f"images differ in shape: {ref.shape} vs {test.shape}")
    mask = None if mask is None else _mask(mask, ref.shape)
    if ref.ndim < 3:
        ref, test, mask = ref[None], test[None], None if mask is None else mask[None]
    total, count = 0.0, 0
    for k in range(len(ref)):
        r, t = _pair(ref[k], test[k], window)
        if mask is not None:
            r, t = r[mask[k]], t[mask[k]]
        total += float(np.sum((r - t) ** 2))
        count += r.size
    return total, count


def rmse(ref, test, window=None, mask=None) -> float:
    """Root mean squared error in HU (unclipped unless a window is given)."""
    total, count = _squared_error(ref, test, window, mask)
    return float(np.sqrt(total / count)) if count else float("nan")


def psnr(ref, test, window=DEFAULT_WINDOW, mask=None) -> float:
    """Peak signal-to-noise ratio in dB, with the window width as the peak; inf if equal."""
    total, count = _squared_error(ref, test, window, mask)
    if total == 0:
        return float("inf")
    if window is not None:
        peak = window[1] - window[0]
    else:
        values = np.asarray(ref) if mask is None else np.asarray(ref)[_mask(mask, np.shape(ref))]
        peak = float(values.max()) - float(values.min())
    return float(10.0 * np.log10(peak**2 / (total / count)))


def ssim(ref, test, window=DEFAULT_WINDOW, mask=None) -> float:
    """Structural similarity (scikit-image, 7x7 window), mean over slices for (z, y, x);
    with a mask, the mean of the SSIM map over the voxels it marks. Computed a slice at a
    time (see ``_squared_error``)."""
    from skimage.metrics import structural_similarity

    ref, test = np.asarray(ref), np.asarray(test)
    if ref.shape != test.shape:
        raise ValueError(f"images differ in shape: {ref.shape} vs {test.shape}")
    if window is not None:
        data_range = window[1] - window[0]
    else:
        data_range = float(ref.max()) - float(ref.min())
    if ref.ndim == 2:
        ref, test = ref[None], test[None]
        mask = None if mask is None else np.asarray(mask)[None]
    if ref.ndim != 3:
        raise ValueError(f"ssim takes 2-D slices or (z, y, x) stacks, got {ref.ndim}-D")
    side = min(ref.shape[1:])
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        raise NoSSIMThere(f"slices of {ref.shape[1:]} are too small for SSIM (at least 3x3 pixels)")
    if mask is None:
        scores = [structural_similarity(*_pair(r, t, window), win_size=win, data_range=data_range)
                  for r, t in zip(ref, test)]
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
            _, full = structural_similarity(*_pair(r, t, window), win_size=win, data_range=data_range, full=True)
            total += float(full[m].sum())
    return total / float(mask.sum())
