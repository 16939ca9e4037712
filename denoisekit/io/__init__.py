"""All file formats live here; stages and models never touch files.

Public API (other modules import only these):

- ``read_volume(path, series=None, *, allow_irregular=False, allow_tilt=False) -> Volume``
- ``write_volume(volume, path, *, force=False, description=None, sidecar=None) -> Path``
- ``default_output(input_path, tag) -> Path``, ``output_kind(path)``, ``sidecar_path(output)``

Heavy libraries (pydicom, SimpleITK) are imported only when a volume is read or written.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from denoisekit.errors import DenoiseKitError
from denoisekit.io.paths import default_output, itk_suffix, output_kind, sidecar_path
from denoisekit.volume import Volume

__all__ = ["read_volume", "write_volume", "default_output", "output_kind", "sidecar_path"]

logger = logging.getLogger("denoisekit.io")


def read_volume(
    path: str | Path,
    series: str | None = None,
    *,
    allow_irregular: bool = False,
    allow_tilt: bool = False,
    note: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Volume:
    """Read a DICOM directory/file or a NIfTI/NRRD/MHA file into a Volume in HU.

    ``series`` picks a series (SeriesInstanceUID or SeriesNumber) in a directory holding
    several; ``allow_irregular`` / ``allow_tilt`` accept stacks that are otherwise refused.
    ``note`` receives diagnostics (skipped files, accepted irregularities; default: the
    ``denoisekit.io`` logger); ``progress(done, total)`` is called per slice read.
    """
    path = Path(path)
    note = note or logger.warning
    if not path.exists():
        raise DenoiseKitError(f"{path} does not exist")
    if path.is_file() and itk_suffix(path):
        from denoisekit.io.itk import read_itk

        if series is not None:
            note(f"--series is ignored for {path.name}: it holds one image")
        volume = read_itk(path)
        _refuse_non_finite(volume, path)
        if progress is not None:
            progress(volume.shape[0], volume.shape[0])
        return volume
    from denoisekit.io.dicom_read import read_dicom

    return read_dicom(
        path, series, allow_irregular=allow_irregular, allow_tilt=allow_tilt, note=note, progress=progress
    )


def _refuse_non_finite(volume: Volume, path: Path) -> None:
    """NaN or infinite voxels are not HU: every stage would spread them (a whole slice's
    denoising, a volume's noise estimate), so a float image holding any is refused."""
    import numpy as np

    finite = np.isfinite(volume.array)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        raise DenoiseKitError(f"{path.name} holds {bad} NaN or infinite voxel(s); CT values must be finite HU")


def write_volume(
    volume: Volume,
    path: str | Path,
    *,
    force: bool = False,
    description: str | None = None,
    sidecar: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write atomically: a directory path gives a derived DICOM series, .nii/.nii.gz NIfTI,
    .nrrd/.mha those formats. ``sidecar`` (JSON-able) goes to ``sidecar_path(path)``.

    Nothing is written when the output (or sidecar) exists without ``force``, or when the
    output would overwrite or land inside the input (``volume.source``).
    """
    from denoisekit.io.atomic import publish, refuse_existing, remove, temp_sibling, write_json_temp

    path = Path(path)
    kind = output_kind(path)
    side = sidecar_path(path) if sidecar is not None else None
    _refuse_input(volume, path)
    refuse_existing([path] + ([side] if side else []), force)
    description = description or "; ".join(volume.history) or "converted by denoisekit"
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_sibling(path)
    side_temp = None
    try:
        if kind == "dicom":
            from denoisekit.io.dicom_write import write_series

            temp.mkdir()
            write_series(volume, temp, description, progress=progress)
        else:
            from denoisekit.io.itk import write_itk

            write_itk(volume, temp, description)
            if progress is not None:
                progress(volume.shape[0], volume.shape[0])
        if side is not None:
            side_temp = write_json_temp(sidecar, side)
        publish(temp, path, force)  # the volume first: a sidecar never describes a missing one
        if side_temp is not None:
            publish(side_temp, side, force)
    except BaseException:
        remove(temp)
        if side_temp is not None:
            remove(side_temp)
        raise
    return path


def _refuse_input(volume: Volume, output: Path) -> None:
    if not volume.source:
        return
    source = Path(volume.source).resolve()
    out = output.resolve()
    if out == source or source.is_relative_to(out):
        raise DenoiseKitError(f"{output} would overwrite the input {volume.source}; choose another output")
    if source.is_dir() and out.is_relative_to(source):
        raise DenoiseKitError(f"{output} is inside the input directory {volume.source}; choose another output")
