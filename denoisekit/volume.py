"""The one type stages pass around: voxels in HU plus the geometry and source tags
that outputs need. Stages never touch files; ``denoisekit.io`` makes and writes these."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np


#: Below this, a CT value is padding outside the reconstructed field of view (scanners write
#: -2000, -2048 or -3024 there), not anatomy: air is -1000 and its noise, even at a sixteenth
#: of the dose, stays well above.
PADDING_BELOW = -1500.0
AIR = -1024.0


def padding_mask(hu: np.ndarray) -> np.ndarray:
    return hu < PADDING_BELOW


def fill_padding(hu: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """``hu`` with padding (``mask``, or :func:`padding_mask`) set to air, so a model sees what
    it was trained on; the same array (no copy) when there is none."""
    mask = padding_mask(hu) if mask is None else mask
    return np.where(mask, np.float32(AIR), hu).astype(np.float32, copy=False) if mask.any() else hu


def padding_as_air(hu: np.ndarray, work: Any) -> np.ndarray:
    """``work(hu)`` with padding seen as air and given back as the scanner wrote it: what a
    model or noise kind does is done to the image, never to the padding, and none of them
    needs to know a scanner's padding value. ``work`` returns an array of ``hu``'s shape."""
    mask = padding_mask(hu)
    out = work(fill_padding(hu, mask))
    return np.where(mask, hu, out).astype(np.float32, copy=False) if mask.any() else out


@dataclass(frozen=True)
class Volume:
    """A CT volume.

    ``array`` is float32 (z, y, x) in Hounsfield units. Geometry follows SimpleITK's
    conventions (LPS patient coordinates): ``spacing`` and ``origin`` are (x, y, z) in mm,
    ``direction`` is the row-major 3x3 matrix whose columns are the x, y and z axis
    directions. ``origin`` is the centre of voxel (0, 0, 0).

    ``tags`` holds the source DICOM attributes outputs copy (patient, study, series,
    frame of reference: keyword -> value); empty for non-DICOM sources.
    ``history`` lists what was done to the voxels, oldest first, for derivation tags.
    """

    array: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    origin: tuple[float, float, float] = (0.0, 0.0, 0.0)
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)
    tags: dict[str, Any] = field(default_factory=dict)
    history: tuple[str, ...] = ()
    source: str = ""

    def __post_init__(self) -> None:
        if self.array.ndim != 3:
            raise ValueError(f"a Volume holds (z, y, x) voxels, got shape {self.array.shape}")

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.array.shape)  # type: ignore[return-value]

    def derive(self, array: np.ndarray, step: str) -> "Volume":
        """Same geometry and source, new voxels, with ``step`` appended to the history."""
        if array.shape != self.array.shape:
            raise ValueError(f"derived voxels {array.shape} differ from {self.array.shape}")
        return replace(self, array=np.asarray(array, dtype=np.float32), history=self.history + (step,))

    def slice_origin(self, k: int) -> tuple[float, float, float]:
        """Patient position of the first voxel of slice ``k`` (for ImagePositionPatient)."""
        d = np.asarray(self.direction, dtype=float).reshape(3, 3)
        return tuple(float(v) for v in np.asarray(self.origin) + d[:, 2] * self.spacing[2] * k)

    def plane(self) -> str:
        """``axial``, ``coronal`` or ``sagittal``: the patient axis the slice normal lies
        closest to, or ``oblique`` when none is within 30 degrees. CT is acquired axially: a
        coronal stack's noise and anatomy are laid out differently from what simulations and
        models assume."""
        normal = np.abs(np.asarray(self.direction, dtype=float).reshape(3, 3)[:, 2])
        axis = self.stack_axis()
        if normal[axis] < np.cos(np.radians(30.0)) * np.linalg.norm(normal):
            return "oblique"
        return ("sagittal", "coronal", "axial")[axis]

    def stack_axis(self) -> int:
        """The patient axis (0 x, 1 y, 2 z) the slice normal lies closest to: the one along
        which the slices are stacked."""
        return int(np.argmax(np.abs(np.asarray(self.direction, dtype=float).reshape(3, 3)[:, 2])))

    def affine_lps(self) -> np.ndarray:
        """4x4 matrix mapping (x, y, z) voxel indices to LPS millimetres."""
        d = np.asarray(self.direction, dtype=float).reshape(3, 3)
        m = np.eye(4)
        m[:3, :3] = d * np.asarray(self.spacing, dtype=float)
        m[:3, 3] = self.origin
        return m
