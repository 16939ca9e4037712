import numpy as np
import pytest

from denoisekit_plugins.noise.gaussian import Gaussian


def phantom(slices=3, n=64):
    yy, xx = np.mgrid[:n, :n]
    hu = np.where((xx - n / 2) ** 2 + (yy - n / 2) ** 2 < (0.4 * n) ** 2, 40.0, -1000.0)
    hu[(xx - n / 2) ** 2 + (yy - n / 2) ** 2 < 25] = 1200.0
    return np.repeat(hu[None].astype(np.float32), slices, axis=0)


def noise_of(hu, seed=0, **options):
    kind = Gaussian(**options)
    params = kind.sample(np.random.default_rng(seed), hu.shape)
    return kind.apply(hu, params) - hu, params


@pytest.mark.parametrize("sigma", [10.0, 40.0])
def test_sigma_is_honoured_with_zero_mean(sigma):
    noise, params = noise_of(phantom(), sigma=sigma)
    assert noise.std() == pytest.approx(sigma, rel=0.03)
    assert abs(noise.mean()) < 0.03 * sigma
    assert params["sigma"] == sigma and isinstance(params["seed"], int)


def test_relative_form_scales_each_slice_by_its_maximum():
    hu = phantom()
    hu[1] = np.minimum(hu[1], 500.0)  # a slice with a lower maximum
    hu[2] = -1000.0  # all air: negative maximum gives no noise, not negative noise
    noise, _ = noise_of(hu, relative=0.3)
    assert noise[0].std() == pytest.approx(0.3 * 1200.0, rel=0.05)
    assert noise[1].std() == pytest.approx(0.3 * 500.0, rel=0.05)
    assert np.all(noise[2] == 0)


def test_spectrum_is_flat():
    noise, _ = noise_of(phantom(slices=4))
    spec = (np.abs(np.fft.fft2(noise)) ** 2).mean(axis=0)
    f = np.fft.fftfreq(noise.shape[-1])
    r = np.hypot(*np.meshgrid(f, f))
    low, mid = spec[(r > 0) & (r < 0.08)].mean(), spec[(r >= 0.15) & (r < 0.3)].mean()
    assert low / mid == pytest.approx(1.0, abs=0.3)


def test_seed_reproduces_and_differs():
    hu = phantom()
    assert np.array_equal(noise_of(hu, 9)[0], noise_of(hu, 9)[0])
    assert not np.array_equal(noise_of(hu, 9)[0], noise_of(hu, 10)[0])


@pytest.mark.parametrize("option", [{"sigma": -10.0}, {"sigma": float("nan")}, {"relative": -0.3}])
def test_negative_or_nan_levels_are_refused(option):
    from denoisekit.errors import DenoiseKitError

    with pytest.raises(DenoiseKitError, match="must be >= 0"):
        Gaussian(**option)
