"""``export``: convert a volume between DICOM series, NIfTI, NRRD and MHA, keeping
geometry and Hounsfield units exact. Ends every pipeline; noise and infer write through
the same code (denoisekit.io.write_volume)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from denoisekit.cli import app
from denoisekit.cli.common import (
    OUTPUT_FORMATS, ForceOpt, JsonOpt, QuietOpt, err_console, note_to, output_path, print_json, status,
)
from denoisekit.cli.io_options import AllowIrregularOpt, AllowTiltOpt, InputArg, SeriesOpt, describe, read_input, summary


@app.command()
def export(
    input: InputArg,
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help=f"Output path (no default): {OUTPUT_FORMATS}.", show_default=False,
                     parser=output_path, metavar="<path>"),
    ],
    like: Annotated[
        Optional[Path],
        typer.Option("--like", metavar="<series>", show_default=False,
                     help="For a NIfTI/NRRD/MHA INPUT on the voxel grid of a DICOM series (its folder; "
                          "--series, --allow-irregular and --allow-tilt then read it): write the DICOM series into "
                          "that scan's patient, study and frame of reference, beside it. Axes in another order "
                          "are reordered exactly; another grid, and a label map, are refused."),
    ] = None,
    description: Annotated[
        Optional[str],
        typer.Option("--description", metavar="<text>", show_default=False,
                     help="What was done to INPUT (e.g. 'denoised by RED-CNN'), after what denoisekit recorded "
                          "of it: the series' SeriesDescription and DerivationDescription, a NIfTI's descrip. "
                          "Default: that record, else 'converted by denoisekit export from ...'. "
                          "Never put a patient's name here."),
    ] = None,
    series: SeriesOpt = None,
    force: ForceOpt = False,
    allow_irregular: AllowIrregularOpt = False,
    allow_tilt: AllowTiltOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Convert a CT volume between DICOM, NIfTI, NRRD and MHA.

    -o is required: its suffix picks the format (no suffix: a directory holding a derived DICOM series).
    Geometry is kept exactly, and Hounsfield units too except in a DICOM output, which stores them
    to 0.5 HU (16-bit integers).

    Example: denoisekit export scan/ -o scan.nii.gz

    Back into the scan's study: denoisekit export result.nii.gz -o result_dicom/ --like scan/"""
    from denoisekit.errors import UsageError
    from denoisekit.io import check_output, output_kind, recorded_steps, refuse_input, write_volume
    from denoisekit.io.paths import format_name, itk_suffix
    from denoisekit.io.text import CHANGED, CONVERTED, chain

    suffix = itk_suffix(input)
    kind = output_kind(output)  # the usage errors first, then what write_volume would refuse, before any reading
    if like is not None and kind != "dicom":
        raise UsageError("--like writes a DICOM series into the scan's study: -o must be a directory")
    if like is not None and not suffix:
        raise UsageError("--like is for a NIfTI, NRRD or MHA INPUT; a DICOM series has its own patient and study")
    if like is not None and itk_suffix(like):
        raise UsageError(f"--like {like}: a {itk_suffix(like)} file has no patient or study to give; "
                         "name the DICOM series' folder")
    if description is not None and not description.strip():
        raise UsageError("--description is empty: say what was done, or leave it out")
    if description is not None and any(ord(c) < 32 or ord(c) == 127 for c in description):
        raise UsageError("--description holds a line break or control character: give it on one line")
    check_output(output, force=force)
    notes: list[str] = []  # skipped files on reading, source values the derived series could not copy
    from rich.markup import escape
    from rich.progress import Progress

    console = err_console(quiet or as_json)
    note = note_to(console, notes)
    if like is not None:
        from denoisekit.io import read_volume

        refuse_input(like, output, role="--like series")
        reference = read_volume(like, series, allow_irregular=allow_irregular, allow_tilt=allow_tilt, note=note,
                                pixels=False)
        series = None  # it chose the reference's series; INPUT holds one image
    volume = read_input(input, series, allow_irregular, allow_tilt, quiet=quiet or as_json, notes=notes)
    # a file's name may be a patient's: never named (a de-identified series in a folder named
    # after its patient would carry the name on; a NIfTI keeps its description, and a series
    # made from it later is filed as ANONYMOUS)
    source = f"a {format_name(suffix)} file" if suffix else "a DICOM series"
    converted = f"converted by denoisekit export from {source}"
    recorded, given = recorded_steps(volume, kind), (description or "").strip()
    if given and recorded.rsplit("; ", 1)[-1] == CHANGED:  # what another tool did: --description says it
        recorded = recorded.rpartition("; ")[0]
    said = chain(recorded, given)
    if not said or all(step.startswith(CONVERTED) or step == CHANGED for step in said.split("; ")):  # nothing done
        said = converted
    if like is not None:
        volume = _as_series(volume, reference, input, like, note)

    with Progress(console=console, transient=True, disable=quiet or as_json or not console.is_terminal) as bar:
        task = bar.add_task(escape(f"writing {output.name}"), total=volume.shape[0])
        written = write_volume(
            volume, output, force=force, description=said,
            progress=lambda done, total: bar.update(task, completed=done, total=total), note=note,
        )
    if as_json:
        print_json({"input": str(input), "output": str(written), "format": kind, **summary(volume),
                    "description": said, **(_series_record(written) if kind == "dicom" else {}), "notes": notes})
    elif not quiet:
        status(console, f"wrote {written} ({kind}): {describe(volume)}")


def _as_series(volume, reference, input: Path, like: Path, note):
    """``volume`` put on the --like series (``io.like.as_series``), refused when it is a label
    map: CT images of labels, filed in the patient's study, would read as HU (a segmentation's
    DICOM is SEG)."""
    from denoisekit.errors import DenoiseKitError
    from denoisekit.io.itk import not_hu
    from denoisekit.io.like import as_series
    from denoisekit.volume import PADDING_BELOW

    why = not_hu(volume.array)
    if why and "looks like a label map" in why:
        raise DenoiseKitError(f"{input} looks like a label map (segmentation): --like would file it in the patient's "
                              "study as CT images in HU; not written")
    try:
        moved, reordered = as_series(volume, reference)  # with the NIfTI's own account of what was done
    except DenoiseKitError as exc:
        if like.is_file() and reference.shape[0] == 1 < volume.shape[0]:  # one file is one slice
            raise DenoiseKitError(f"{exc} (--like {like} is one file, one slice: name its series' folder)") from None
        raise
    if reordered:
        note(reordered)
    padding = moved.tags.get("PixelPaddingHU")
    if padding and max(padding) >= PADDING_BELOW:
        # the series' padding value marks the series' own voxels: another tool's denoised air
        # may land on -1024, which a viewer would then hide (code review)
        from dataclasses import replace

        note(f"the --like series' pixel padding ({' to '.join(f'{v:g}' for v in padding)} HU) is a value "
             f"{input}'s voxels may hold as image: the new series declares none")
        moved = replace(moved, tags={k: v for k, v in moved.tags.items() if k != "PixelPaddingHU"})
    return moved


def _series_record(directory: Path) -> dict:
    """The new series' UID, number and descriptions, as written (a script sends the series to a
    PACS, or finds it there, by them)."""
    import pydicom

    ds = pydicom.dcmread(next(p for p in sorted(directory.iterdir()) if p.suffix == ".dcm"), stop_before_pixels=True)
    return {keyword: str(ds.get(keyword, "")) for keyword in (
        "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "DerivationDescription", "StudyInstanceUID")}
