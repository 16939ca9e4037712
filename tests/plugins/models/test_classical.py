import subprocess
import sys

import numpy as np
import pytest

from denoisekit.errors import DenoiseKitError
from denoisekit_plugins.models.classical import BM3D, NLMeans, TotalVariation


@pytest.fixture(scope="module")
def phantom():
    """Two 48x48 slices: air, a soft-tissue disc and a bone insert, plus 40 HU noise."""
    y, x = np.mgrid[:48, :48]
    clean = np.where((y - 24) ** 2 + (x - 24) ** 2 < 20**2, 40.0, -1000.0)
    clean[(y - 20) ** 2 + (x - 30) ** 2 < 25] = 700.0
    clean = np.stack([clean, clean.T]).astype(np.float32)
    noisy = clean + np.random.default_rng(1).normal(0, 40, clean.shape).astype(np.float32)
    return clean, noisy


def _rmse(a, b):
    return float(np.sqrt(np.mean((a.astype(np.float64) - b) ** 2)))


@pytest.mark.parametrize("cls", [NLMeans, TotalVariation, BM3D])
@pytest.mark.parametrize("sigma", [0.0, 40.0])
def test_reduces_noise(cls, sigma, phantom):
    clean, noisy = phantom
    out = cls(sigma=sigma).denoise(noisy)
    assert out.shape == noisy.shape and out.dtype == np.float32
    assert _rmse(out, clean) < 0.7 * _rmse(noisy, clean)


def test_stronger_setting_smooths_more(phantom):
    _, noisy = phantom
    weak = TotalVariation(sigma=40.0, strength=0.2).denoise(noisy)
    strong = TotalVariation(sigma=40.0, strength=3.0).denoise(noisy)
    assert np.abs(np.diff(strong, axis=2)).mean() < np.abs(np.diff(weak, axis=2)).mean()


def test_not_trainable_and_options_from_strings():
    for cls in (NLMeans, TotalVariation, BM3D):
        assert cls.trainable is False and "sigma" in cls.options
    model = NLMeans.from_strings(["sigma=25", "patch-size=3"])
    assert model.config["sigma"] == 25.0 and model.config["patch_size"] == 3
    with pytest.raises(DenoiseKitError, match="no option"):
        TotalVariation.from_strings(["radius=3"])


@pytest.mark.parametrize("cls, option", [(TotalVariation, "strength=-1"), (TotalVariation, "strength=0"),
                                         (NLMeans, "patch_size=0"), (NLMeans, "h=-1"), (NLMeans, "patch_distance=0")])
def test_options_that_give_garbage_are_refused(cls, option):
    with pytest.raises(DenoiseKitError, match=f"option {option.split('=')[0]} must be above 0"):
        cls.from_strings([option])


def test_slices_with_no_noise_read_are_left_and_said_once(phantom):
    clean, noisy = phantom
    model = NLMeans()
    flat = np.full((3, 48, 48), 40.0, np.float32)  # no noise to read: left as it is
    np.testing.assert_array_equal(model.denoise(flat), flat)
    model.denoise(noisy)
    [note] = model.take_notes()
    assert note.startswith("nl-means read no noise in 3 of 5 slices") and "--option sigma=HU" in note
    assert model.take_notes() == []


def test_negative_sigma_refused_before_any_slice():
    with pytest.raises(DenoiseKitError, match="sigma must be >= 0"):
        TotalVariation(sigma=-1.0)


def test_bm3d_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "bm3d", None)  # as if not installed: import fails
    with pytest.raises(DenoiseKitError, match=r"install denoisekit\[bm3d\]"):
        BM3D()


def test_module_import_stays_light():
    code = (
        "import sys, denoisekit_plugins.models.classical; "
        "print([m for m in ('skimage.restoration', 'bm3d', 'tensorflow') if m in sys.modules])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_estimated_sigma_denoises_ct_noise_better_than_the_wavelet_estimate(quarter_dose_chest):
    from denoisekit_plugins.models.classical import haar_noise_hu

    clean, noisy, tissue = quarter_dose_chest
    estimated = NLMeans().denoise(noisy[None])[0]
    wavelet = NLMeans(sigma=haar_noise_hu(noisy)).denoise(noisy[None])[0]
    assert _rmse(estimated[tissue], clean[tissue]) < 0.8 * _rmse(wavelet[tissue], clean[tissue])


def test_nl_means_threads_keep_each_slice_and_its_noise_level(phantom, monkeypatch):
    import denoisekit_plugins.models.classical as classical

    _, noisy = phantom
    noisy = np.concatenate([noisy, noisy[:1] * 0.5])  # three different slices, levels differ
    monkeypatch.setattr(classical, "usable_cores", lambda: 2)  # threads even on a one-core runner
    together = NLMeans().denoise(noisy)
    one_by_one = np.concatenate([NLMeans().denoise(noisy[k : k + 1]) for k in range(len(noisy))])
    np.testing.assert_array_equal(together, one_by_one)


def test_bm3d_removes_correlated_noise_with_its_spectrum():
    from scipy import ndimage

    rng = np.random.default_rng(4)
    y, x = np.mgrid[:128, :128]
    clean = np.where((y - 64) ** 2 + (x - 64) ** 2 < 62**2, 40.0, -1000.0)
    clean[(y - 50) ** 2 + (x - 70) ** 2 < 100] = 700.0
    grain = ndimage.convolve(rng.normal(0, 1, clean.shape), np.outer([1, 2, 1], [1, 2, 1]) / 16.0, mode="wrap")
    noisy = (clean + grain * 30 / grain.std()).astype(np.float32)[None]
    numpy_had_trapz = hasattr(np, "trapz")
    white = BM3D(spectrum="white").denoise(noisy)
    shaped = BM3D().denoise(noisy)  # spectrum estimated: the default
    # given only the level, BM3D takes the noise for white and leaves its coarse grain
    assert _rmse(shaped, clean) < 0.6 * _rmse(white, clean)
    assert hasattr(np, "trapz") == numpy_had_trapz  # bm4d's old NumPy name is given to bm4d alone


def test_bm3d_psd_follows_the_package_convention():
    from denoisekit_plugins.models.classical import _psd

    np.testing.assert_allclose(_psd(np.full((16, 16), 3.0), (40, 24), 2.0), 4.0 * 40 * 24)  # mean = pixels x var
    spectrum = np.random.default_rng(0).uniform(0.5, 1.5, (16, 16))
    psd = _psd(spectrum, (32, 32), 1.0)
    # a 32-pixel image's even frequencies are the 16-pixel blocks' frequencies, negative ones included
    np.testing.assert_allclose(psd[::2, ::2] / psd[::2, ::2].mean(), spectrum / spectrum.mean(), rtol=1e-6)


@pytest.mark.parametrize("profile", ["refilter", "lc", "NP"])
def test_bm3d_unknown_profile_refused_before_any_slice(profile):
    with pytest.raises(DenoiseKitError, match="option profile must be one of np, vn, high"):
        BM3D(profile=profile)


def test_bm3d_unknown_spectrum_refused():
    with pytest.raises(DenoiseKitError, match="spectrum must be"):
        BM3D(spectrum="pink")


@pytest.mark.parametrize("spectrum", [np.zeros((16, 16)), np.ones((16, 8)), -np.ones((16, 16)), [[1.0, np.nan], [1, 1]]])
def test_bm3d_refuses_a_spectrum_that_is_no_power_spectrum(spectrum):
    with pytest.raises(DenoiseKitError, match="square array of non-negative powers"):
        BM3D(spectrum=spectrum)


def test_bm3d_refuses_slices_too_small_for_it():
    with pytest.raises(DenoiseKitError, match="at least 16x16 pixels, got 8x40"):
        BM3D(sigma=10.0).denoise(np.zeros((1, 8, 40), np.float32))


@pytest.mark.parametrize("cls", [NLMeans, TotalVariation, BM3D])
def test_padding_outside_the_field_of_view_is_kept_and_does_not_bleed(cls, phantom):
    """Scanners write -3024 HU outside the reconstructed circle: it comes back as written,
    and the image inside is filtered as if air surrounded it (the step to -3024 is no edge
    of the patient's)."""
    _, noisy = phantom
    y, x = np.mgrid[:48, :48]
    outside = (y - 23.5) ** 2 + (x - 23.5) ** 2 > 23**2
    in_air = np.where(outside, np.float32(-1024.0), noisy)
    padded = np.where(outside, np.float32(-3024.0), noisy)
    model = cls(sigma=40.0)
    out = model.denoise(padded)
    np.testing.assert_array_equal(out[:, outside], -3024.0)
    np.testing.assert_allclose(out[:, ~outside], model.denoise(in_air)[:, ~outside], atol=1e-3)
