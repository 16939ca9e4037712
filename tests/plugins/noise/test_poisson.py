import numpy as np
import pytest

from denoisekit.errors import DenoiseKitError
from denoisekit_plugins.noise.poisson import Poisson


def test_noise_grows_with_density_and_is_zero_in_air():
    hu = np.zeros((2, 64, 96), np.float32)
    hu[:, :, :32] = -1000.0
    hu[:, :, 64:] = 1000.0
    kind = Poisson(photons=500.0)
    noise = kind.apply(hu, kind.sample(np.random.default_rng(0), hu.shape)) - hu
    air, water, bone = noise[..., :32], noise[..., 32:64], noise[..., 64:]
    assert np.all(air == 0)
    assert water.std() == pytest.approx(1000 * np.sqrt(1 / 500), rel=0.05)
    assert bone.std() == pytest.approx(1000 * np.sqrt(2 / 500), rel=0.05)
    assert abs(water.mean()) < 0.05 * water.std()


def test_non_positive_photons_are_refused():
    with pytest.raises(DenoiseKitError, match="photons"):  # when given, before any input is read
        Poisson(photons=0.0)
    kind = Poisson()
    hu = np.zeros((1, 8, 8), np.float32)
    with pytest.raises(DenoiseKitError, match="photons"):  # and in a record
        kind.apply(hu, {**kind.sample(np.random.default_rng(0), hu.shape), "photons": 0.0})
