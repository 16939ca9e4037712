import numpy as np
import pytest


def test_noise_estimate_ignores_flat_padding():
    from skimage.restoration import estimate_sigma

    from denoisekit.noise_level import estimate_noise_hu

    rng = np.random.default_rng(2)
    image = np.full((128, 128), -3024.0)  # padding outside the field of view
    image[40:88, 40:88] = 40.0 + rng.normal(0, 30, (48, 48))  # a small noisy body
    assert estimate_noise_hu(image) == pytest.approx(30, rel=0.15)
    assert estimate_sigma(image) < 10  # what a whole-slice estimate makes of it
    noisy = np.full((64, 64), 40.0) + rng.normal(0, 20, (64, 64))
    assert estimate_noise_hu(noisy) == pytest.approx(20, rel=0.15)


def test_noise_estimate_reads_correlated_ct_noise(quarter_dose_chest):
    from denoisekit.noise_level import estimate_noise_hu, haar_noise_hu

    clean, noisy, tissue = quarter_dose_chest
    true = float((noisy - clean)[tissue].std())
    assert estimate_noise_hu(noisy) == pytest.approx(true, rel=0.2)
    # why it is not the wavelet estimate: that reads reconstructed noise at about half its level
    assert haar_noise_hu(noisy) < 0.7 * true


def test_noise_estimate_ignores_edges():
    from denoisekit.noise_level import estimate_noise_hu

    y, x = np.mgrid[:128, :128]
    blocks = np.where((y // 32 + x // 32) % 2, 0.0, 150.0)  # soft-tissue blocks, edges every 32 px
    noisy = blocks + np.random.default_rng(4).normal(0, 10, blocks.shape)
    assert float(np.sqrt(np.mean((noisy - noisy.mean()) ** 2))) > 50  # what a plain std reads
    assert estimate_noise_hu(noisy) == pytest.approx(10, rel=0.1)


def test_noise_estimate_without_soft_tissue_falls_back_to_wavelet():
    from denoisekit.noise_level import estimate_noise_hu, haar_noise_hu

    lung = np.full((96, 96), -800.0) + np.random.default_rng(5).normal(0, 20, (96, 96))
    assert estimate_noise_hu(lung) == haar_noise_hu(lung) == pytest.approx(20, rel=0.15)


def test_a_small_body_on_air_is_read_from_its_own_noise():
    image = np.full((128, 128), -1000.0, dtype=np.float32)  # clipped air: flat
    image[50:74, 50:74] = 20.0 + np.random.default_rng(6).normal(0, 20, (24, 24))
    from denoisekit.noise_level import estimate_noise_hu

    assert estimate_noise_hu(image) == pytest.approx(20, rel=0.25)


def _block_spectrum(noise, b=16):
    """The reference: mean power spectrum of every b x b block of a noise image, mean 1."""
    blocks = np.lib.stride_tricks.sliding_window_view(noise, (b, b))[::b, ::b].reshape(-1, b, b)
    power = (np.abs(np.fft.fft2(blocks - blocks.mean(axis=(1, 2), keepdims=True))) ** 2).mean(axis=0)
    return power / power.mean()


def _radial(spectrum):
    """Mean of a spectrum in low (< 1/8 cycle/px), middle and high (> 3/8) frequency rings."""
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(spectrum.shape[0]), np.fft.fftfreq(spectrum.shape[1]), indexing="ij"))
    return [float(spectrum[(f > lo) & (f <= hi)].mean()) for lo, hi in ((0, 1 / 8), (1 / 8, 3 / 8), (3 / 8, 1))]


def test_noise_spectrum_reads_the_shape_of_reconstructed_noise(quarter_dose_chest):
    from denoisekit.noise_level import noise_spectrum

    clean, noisy, tissue = quarter_dose_chest
    true = _block_spectrum(noisy - clean)
    estimated = noise_spectrum(noisy)
    assert estimated.shape == (16, 16) and estimated.mean() == pytest.approx(1)
    # not white: the reconstruction filter takes the finest frequencies away
    low, middle, high = _radial(estimated)
    assert high < 0.6 * middle
    np.testing.assert_allclose(_radial(estimated), _radial(true), rtol=0.3)


def test_noise_spectrum_of_white_noise_is_flat_despite_edges_and_slopes():
    from scipy import ndimage

    from denoisekit.noise_level import noise_spectrum

    rng = np.random.default_rng(5)
    y, x = np.mgrid[:192, :192]
    anatomy = 20.0 + 0.5 * x  # a slope across soft tissue (20..116 HU): detrended away
    anatomy[:, 120:] = np.where((y[:, 120:] // 8) % 2, 250.0, -250.0)  # stripes: edges in every block
    white = noise_spectrum(anatomy + rng.normal(0, 15, anatomy.shape))
    np.testing.assert_allclose(_radial(white), 1.0, atol=0.15)
    # the same anatomy with correlated noise reads as such
    smooth = ndimage.gaussian_filter(rng.normal(0, 1, anatomy.shape), 1.0)
    low, _, high = _radial(noise_spectrum(anatomy + smooth * 15 / smooth.std()))
    assert high < 0.2 * low


def test_noise_spectrum_needs_flat_soft_tissue():
    from denoisekit.noise_level import noise_spectrum

    rng = np.random.default_rng(6)
    assert noise_spectrum(-800.0 + rng.normal(0, 20, (128, 128))) is None  # lung only
    assert noise_spectrum(40.0 + rng.normal(0, 20, (12, 200))) is None  # narrower than a block
    assert noise_spectrum(np.full((128, 128), 40.0)) is None  # no noise at all


def test_soft_tissue_windows_counts_whole_windows_in_tissue():
    from denoisekit.noise_level import NOISE_WINDOW, soft_tissue_reading

    def soft_tissue_windows(image):
        return soft_tissue_reading(image)[1]

    tissue = np.full((64, 64), 40.0)
    edge = NOISE_WINDOW // 2  # a window's centre this far inside the image (and the tissue)
    assert soft_tissue_windows(tissue) == (64 - 2 * edge) ** 2
    tissue[:, 32:] = -1000.0  # half of it air: windows reaching well into the air do not count
    assert (64 - 2 * edge) * (32 - 4 * edge) <= soft_tissue_windows(tissue) <= (64 - 2 * edge) * (32 - 2 * edge)
    assert soft_tissue_windows(np.full((64, 64), -1000.0)) == 0
    assert soft_tissue_windows(np.full((8, 8), 40.0)) == 0  # too small to read, as soft_tissue_noise_hu
