"""``denoisekit demo``: the whole pipeline on the embedded sample, in under a minute."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from denoisekit.cli import app
from denoisekit.cli.common import ForceOpt, JsonOpt, QuietOpt, err_console, out_console, print_json, slice_progress, status


@app.command()
def demo(
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for the demo's volumes, series, figure and scores.")
    ] = Path("denoisekit-demo"),
    model: Annotated[Optional[str], typer.Option(help="Model to demonstrate (default: infer's default, residual-mul).")] = None,
    baseline: Annotated[str, typer.Option(help="Classical baseline to compare with.")] = "tv",
    dose: Annotated[float, typer.Option(help="Simulated dose, as a fraction of the lowdose noise's reference flux (--i0 of "
                                                 "'denoisekit noise': a chest protocol's full dose).")] = 0.25,
    seed: Annotated[int, typer.Option(min=0, metavar="<int>", help="Seed of the simulated noise.")] = 0,
    slices: Annotated[Optional[int], typer.Option(help="Use only the first N slices of the sample.")] = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole pipeline on the embedded sample and print how well it denoised.

    Simulate a quarter-dose scan of the embedded chest phantom, denoise it with the default
    pretrained model and a classical baseline, write NIfTI, a derived DICOM series and a
    figure, and print the evaluation table."""
    from denoisekit.errors import DenoiseKitError, UsageError

    output = Path(output)
    if slices is not None and slices < 1:  # a wrong call first, as every command says it
        raise UsageError("--slices must be at least 1")
    from denoisekit.io.paths import itk_suffix

    if itk_suffix(output) or output.suffix.lower() in (".png", ".json", ".dcm"):  # it made a folder of that name
        raise UsageError(f"--output {output} names a file: the demo writes a folder (e.g. -o demo-out)")
    if output.exists() or output.is_symlink():
        _refuse_foreign(output)
        if not force:  # worded as every other command's refusal
            raise DenoiseKitError(f"{output} already exists (use --force to overwrite it)")
    from denoisekit.io import check_writable

    check_writable(output)  # its folder takes the demo's temporary folder first: before a minute of work, not after
    console = err_console(quiet)

    from denoisekit.demo import run_demo

    with slice_progress(console) as bar:
        tasks: dict[str, int] = {}

        def progress(task: str, done: int, total: int) -> None:
            if task not in tasks:
                tasks[task] = bar.add_task(f"denoising with {task}", total=total)
            bar.update(tasks[task], completed=done)

        noise_task = bar.add_task(f"simulating {dose:g} dose", total=None)
        result = run_demo(model=model, baseline=baseline, dose=dose, seed=seed, slices=slices, progress=progress)
        bar.remove_task(noise_task)

    written = _write(result, output, force, console)
    scores = {name: s["overall"] for name, s in result.scores.items()}
    window = next(iter(result.scores.values()))["window"]
    if as_json:
        print_json({"output": str(output), "window": window, "dose": dose, "seed": seed,
                    "slices": result.clean.shape[0], "scores": scores,
                    "seconds": {k: round(v, 2) for k, v in result.seconds.items()},
                    "trained_on_sample": result.trained_on_sample,
                    "files": [str(p) for p in written]})
        return
    _table(result, window, dose)
    status(console, f"wrote {len(written)} outputs to {output}/ (figure: {output / 'figure.png'})")


#: What a demo output folder holds (``_write``): ``--force`` replaces only such a folder.
DEMO_FILE = r"(clean|noisy)\.nii\.gz|noisy\.json|denoised-[\w.-]+\.nii\.gz|figure\.png|scores\.json"


def _refuse_foreign(output: Path) -> None:
    """Raise unless ``output`` is an earlier demo's folder: never replace someone's data."""
    import re

    from denoisekit.errors import DenoiseKitError
    from denoisekit.io.atomic import refuse_foreign, refuse_foreign_folder

    if output.is_symlink() or not output.is_dir():
        raise DenoiseKitError(f"{output} is not a demo output folder: not replaced; choose another --output")

    def ours(entry) -> bool:
        if entry.is_symlink():
            return False
        if entry.is_dir() and re.fullmatch(r"denoised-[\w.-]+", entry.name):
            try:
                refuse_foreign(Path(entry.path), series=True)  # a derived DICOM series of ours
                return True
            except DenoiseKitError:
                return False
        return entry.is_file() and re.fullmatch(DEMO_FILE, entry.name) is not None

    refuse_foreign_folder(output, ours)


def _write(result, output: Path, force: bool, console) -> list[Path]:
    """Write everything into a temporary sibling folder, then move it into place whole."""
    import json
    import os
    import shutil
    import tempfile

    from denoisekit.evaluate import figure
    from denoisekit.io import write_volume
    from denoisekit.io.atomic import publish

    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would keep the published folder private
    try:
        names = list(result.denoised)
        main = names[0]
        write_volume(result.clean, tmp / "clean.nii.gz")
        write_volume(result.noisy, tmp / "noisy.nii.gz", sidecar=result.noise_params)
        for name, vol in result.denoised.items():
            write_volume(vol, tmp / f"denoised-{name}.nii.gz")
        write_volume(result.denoised[main], tmp / f"denoised-{main}")  # its history: the noise, then the denoising
        figure(result.clean, result.noisy, result.denoised[main], tmp / "figure.png", label=f"denoised: {main}")
        (tmp / "scores.json").write_text(json.dumps(result.scores, indent=2) + "\n")
        if output.exists() or output.is_symlink():
            _refuse_foreign(output)  # again: it may have changed while the demo ran
        publish(tmp, output, force)  # with --force the old output is restored if this fails
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return sorted(output.iterdir())  # what is there, sidecars included


def _table(result, window, dose: float) -> None:
    from rich.table import Table

    lo, hi = (int(w) if float(w).is_integer() else w for w in window)
    table = Table(title=f"Chest phantom, {dose:g} dose, {result.clean.shape[0]} slices, window [{lo}, {hi}] HU")
    for col in ("input", f"PSNR dB [{lo},{hi}]", f"SSIM [{lo},{hi}]", "RMSE HU", "gain dB", "seconds"):
        table.add_column(col, justify="left" if col == "input" else "right")
    first = next(iter(result.scores.values()))["overall"]["noisy"]
    table.add_row("noisy", f"{first['psnr']:.2f}", f"{first['ssim']:.4f}", f"{first['rmse']:.1f}", "", "")
    for name, s in result.scores.items():
        o = s["overall"]
        table.add_row(name, f"{o['psnr']:.2f}", f"{o['ssim']:.4f}", f"{o['rmse']:.1f}",
                      f"{o['gain']['psnr']:+.2f}", f"{result.seconds[name]:.1f}")
    out_console().print(table)
    if result.trained_on_sample:  # with the table, so the caveat travels wherever the scores go
        out_console().print(f"Note: the pretrained weights of {', '.join(result.trained_on_sample)} were trained "
                            "on this phantom (other noise draws), so these scores flatter them; "
                            "docs/benchmarks.md scores every model on real CT it never saw.")
