"""All file formats live here; stages and models never touch files.

Public API (other modules import only these):

- ``read_volume(path, series=None, *, allow_irregular=False, allow_tilt=False) -> Volume``
- ``write_volume(volume, path, *, force=False, description=None, sidecar=None, note=None) -> Path``
- ``check_output(path, *, force=False, sidecar=False) -> kind``, ``refuse_input(source, output)``:
  ``write_volume``'s refusals, for commands to run before any work
- ``default_output(input_path, tag) -> Path``, ``output_kind(path)``, ``sidecar_path(output)``
- ``recorded_steps(volume, kind) -> str``: what was done to a volume, as an output of that
  kind says it (``write_volume``'s default description; ``text.chain``)

Heavy libraries (pydicom, SimpleITK) are imported only when a volume is read or written.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from denoisekit.errors import DenoiseKitError
from denoisekit.io.paths import default_output, itk_suffix, output_kind, sidecar_owners, sidecar_path
from denoisekit.io.text import CONVERTED, chain
from denoisekit.volume import Volume

__all__ = ["read_volume", "write_volume", "check_output", "refuse_input", "default_output", "output_kind",
           "sidecar_path", "recorded_steps"]

logger = logging.getLogger("denoisekit.io")


def read_volume(
    path: str | Path,
    series: str | None = None,
    *,
    allow_irregular: bool = False,
    allow_tilt: bool = False,
    note: Callable[[str], None] | None = None,
    progress: Callable[[int, int], None] | None = None,
    labels: bool = False,
    pixels: bool = True,
) -> Volume:
    """Read a DICOM directory/file or a NIfTI/NRRD/MHA file into a Volume in HU.

    ``series`` picks a series (SeriesInstanceUID or SeriesNumber) in a directory holding
    several; ``allow_irregular`` / ``allow_tilt`` accept stacks that are otherwise refused.
    ``note`` receives diagnostics (skipped files, accepted irregularities; default: the
    ``denoisekit.io`` logger); ``progress(done, total)`` is called per slice read.
    ``labels``: the file is a label volume (evaluate's mask), not CT: no note that its values
    do not look like HU. ``pixels=False``: a DICOM series' geometry and tags only, its array a
    read-only zero view (``export --like``'s reference: no pixel is decoded); other formats
    are refused.
    """
    path = Path(path)
    note = note or logger.warning
    if not path.exists():
        raise DenoiseKitError(f"{path} does not exist")
    if not pixels and path.is_file() and itk_suffix(path):
        raise DenoiseKitError(f"{path} is a {itk_suffix(path)} file, not a DICOM series: it has no patient or study to give")
    if path.is_file() and itk_suffix(path):
        from denoisekit.io.itk import read_itk

        if series is not None:
            note(f"--series is ignored for {path.name}: it holds one image")
        volume = read_itk(path, note, labels=labels)  # refuses NaN and infinite voxels
        if progress is not None:
            progress(volume.shape[0], volume.shape[0])
        return volume
    from denoisekit.io.dicom_read import read_dicom

    return read_dicom(
        path, series, allow_irregular=allow_irregular, allow_tilt=allow_tilt, note=note, progress=progress,
        pixels=pixels,
    )


def check_output(path: str | Path, *, force: bool = False, sidecar: bool = False) -> str:
    """Refuse an output ``write_volume`` would refuse, so a command can check before any work:
    an unwritable suffix, an existing output (or JSON sidecar, with ``sidecar``) without
    ``force``, or one ``force`` may not replace (not what denoisekit writes there:
    ``atomic.refuse_foreign``; a sidecar another existing output may own: ``sidecar_owners``).
    Returns ``output_kind(path)``."""
    from denoisekit.io.atomic import refuse_existing

    path = Path(path)
    kind = output_kind(path)
    if sidecar:  # first: --force would not help, so "use --force" must not be the answer
        _refuse_shared_sidecar(path)
    refuse_existing([path], force, series=kind == "dicom")
    if sidecar:
        refuse_existing([sidecar_path(path)], force, output=path)
    check_writable(path)
    return kind


def check_writable(path: str | Path) -> None:
    """Refuse an output whose folder (or the nearest that exists: writers make the rest) cannot
    take new files, before any work: infer denoised a whole volume before finding out, then named
    its hidden temporary file (new-user pass). Tried with a file made and removed at once, since
    permissions do not say it all (a read-only mount, /proc)."""
    import tempfile

    path = Path(path)
    folder = path.parent.absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise DenoiseKitError(f"cannot write {path}: {folder} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".denoisekit-probe-", dir=folder)
    except OSError as exc:
        raise DenoiseKitError(f"cannot write {path}: {folder}: {exc.strerror or exc}") from None
    os.close(fd)
    os.unlink(probe)


def write_volume(
    volume: Volume,
    path: str | Path,
    *,
    force: bool = False,
    description: str | None = None,
    sidecar: dict[str, Any] | None = None,
    progress: Callable[[int, int], None] | None = None,
    note: Callable[[str], None] | None = None,
) -> Path:
    """Write atomically: a directory path gives a derived DICOM series, .nii/.nii.gz NIfTI,
    .nrrd/.mha those formats, the suffix in any case. ``sidecar`` (JSON-able) goes to
    ``sidecar_path(path)``. ``note`` hears of source values a DICOM series could not copy
    as they were (default: the ``denoisekit.io`` logger, as for ``read_volume``).

    Nothing is written when the output (or sidecar) would overwrite or land inside the input
    (``volume.source``), or exists and ``check_output`` refuses it; a failed write leaves
    nothing behind.
    """
    from denoisekit.io.atomic import publish, remove, temp_sibling, write_json_temp

    path = Path(path)
    side = sidecar_path(path) if sidecar is not None else None
    if volume.source:
        refuse_input(volume.source, path, side)
    kind = check_output(path, force=force, sidecar=side is not None)
    description = description or recorded_steps(volume, kind) or CONVERTED
    path.parent.mkdir(parents=True, exist_ok=True)
    work = temp_sibling(path)  # a hidden directory: whatever a writer puts there goes with it
    side_temp = None
    try:
        work.mkdir()
        if kind == "dicom":
            from denoisekit.io.dicom_write import write_series

            temp = work
            write_series(volume, temp, description, progress=progress, note=note)
        else:
            from denoisekit.io.itk import write_itk

            temp = work / f"volume{itk_suffix(path)}"  # lower case: SimpleITK picks its writer by it
            write_itk(volume, temp, description, shown=path, note=note)
            if progress is not None:
                progress(volume.shape[0], volume.shape[0])
        if side is not None:
            # the output it describes, by name: another output mapping to this sidecar knows it is not its own
            side_temp = write_json_temp({**sidecar, "sidecar_of": path.name}, side)
        stale = _stale_sidecar(path) if side is None and force else None
        publish(temp, path, force, series=kind == "dicom")  # the volume first: a sidecar never describes a missing one
        if side_temp is not None:
            publish(side_temp, side, force, series=False, output=path)
        if stale is not None:
            remove(stale)
            (note or logger.warning)(f"removed {stale.name}, the sidecar of the output this one replaced")
    except BaseException as exc:
        remove(work)
        if side_temp is not None:
            remove(side_temp)
        if isinstance(exc, OSError) and not isinstance(exc, DenoiseKitError):  # a full disk: not our temp name
            raise DenoiseKitError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise
    remove(work)  # what is left once a single file is published: an empty directory
    return path


def _stale_sidecar(path: Path) -> Path | None:
    """The sidecar of the output ``path`` replaces, when the new one has none: left, it went on
    describing noise the new voxels do not have (``export --force`` over a ``noise`` output:
    new-user pass). Only a sidecar denoisekit wrote for this very output."""
    from denoisekit.io.atomic import is_our_sidecar
    from denoisekit.io.paths import _recorded_output

    side = sidecar_path(path)
    if not (path.exists() and side.is_file() and not side.is_symlink() and is_our_sidecar(side)):
        return None
    return side if _recorded_output(side) == path.name else None


def _refuse_shared_sidecar(path: Path) -> None:
    """A sidecar that may be another output's is never replaced, even with ``--force``:
    ``-o x.nii.gz`` must not take the parameters of an earlier ``-o x`` (both write ``x.json``)."""
    owners = sidecar_owners(path)
    if owners:
        others = " and ".join(str(o) for o in owners)
        raise DenoiseKitError(f"{path} would replace {sidecar_path(path)}, which may be the sidecar of {others}: "
                              "choose another --output")


def refuse_input(source: str | Path, output: Path, side: Path | None = None, role: str = "input") -> None:
    """Neither the output nor its JSON sidecar may be, contain or lie inside the input
    ``source`` (a DICOM file named ``noisy.json`` is the sidecar of ``-o noisy``), nor another
    path a command reads (``role`` names it: ``export --like``'s series). Commands call it
    before any work; ``write_volume`` calls it again for the input."""
    resolved = Path(source).resolve()
    for what, path in (("", output), ("the sidecar ", side)):
        if path is None:
            continue
        out = path.resolve()
        if out == resolved or resolved.is_relative_to(out):
            raise DenoiseKitError(f"{what}{path} would overwrite the {role} {source}; choose another output")
        if resolved.is_dir() and out.is_relative_to(resolved):
            raise DenoiseKitError(f"{what}{path} is inside the {role} directory {source}; choose another output")


def recorded_steps(volume: Volume, kind: str) -> str:
    """What was done to ``volume``, as an output of ``kind`` (``output_kind``) says it, and
    ``write_volume``'s description by default: the steps of its ``history`` (a file's record,
    then what stages did), after, for a series denoisekit derived, its DerivationDescription,
    unless the output is a DICOM series, which chains its source's itself (``dicom_write``).
    Without this a NIfTI denoised from a simulated low-dose series said only the denoising."""
    made = volume.tags.get("DerivationDescription") if volume.tags.get("Manufacturer") == "denoisekit" else None
    return chain(str(made) if made and kind != "dicom" else "", *volume.history)
