"""All file formats live here; stages and models never touch files.

Public API (other modules import only these):

- ``read_volume(path, series=None, **overrides) -> Volume``
- ``write_volume(volume, path, force=False, description=None) -> Path``
- ``output_kind(path) -> "dicom" | "nifti" | ...``
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from denoisekit.volume import Volume


def read_volume(path: str | Path, series: str | None = None, **overrides: Any) -> Volume:
    """Read a DICOM directory/file or a NIfTI/NRRD/MHA file into a Volume in HU."""
    raise NotImplementedError


def write_volume(volume: Volume, path: str | Path, force: bool = False, description: str | None = None) -> Path:
    """Write atomically: a directory path gives a derived DICOM series, .nii/.nii.gz NIfTI."""
    raise NotImplementedError
