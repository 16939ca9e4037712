"""examples/benchmark.py reads its optional chest image (LIDC-IDRI-0001) as documented."""

import numpy as np
import pytest

from denoisekit.volume import AIR


def test_lidc_slices_are_picked_along_z_with_the_padding_made_air(make_series, example):
    bench = example("benchmark")
    # files written against z order with unrelated names: the picked slices must still be z-ordered
    series = make_series(shape=(133, 8, 8), descending=True, shuffle_names=True)
    clean = bench.read_held_out(bench.LIDC[0], series.path)

    expected = series.hu[list(bench.LIDC_SLICES)]
    expected = np.where(expected < -1500, AIR, expected)
    assert (series.hu[list(bench.LIDC_SLICES)] < -1500).any()  # the fill is exercised
    np.testing.assert_allclose(clean.array, expected)
    assert list(bench.held_out(series.path)) == [*bench.HELD_OUT, bench.LIDC[0]]
    assert list(bench.held_out(None)) == list(bench.HELD_OUT)


def test_another_series_is_refused(make_series, example):
    bench = example("benchmark")
    with pytest.raises(SystemExit, match="expected LIDC-IDRI-0001's 133 slices, got 5"):
        bench.read_held_out(bench.LIDC[0], make_series(shape=(5, 8, 8)).path)


def test_classical_filters_given_the_true_noise_get_its_level_and_bm3d_its_spectrum(example):
    from scipy import ndimage

    from denoisekit.noise_level import SPECTRUM_BLOCK

    bench = example("benchmark")
    rng = np.random.default_rng(0)
    noise = np.stack([ndimage.gaussian_filter(rng.normal(0, 1, (64, 64)), 1.0) for _ in range(2)])
    noise *= 20 / noise.std()
    assert bench.true_noise("nl-means", noise) == {"sigma": pytest.approx(20)}
    options = bench.true_noise("bm3d", noise)
    spectrum = options["spectrum"]
    assert options["sigma"] == pytest.approx(20) and spectrum.shape == (SPECTRUM_BLOCK,) * 2
    assert spectrum.mean() == pytest.approx(1)
    # smoothed noise: its power sits at low frequencies (index 0 is the zero frequency)
    half = SPECTRUM_BLOCK // 2
    assert spectrum[:2, :2].mean() > 10 * spectrum[half - 1 : half + 2, half - 1 : half + 2].mean()
    # noise only inside the field of view (the noise stage leaves the padding alone): read there
    field = np.zeros(noise.shape, bool)
    field[:, :, :32] = True
    padded = np.where(field, noise, 0.0)
    inside = bench.true_noise("bm3d", padded, field)
    assert inside["sigma"] == pytest.approx(noise[field].std())
    np.testing.assert_allclose(inside["spectrum"], bench.true_noise("bm3d", noise[:, :, :32])["spectrum"])
