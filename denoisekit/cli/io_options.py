"""Input options every command that reads a volume shares (``--series``,
``--allow-irregular``, ``--allow-tilt``) and ``read_input``, which reads with them,
showing progress and notes on stderr. Light: denoisekit.io is imported when called."""

from __future__ import annotations

import re

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

if TYPE_CHECKING:
    from collections.abc import Callable

    from denoisekit.volume import Volume

InputArg = Annotated[
    Path,
    typer.Argument(
        help="A DICOM directory (searched recursively) or file, or a .nii/.nii.gz/.nrrd/.mha file.",
        show_default=False,
        metavar="INPUT",
    ),
]
SeriesOpt = Annotated[
    Optional[str],
    typer.Option("--series", help="Series to read from a directory holding several: SeriesInstanceUID or SeriesNumber."),
]


def output_tag(tag: str, series: str | None) -> str:
    """A default output's tag, naming the ``--series`` read: outputs of two series of one
    folder would otherwise share a name, and the second replace the first."""
    if not series:
        return tag
    return f"series-{re.sub(r'[^A-Za-z0-9.-]+', '_', series.strip())}_{tag}"


AllowIrregularOpt = Annotated[
    bool,
    typer.Option("--allow-irregular", help="Read a stack with irregular slice spacing or a missing slice (mean spacing)."),
]
AllowTiltOpt = Annotated[
    bool,
    typer.Option("--allow-tilt", help="Read a gantry-tilted stack as orthogonal slices (shear not corrected)."),
]


def read_input(
    path: Path,
    series: str | None = None,
    allow_irregular: bool = False,
    allow_tilt: bool = False,
    *,
    quiet: bool = False,
    notes: list[str] | None = None,
    note: "Callable[[str], None] | None" = None,
    labels: bool = False,
) -> "Volume":
    """Read ``path`` with the shared options; notes (skipped files, accepted
    irregularities) and a progress bar go to stderr unless ``quiet``, and the notes into
    ``notes`` too (a command's ``--json`` record); or the notes to ``note`` when given."""
    from denoisekit.cli.common import err_console, note_to
    from denoisekit.io import read_volume

    console = err_console(quiet)
    from rich.markup import escape
    from rich.progress import Progress

    with Progress(console=console, transient=True, disable=quiet or not console.is_terminal) as bar:
        task = bar.add_task(escape(f"reading {path.name}"), total=None)
        volume = read_volume(
            path,
            series,
            allow_irregular=allow_irregular,
            allow_tilt=allow_tilt,
            note=note or note_to(console, notes),
            progress=lambda done, total: bar.update(task, completed=done, total=total),
            labels=labels,
        )
    return volume


def summary(volume: "Volume") -> dict:
    """Shape, spacing and HU range of a volume, for one-line reports and ``--json``."""
    array = volume.array
    return {
        "shape": list(volume.shape),
        "spacing": [round(float(v), 6) for v in volume.spacing],
        "origin": [round(float(v), 6) for v in volume.origin],
        "direction": [round(float(v), 8) for v in volume.direction],
        "hu_min": float(array.min()) if array.size else None,
        "hu_max": float(array.max()) if array.size else None,
    }


def describe(volume: "Volume") -> str:
    """'24x512x512 voxels (z,y,x), spacing 0.703x0.703x2.500 mm, HU -1000..1250'."""
    info = summary(volume)
    z, y, x = info["shape"]
    sx, sy, sz = info["spacing"]
    return (
        f"{z}x{y}x{x} voxels (z,y,x), spacing {sx:.3f}x{sy:.3f}x{sz:.3f} mm (x,y,z), "
        f"HU {info['hu_min']:.0f}..{info['hu_max']:.0f}"
    )
