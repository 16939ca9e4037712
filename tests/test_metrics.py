"""PSNR, SSIM and RMSE in HU against independent hand computations."""

import math

import numpy as np
import pytest

from denoisekit.metrics import psnr, rmse, ssim


def test_rmse_by_hand():
    ref = np.array([[0.0, 10.0], [20.0, 30.0]])
    test = np.array([[3.0, 6.0], [20.0, 30.0]])  # errors 3 and 4 -> mse (9 + 16) / 4
    assert rmse(ref, test) == pytest.approx(math.sqrt(25 / 4))


def test_psnr_uses_the_window_width_as_peak():
    ref = np.zeros((4, 4))
    test = ref.copy()
    test[0, 0] = 100.0  # mse = 100^2 / 16 = 625
    assert psnr(ref, test) == pytest.approx(10 * math.log10(2000.0**2 / 625.0))
    assert psnr(ref, test, window=(-500, 500)) == pytest.approx(10 * math.log10(1000.0**2 / 625.0))


def test_psnr_clips_to_the_window_before_comparing():
    ref = np.full((3, 3), -1000.0)
    test = np.full((3, 3), -3024.0)  # outside the window: clipped to -1000, so identical
    assert psnr(ref, test) == math.inf
    assert rmse(ref, test) == pytest.approx(2024.0)
    assert rmse(ref, test, window=(-1000, 1000)) == 0.0


def _ssim_one_window(a, b, data_range):
    # SSIM of one 7x7 window, written out from Wang et al. (2004) with scikit-image's
    # sample (ddof=1) covariances and constants K1=0.01, K2=0.03.
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    n = a.size
    ma, mb = a.mean(), b.mean()
    va = ((a - ma) ** 2).sum() / (n - 1)
    vb = ((b - mb) ** 2).sum() / (n - 1)
    cov = ((a - ma) * (b - mb)).sum() / (n - 1)
    return ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2))


def test_ssim_on_a_single_window_matches_the_formula():
    rng = np.random.default_rng(1)
    ref = rng.uniform(-800, 800, (7, 7))
    test = ref + rng.normal(0, 150, (7, 7))
    expected = _ssim_one_window(ref, np.clip(test, -1000, 1000), 2000.0)
    assert ssim(ref, test) == pytest.approx(expected, rel=1e-6)


def test_ssim_of_a_stack_is_the_mean_over_slices_and_one_when_equal():
    rng = np.random.default_rng(2)
    ref = rng.uniform(-800, 800, (2, 7, 7))
    test = ref.copy()
    test[1] += rng.normal(0, 200, (7, 7))
    assert ssim(ref, ref) == pytest.approx(1.0)
    assert ssim(ref, test) == pytest.approx((1.0 + ssim(ref[1], test[1])) / 2)
    assert ssim(ref, test) < 1.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError):
        psnr(np.zeros((3, 3)), np.zeros((3, 4)))


def test_a_mask_scores_only_its_voxels():
    ref = np.array([[0.0, 10.0], [20.0, 30.0]])
    test = np.array([[3.0, 6.0], [520.0, 30.0]])  # a 500 HU error outside the mask
    mask = np.array([[True, True], [False, True]])
    assert rmse(ref, test, mask=mask) == pytest.approx(math.sqrt(25 / 3))
    assert psnr(ref, test, mask=mask) == pytest.approx(10 * math.log10(2000.0**2 / (25 / 3)))
    with pytest.raises(ValueError, match="no voxel"):
        psnr(ref, test, mask=np.zeros((2, 2), bool))


def test_masked_ssim_is_the_mean_of_the_ssim_map_over_the_mask():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    ref = rng.normal(0, 100, (2, 16, 16))
    test = ref + rng.normal(0, 30, ref.shape)
    mask = np.zeros(ref.shape, bool)
    mask[0, 2:9, 3:12] = True
    mask[1, 5:7, :] = True
    maps = [structural_similarity(r, t, data_range=2000.0, full=True)[1] for r, t in zip(ref, test)]
    kept = mask.copy()
    kept[:, :3], kept[:, -3:], kept[:, :, :3], kept[:, :, -3:] = False, False, False, False  # half a 7x7 window
    expected = np.concatenate([m[k] for m, k in zip(maps, kept)]).mean()
    assert ssim(ref, test, mask=mask) == pytest.approx(expected, rel=1e-9)
    assert ssim(ref, test, mask=mask) != pytest.approx(ssim(ref, test), rel=1e-3)
    # a mask of every voxel is no mask at all
    assert ssim(ref, test, mask=np.ones(ref.shape, bool)) == pytest.approx(ssim(ref, test), rel=1e-9)


def test_a_volume_is_scored_a_slice_at_a_time():
    """Each score took the whole volume to float64 and clipped copies of it: about 8 times a
    float32 volume on top of the inputs (code review), 4 GB for 500 slices of 512x512."""
    import tracemalloc

    import skimage.metrics  # noqa: F401 (imported before measuring: its import allocates too)

    rng = np.random.default_rng(0)
    ref = rng.normal(0, 300, (64, 96, 96)).astype(np.float32)
    test = ref + rng.normal(0, 20, ref.shape).astype(np.float32)
    mask = np.zeros(ref.shape, bool)
    mask[:, 20:70, 10:80] = True
    expected = np.sqrt(np.mean((np.clip(ref, -1000, 1000) - np.clip(test, -1000, 1000)).astype(np.float64)[mask] ** 2))
    for score in (lambda: psnr(ref, test, mask=mask), lambda: rmse(ref, test, (-1000, 1000), mask),
                  lambda: ssim(ref, test, mask=mask), lambda: psnr(ref, test)):
        tracemalloc.start()
        score()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < ref.nbytes, peak  # a few slices' worth, not volumes
    assert rmse(ref, test, (-1000, 1000), mask) == pytest.approx(expected, rel=1e-9)
    assert psnr(ref, test, mask=mask) == pytest.approx(20 * math.log10(2000.0 / expected), rel=1e-9)


def test_slices_too_small_for_ssim_say_so():
    from denoisekit.metrics import NoSSIMThere

    ref = np.zeros((2, 2, 2))
    with pytest.raises(NoSSIMThere, match="too small for SSIM"):
        ssim(ref, ref + 1)
    assert rmse(ref, ref + 1) == 1.0
