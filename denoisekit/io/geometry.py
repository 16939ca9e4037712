"""Ordering DICOM slices into a stack and checking it is one regular, orthogonal volume.

Slices are ordered by ImagePositionPatient projected on the slice normal (row x column
direction from ImageOrientationPatient), never by file name or InstanceNumber; the slice
spacing comes from those projections, not from SliceThickness.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from denoisekit.errors import DenoiseKitError

# A stack is regular when every gap is within 1% (and 0.01 mm) of the mean gap: real
# scanners write positions to ~1e-3 mm; a missing slice doubles a gap.
RELATIVE_SPACING_TOLERANCE = 0.01
ABSOLUTE_SPACING_TOLERANCE = 0.01  # mm
# In-plane drift of slice positions (gantry tilt) tolerated before refusing, in mm.
TILT_TOLERANCE = 0.01
ORIENTATION_TOLERANCE = 1e-4


@dataclass
class Stack:
    order: np.ndarray  # indices into the input slices, ascending along the normal
    origin: tuple[float, float, float]
    spacing_z: float
    direction: tuple[float, ...]  # row-major 3x3, columns = row dir, column dir, normal
    notes: list[str] = field(default_factory=list)
    #: The sorted slice positions where they are off the regular grid (a stack read with
    #: ``allow_irregular`` or ``allow_tilt``), else None: a derived DICOM series keeps them.
    positions: list[list[float]] | None = None


def orientation_axes(orientation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit row direction, column direction and slice normal from ImageOrientationPatient."""
    iop = np.asarray(orientation, dtype=float)
    if iop.shape != (6,) or not np.all(np.isfinite(iop)):
        raise DenoiseKitError(f"ImageOrientationPatient must hold 6 numbers, got {[float(v) for v in iop.ravel()]}")
    row, col = iop[:3], iop[3:]
    if np.linalg.norm(row) < 1e-6 or np.linalg.norm(col) < 1e-6:
        raise DenoiseKitError(f"ImageOrientationPatient {iop.tolist()} has a zero direction")
    row, col = row / np.linalg.norm(row), col / np.linalg.norm(col)
    if abs(float(row @ col)) > 1e-3:
        raise DenoiseKitError(
            f"ImageOrientationPatient {iop.tolist()}: row and column directions are not perpendicular"
        )
    normal = np.cross(row, col)
    return row, col, normal / np.linalg.norm(normal)


def order_stack(
    positions,
    orientations,
    *,
    single_slice_spacing: float = 1.0,
    allow_irregular: bool = False,
    allow_tilt: bool = False,
) -> Stack:
    """Sort slices along the normal and check the stack; raise DenoiseKitError if it is not
    one regular orthogonal volume (unless the matching ``allow_*`` override is given)."""
    positions = np.asarray(positions, dtype=float).reshape(-1, 3)
    orientations = np.asarray(orientations, dtype=float).reshape(-1, 6)
    if len(positions) == 0:
        raise DenoiseKitError("no slices to stack")
    if not np.all(np.isfinite(positions)):
        raise DenoiseKitError("ImagePositionPatient holds non-numeric values")
    spread = np.abs(orientations - orientations[0]).max()
    if spread > ORIENTATION_TOLERANCE:
        kinds = len({tuple(np.round(o, 3)) for o in orientations})
        raise DenoiseKitError(
            f"the slices have {kinds} different orientations (ImageOrientationPatient); "
            "they do not form one volume"
        )
    row, col, normal = orientation_axes(orientations[0])
    direction = tuple(float(v) for v in np.stack([row, col, normal], axis=1).ravel())
    along = positions @ normal
    order = np.argsort(along, kind="stable")
    along, positions = along[order], positions[order]
    notes: list[str] = []

    if len(order) == 1:
        return Stack(order, tuple(map(float, positions[0])), float(single_slice_spacing), direction)

    gaps = np.diff(along)
    if gaps.min() < ABSOLUTE_SPACING_TOLERANCE:
        k = int(np.argmin(gaps))
        raise DenoiseKitError(
            f"two slices share the position {along[k]:.3f} mm along the slice normal: the series holds "
            "more than one stack (repeated acquisitions or phases); move one stack's files to a folder of their "
            "own (--series picks among series, not within one)"
        )
    spacing = float((along[-1] - along[0]) / (len(along) - 1))

    offsets = positions - positions[0]
    in_plane = offsets - np.outer(offsets @ normal, normal)
    drift = np.linalg.norm(in_plane, axis=1)
    if drift.max() > TILT_TOLERANCE + 1e-4 * np.abs(along - along[0]).max():
        k = int(np.argmax(drift))
        angle = float(np.degrees(np.arctan2(drift[k], abs(along[k] - along[0]))))
        message = (
            f"the slice positions drift sideways by {drift[k]:.2f} mm over {abs(along[k] - along[0]):.1f} mm "
            f"(gantry tilt or a non-orthogonal stack, {angle:.1f} degrees)"
        )
        if not allow_tilt:
            raise DenoiseKitError(
                message + "; --allow-tilt reads it as an orthogonal stack without correcting the shear"
            )
        notes.append(message + ": read as an orthogonal stack along the slice normal, shear not corrected")

    deviation = np.abs(gaps - spacing)
    if deviation.max() > max(ABSOLUTE_SPACING_TOLERANCE, RELATIVE_SPACING_TOLERANCE * spacing):
        k = int(np.argmax(deviation))
        typical = float(np.median(gaps))
        ratio = gaps[k] / typical
        if ratio > 1.5 and abs(ratio - round(ratio)) < 0.1:
            # as a viewer shows the slices' positions: the ImagePositionPatient coordinate on the
            # patient axis they are stacked along (the distance along the normal may have the other sign)
            axis = int(np.argmax(np.abs(normal)))
            what = (
                f"{int(round(ratio)) - 1} slice(s) missing between {'xyz'[axis]} = {positions[k][axis]:.2f} and "
                f"{positions[k + 1][axis]:.2f} mm (gap {gaps[k]:.2f} mm, typical {typical:.2f} mm)"
            )
        else:
            what = f"irregular slice spacing: gaps from {gaps.min():.3f} to {gaps.max():.3f} mm"
        if not allow_irregular:
            raise DenoiseKitError(what + "; --allow-irregular reads it with the mean spacing anyway")
        notes.append(what + f": read with the mean spacing {spacing:.3f} mm")
    # Off the grid (a note says why): a DICOM output must still put each slice where it was.
    kept = positions.tolist() if notes else None
    return Stack(order, tuple(map(float, positions[0])), spacing, direction, notes, kept)
