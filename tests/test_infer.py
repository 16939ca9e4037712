import re
import tracemalloc

import numpy as np
import pytest

from denoisekit.errors import DenoiseKitError
from denoisekit.infer import _ramp, denoise_volume
from denoisekit.plugin import Model
from denoisekit.volume import Volume


class Affine(Model):
    """A per-pixel operation: any tiling must reproduce it exactly."""

    name = "affine"
    description = "2x + 1"

    def denoise(self, slices):
        return 2.0 * slices + 1.0


class FixedAffine(Affine):
    """The same operation, refusing anything but 16x16 patches."""

    name = "fixed-affine"
    fixed_size = True
    patch_size = 16

    def __init__(self):
        super().__init__()
        self.calls = []

    def denoise(self, slices):
        assert slices.shape[1:] == (16, 16), slices.shape
        self.calls.append(len(slices))
        return super().denoise(slices)


class TileMean(Model):
    """Replaces each input by its mean: exposes where tiles start and how they blend."""

    name = "tile-mean"
    description = "mean"
    fixed_size = True
    patch_size = 16

    def denoise(self, slices):
        return np.broadcast_to(slices.mean(axis=(1, 2), keepdims=True), slices.shape).copy()


def _volume(shape, seed=0):
    return Volume(np.random.default_rng(seed).normal(0, 100, shape).astype(np.float32))


def test_whole_slices_in_batches():
    vol = _volume((5, 12, 10))
    seen = []
    out = denoise_volume(vol, Affine(), batch_size=2, progress=seen.append, strength=1)
    np.testing.assert_allclose(out.array, 2 * vol.array + 1, rtol=1e-6)
    assert seen == [2, 2, 1]
    assert out.array.dtype == np.float32 and out.shape == vol.shape
    assert out.history[-1] == "denoised affine"  # as infer writes it


def test_fixed_size_model_tiled_reproduces_per_pixel_result():
    vol = _volume((3, 40, 40))
    model = FixedAffine()
    out = denoise_volume(vol, model, batch_size=2, strength=1)
    np.testing.assert_allclose(out.array, 2 * vol.array + 1, rtol=1e-5, atol=1e-3)
    assert sum(model.calls) > 3  # it was really tiled


def test_slices_smaller_than_the_patch_are_padded_and_cropped():
    vol = _volume((2, 10, 23))
    out = denoise_volume(vol, FixedAffine(), strength=1)
    np.testing.assert_allclose(out.array, 2 * vol.array + 1, rtol=1e-5, atol=1e-3)


def test_forced_tiling_of_a_free_size_model_is_exact():
    vol = _volume((2, 50, 37))
    out = denoise_volume(vol, Affine(), tile=16, overlap=6, strength=1)
    np.testing.assert_allclose(out.array, 2 * vol.array + 1, rtol=1e-5, atol=1e-3)


def test_blending_is_smooth_across_tile_borders():
    # A linear ramp image: per-tile means differ, so hard tile borders would show as jumps.
    y, x = np.mgrid[:40, :40].astype(np.float32)
    vol = Volume((10.0 * x)[None])
    out = denoise_volume(vol, TileMean(), overlap=8, strength=1).array[0]
    steps = np.abs(np.diff(out, axis=1))
    # The blended result rises monotonically with small steps; an unblended (overlap 0)
    # tiling jumps by a whole tile's worth (~160 HU) at the borders.
    assert np.all(np.diff(out, axis=1) >= -1e-3)
    assert steps.max() < 40.0
    hard = denoise_volume(vol, TileMean(), overlap=0, strength=1).array[0]
    assert np.abs(np.diff(hard, axis=1)).max() > 100.0


def test_ramp_is_positive_and_crosses_to_one():
    w = _ramp(16, 4)
    assert np.all(w > 0) and w.max() == 1.0
    # Where a tile's fall meets its neighbour's rise, the weights sum to one.
    np.testing.assert_allclose(w[-4:] + w[:4], 1.0)


def test_bad_arguments_are_refused():
    vol = _volume((1, 20, 20))
    with pytest.raises(DenoiseKitError, match="batch size"):
        denoise_volume(vol, Affine(), batch_size=0)
    with pytest.raises(DenoiseKitError, match="only takes 16x16"):
        denoise_volume(vol, FixedAffine(), tile=8)
    with pytest.raises(DenoiseKitError, match="overlap"):
        denoise_volume(vol, Affine(), tile=8, overlap=8)


class NaNFilter(Affine):
    name = "nan-filter"

    def denoise(self, slices):
        out = super().denoise(slices)
        out[..., 3, 3] = np.nan
        return out


@pytest.mark.parametrize("strength", [1, "auto"])
def test_a_model_returning_nan_is_named_not_written(strength):
    """Auto keeps 'none' of a NaN correction as NaN all the same: refused whatever the strength."""
    with pytest.raises(DenoiseKitError, match="model 'nan-filter' returned NaN or infinite values"):
        denoise_volume(_volume((2, 20, 20)), NaNFilter(), strength=strength)


def _peak(nz, tile=None, inplace=False):
    vol = _volume((nz, 64, 64))
    model = Affine()
    denoise_volume(_volume((2, 64, 64)), model)  # first-call imports are not per-slice memory
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    denoise_volume(vol, model, batch_size=4, tile=tile, inplace=inplace)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


@pytest.mark.parametrize("tile", [None, 16])
def test_memory_grows_only_by_the_output(tile):
    slice_bytes = 64 * 64 * 4
    small, large = _peak(40, tile), _peak(80, tile)
    # Doubling the slices adds one output volume's worth (40 slices), not per-batch leftovers.
    assert large - small < 40 * slice_bytes * 1.2
    assert large - small > 40 * slice_bytes * 0.8


def test_model_choice_and_labels(tmp_path):
    from denoisekit.infer import describe, load_model_for_inference, series_description
    from denoisekit.plugins import get_model
    from denoisekit.weights import save_weights

    tv = load_model_for_inference("tv", options=["strength=2"])
    assert tv.name == "tv" and tv.config["strength"] == 2.0
    assert describe(tv) == "tv" and series_description(tv) == "denoised tv"
    with pytest.raises(DenoiseKitError, match="its options come from its weights"):
        load_model_for_inference("residual-mul", options=["init=he"])

    model = get_model("residual-mul")()
    model.build(16)
    deep = tmp_path / ("a-very-long-directory-name-" * 4) / "run-2024" / "best.npz"
    save_weights(deep, model)
    loaded = load_model_for_inference(weights=deep)
    assert loaded.name == "residual-mul"
    assert describe(loaded) == f"residual-mul (weights: {deep})"
    assert series_description(loaded) == "denoised residual-mul weights run-2024/best.npz"
    assert series_description(loaded, "auto") == "denoised residual-mul strength auto weights run-2024/best.npz"
    assert series_description(tv, 0.5) == "denoised tv strength 0.5"
    assert series_description(tv, 1 / 3) == "denoised tv strength 0.333333"
    assert series_description(tv, "auto 0.84") == "denoised tv strength auto 0.84"
    vol = denoise_volume(_volume((1, 8, 8)), loaded, strength=1)
    assert vol.history[-1] == "denoised residual-mul weights run-2024/best.npz"
    auto = denoise_volume(_volume((1, 8, 8)), tv, strength="auto").history[-1]
    assert re.fullmatch(r"denoised tv strength auto \d\.\d\d", auto), auto


@pytest.mark.parametrize("tile", [None, 16])
def test_inplace_needs_no_second_volume_and_gives_the_same_result(tile):
    slice_bytes = 64 * 64 * 4
    small, large = _peak(40, tile, inplace=True), _peak(80, tile, inplace=True)
    assert large - small < 40 * slice_bytes * 0.2  # no output volume: batch-sized work only
    vol = _volume((9, 40, 40), seed=3)
    expected = denoise_volume(vol, TileMean(), batch_size=4, overlap=6).array
    array = vol.array
    result = denoise_volume(vol, TileMean(), batch_size=4, overlap=6, inplace=True)
    assert result.array is array  # the input's memory now holds the output
    np.testing.assert_array_equal(result.array, expected)
