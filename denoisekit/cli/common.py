"""Options and helpers shared by commands (kept light: no heavy imports)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print results as JSON on stdout.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or diagnostics.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")]
#: The format each form of output path gives (by its suffix, in any case).
OUTPUT_FORMATS = "a directory gives a DICOM series, .nii/.nii.gz NIfTI, .nrrd/.mha those formats"


def without_trailing_slash(text: str) -> str:
    """``text`` less trailing separators and '/.', which Path drops: a path given as
    ``s0.nii.gz/`` says a folder was meant, and Path would make it the file ``s0.nii.gz``."""
    import os

    seps = "/" + (os.sep if os.sep != "/" else "") + (os.altsep or "")
    stripped = text
    while True:
        shorter = stripped.rstrip(seps)
        if len(shorter) > 1 and shorter.endswith(".") and shorter[-2] in seps:
            shorter = shorter[:-1]
        if shorter == stripped:
            return stripped
        stripped = shorter


def output_path(text: str) -> Path:
    """``-o``'s value as a Path, refusing a file format's name with a trailing slash
    (``s0.nii.gz/``): the slash says a folder was meant, which Path drops, so the command would
    write (with ``--force``, replace) the file."""
    stripped = without_trailing_slash(text)
    if stripped and stripped != text:
        from denoisekit.errors import UsageError
        from denoisekit.io.paths import ITK_SUFFIXES, format_name, itk_suffix

        suffix = itk_suffix(stripped)
        if suffix in ITK_SUFFIXES:
            kind = format_name(suffix)
            raise UsageError(
                f"-o {text}: a trailing '/' means a folder, but {Path(stripped).name[-len(suffix):]} names a file: "
                f"drop the slash to write {'an' if kind == 'MHA' else 'a'} {kind} file, or name the "
                "folder without a file suffix"
            )
    return Path(text)


def output_option(default: str) -> Any:
    """``-o/--output`` of a command that writes one volume, saying where it goes by ``default``."""
    return Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help=f"Output path: {OUTPUT_FORMATS}. Default: {default}.", show_default=False,
                     parser=output_path, metavar="<path>"),
    ]


OutputOpt = output_option("next to the input, in its format, named after it (and the --series read)")
PluginOptionOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--option",
        help="A plugin option as key=value (repeatable); 'denoisekit models' and 'denoisekit noises' list each plugin's options.",
    ),
]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def err_console(quiet: bool = False):
    """A rich console on stderr (progress and diagnostics never pollute stdout)."""
    from rich.console import Console

    return Console(stderr=True, quiet=quiet)


def status(console: Any, text: str) -> None:
    """One status line, printed as it is: no rich markup (paths may hold brackets), no
    highlighting, no wrapping at the console's width (scripts grep these lines)."""
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def note_to(console: Any, notes: list[str] | None = None) -> Callable[[str], None]:
    """A ``note`` callback for the stages and the io layer: a ``note: ...`` status line on
    ``console``, kept in ``notes`` too when given (for ``--json``'s record)."""
    def note(message: str) -> None:
        status(console, f"note: {message}")
        if notes is not None:
            notes.append(message)

    return note


def out_console():
    from rich.console import Console

    return Console()


def slice_progress(console, transient: bool = True):
    """The per-volume progress bar every slice-by-slice command shows (on ``console``)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("slices"),
        TimeElapsedColumn(),
        console=console,
        transient=transient,
        # A transient bar off a terminal draws nothing, yet leaves an empty line in the log.
        disable=console.quiet or (transient and not console.is_terminal),
    )


def flag_options(cls: Any, pairs: list[str] | None, **flags: Any) -> dict[str, Any]:
    """Dedicated flags (``--sigma``, ``--dose``, ...) as options of plugin ``cls``, typed by
    the option's default; a flag the plugin has no option for, or one that ``pairs`` (the
    ``key=value`` options) also set, is a clear error: which of two values was meant is a guess."""
    from denoisekit.errors import UsageError

    given = {k: v for k, v in flags.items() if v is not None}
    paired = {p.partition("=")[0].strip().replace("-", "_") for p in pairs or []}
    for key in given:
        flag = "--" + key.replace("_", "-")
        if key not in cls.options:
            raise UsageError(
                f"{flag} does not apply to {cls.kind} '{cls.name}' (options: {', '.join(sorted(cls.options))})"
            )
        if key in paired:
            raise UsageError(f"{flag} and an option {key}=... both set {key}: give one")
    return {k: type(cls.options[k])(v) for k, v in given.items()}
