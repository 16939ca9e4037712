"""``train``: fit a model with a backprop rule on noisy copies of CT data (thin: the work is
in ``denoisekit.train``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from denoisekit.cli import app
from denoisekit.cli.common import JsonOpt, QuietOpt, err_console, flag_options, print_json, status
from denoisekit.cli.io_options import AllowIrregularOpt, AllowTiltOpt, SeriesOpt
from denoisekit.errors import DenoiseKitError, UsageError

#: Used when neither the command line nor a resumed run says otherwise. residual-mul has
#: hand-written gradients, so every rule (``--backprop dilated`` too) works with it. The
#: blind ``mixed`` noise (lowdose 1/16..1/2 dose or Gaussian 10..60 HU, per slice) and
#: lr 1e-3 are what the shipped weights were trained with: on quarter-dose noise alone at
#: lr 3e-3 the multiplicative nets stayed at the identity for 400 steps.
DEFAULTS: dict[str, Any] = {
    "model": "residual-mul",
    "backprop": "autodiff",
    "noise": "mixed",
    "epochs": 10,
    "steps_per_epoch": 50,
    "batch_size": 16,
    "lr": 1e-3,
    "lr_decay": "cosine",
    "grad_norm": "unit",
    "seed": 0,
    "realisations": 2,
    "val_fraction": 0.15,
}
SAMPLE = "sample:chest-phantom"


def _opt(help: str, *names: str, **kw: Any):
    return typer.Option(*names, help=help, show_default=False, **kw)


@app.command()
def train(
    data: Annotated[
        Optional[list[Path]],
        typer.Argument(
            help="DICOM directories/files or .nii/.nii.gz/.nrrd/.mha volumes; none: the embedded chest phantom.",
            show_default=False,
            metavar="DATA",
        ),
    ] = None,
    model: Annotated[Optional[str], _opt("Model to train (default: residual-mul).", "--model", "-m")] = None,
    backprop: Annotated[Optional[str], _opt("Training rule: autodiff, manual, dilated, ... (default: autodiff).", "--backprop", "-b")] = None,
    noise: Annotated[Optional[str], _opt("Noise kind for the training pairs (default: mixed, blind 1/16-1/2 dose or 10-60 HU; lowdose with --dose, gaussian with --sigma).", "--noise")] = None,
    dose: Annotated[Optional[float], _opt("Dose fraction for lowdose noise (implies --noise lowdose).", "--dose")] = None,
    sigma: Annotated[Optional[float], _opt("Gaussian noise level in HU (implies --noise gaussian).", "--sigma")] = None,
    epochs: Annotated[Optional[int], _opt("Number of epochs (default: 10).", "--epochs")] = None,
    steps: Annotated[Optional[int], _opt("Total training steps instead of --epochs.", "--steps")] = None,
    steps_per_epoch: Annotated[Optional[int], _opt("Steps between validations and saved weights (default: 50).", "--steps-per-epoch")] = None,
    batch_size: Annotated[Optional[int], _opt("Patches per step (default: 16).", "--batch-size")] = None,
    patch_size: Annotated[Optional[int], _opt("Square patch side in pixels (default: 64; vanilla-ae: 16).", "--patch-size")] = None,
    lr: Annotated[Optional[float], _opt("Adam learning rate (default: 0.001).", "--lr")] = None,
    lr_decay: Annotated[Optional[str], _opt("Learning-rate schedule: cosine (from --lr down to 0 over the whole budget) or constant (default: cosine).", "--lr-decay")] = None,
    grad_norm: Annotated[Optional[str], _opt("Gradients Adam gets: unit (scaled to unit norm each step, so a rare huge gradient cannot stall training) or raw (default: unit).", "--grad-norm")] = None,
    loss_weight: Annotated[Optional[str], _opt("Per-patch loss weights: none (plain MSE, the articles'; default) or noise (each patch's squared error divided by its own noise variance, so the noisiest patches of a mixed-noise set do not decide what is learnt; keeps edges, denoises very noisy scans less).", "--loss-weight")] = None,
    seed: Annotated[Optional[int], _opt("Seed for initialisation, noise and batches (default: 0).", "--seed", min=0, metavar="<int>")] = None,
    realisations: Annotated[Optional[int], _opt("Noisy copies made per training slice at the start (default: 2).", "--realisations")] = None,
    output: Annotated[Optional[Path], _opt("New run directory (default: runs/<date>-<model>-<backprop>).", "--output", "-o")] = None,
    resume: Annotated[Optional[Path], _opt("Continue this run directory from its last complete epoch.", "--resume")] = None,
    option: Annotated[Optional[list[str]], _opt("Model option key=value (repeatable).", "--option")] = None,
    backprop_option: Annotated[Optional[list[str]], _opt("Backprop option key=value, e.g. p0=0.1 (repeatable).", "--backprop-option")] = None,
    noise_option: Annotated[Optional[list[str]], _opt("Noise option key=value (repeatable).", "--noise-option")] = None,
    strategy: Annotated[Optional[str], _opt("tf.distribute strategy: default, mirrored (the GPUs of this machine) or multi-worker (machines listed in TF_CONFIG; see docs/distributed.md).", "--strategy")] = None,
    series: SeriesOpt = None,
    allow_irregular: AllowIrregularOpt = False,
    allow_tilt: AllowTiltOpt = False,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Train a denoiser on (noisy, clean) pairs made on the fly.

    Weights, metrics and curves go to a run directory. Validation PSNR/SSIM are in HU
    (window -1000..1000) on held-out slices.

    Noisy copies of each training slice are simulated once at the start (--realisations); every step cuts random patches from them, so projection-domain noise stays affordable.
    """
    if output is not None and resume is not None:
        raise typer.BadParameter("use either -o (a new run) or --resume (an existing one)", param_hint="--resume")
    if epochs is not None and steps is not None:
        raise typer.BadParameter("give --epochs or --steps, not both", param_hint="--steps")
    from denoisekit.distribute import STRATEGIES

    from denoisekit.train import GRAD_NORMS, LOSS_WEIGHTS, LR_DECAYS

    if lr_decay is not None and lr_decay not in LR_DECAYS:
        raise typer.BadParameter(f"choose from {', '.join(LR_DECAYS)}", param_hint="--lr-decay")
    if grad_norm is not None and grad_norm not in GRAD_NORMS:
        raise typer.BadParameter(f"choose from {', '.join(GRAD_NORMS)}", param_hint="--grad-norm")
    if loss_weight is not None and loss_weight not in LOSS_WEIGHTS:
        raise typer.BadParameter(f"choose from {', '.join(LOSS_WEIGHTS)}", param_hint="--loss-weight")
    if strategy is not None and strategy not in STRATEGIES:
        raise typer.BadParameter(f"choose from {', '.join(STRATEGIES)}", param_hint="--strategy")
    from denoisekit.plugins import check_trainable, get_backprop, get_model, get_noise

    old: dict[str, Any] = {}
    if resume is not None:
        from denoisekit.train import read_run_config

        old = read_run_config(resume)
        if isinstance(old.get("noise"), list):
            raise DenoiseKitError(f"{resume} was trained with a noise kind per volume, which the CLI cannot give: "
                                  "resume it with denoisekit.train.train")

    def pick(key: str, given: Any) -> Any:
        return given if given is not None else old.get(key, DEFAULTS.get(key))

    model_name = model or old.get("model", {}).get("name") or DEFAULTS["model"]
    backprop_name = backprop or old.get("backprop", {}).get("name") or DEFAULTS["backprop"]
    model_cls, backprop_cls = get_model(model_name), get_backprop(backprop_name)
    check_trainable(model_cls, backprop_cls)  # before reading data or building anything

    if noise is None and sigma is not None and dose is not None:  # each picks a kind: which one is a guess
        raise UsageError("--sigma picks Gaussian noise and --dose low-dose noise: give one, or --noise mixed "
                         "with --noise-option for both")
    noise_name = noise or ("gaussian" if sigma is not None else "lowdose" if dose is not None else None)
    noise_name = noise_name or old.get("noise", {}).get("name") or DEFAULTS["noise"]
    noise_cls = get_noise(noise_name)
    if resume is not None:
        _check_recorded(resume, old, (model_cls, backprop_cls, noise_cls), model_cls.default_patch_size)
    model_obj = _build(model_cls, option, old.get("model"))
    backprop_obj = _build(backprop_cls, backprop_option, old.get("backprop"))
    loss_weight = pick("loss_weight", loss_weight) or "none"
    noise_obj = _build(noise_cls, noise_option, old.get("noise"), flag_options(noise_cls, noise_option, dose=dose, sigma=sigma))

    if resume is None and epochs is None and steps is None:
        epochs = DEFAULTS["epochs"]
    if resume is not None and epochs is None and steps is None:
        steps = old.get("steps")

    from denoisekit.distribute import create
    from denoisekit.tfenv import import_tensorflow

    import_tensorflow()
    dist = create(strategy)  # before any other TensorFlow work; multi-worker waits for its peers
    if resume is not None:
        _check_recorded_model(resume, old, model_cls, model_cls.default_patch_size)
    if dist is not None and not dist.is_chief:
        quiet, json_out = True, False  # the chief reports for everyone
    from denoisekit.rundir import RunDir, default_run_dir

    from denoisekit.train import check_settings, epoch_plan, finished_run
    from denoisekit.train import train as run_training

    settings = dict(
        epochs=epochs,
        steps=steps,
        steps_per_epoch=pick("steps_per_epoch", steps_per_epoch),
        batch_size=pick("batch_size", batch_size),
        patch_size=patch_size if patch_size is not None else (old.get("patch_size") or model_cls.default_patch_size),
        lr=pick("lr", lr),
        lr_decay=pick("lr_decay", lr_decay),
        grad_norm=pick("grad_norm", grad_norm),
        loss_weight=loss_weight,
        seed=pick("seed", seed),
        realisations=pick("realisations", realisations),
        val_fraction=old.get("val_fraction", DEFAULTS["val_fraction"]),
        sources=_sources(data, old, resume),
        read_options=_read_options(old, series, allow_irregular, allow_tilt),
    )
    check_settings(**settings)  # before reading any data
    epoch_plan(settings["epochs"], settings["steps"], settings["steps_per_epoch"])
    run_dir = resume or output or default_run_dir(model_name, backprop_name)
    if resume is None and (dist is None or dist.is_chief):  # after the usage errors: a wrong call is said as one
        RunDir(run_dir).check_new()  # before reading any data
    console = err_console(quiet)
    # A finished run answers at once: its data is not read (nor need it still be there).
    # Other data, or data read otherwise, is refused here too, before any is read.
    result = finished_run(run_dir, model_obj, backprop_obj, noise_obj, **settings) if resume is not None else None
    if result is None:
        read = settings["read_options"]
        if resume is not None and "read" not in old and settings["sources"] != [SAMPLE]:
            status(console, f"note: {resume} does not record how its data was read (an older run): "
                            "read with the --series, --allow-irregular and --allow-tilt given now")
        _, volumes, volume_shard = _read_data(data, old.get("data"), read["series"], read["allow_irregular"],
                                              read["allow_tilt"], quiet, dist)
        result = run_training(
            volumes, model_obj, backprop_obj, noise_obj,
            run_dir=run_dir,
            **settings,
            resume=resume is not None,
            progress=None if quiet else _RichProgress(console),
            distribution=dist,
            volume_shard=volume_shard,
        )
    summary = {**result.summary(), "backprop": backprop_obj.name, "noise": noise_obj.name}
    if result.already_complete:
        status(console, f"{run_dir} already trained all {result.epochs} epochs ({result.steps} steps): "
                        "nothing to do; give --epochs or --steps beyond that to train on")
    summary["notes"] = _worse_than_noisy(summary)
    if json_out:
        print_json(summary)
    elif not quiet:
        _print_summary(console, summary)


def _worse_than_noisy(summary: dict) -> list[str]:
    """A note when even the best epoch scores below the noisy input on validation: its weights
    make slices worse than leaving them alone, which the table shows but a user may not read
    (a new-user pass: vanilla-ae at 28.4 dB against 39.4, no word)."""
    best, noisy = summary["best"]["psnr"], summary["noisy"]["psnr"]
    if best is None or noisy is None or best >= noisy:
        return []
    return [f"the best epoch ({summary['best']['epoch']}) scores {noisy - best:.1f} dB below the noisy input on "
            "validation: its weights make slices worse than no denoising; train for more steps, or try "
            "another --lr or model"]


def _check_recorded(resume: Path, old: dict, classes: tuple, patch_size: int) -> None:
    """Refuse a run whose own record holds values no run can use (an edited or damaged
    config.json) as bad input naming the file, before the same checks on the settings merged
    with the command line would call them options the user gave (exit 2)."""
    from denoisekit.train import check_settings

    keys = ("batch_size", "realisations", "lr", "lr_decay", "grad_norm", "loss_weight")
    with _recorded_values(resume):
        for cls in classes:
            _build(cls, None, old.get(cls.kind))  # the record alone: model, backprop, noise
        recorded = {k: old.get(k, DEFAULTS.get(k)) for k in keys}
        recorded["loss_weight"] = recorded["loss_weight"] or "none"  # as the command line's default
        check_settings(**recorded, patch_size=old.get("patch_size") or patch_size)


def _check_recorded_model(resume: Path, old: dict, model_cls: Any, patch_size: int) -> None:
    """``_check_recorded`` for what a model checks only as it builds (a layer count that does not
    match): a throwaway model built from the record. Called after the distribution strategy is
    set up, since TensorFlow wants that before any variable exists."""
    from denoisekit.plugin import build_model

    with _recorded_values(resume):
        build_model(_build(model_cls, None, old.get("model")), old.get("patch_size") or patch_size)


@contextmanager
def _recorded_values(resume: Path) -> Iterator[None]:
    """A usage error raised by values a run's config.json records is bad input naming the file
    (exit 1), not a command line the user got wrong."""
    try:
        yield
    except UsageError as exc:
        raise DenoiseKitError(f"{resume / 'config.json'} records a value no run can use: {exc}") from None


def _build(cls: Any, pairs: list[str] | None, old: dict | None, extra: dict | None = None):
    """A plugin instance from CLI key=value pairs, on top of a resumed run's options."""
    base = {}
    if old and old.get("name") == cls.name:
        base = {k: tuple(v) if isinstance(v, list) else v for k, v in old.get("options", {}).items() if k in cls.options}
    built = cls.from_strings(pairs, **{**base, **(extra or {})})
    return built


def _sources(paths: list[Path] | None, old: dict, resume: Path | None) -> list[str]:
    """What the run trains on, as its config records it: DATA resolved, else what the run
    being resumed recorded, else the embedded sample."""
    if paths:
        return [str(p.resolve()) for p in paths]
    if resume is None:
        return [SAMPLE]
    if old.get("data") is None:
        raise DenoiseKitError(f"{resume} does not record the data it was trained on (a run started from Python): "
                              "give that DATA to resume it")
    return list(old["data"])


def _read_options(old: dict, series: str | None, allow_irregular: bool, allow_tilt: bool) -> dict[str, Any]:
    """How the data is read: as given now, else as the run being resumed recorded (a flag
    cannot be switched off on the command line, so a recorded one stays on)."""
    was = old.get("read") or {}
    return {
        "series": series if series is not None else was.get("series"),
        "allow_irregular": allow_irregular or bool(was.get("allow_irregular")),
        "allow_tilt": allow_tilt or bool(was.get("allow_tilt")),
    }


def _read_data(paths, old_sources, series, allow_irregular, allow_tilt, quiet, dist=None):
    """Volumes from DATA (or the run being resumed, or the embedded sample), with their names
    and whether they are only this worker's share (then the other workers read the rest)."""
    from denoisekit.cli.io_options import read_input

    if not paths and old_sources:
        paths = [Path(s) for s in old_sources if s != SAMPLE] or None
        for path in paths or []:
            if not path.exists():
                raise DenoiseKitError(f"{path}, the data this run was trained on, is not there any more: "
                                      "put it back there to resume the run")
    if not paths:
        from denoisekit.samples import load_sample

        return [SAMPLE], [load_sample("chest-phantom")], False
    shard = dist is not None and dist.shards_volumes(len(paths))
    mine = dist.my_share(paths) if shard else paths
    volumes = [read_input(p, series, allow_irregular, allow_tilt, quiet=quiet) for p in mine]
    return [str(p.resolve()) for p in paths], volumes, shard


class _RichProgress:
    """The stage's progress events drawn as one rich bar on stderr."""

    def __init__(self, console) -> None:
        self.console = console
        self.bar = None
        self.psnr = "-"
        self.last = 0.0

    def start(self, total_steps: int, done_steps: int) -> None:
        from rich.progress import (
            BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn,
        )

        # Fits 80 columns with 10000 steps (wider, the bar takes the rest); rich cuts cells to fit.
        self.bar = Progress(
            TextColumn("train"), BarColumn(bar_width=None), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}"), TextColumn("val PSNR {task.fields[psnr]} dB"),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=self.console, transient=False,
        )
        self.bar.start()
        self.task = self.bar.add_task("train", total=total_steps, completed=done_steps, loss="-", psnr="-")

    def step(self, step: int, loss: float) -> None:
        import time

        now = time.monotonic()
        if now - self.last > 0.1:  # rich redraws at its own pace; keep the per-step cost tiny
            self.bar.update(self.task, completed=step, loss=f"{loss:.3g}")
            self.last = now

    def epoch(self, row: dict) -> None:
        self.bar.update(self.task, completed=row["step"], loss=f"{row['loss']:.3g}", psnr=f"{row['val_psnr']:.2f}")

    def phase(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def stop(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def _print_summary(console, s: dict) -> None:
    from rich.table import Table

    def fmt(v, digits):
        return "-" if v is None else f"{v:.{digits}f}"

    now = "" if s["steps_trained"] == s["steps"] else f" ({s['steps_trained']} now)"  # a resume: seconds are for those
    table = Table(title=f"{s['model']} / {s['backprop']} / {s['noise']}: {s['epochs']} epochs, {s['steps']} steps{now}, "
                        f"{s['seconds']:.0f} s")
    table.add_column("validation")
    table.add_column("PSNR (dB)", justify="right")
    table.add_column("SSIM", justify="right")
    table.add_row("noisy input", fmt(s["noisy"]["psnr"], 2), fmt(s["noisy"]["ssim"], 4))
    table.add_row("before training", fmt(s["initial"]["psnr"], 2), fmt(s["initial"]["ssim"], 4))
    table.add_row("last epoch", fmt(s["final"]["psnr"], 2), fmt(s["final"]["ssim"], 4))
    table.add_row(f"best (epoch {s['best']['epoch']})", fmt(s["best"]["psnr"], 2), fmt(s["best"]["ssim"], 4))
    console.print(table)
    status(console, f"weights: {s['best_weights']}")
    for note in s["notes"]:
        status(console, f"note: {note}")
