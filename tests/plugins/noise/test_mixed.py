import json
import math

import numpy as np
import pytest

from denoisekit.errors import DenoiseKitError
from denoisekit.noise import add_noise, apply_recorded
from denoisekit.plugins import get_noise
from denoisekit.volume import Volume
from denoisekit_plugins.noise.gaussian import Gaussian
from denoisekit_plugins.noise.lowdose import LowDose
from denoisekit_plugins.noise.mixed import Mixed


def phantom(slices=12, n=64):
    yy, xx = np.mgrid[:n, :n]
    r2 = (xx - n / 2) ** 2 + (yy - n / 2) ** 2
    hu = np.where(r2 < (0.4 * n) ** 2, 40.0, -1000.0)
    hu[r2 < 25] = 1200.0
    return np.repeat(hu[None].astype(np.float32), slices, axis=0)


def noisy_of(hu, seed=0, **options):
    kind = Mixed(**options)
    params = kind.sample(np.random.default_rng(seed), hu.shape)
    return kind.apply(hu, params, (0.7, 0.7, 2.5)), params


def test_registered_under_its_name():
    assert get_noise("mixed") is Mixed


def test_same_seed_same_noise_other_seed_other_noise():
    hu = phantom(4)
    a, _ = noisy_of(hu, seed=3)
    b, _ = noisy_of(hu, seed=3)
    c, _ = noisy_of(hu, seed=4)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)
    assert a.dtype == np.float32 and a.shape == hu.shape


def test_levels_vary_per_slice_within_the_ranges():
    params = Mixed().sample(np.random.default_rng(1), (400, 8, 8))
    levels = Mixed.slice_levels(params, 400)
    doses = [lv["dose"] for lv in levels if lv["kind"] == "lowdose"]
    sigmas = [lv["sigma"] for lv in levels if lv["kind"] == "gaussian"]
    assert 150 < len(doses) < 250  # p_lowdose = 0.5
    assert min(doses) >= 1 / 16 and max(doses) <= 0.5
    assert min(sigmas) >= 10 and max(sigmas) <= 60
    # log-uniform dose: about half the draws below the geometric mean of the range (1/sqrt(32))
    assert 0.35 < np.mean(np.array(doses) < 1 / math.sqrt(32)) < 0.65
    assert max(doses) / min(doses) > 6 and max(sigmas) - min(sigmas) > 40
    assert len({lv["seed"] for lv in levels}) == 400


@pytest.mark.parametrize("aec", ["off", "z+angle"])
def test_each_slice_is_what_its_kind_gives_at_its_level(aec):
    hu = phantom(6)
    noisy, params = noisy_of(hu, seed=5, aec=aec)
    levels = Mixed.slice_levels(params, len(hu))
    assert {lv["kind"] for lv in levels} == {"lowdose", "gaussian"}  # this seed draws both
    for k, lv in enumerate(levels):
        if lv["kind"] == "gaussian":
            expected = Gaussian().apply(hu[k : k + 1], {"sigma": lv["sigma"], "relative": 0.0, "seed": lv["seed"]})
            assert np.std(noisy[k] - hu[k]) == pytest.approx(lv["sigma"], rel=0.1)
        else:
            ld = LowDose(dose=lv["dose"], aec=aec)
            p = {**ld.sample(np.random.default_rng(0), (1,) + hu.shape[1:]), "seed": lv["seed"]}
            expected = ld.apply(hu[k : k + 1], p, (0.7, 0.7, 2.5))
        np.testing.assert_array_equal(noisy[k], expected[0])


def test_options_narrow_the_ranges():
    params = Mixed(p_lowdose=0.0, sigma_min=30.0, sigma_max=30.0).sample(np.random.default_rng(0), (20, 8, 8))
    assert {(lv["kind"], lv["sigma"]) for lv in Mixed.slice_levels(params, 20)} == {("gaussian", 30.0)}
    params = Mixed(p_lowdose=1.0, dose_min=0.25, dose_max=0.25).sample(np.random.default_rng(0), (20, 8, 8))
    assert {(lv["kind"], round(lv["dose"], 12)) for lv in Mixed.slice_levels(params, 20)} == {("lowdose", 0.25)}


@pytest.mark.parametrize("bad", [{"dose_min": 0.0}, {"dose_min": 0.6}, {"sigma_min": 70.0}, {"p_lowdose": 1.5}])
def test_bad_options_are_refused(bad):
    with pytest.raises(DenoiseKitError, match="mixed"):
        Mixed(**bad)


def test_unknown_aec_is_refused_before_any_slice():
    with pytest.raises(DenoiseKitError, match="aec"):
        Mixed(aec="auto")


def test_recorded_params_reproduce_the_output():
    vol = Volume(phantom(5), spacing=(0.7, 0.7, 2.5))
    noisy, record = add_noise(vol, "mixed", seed=11, sigma_max=40.0)
    record = json.loads(json.dumps(record))  # as the sidecar stores it
    again = apply_recorded(vol, record)
    np.testing.assert_array_equal(noisy.array, again.array)
    assert record["kind"] == "mixed" and record["options"]["sigma_max"] == 40.0
