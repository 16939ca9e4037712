"""Slice ordering and stack checks, on positions alone."""

import numpy as np
import pytest

from denoisekit.errors import DenoiseKitError
from denoisekit.io.geometry import order_stack, orientation_axes

AXIAL = (1, 0, 0, 0, 1, 0)


def _stack(offsets, orientation=AXIAL, shift=None):
    row, col, normal = orientation_axes(orientation)
    shift = np.zeros(len(offsets)) if shift is None else np.asarray(shift, float)
    return [np.array([5.0, -3.0, 1.0]) + o * normal + s * col for o, s in zip(offsets, shift)], [orientation] * len(offsets)


def test_orders_by_position_along_the_normal_not_input_order():
    positions, orientations = _stack([7.5, 0.0, 5.0, 2.5])
    stack = order_stack(positions, orientations)
    assert list(stack.order) == [1, 3, 2, 0]
    assert stack.spacing_z == pytest.approx(2.5)
    assert stack.origin == pytest.approx((5.0, -3.0, 1.0))


def test_flipped_orientation_orders_by_decreasing_z():
    # rows along -x, columns along +y: the normal is -z, so the top slice comes first
    orientation = (-1, 0, 0, 0, 1, 0)
    positions = [np.array([0.0, 0.0, z]) for z in (-159.0, -149.0, -139.0)]
    stack = order_stack(positions, [orientation] * 3)
    assert list(stack.order) == [2, 1, 0]
    assert stack.direction == pytest.approx((-1, 0, 0, 0, 1, 0, 0, 0, -1))


def test_missing_slice_is_refused_and_named_then_allowed():
    positions, orientations = _stack([0.0, 2.5, 5.0, 10.0, 12.5])
    with pytest.raises(DenoiseKitError, match=r"1 slice\(s\) missing between z = 6.00 and 11.00 mm"):
        order_stack(positions, orientations)
    # a normal along -z: the positions a viewer shows (z), not the distances along the normal
    flipped = [np.array([0.0, 0.0, -z]) for z in (0.0, 2.5, 5.0, 10.0, 12.5)]
    with pytest.raises(DenoiseKitError, match=r"missing between z = -5.00 and -10.00 mm"):
        order_stack(flipped, [(-1, 0, 0, 0, 1, 0)] * 5)
    stack = order_stack(positions, orientations, allow_irregular=True)
    assert stack.spacing_z == pytest.approx(12.5 / 4)
    assert "missing" in stack.notes[0]


def test_irregular_spacing_is_refused():
    positions, orientations = _stack([0.0, 2.5, 5.3, 7.5])
    with pytest.raises(DenoiseKitError, match="irregular slice spacing.*--allow-irregular"):
        order_stack(positions, orientations)


def test_rounding_noise_in_positions_is_accepted():
    positions, orientations = _stack([0.0, 2.5004, 4.9998, 7.5001])
    assert order_stack(positions, orientations).spacing_z == pytest.approx(2.5, abs=1e-3)


def test_gantry_tilt_is_refused_then_read_along_the_normal():
    positions, orientations = _stack([0.0, 2.5, 5.0], shift=[0.0, 0.9, 1.8])
    with pytest.raises(DenoiseKitError, match=r"gantry tilt.*19\.8 degrees.*--allow-tilt"):
        order_stack(positions, orientations)
    stack = order_stack(positions, orientations, allow_tilt=True)
    assert stack.spacing_z == pytest.approx(2.5)
    assert stack.direction == pytest.approx((1, 0, 0, 0, 1, 0, 0, 0, 1))


def test_duplicate_positions_point_to_series_selection():
    positions, orientations = _stack([0.0, 2.5, 2.5, 5.0])
    with pytest.raises(DenoiseKitError, match="share the position.*move one stack's files to a folder of their own"):
        order_stack(positions, orientations, allow_irregular=True)


def test_mixed_orientations_are_refused():
    positions, _ = _stack([0.0, 2.5, 5.0])
    with pytest.raises(DenoiseKitError, match="2 different orientations"):
        order_stack(positions, [AXIAL, AXIAL, (1, 0, 0, 0, 0, -1)])


def test_non_perpendicular_orientation_is_refused():
    with pytest.raises(DenoiseKitError, match="not perpendicular"):
        orientation_axes((1, 0, 0, 0.3, 0.95, 0))


def test_oblique_normal_is_the_cross_product():
    c, s = np.cos(0.4), np.sin(0.4)
    row, col, normal = orientation_axes((1, 0, 0, 0, c, s))
    assert normal == pytest.approx((0, -s, c))
