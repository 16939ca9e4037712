"""The procedural head phantom: real HU for each tissue, the holder's thin structures in air,
determinism, and slices that change from the skull base to the vertex."""

import numpy as np
import pytest

from denoisekit.head_phantom import head_phantom
from denoisekit.samples import SAMPLES, load_sample


@pytest.fixture(scope="module")
def head():
    return head_phantom(slices=6, size=256)


def test_geometry_and_tags(head):
    assert head.shape == (6, 256, 256) and head.array.dtype == np.float32
    assert head.spacing == pytest.approx((250 / 256, 250 / 256, 5.0))
    assert head.tags["BodyPartExamined"] == "HEAD" and head.tags["Modality"] == "CT"
    assert head.tags["StudyInstanceUID"] != load_sample("chest-phantom", slices=1, size=64).tags["StudyInstanceUID"]
    assert "head-phantom" in SAMPLES


def test_tissues_have_real_hu(head):
    a = head.array
    assert a[:, :4, :4].max() == pytest.approx(-1000.0, abs=1.0)  # air outside
    per_slice = a[0].size
    brain = ((a > 15) & (a < 50)).sum(axis=(1, 2))
    assert (brain > 0.15 * per_slice).all()  # grey and white matter fill the middle
    assert ((a > 1000) & (a < 1600)).sum() > 0.005 * a.size  # cortical bone, not metal
    assert ((a > -5) & (a < 15)).sum() > 100  # CSF: ventricles, sulci
    assert a.max() < 1700


def test_thin_structures_in_air_below_the_head(head):
    # Down the middle column, below the head: the foam lining (far from air but above it)
    # and the holder's bright shell, a few pixels thick.
    column = head.array[3, :, 128]
    skull = np.nonzero(column > 1000)[0]
    below = column[skull.max() + 1:]
    assert ((below > -980) & (below < -850)).sum() >= 5  # foam
    bright = np.nonzero(below > 150)[0]
    assert 1 <= len(bright) <= 20  # shell (and table skins): thin


def test_deterministic_and_levels_differ(head):
    a, b = head_phantom(slices=2, size=64), head_phantom(slices=2, size=64)
    np.testing.assert_array_equal(a.array, b.array)
    assert np.abs(head.array[0] - head.array[5]).mean() > 5.0


def test_air_cells_at_the_skull_base_only(head):
    from scipy import ndimage

    def air_inside_head(img):
        body = img > -500
        return int((ndimage.binary_fill_holes(body) & ~body).sum())

    assert air_inside_head(head.array[0]) > 10  # frontal sinus, mastoid cells
    assert air_inside_head(head.array[5]) == 0  # upper vault
