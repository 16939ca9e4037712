"""``evaluate``: PSNR, SSIM and RMSE of a denoised volume against a clean reference."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from denoisekit.cli import app
from denoisekit.cli.common import (
    ForceOpt, JsonOpt, QuietOpt, err_console, note_to, out_console, print_json, status, without_trailing_slash,
)
from denoisekit.cli.io_options import AllowIrregularOpt, AllowTiltOpt, SeriesOpt
from denoisekit.errors import UsageError


def _finite(value: Any) -> Any:
    """JSON has no infinity: identical images (PSNR inf) become null."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _table(title: str, rows: list[tuple[str, dict]], window: list[float]):
    from rich.table import Table

    w = f"[{window[0]:g},{window[1]:g}]"
    table = Table(title=title, title_justify="left")
    table.add_column("")
    for header in (f"PSNR dB {w}", f"SSIM {w}", f"RMSE HU {w}"):
        table.add_column(header, justify="right")
    for label, s in rows:
        sign = "+" if label == "gain" else ""
        table.add_row(label, _num(s["psnr"], f"{sign}.2f"), _num(s["ssim"], f"{sign}.4f"), _num(s["rmse"], f"{sign}.2f"))
    if any(label == "gain" for label, _ in rows):
        table.caption = "gain: + is better in every column (for RMSE, how much it dropped)"
    if any(s["ssim"] is None for _, s in rows):
        table.caption = ((table.caption or "") + "\n" + NO_SSIM).strip()
    return table


#: Why a table shows '-' for SSIM: the mask lies only where SSIM is not read, or the slices
#: are too small to read it.
NO_SSIM = ("-: SSIM is read in 7x7 windows (smaller on slices under 7 pixels, none under 3), not within "
           "half a window of a slice's edge")


def _num(value: float | None, spec: str) -> str:
    """A score as the table shows it; '-' where there is none (SSIM in a border-only mask)."""
    return "-" if value is None else format(value, spec)


def _where(window: list[float], mask: dict | None) -> str:
    """The window, and the mask when there is one: numbers mean nothing without them."""
    w = f"window [{window[0]:g},{window[1]:g}] HU"
    return w if mask is None else f"{w}, in mask {mask['what']} ({100 * mask['fraction']:.0f}% of voxels)"


def _slice_table(per_slice: list[dict], window: list[float], mask: dict | None):
    from rich.table import Table

    # Narrow columns: the window goes in the title, still next to every number.
    table = Table(title=f"per slice, all in {_where(window, mask)}", title_justify="left")
    headers = ["slice", "at mm", "PSNR dB", "SSIM", "RMSE HU"]
    with_gain = bool(per_slice) and "gain" in per_slice[0]
    if with_gain:
        headers += ["PSNR gain dB", "SSIM gain"]
    for h in headers:
        table.add_column(h, justify="right")
    for s in per_slice:
        at = "" if s["location_mm"] is None else f"{s['location_mm']:.1f}"
        if s["psnr"] is None:  # the mask leaves this slice empty
            table.add_row(str(s["slice"]), at, *["-"] * (len(headers) - 2))
            continue
        row = [str(s["slice"]), at, _num(s["psnr"], ".2f"), _num(s["ssim"], ".4f"), _num(s["rmse"], ".2f")]
        if with_gain:
            row += [_num(s["gain"]["psnr"], "+.2f"), _num(s["gain"]["ssim"], "+.4f")]
        table.add_row(*row)
    if any(s["psnr"] is not None and s["ssim"] is None for s in per_slice):
        table.caption = NO_SSIM
    return table


def _figure_path(text: str) -> Path:
    """``--figure``'s value: a trailing '/' says a folder was meant, which Path drops (and
    ``--force`` would replace the file ``cmp.png``)."""
    if without_trailing_slash(text) != text:
        raise UsageError(f"--figure {text}: a trailing '/' means a folder; the figure is a file: drop the slash")
    return Path(text)


def _window(text: str) -> tuple[float, float]:
    """``--window``: a name from the figure's table (``FIGURE_WINDOWS``: lung, soft-tissue,
    brain, bone, ...) or ``LO,HI`` in HU."""
    from denoisekit.evaluate import FIGURE_WINDOWS, parse_window

    key = "-".join(text.strip().lower().replace("_", " ").split())  # as --figure-window reads names
    if key in FIGURE_WINDOWS:
        return FIGURE_WINDOWS[key]
    if "," not in text:
        raise UsageError(f"unknown window {text!r}: use one of {', '.join(FIGURE_WINDOWS)}, "
                         "or LO,HI in HU (e.g. -1000,1000)")
    return parse_window(text)


def _rows(scores: dict) -> list[tuple[str, dict]]:
    rows = [("denoised", scores)]
    if "noisy" in scores:
        rows += [("noisy", scores["noisy"]), ("gain", scores["gain"])]
    return rows


@app.command()
def evaluate(
    denoised: Annotated[Path, typer.Argument(help="The denoised volume.", show_default=False, metavar="DENOISED")],
    reference: Annotated[Path, typer.Argument(help="The clean reference, on the same voxel grid (axes in another order, as dcm2niix writes a series' rows reversed, are reordered exactly, with a note).", show_default=False, metavar="REFERENCE")],
    noisy: Annotated[
        Optional[Path], typer.Option("--noisy", help="The noisy input, to report the gain over it.")
    ] = None,
    window: Annotated[
        str,
        typer.Option(
            "--window",
            help="HU window LO,HI, or one of the --figure-window names (lung, soft-tissue, mediastinum, brain, bone): both "
            "volumes are clipped to it; PSNR's peak is its width.",
        ),
    ] = "-1000,1000",
    figure: Annotated[
        Optional[Path],
        typer.Option("--figure", help="Write the reference, noisy, denoised and difference images of the slice of median error in --window and --mask (PNG), "
                     "as a viewer shows it: "
                     "denoised - reference, and in the second row (beside it with one --figure-window) noisy - reference, on the noise's scale (the 99th "
                     "percentile of |noisy - reference|, rounded up; without --noisy, of |denoised - reference|).",
                     parser=_figure_path, metavar="<path>"),
    ] = None,
    figure_windows: Annotated[
        Optional[list[str]],
        typer.Option(
            "--figure-window",
            help="A display window for the figure, one row each (repeatable): lung, soft-tissue (mediastinum), "
            "brain, bone, or LO,HI in HU. Default: lung and soft-tissue.",
        ),
    ] = None,
    mask: Annotated[
        Optional[str],
        typer.Option(
            "--mask",
            help="Score only these voxels: 'body' (the patient, found in the reference: the air around it, "
            "which every denoiser gets right, flatters every number), or a label volume on the reference's "
            "grid (nonzero voxels are scored; a file named body: ./body).",
            show_default=False,
        ),
    ] = None,
    per_slice: Annotated[
        bool,
        typer.Option(
            "--per-slice/--no-per-slice",
            help="Also give each slice's scores (in the table and in --json), with its position in mm (its "
            "ImagePositionPatient coordinate along the stack: z for axial slices).",
        ),
    ] = False,
    series: SeriesOpt = None,
    allow_irregular: AllowIrregularOpt = False,
    allow_tilt: AllowTiltOpt = False,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Score a denoised volume against a clean reference in one HU window."""
    from denoisekit.evaluate import check_figure_path, evaluate as run, figure as draw
    from denoisekit.evaluate import figure_window, resolve_mask
    from denoisekit.cli.io_options import read_input

    # Every refusal before reading or computing anything.
    lo_hi = _window(window)
    windows = [figure_window(w) for w in figure_windows] if figure_windows else None
    if windows is not None and figure is None:
        raise UsageError("--figure-window sets the figure's display windows: it needs --figure FILE.png")
    if figure is not None:
        check_figure_path(figure, force)
    if mask is not None and mask != "body" and not Path(mask).exists():  # said with what --mask takes
        from denoisekit.errors import DenoiseKitError

        raise DenoiseKitError(f"--mask {mask}: no such file; --mask takes 'body' or a label volume on the "
                              "reference's grid")

    notes: list[str] = []  # skipped files, accepted irregularities: in --json's record too
    note = note_to(err_console(quiet or json_out), notes)

    def read(path: Path, labels: bool = False):
        """Read ``path``, its notes naming it as given: two to four volumes go into one record
        (a note the reader already begins with the file's name keeps its own)."""
        def named(message: str) -> None:
            own = path.name and message.startswith(f"{path.name}: ")
            message = message if own else f"{path}: {message}"
            if message not in notes:  # one file given twice says its notes once
                note(message)

        return read_input(path, series, allow_irregular, allow_tilt, quiet=quiet or json_out, note=named,
                          labels=labels)

    den, ref = read(denoised), read(reference)
    if denoised.resolve() == reference.resolve():
        note(f"{denoised} is both the denoised volume and the reference: the scores are perfect by construction")
    den = _on_grid(den, ref, denoised, "denoised", note)
    noise = _on_grid(read(noisy), ref, noisy, "noisy", note) if noisy is not None else None
    if noise is not None:
        said = _noisy_reference(ref.array, noise.array)
        if said:
            note(said)
    # "body" is the keyword; a file of that name is reached as ./body (or any other path to it)
    labels = None if mask is None else mask if mask == "body" else _on_grid(
        read(Path(mask), labels=True), ref, Path(mask), "mask", note)
    if mask == "body" and Path("body").exists():  # the keyword wins: say so, the user may have meant the file
        note("--mask body is the body found in the reference, not the file 'body' here (give ./body to use the file)")
    marks = resolve_mask(labels, ref)  # once: the scores and the figure's slice read it
    result = run(den, ref, noise, lo_hi, mask=marks)
    if result["mask"] is not None:
        result["mask"]["what"] = mask
    if figure is not None:
        draw(ref, noise, den, figure, label=_label(den), windows=windows, window=lo_hi, mask=marks, force=force)
    if not per_slice:
        del result["per_slice"]  # a row per slice floods a 300-slice scan's output: asked for, not default
    if json_out:
        print_json(
            _finite(
                {
                    "denoised": str(denoised),
                    "reference": str(reference),
                    "noisy": None if noisy is None else str(noisy),
                    **result,
                    "figure": None if figure is None else str(figure),
                    "notes": notes,
                }
            )
        )
        return
    from rich.markup import escape

    console = out_console()
    title = f"{denoised} vs {reference}" + ("" if result["mask"] is None else f", {_where(result['window'], result['mask'])}")
    console.print(_table(escape(title), _rows(result["overall"]), result["window"]))
    if per_slice:
        console.print(_slice_table(result["per_slice"], result["window"], result["mask"]))
    if figure is not None:  # a status line, as every command's "wrote ...": stdout keeps the tables
        status(err_console(quiet), f"figure: {figure}")


def _on_grid(volume: Any, reference: Any, path: Path, role: str, note: Any) -> Any:
    """``volume`` on the reference's grid: as it is, or with its axes in the reference's order
    where only their order differs (a dcm2niix NIfTI, its rows reversed, against the DICOM
    series it came from), said in a note; else refused with ``check_same_grid``'s reason."""
    from denoisekit.errors import DenoiseKitError
    from denoisekit.evaluate import check_same_grid
    from denoisekit.io.like import on_grid

    try:
        check_same_grid(volume, reference, (role, "reference"))
        return volume
    except DenoiseKitError as refused:
        try:
            moved, how = on_grid(volume, reference, "the reference", str(path))
        except DenoiseKitError:
            raise refused from None
    note(how or f"{path} is on the reference's grid")
    return moved


def _label(volume: Any) -> str:
    """The denoised panels' title: what denoisekit recorded was done ("denoised tv strength
    auto 0.84"), never the file's name (it went into the PNG, and a folder may bear the
    patient's name); "denoised" when nothing was recorded."""
    from denoisekit.io import recorded_steps
    from denoisekit.io.text import fit

    step = recorded_steps(volume, "nifti").rsplit("; ", 1)[-1]
    return fit(step, 48, words=True) if step.startswith("denoised") else "denoised"


def _noisy_reference(reference: Any, noisy: Any) -> str | None:
    """A note when the reference's own noise is at least half the noise added to make the noisy
    input (soft tissue, as ``noise`` reads it): a denoiser removes both, and is scored as wrong
    where it removed the reference's. CT_small's 25 HU under 7 HU added gave every denoiser a
    negative gain with nothing to say why (new-user pass)."""
    from denoisekit.noise_level import volume_noise_hu

    own, added = volume_noise_hu(reference), volume_noise_hu(noisy, reference=reference)
    if not own or not added or own < added / 2:
        return None
    return (f"the reference has noise of its own ({own:.1f} HU in soft tissue) against {added:.1f} HU added to make "
            "the noisy input: a denoiser removes both and is scored as wrong where it removed the reference's, "
            "so these scores and gains understate it")
