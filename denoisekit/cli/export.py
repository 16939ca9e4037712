"""``export``: convert a volume between DICOM series, NIfTI, NRRD and MHA, keeping
geometry and Hounsfield units exact. Ends every pipeline; noise and infer write through
the same code (denoisekit.io.write_volume)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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

    Example: denoisekit export scan/ -o scan.nii.gz"""
    from denoisekit.io import check_output, write_volume
    from denoisekit.io.paths import format_name, itk_suffix

    kind = check_output(output, force=force)  # refuse what write_volume would, before reading anything
    notes: list[str] = []  # skipped files on reading, source values the derived series could not copy
    volume = read_input(input, series, allow_irregular, allow_tilt, quiet=quiet or as_json, notes=notes)
    # a file's name may be a patient's: never named (a de-identified series in a folder named
    # after its patient would carry the name on; a NIfTI keeps its description, and a series
    # made from it later is filed as ANONYMOUS)
    suffix = itk_suffix(input)
    source = f"a {format_name(suffix)} file" if suffix else "a DICOM series"
    description = "; ".join(volume.history) if volume.history else f"converted by denoisekit export from {source}"
    made = volume.tags.get("DerivationDescription") if volume.tags.get("Manufacturer") == "denoisekit" else None
    if made and kind != "dicom":  # a series denoisekit derived: its file says what was done (a series chains it itself)
        description = made
    from rich.markup import escape
    from rich.progress import Progress

    console = err_console(quiet or as_json)
    note = note_to(console, notes)

    with Progress(console=console, transient=True, disable=quiet or as_json or not console.is_terminal) as bar:
        task = bar.add_task(escape(f"writing {output.name}"), total=volume.shape[0])
        written = write_volume(
            volume, output, force=force, description=description,
            progress=lambda done, total: bar.update(task, completed=done, total=total), note=note,
        )
    if as_json:
        print_json({"input": str(input), "output": str(written), "format": kind, **summary(volume), "notes": notes})
    elif not quiet:
        status(console, f"wrote {written} ({kind}): {describe(volume)}")
