"""A NIfTI (NRRD, MHA) volume put back into the DICOM series it was made from (``export
--like``): DICOM -> NIfTI -> a tool that reads NIfTI -> DICOM must land in the scan's own
patient, study and frame of reference, beside the scan, for a viewer to compare them.

Only when the two grids are one: the same voxel centres, to ``TOLERANCE``, in the same or
another order of the axes (converters and tools that reorient to RAS flip or swap them; that
is reordered exactly). Anything else would need resampling, and a series claiming a patient's
frame of reference must not hold voxels moved by a guess: refused.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from denoisekit.errors import DenoiseKitError
from denoisekit.volume import Volume

#: Largest distance (mm) between a voxel centre and the series' one it stands for: NIfTI
#: stores geometry in float32 (about 3e-5 mm at 500 mm from the origin); a grid a tool moved
#: by a fraction of a voxel is off by far more.
TOLERANCE = 0.01
_AXES = "xyz"


def as_series(volume: Volume, series: Volume) -> tuple[Volume, str | None]:
    """``volume``'s voxels with ``series``' geometry and tags (a derived series then writes each
    slice at the series' own position for it, not the float32 a NIfTI keeps), and ``volume``'s
    history and source, plus a note
    when its axes had to be reordered. Refuses a volume on another grid, naming what differs.

    The series' DerivationDescription is left out: a grid says where the voxels are, not what
    was done to them (a NIfTI denoised from the original scan, put ``--like`` a simulated
    low-dose series of it, would claim the simulation); what was done is the NIfTI's own
    account."""
    moved, note = on_grid(volume, series, "the --like series")
    tags = {k: v for k, v in series.tags.items() if k != "DerivationDescription"}
    return replace(moved, tags=tags), note


def on_grid(volume: Volume, target: Volume, name: str = "the target",
            subject: str = "the input") -> tuple[Volume, str | None]:
    """``volume`` with its voxels in ``target``'s axis order and ``target``'s geometry, all else
    its own, plus a note when the axes had to be reordered; refused when the voxel centres are
    not ``target``'s. Messages call them ``subject`` and ``name``."""
    own, theirs = _axes(volume), _axes(target)
    r = theirs.T @ own  # volume's axis directions in the target's axes: a signed permutation if alike
    p = np.rint(r)
    one_each = (np.abs(p).sum(axis=0) == 1).all() and (np.abs(p).sum(axis=1) == 1).all()
    if np.abs(r - p).max() > 1e-4 or not one_each:
        raise DenoiseKitError(f"{_of(subject)} axes are not {_of(name)} axes (nor those reordered or reversed): it is "
                              "not on the same grid, and resampling it is not denoisekit's to guess")
    source = [int(np.flatnonzero(p[t])[0]) for t in range(3)]  # target axis t (x, y, z) <- volume axis source[t]
    sign = [int(p[t, source[t]]) for t in range(3)]
    own_size = volume.shape[::-1]  # (x, y, z)
    size = target.shape[::-1]
    reordered = tuple(own_size[source[t]] for t in range(3))
    if reordered != tuple(size):
        in_axes = f" in {_of(name)} axes" if source != [0, 1, 2] else ""
        raise DenoiseKitError(f"{subject} holds {_shape(reordered)} voxels (x, y, z{in_axes}), {name} "
                              f"{_shape(size)}: not the same grid")
    _check_centres(volume, target, source, sign, name, subject)
    array = np.transpose(volume.array, [2 - source[2 - a] for a in range(3)])  # (z, y, x) of the target
    flips = tuple(2 - t for t in range(3) if sign[t] < 0)
    if flips:
        array = np.flip(array, flips)
    if source != [0, 1, 2] or flips:
        array = np.ascontiguousarray(array)
    moved = replace(volume, array=array, spacing=target.spacing, origin=target.origin, direction=target.direction)
    return moved, _reordered_note(source, sign, name, subject)


def _axes(volume: Volume) -> np.ndarray:
    return np.asarray(volume.direction, dtype=float).reshape(3, 3)


def _centre(volume: Volume, index: np.ndarray) -> np.ndarray:
    """LPS position (mm) of the voxel at (x, y, z) ``index``."""
    return np.asarray(volume.origin, dtype=float) + _axes(volume) @ (np.asarray(volume.spacing, dtype=float) * index)


def _check_centres(volume: Volume, series: Volume, source: list[int], sign: list[int], name: str,
                   subject: str) -> None:
    """The eight corner voxels of the target's grid against the input's voxels that land there:
    both grids are affine, so corners within ``TOLERANCE`` put every voxel within it (spacing
    and origin alike; an axis of one voxel has no spacing to compare)."""
    size = np.asarray(series.shape[::-1])
    own_size = np.asarray(volume.shape[::-1])
    def own_index(index: np.ndarray) -> np.ndarray:
        own = np.zeros(3)
        for t in range(3):
            own[source[t]] = index[t] if sign[t] > 0 else own_size[source[t]] - 1 - index[t]
        return own

    worst = 0.0
    for corner in np.ndindex(2, 2, 2):
        index = np.asarray(corner) * (size - 1)
        worst = max(worst, float(np.linalg.norm(_centre(volume, own_index(index)) - _centre(series, index))))
    if worst > TOLERANCE:
        # in the target's axis order: its first voxel and spacing against the input's that land there
        first = _centre(volume, own_index(np.zeros(3)))
        spacing = [volume.spacing[source[t]] for t in range(3)]
        raise DenoiseKitError(
            f"{_of(subject)} voxels lie up to {worst:.3g} mm from {_of(name)} (first voxel at {_mm(first)} vs "
            f"{_mm(series.origin)} mm, spacing {_mm(spacing)} vs {_mm(series.spacing)}): not the same grid")


def _reordered_note(source: list[int], sign: list[int], name: str, subject: str) -> str | None:
    if source == [0, 1, 2] and sign == [1, 1, 1]:
        return None
    said = ", ".join(_AXES[t] + (" reversed" if sign[t] < 0 else "") + (f" from its {_AXES[source[t]]}" if source[t] != t else "")
                     for t in range(3) if source[t] != t or sign[t] < 0)
    return f"{_of(subject)} axes are {_of(name)} in another order ({said}): reordered exactly, no resampling"


def _shape(size) -> str:
    return "x".join(str(int(v)) for v in size)


def _mm(values) -> str:
    return "(" + ", ".join(f"{float(v):.7g}" for v in values) + ")"


def _of(name: str) -> str:
    """The possessive: "the --like series'", "the reference's"."""
    return f"{name}'" if name.endswith("s") else f"{name}'s"
