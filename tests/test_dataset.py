"""Training pairs: validation hold-out, seeded noise, and batches that depend only on
(seed, epoch)."""

import numpy as np
import pytest

from denoisekit.dataset import PatchPairs, Slices, add_noise, split_volumes, validation_tiles
from denoisekit.errors import DenoiseKitError
from denoisekit.plugin import NoiseKind
from denoisekit.volume import Volume


class CountingNoise(NoiseKind):
    """White noise that counts how often it is applied (to show noise is made once)."""

    name = "counting"
    description = "test noise"
    options = {"sigma": 30.0}
    calls = 0

    def apply(self, hu, params, spacing=(1.0, 1.0, 1.0)):
        CountingNoise.calls += 1
        rng = np.random.default_rng(params["seed"])
        return (hu + params["sigma"] * rng.standard_normal(hu.shape)).astype(np.float32)


def _volume(z=6, n=32, seed=0):
    rng = np.random.default_rng(seed)
    return Volume(rng.uniform(-1000, 1000, (z, n, n)).astype(np.float32))


def test_split_holds_out_the_last_slices_of_each_volume():
    a, b = _volume(10), _volume(4, seed=1)
    train, val = split_volumes([a, b], val_fraction=0.2)
    assert [t[0].shape[0] for t in train] == [8, 3]
    assert [v[0].shape[0] for v in val] == [2, 1]
    np.testing.assert_array_equal(val[0][0], a.array[8:])
    # never copies the voxels
    assert np.shares_memory(train[0][0], a.array)


def test_split_fills_padding_outside_the_field_of_view_with_air():
    arr = np.full((3, 8, 8), 40.0, np.float32)
    arr[:, :2] = -2000.0  # padding
    arr[:, 2, 0] = -1100.0  # noisy air: kept
    train, val = split_volumes([Volume(arr)], val_fraction=0.34)
    assert (train[0][0][:, :2] == -1024.0).all() and (val[0][0][:, :2] == -1024.0).all()
    assert (train[0][0][:, 2, 0] == -1100.0).all()
    assert (arr[:, :2] == -2000.0).all()  # the caller's volume is untouched


def test_split_keeps_one_validation_slice_and_needs_two():
    train, val = split_volumes([_volume(3)], val_fraction=0.01)
    assert (train[0][0].shape[0], val[0][0].shape[0]) == (2, 1)
    train, val = split_volumes([_volume(1), _volume(1, seed=2)], val_fraction=0.15)
    assert len(train) == 1 and len(val) == 1
    with pytest.raises(DenoiseKitError, match="at least 2 slices"):
        split_volumes([_volume(1)])


def test_noise_is_seeded_and_differs_between_realisations_and_streams():
    train, _ = split_volumes([_volume(6)])
    noise = CountingNoise()
    a = add_noise(train, noise, seed=5, stream=0, realisations=2)
    b = add_noise(train, noise, seed=5, stream=0, realisations=2)
    c = add_noise(train, noise, seed=5, stream=1, realisations=2)
    np.testing.assert_array_equal(a[0].noisy, b[0].noisy)
    assert not np.allclose(a[0].noisy[0], a[0].noisy[1])
    assert not np.allclose(a[0].noisy, c[0].noisy)
    assert np.std(a[0].noisy - a[0].clean) == pytest.approx(30.0, rel=0.1)


def test_noise_per_volume_goes_to_that_volumes_slices_in_training_and_validation():
    train, val = split_volumes([_volume(6), _volume(1, seed=1), _volume(6, seed=2)])
    assert [p.volume for p in train] == [0, 1, 2] and [p.volume for p in val] == [0, 2]
    light, heavy = CountingNoise(sigma=10.0), CountingNoise(sigma=90.0)
    for parts in (train, val):
        noisy = add_noise(parts, [light, light, heavy], seed=5, stream=0, realisations=2)
        stds = [np.std(p.noisy - p.clean) for p in noisy]
        assert stds[0] == pytest.approx(10.0, rel=0.15) and stds[-1] == pytest.approx(90.0, rel=0.15)
    # the same kind for every volume draws exactly what the single kind does
    one = add_noise(train, light, seed=5, stream=0, realisations=2)
    same = add_noise(train, [light] * 3, seed=5, stream=0, realisations=2)
    for a, b in zip(one, same):
        np.testing.assert_array_equal(a.noisy, b.noisy)


def _pairs(seed=0, batch=4, patch=16):
    train, _ = split_volumes([_volume(6)])
    parts = add_noise(train, CountingNoise(), seed=seed, stream=0, realisations=2)
    return PatchPairs(parts, patch, batch, lambda hu: (hu + 1024.0) / 1000.0, seed)


def test_batches_are_a_function_of_seed_and_epoch_and_pair_up():
    pytest.importorskip("tensorflow")
    p = _pairs()
    one = [tuple(t.numpy() for t in b) for b in p.dataset(epoch=3, steps=3)]
    again = [tuple(t.numpy() for t in b) for b in _pairs().dataset(epoch=3, steps=3)]
    other = [tuple(t.numpy() for t in b) for b in p.dataset(epoch=4, steps=3)]
    assert len(one) == 3 and one[0][0].shape == (4, 16, 16, 1)
    for (x1, y1), (x2, y2) in zip(one, again):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(one[0][1], other[0][1])
    # the clean patch is the noisy patch minus its noise: residual ~ sigma in HU
    x, y = one[0]
    assert np.std((x - y) * 1000.0) == pytest.approx(30.0, rel=0.25)


def test_crop_finds_the_patch_the_plan_names():
    p = _pairs(patch=8)
    rows = np.array([[0, 2, 1, 3, 5, 0], [0, 1, 0, 0, 0, 1]])
    x, y = p.crop(rows)
    part = p.parts[0]
    np.testing.assert_allclose(y[0, ..., 0] * 1000 - 1024, part.clean[2, 3:11, 5:13], atol=1e-3)
    np.testing.assert_allclose(x[0, ..., 0] * 1000 - 1024, part.noisy[1, 2, 3:11, 5:13], atol=1e-3)
    np.testing.assert_allclose(y[1, ..., 0] * 1000 - 1024, part.clean[1, :8, 7::-1], atol=1e-3)


def test_patch_larger_than_slices_is_an_error():
    with pytest.raises(DenoiseKitError, match="larger than"):
        _pairs(patch=64)


def test_validation_tiles_are_a_fixed_grid():
    _, val = split_volumes([_volume(6, n=40)], val_fraction=0.34)
    parts = add_noise(val, CountingNoise(), seed=0, stream=1, realisations=1)
    noisy, clean = validation_tiles(parts, 16, max_tiles=100)
    assert clean.shape == (2 * 2 * 2, 16, 16)  # 2 slices x 2x2 tiles
    np.testing.assert_array_equal(clean[1], val[0][0][0, :16, 16:32])
    few, _ = validation_tiles(parts, 16, max_tiles=3)
    assert len(few) == 3


def test_validation_prefers_tiles_inside_the_body():
    clean = np.full((1, 32, 32), -1000.0, np.float32)
    clean[0, 16:, 16:] = 40.0  # only the lower right tile is body
    part = add_noise([Slices(clean, (1.0, 1.0, 1.0), 0)], CountingNoise(), seed=0, stream=1, realisations=1)
    noisy, tiles = validation_tiles(part, 16)
    assert len(tiles) == 1 and (tiles == 40.0).all()
