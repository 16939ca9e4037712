"""Embedded samples: the procedural chest phantom and the real CT shipped by pydicom."""

import numpy as np
import pytest

from denoisekit.errors import DenoiseKitError
from denoisekit.samples import SAMPLES, chest_phantom, load_sample


@pytest.fixture(scope="module")
def phantom():
    return load_sample("chest-phantom")


def test_phantom_shape_geometry_and_tags(phantom):
    assert phantom.shape == (24, 512, 512) and phantom.array.dtype == np.float32
    assert phantom.spacing == pytest.approx((0.703125, 0.703125, 2.5))
    assert phantom.tags["PatientName"] == "DENOISEKIT^PHANTOM"
    assert phantom.tags["StudyInstanceUID"] == load_sample("chest-phantom", slices=4, size=64).tags["StudyInstanceUID"]


def test_phantom_tissues_have_real_hu(phantom):
    a = phantom.array
    centre = a[12, 256]  # one row through the middle of the chest
    assert a[:, :5, :5].max() == pytest.approx(-1000.0, abs=1.0)  # air outside
    lung = a[12][np.abs(a[12] + 850) < 60]
    assert lung.size > 0.1 * a[12].size  # lungs fill a good part of the slice
    assert (a > 600).sum() > 1000 and a.max() < 900  # cortical bone present, not metal
    assert ((a > -130) & (a < -70)).sum() > 10000  # fat
    assert ((a > 30) & (a < 60)).sum() > 10000  # muscle, heart, vessels
    assert centre.min() < -800 < centre.max()


def test_phantom_is_deterministic_and_slices_differ():
    a, b = chest_phantom(slices=3, size=128), chest_phantom(slices=3, size=128)
    np.testing.assert_array_equal(a.array, b.array)
    assert np.abs(a.array[0] - a.array[2]).mean() > 5.0


@pytest.mark.parametrize("name, shape", [("ct-small", (1, 128, 128)), ("693", (1, 512, 512))])
def test_real_samples(name, shape):
    volume = load_sample(name)
    assert volume.shape == shape and volume.tags["Modality"] == "CT"
    assert name in SAMPLES


def test_unknown_sample():
    with pytest.raises(DenoiseKitError, match="chest-phantom"):
        load_sample("nope")
