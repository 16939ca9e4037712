import numpy as np
import pytest

from denoisekit.errors import DenoiseKitError
from denoisekit.infer import denoise_volume
from denoisekit.plugin import Model
from denoisekit.strength import AUTO, divergence, parse_strength, probe_slices, sure_strength, summary
from denoisekit.volume import Volume


class Blur(Model):
    """A linear smoother: takes noise away, and with a wide kernel, edges too."""

    name = "blur"
    description = "Gaussian blur"

    def __init__(self, sigma_px: float):
        super().__init__()
        self.sigma_px = sigma_px

    def denoise(self, slices):
        from scipy import ndimage

        return ndimage.gaussian_filter(slices, (0, self.sigma_px, self.sigma_px), mode="reflect")


def _blocks(n=128):
    """Soft-tissue blocks (0 / 150 HU), small calcifications (300 HU) over their left half:
    detail a blur takes away, next to plain tissue where the noise can be read."""
    y, x = np.mgrid[:n, :n]
    image = np.where((y // 32 + x // 32) % 2, 0.0, 150.0)
    image[(y % 16 < 2) & (x % 16 < 2) & (x < n // 2)] = 300.0
    return image.astype(np.float32)


def _mse(a, b):
    return float(np.mean((a.astype(np.float64) - b) ** 2))


def test_parse_strength():
    assert parse_strength("auto") == parse_strength(" AUTO ") == AUTO
    assert parse_strength("0.25") == 0.25 and parse_strength(1) == 1.0
    with pytest.raises(DenoiseKitError, match="from 0 .* to 1"):
        parse_strength("1.5")
    with pytest.raises(DenoiseKitError, match="'auto' or a number"):
        parse_strength("strong")
    with pytest.raises(DenoiseKitError, match="got '1_0'"):
        parse_strength("1_0")  # float() would read 10
    assert str(parse_strength("-0")) == "0.0"


def test_divergence_of_known_maps():
    slices = np.random.default_rng(0).normal(0, 30, (2, 64, 64)).astype(np.float32)
    assert divergence(lambda s: s, slices) == pytest.approx(1.0, abs=0.01)
    assert divergence(lambda s: 0.3 * s + 5.0, slices) == pytest.approx(0.3, abs=0.01)
    assert divergence(lambda s: np.zeros_like(s), slices) == 0.0
    # a 3x3 mean passes 1/9 of a pixel's own perturbation to that pixel
    from scipy import ndimage

    box = divergence(lambda s: ndimage.uniform_filter(s, (1, 3, 3), mode="reflect"), slices)
    assert box == pytest.approx(1 / 9, abs=0.02)


def test_divergence_ignores_flat_padding():
    slices = np.full((1, 64, 64), -3024.0, dtype=np.float32)
    slices[:, 16:48, 16:48] = 40.0

    def identity_inside(s):  # padding pixels: a constant, as a model may give them
        return np.where(slices > -1000, s, -1000.0)

    assert divergence(identity_inside, slices) == pytest.approx(1.0, abs=0.05)


def test_probe_slices_are_spread_and_central():
    array = np.arange(10, dtype=np.float32)[:, None, None] * np.ones((10, 300, 400), dtype=np.float32)
    probe = probe_slices(array)
    assert probe.shape == (4, 256, 256) and probe.dtype == np.float32
    assert list(probe[:, 0, 0]) == [0.0, 3.0, 6.0, 9.0]
    assert probe_slices(array[:2, :100, :100]).shape == (2, 100, 100)


def test_sure_strength_is_near_the_best_blend():
    """For an over-smoothing model, the blend it picks without the clean image is about the
    best one chosen with it, better than either end, and keeps more where noise is heavier."""
    clean = _blocks()
    model = Blur(2.0)
    chosen = {}
    for noise_hu in (10.0, 40.0):
        noisy = clean + np.random.default_rng(1).normal(0, noise_hu, clean.shape).astype(np.float32)
        smoothed = model.denoise(noisy[None])[0]
        a = sure_strength(noisy, smoothed, divergence(model.denoise, noisy[None]))
        errors = {b: _mse(noisy - b * (noisy - smoothed), clean) for b in np.linspace(0, 1, 101)}
        best = min(errors, key=errors.get)
        assert a == pytest.approx(best, abs=0.05)
        error = _mse(noisy - a * (noisy - smoothed), clean)
        assert error < 1.01 * errors[best]
        assert error < 0.95 * min(_mse(noisy, clean), _mse(smoothed, clean))
        chosen[noise_hu] = a
    assert chosen[40.0] > chosen[10.0] + 0.3


def test_sure_strength_keeps_a_model_that_removes_only_noise():
    clean = _blocks()
    noisy = clean + np.random.default_rng(2).normal(0, 30, clean.shape).astype(np.float32)
    assert sure_strength(noisy, clean, 0.0) > 0.9  # an ideal denoiser is kept (about) whole
    # all padding: no noise to take away, whatever the model makes of it
    assert sure_strength(np.full((64, 64), -3024.0, np.float32), np.zeros((64, 64), np.float32), 0.0) == 0.0


def test_denoise_volume_auto_shrinks_an_over_smoothing_model_on_light_noise():
    clean = np.stack([_blocks(), _blocks().T])
    noisy = clean + np.random.default_rng(3).normal(0, 8, clean.shape).astype(np.float32)
    vol = Volume(noisy)
    used = []
    auto = denoise_volume(vol, Blur(3.0), strengths=used).array
    whole = denoise_volume(vol, Blur(3.0), strength=1).array
    assert len(used) == 2 and all(0.0 <= a < 0.5 for a in used)
    assert _mse(auto, clean) < 0.5 * _mse(whole, clean)
    assert _mse(auto, clean) < _mse(noisy, clean)
    said = denoise_volume(vol, Blur(3.0)).history[-1]  # as infer writes it: what auto kept, the median
    assert said.startswith("denoised blur strength auto 0.") and float(said.split()[-1]) == pytest.approx(np.median(used), abs=0.005)


def test_fixed_strength_blends_input_and_output():
    vol = Volume(np.random.default_rng(4).normal(0, 50, (3, 32, 32)).astype(np.float32))
    model = Blur(1.0)
    whole = denoise_volume(vol, model, strength=1).array
    used = []
    half = denoise_volume(vol, model, strength="0.5", strengths=used)
    np.testing.assert_allclose(half.array, 0.5 * (vol.array + whole), atol=1e-4)
    assert used == [0.5] * 3 and half.history[-1].endswith("strength 0.5")
    np.testing.assert_array_equal(denoise_volume(vol, model, strength=0).array, vol.array)
    with pytest.raises(DenoiseKitError, match="strength"):
        denoise_volume(vol, model, strength=-0.1)


def test_summary():
    assert summary([0.5, 0.25, 1.0]) == "median 0.50 (0.25-1.00)"
    assert summary([0.3]) == "0.30"


def test_low_strength_note_only_when_little_is_kept():
    from denoisekit.strength import low_strength_note

    assert low_strength_note("m", [1.0, 0.9, 0.1]) is None
    assert low_strength_note("m", []) is None
    note = low_strength_note("m", [0.05, 0.1, 0.9])
    assert note.startswith("--strength auto kept") and "10% of m's correction" in note and "--strength 1" in note
    assert "training data" in note
    assert "training data" not in low_strength_note("nl-means", [0.05], trained=False)  # a filter has none


@pytest.mark.parametrize("shape", [(1, 1), (1, 64), (3, 3)])
def test_tiny_slices_get_a_strength_and_no_warning(shape, recwarn):
    noisy = np.random.default_rng(5).normal(40, 20, shape).astype(np.float32)
    assert 0.0 <= sure_strength(noisy, noisy * 0.5, 0.1) <= 1.0
    assert not recwarn.list



def test_a_model_passing_half_its_input_through_is_blended_as_the_clean_image_would():
    """div f = 0.5: SURE's divergence term matters, and the choice still lands on the best blend."""
    clean = _blocks()
    noisy = clean + np.random.default_rng(7).normal(0, 15, clean.shape).astype(np.float32)
    blur = Blur(2.0)

    def half(s):
        return 0.5 * s + 0.5 * blur.denoise(s)

    out = half(noisy[None])[0]
    div = divergence(half, noisy[None])
    assert div == pytest.approx(0.5, abs=0.05)
    a = sure_strength(noisy, out, div)
    errors = {b: _mse(noisy - b * (noisy - out), clean) for b in np.linspace(0, 1, 101)}
    best = min(errors, key=errors.get)
    assert a == pytest.approx(best, abs=0.05)
    without_div = sure_strength(noisy, out, 0.0)  # what forgetting the term would pick
    assert abs(without_div - best) > 0.2


class SoftBlur(Blur):
    """Keeps up to about 10 HU of what a blur takes away: nonlinear, so how much of a probe
    it passes depends on the image it sees (noisy or already denoised)."""

    name = "soft-blur"

    def denoise(self, slices):
        smooth = super().denoise(slices)
        return smooth + 10.0 * np.tanh((slices - smooth) / 10.0)


def test_auto_in_place_one_slice_at_a_time_equals_a_separate_output():
    # the probe must read the input before the first batch overwrites it
    clean = np.stack([_blocks(), _blocks().T, _blocks()[::-1]])
    noisy = clean + np.random.default_rng(8).normal(0, 10, clean.shape).astype(np.float32)
    separate_used, inplace_used = [], []
    separate = denoise_volume(Volume(noisy.copy()), SoftBlur(2.0), batch_size=1, strengths=separate_used).array
    inplace = denoise_volume(Volume(noisy), SoftBlur(2.0), batch_size=1, inplace=True, strengths=inplace_used).array
    np.testing.assert_array_equal(inplace, separate)
    assert inplace_used == separate_used and all(0 < a < 1 for a in separate_used)


class FixedBlur(Blur):
    name = "fixed-blur"
    fixed_size = True
    patch_size = 16


def test_auto_on_a_fixed_size_model_and_slices_smaller_than_its_patch():
    vol = Volume(np.random.default_rng(9).normal(40, 20, (2, 10, 23)).astype(np.float32))
    used = []
    out = denoise_volume(vol, FixedBlur(1.0), strengths=used).array
    assert out.shape == vol.shape and np.isfinite(out).all() and len(used) == 2


def test_a_non_finite_voxel_spoils_only_its_own_slice():
    vol = np.random.default_rng(10).normal(40, 20, (4, 32, 32)).astype(np.float32)
    vol[0, 5, 5] = np.nan  # slice 0 is a probe slice
    used = []
    out = denoise_volume(Volume(vol), Blur(1.0), strengths=used).array
    assert np.isfinite(out[1:]).all() and np.isfinite(used).all()


def _lowpass_spectrum(b=16):
    """A CT-like noise spectrum shape: little power at the highest frequencies."""
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(b), np.fft.fftfreq(b), indexing="ij"))
    power = np.exp(-((f / 0.2) ** 2))
    return power / power.mean()


def test_a_colored_probe_has_unit_variance_and_the_spectrum_it_was_given():
    from denoisekit.strength import colored

    white = np.random.default_rng(0).standard_normal((4, 64, 64)).astype(np.float32)
    probe = colored(white, _lowpass_spectrum())
    assert probe.std() == pytest.approx(1.0, rel=0.05)
    neighbour = np.mean(probe[:, :, 1:] * probe[:, :, :-1])  # white noise: about 0
    assert neighbour > 0.5


def test_divergence_for_correlated_noise_is_tr_S_J_over_s2():
    """For a circular blur H, tr(S J) / (N s^2) is the mean over frequencies of the noise's
    spectrum (mean 1) times H's transfer function: computed here without the probe."""
    from denoisekit.noise_level import spectrum_on
    from denoisekit.strength import divergence

    shape = (64, 64)
    f = np.hypot(*np.meshgrid(np.fft.fftfreq(64), np.fft.fftfreq(64), indexing="ij"))
    transfer = np.exp(-((f / 0.1) ** 2))  # a low-pass denoiser

    def blur(x):
        return np.real(np.fft.ifft2(np.fft.fft2(x, axes=(1, 2)) * transfer, axes=(1, 2))).astype(np.float32)

    slices = np.zeros((8, *shape), np.float32)
    spectrum = _lowpass_spectrum()
    expected = float(np.mean(spectrum_on(spectrum, shape) * transfer))
    assert divergence(blur, slices, spectrum=spectrum) == pytest.approx(expected, rel=0.1)
    assert divergence(blur, slices) == pytest.approx(float(transfer.mean()), rel=0.1)  # white: tr(J) / N
    assert expected > 2 * transfer.mean()  # the blur keeps much more of low-pass noise than of white


def test_probe_spectrum_is_read_where_there_is_flat_soft_tissue():
    from denoisekit.strength import probe_spectrum

    rng = np.random.default_rng(1)
    tissue = 40.0 + 20.0 * rng.standard_normal((2, 64, 64)).astype(np.float32)
    air = np.full((1, 64, 64), -1000.0, np.float32)
    assert probe_spectrum(air) is None
    spectrum = probe_spectrum(np.concatenate([tissue, air]))
    assert spectrum.shape == (16, 16) and spectrum.mean() == pytest.approx(1.0)


def test_auto_reads_the_noise_spectrum_for_its_probe(monkeypatch):
    import denoisekit.strength as S

    seen = []
    real = S.divergence
    monkeypatch.setattr(S, "divergence", lambda run, slices, **kw: seen.append(kw.get("spectrum")) or real(run, slices, **kw))
    rng = np.random.default_rng(2)
    noisy = Volume(_blocks()[None] + rng.normal(0, 20, (2, 128, 128)).astype(np.float32))
    denoise_volume(noisy, Blur(1.0), strength=AUTO)
    assert len(seen) == 1 and seen[0] is not None and seen[0].shape == (16, 16)
