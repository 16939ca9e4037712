"""The Volume's geometry helpers."""

import numpy as np
import pytest

from denoisekit.volume import Volume

CORONAL = (1, 0, 0, 0, 0, 1, 0, -1, 0)  # rows along x, columns down z, slices along y (LPS)
SAGITTAL = (0, 0, 1, 1, 0, 0, 0, -1, 0)


@pytest.mark.parametrize(
    "direction, plane",
    [
        ((1, 0, 0, 0, 1, 0, 0, 0, 1), "axial"),
        ((1, 0, 0, 0, 1, 0, 0, 0, -1), "axial"),  # feet first: the same plane
        (CORONAL, "coronal"),
        (SAGITTAL, "sagittal"),
        # tilted 20 degrees about x: still axial; 45 degrees: neither plane
        ((1, 0, 0, 0, np.cos(0.35), np.sin(0.35), 0, -np.sin(0.35), np.cos(0.35)), "axial"),
        ((1, 0, 0, 0, np.cos(0.785), np.sin(0.785), 0, -np.sin(0.785), np.cos(0.785)), "oblique"),
    ],
)
def test_plane_is_the_patient_axis_the_slice_normal_follows(direction, plane):
    assert Volume(np.zeros((2, 4, 4), np.float32), direction=tuple(map(float, direction))).plane() == plane
