"""The train stage: fit a trainable model with a backprop rule on (noisy, clean) pairs.

One ``tf.function`` step asks the rule for ``(loss, grads)`` and applies an Adam update,
unless the loss or a gradient is not finite: then the update is skipped and training stops,
so the weights in memory and on disk are the last good ones. Everything random is a
function of ``seed`` (model initialisation, noise, and per epoch the batches), which is what
lets ``resume`` reach the same weights as an uninterrupted run.

With a ``distribution`` (``denoisekit.distribute``) the model and the optimiser live in the
strategy's scope, each replica runs the rule on its part of the global batch, and the
gradients of every rule are summed across replicas by one all-reduce before the same Adam
update; only the chief validates and writes the run directory.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np

from denoisekit import metrics as M
from denoisekit.errors import DenoiseKitError, UsageError
from denoisekit.rundir import RunDir

#: Learning-rate schedules (see :class:`denoisekit.optim.Adam`).
LR_DECAYS = ("constant", "cosine")
#: What Adam gets each step: the gradients as computed, or scaled to unit global norm
#: (see :class:`denoisekit.optim.Adam`).
GRAD_NORMS = ("raw", "unit")
#: Per-sample loss weights: none (plain MSE), or each patch's squared error divided by its
#: own noise variance (see :func:`noise_weights`).
LOSS_WEIGHTS = ("none", "noise")
#: Noise level (HU) under which a patch's weight stops growing.
NOISE_WEIGHT_FLOOR_HU = 5.0

#: Config keys a resumed run must share with the run it continues.
_RESUME_KEYS = (
    "model", "backprop", "noise", "seed", "batch_size", "patch_size", "lr", "lr_decay",
    "grad_norm", "loss_weight", "steps_per_epoch", "val_fraction", "realisations", "val_tiles",
)
#: Config keys saying what the run trains on; compared only where both runs record them (a
#: run from Python may name no data; older versions recorded no read options).
_DATA_KEYS = ("data", "read", "data_digest")


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """A run's config, with the values runs from before an option existed implicitly used."""
    config = RunDir(run_dir).read_config()
    config.setdefault("lr_decay", "constant")
    config.setdefault("grad_norm", "raw")
    config.setdefault("loss_weight", "none")
    return config


def _accepts_weights(backprop: Any) -> bool:
    """Whether a rule's ``gradients`` takes per-sample ``weights`` (rules written before
    they existed do not)."""
    import inspect

    params = inspect.signature(backprop.gradients).parameters
    return "weights" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class Progress(Protocol):
    """What the stage reports while it runs (the CLI draws a rich progress bar from it)."""

    def start(self, total_steps: int, done_steps: int) -> None: ...

    def step(self, step: int, loss: float) -> None: ...

    def epoch(self, row: dict[str, Any]) -> None: ...

    def stop(self) -> None: ...


class TrainingDiverged(DenoiseKitError):
    """The loss or a gradient became NaN or infinite; training stopped."""


@dataclass
class TrainResult:
    run_dir: Path
    model: Any
    epochs: int
    steps: int
    rows: list[dict[str, Any]]
    best_epoch: int
    seconds: float
    resumed_from: int | None = None
    best: dict[str, Any] = field(default_factory=dict)
    #: A resumed run that had already trained its whole budget: nothing was trained.
    already_complete: bool = False

    def summary(self) -> dict[str, Any]:
        """The JSON-able outcome (what ``train --json`` prints). ``seconds``,
        ``steps_trained`` and ``seconds_per_step`` are of this call alone, so they agree: a
        resume counts only what it trained, a finished run's lookup nothing."""
        first, last = self.rows[0], self.rows[-1]
        start = self.resumed_from or 0
        now = [r for r in self.rows if r["epoch"] >= start]  # where this call started, and what it trained
        per_step = [
            b["seconds"] / (b["step"] - a["step"])
            for a, b in zip(now, now[1:]) if b["step"] > a["step"]
        ]
        return {
            "run_dir": str(self.run_dir),
            "model": self.model.name,
            "epochs": self.epochs,
            "steps": self.steps,
            "steps_trained": self.steps - int(now[0]["step"]),
            "seconds": round(self.seconds, 2),
            # median over epochs: the first epoch also pays for tracing the step function
            "seconds_per_step": round(float(np.median(per_step)), 5) if per_step else None,
            "resumed_from": self.resumed_from,
            "already_complete": self.already_complete,
            "noisy": {"psnr": first.get("noisy_psnr"), "ssim": first.get("noisy_ssim")},
            "initial": {k: first.get(f"val_{k}") for k in ("loss", "psnr", "ssim")},
            "final": {k: last.get(f"val_{k}") for k in ("loss", "psnr", "ssim")},
            "best": {"epoch": self.best_epoch, **{k: self.best.get(f"val_{k}") for k in ("loss", "psnr", "ssim")}},
            "best_weights": str(self.run_dir / "best.npz"),
        }


def epoch_plan(epochs: int | None, steps: int | None, steps_per_epoch: int) -> list[int]:
    """Steps in each epoch: ``epochs`` full epochs, or ``steps`` in total (last one shorter)."""
    if steps_per_epoch < 1:
        raise UsageError(f"--steps-per-epoch must be at least 1, not {steps_per_epoch}")
    if steps is not None:
        if steps < 1:
            raise UsageError(f"--steps must be at least 1, not {steps}")
        full, rest = divmod(steps, steps_per_epoch)
        return [steps_per_epoch] * full + ([rest] if rest else [])
    if epochs is None or epochs < 1:
        raise UsageError(f"--epochs must be at least 1, not {epochs}")
    return [steps_per_epoch] * epochs


def check_settings(*, batch_size: int, patch_size: int, realisations: int, lr: float, lr_decay: str,
                   grad_norm: str, loss_weight: str, **_: Any) -> None:
    """Refuse values no run can use, naming the option: a command line wrong whatever the
    data (so the CLI can ask before reading any)."""
    for option, value, least in (("--batch-size", batch_size, 1), ("--patch-size", patch_size, 4),
                                 ("--realisations", realisations, 1)):
        if value < least:
            raise UsageError(f"{option} must be at least {least}, not {value}")
    if not lr > 0:
        raise UsageError(f"--lr must be positive, not {lr:g}")
    for what, value, known in (("lr decay", lr_decay, LR_DECAYS), ("grad norm", grad_norm, GRAD_NORMS),
                               ("loss weight", loss_weight, LOSS_WEIGHTS)):
        if value not in known:
            raise UsageError(f"unknown {what} {value!r} (choose from {', '.join(known)})")


def evaluate(forward, model, noisy: np.ndarray, clean: np.ndarray, batch_size: int) -> dict[str, float]:
    """Validation loss (MSE in model units) and HU PSNR/SSIM/RMSE of the denoised tiles."""
    import tensorflow as tf

    out = np.empty_like(noisy)
    for i in range(0, len(noisy), batch_size):
        chunk = noisy[i : i + batch_size]
        padded = np.zeros((batch_size,) + chunk.shape[1:], dtype=np.float32)
        padded[: len(chunk)] = chunk  # one shape for every call: no retracing
        x = tf.constant(np.asarray(model.scale(padded), dtype=np.float32)[..., None])
        out[i : i + len(chunk)] = np.asarray(forward(x))[: len(chunk), ..., 0]
    denoised = np.asarray(model.unscale(out), dtype=np.float32)
    target = np.asarray(model.scale(clean), dtype=np.float32)
    return {
        "val_loss": float(np.mean((out - target) ** 2)),
        "val_psnr": M.psnr(clean, denoised),
        "val_ssim": M.ssim(clean, denoised),
        "val_rmse": M.rmse(clean, denoised),
    }


def _plugin_config(plugin: Any) -> dict[str, Any]:
    return {
        "name": plugin.name,
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in plugin.config.items()},
    }


def _noise_name(noise: Any) -> str:
    """A noise kind's name, or the names of a per-volume list (each once, in order)."""
    if isinstance(noise, (list, tuple)):
        return "+".join(dict.fromkeys(n.name for n in noise))
    return noise.name


def train(
    volumes: Sequence[Any],
    model: Any,
    backprop: Any,
    noise: Any,
    *,
    run_dir: str | Path,
    epochs: int | None = 10,
    steps: int | None = None,
    steps_per_epoch: int = 50,
    batch_size: int = 16,
    patch_size: int = 64,
    lr: float = 3e-3,
    lr_decay: str = "constant",
    grad_norm: str = "raw",
    loss_weight: str = "none",
    seed: int = 0,
    resume: bool = False,
    val_fraction: float = 0.15,
    realisations: int = 4,
    val_tiles: int = 64,
    sources: Sequence[str] | None = None,
    read_options: dict[str, Any] | None = None,
    progress: Progress | None = None,
    distribution: Any = None,
    volume_shard: bool = False,
) -> TrainResult:
    """Train ``model`` (an unbuilt or built TrainableModel instance) with ``backprop`` on
    noisy copies of ``volumes`` made by ``noise``; write everything to ``run_dir``.

    ``noise`` is one noise kind, or a list with one per volume: real scans already carry
    their own noise, so a recipe may give them other levels than clean phantoms.

    ``distribution`` (from :func:`denoisekit.distribute.create`) trains on its strategy;
    ``volume_shard`` says that ``volumes`` are this worker's own share (every worker then
    draws its part of each batch from its own volumes) rather than the same for all.

    ``sources`` name the volumes and ``read_options`` say how they were read (the CLI's
    ``--series``, ``--allow-irregular``, ``--allow-tilt``); both are recorded, and a resume
    that gives other ones is refused. A new run's directory appears once the noisy copies
    are made, and goes again if training stops before its first trained epoch is saved."""
    from denoisekit.plugins import check_trainable

    check_trainable(type(model), type(backprop))
    check_settings(batch_size=batch_size, patch_size=patch_size, realisations=realisations, lr=lr,
                   lr_decay=lr_decay, grad_norm=grad_norm, loss_weight=loss_weight)
    if loss_weight != "none" and not _accepts_weights(backprop):
        raise DenoiseKitError(
            f"backprop '{backprop.name}' takes no per-sample weights: train it with loss weight 'none'")
    if isinstance(noise, (list, tuple)):
        if len(noise) != len(volumes):
            raise DenoiseKitError(f"{len(noise)} noise kinds for {len(volumes)} volumes: give one per volume")
        if all(n is noise[0] for n in noise):
            noise = noise[0]
    plan = epoch_plan(epochs, steps, steps_per_epoch)
    dist = distribution
    chief = dist is None or dist.is_chief
    if dist is not None:
        from denoisekit.distribute import replica_rows

        per_replica = replica_rows(batch_size, dist.replicas)
    scope = dist.strategy.scope if dist is not None else contextlib.nullcontext
    from denoisekit.dataset import (
        TRAIN_STREAM, VAL_STREAM, PatchPairs, add_noise, split_volumes, validation_tiles,
    )

    # Everything that can refuse the request cheaply happens before the run directory exists.
    train_parts, val_parts = split_volumes(volumes, val_fraction)
    for clean, *_ in train_parts + val_parts:
        if patch_size > min(clean.shape[1:]):
            y, x = clean.shape[1:]
            raise DenoiseKitError(f"--patch-size {patch_size} is larger than the {y}x{x} slices")
    import tensorflow as tf

    t0 = time.perf_counter()
    tf.random.set_seed(seed)
    keras = _seed_keras(seed)
    from denoisekit.plugin import build_model

    if dist is not None and model.built:  # its variables must be the strategy's: rebuild
        arrays = model.get_weights()
        with scope():
            build_model(model, model.patch_size or patch_size)
            model.set_weights(arrays)
    if not model.built:
        with scope():
            build_model(model, patch_size)
            if not keras and _seed_keras(seed):  # Keras came with the model: build it again, seeded
                build_model(model, patch_size)
    if model.fixed_size and model.patch_size not in (None, patch_size):
        raise DenoiseKitError(f"model '{model.name}' was built for {model.patch_size} patches, not {patch_size}")
    model.patch_size = patch_size if model.fixed_size or model.patch_size is None else model.patch_size
    _check_model(model, backprop, patch_size)
    config = _config(model, backprop, noise, plan, seed=seed, batch_size=batch_size, patch_size=patch_size, lr=lr,
                     lr_decay=lr_decay, grad_norm=grad_norm, loss_weight=loss_weight,
                     steps_per_epoch=steps_per_epoch, val_fraction=val_fraction, realisations=realisations,
                     val_tiles=val_tiles, sources=sources, read_options=read_options)
    # what the voxels were (each worker's own share differs when sharded): the same paths may
    # hold other slices by now, which a resume would train and validate on (new-user pass)
    config["data_digest"] = None if volume_shard else data_digest(volumes)
    if dist is not None:
        config["distribution"] = {**dist.describe(), "volume_shard": bool(volume_shard)}
    run = RunDir(run_dir)
    last, old_rows = None, {}  # the epoch a resume starts from, and the run's metrics by epoch
    if resume:
        old, last, old_rows = _resume_point(run, config, plan)
        if last == len(plan):  # nothing left to train: say so before simulating any noise
            return _complete(run, model, last, old_rows, t0, scope)
        if chief:
            budget = {k: config[k] for k in ("epochs", "steps", "distribution") if k in config}
            learnt = {k: config[k] for k in _DATA_KEYS if old.get(k) is None and config[k] is not None}
            run.write_config({**old, **learnt, **budget})  # an older run learns how its data is read
    elif chief:  # other workers write nothing; the run is created once the noise is made
        run.check_new()

    from denoisekit.optim import Adam

    if progress is not None and hasattr(progress, "phase"):
        n = sum(p[0].shape[0] for p in train_parts)
        copies = f"{realisations} cop{'y' if realisations == 1 else 'ies'}"
        progress.phase(f"simulating {_noise_name(noise)} noise: {copies} of {n} training slice{'' if n == 1 else 's'}")
    shard = dist.task.index if dist is not None and volume_shard else None
    if chief:  # only the chief validates (on its own volumes' held-out slices if sharded)
        val_noisy_parts = add_noise(val_parts, noise, seed, VAL_STREAM, 1, shard=shard)
        val_noisy, val_clean = validation_tiles(val_noisy_parts, patch_size, val_tiles)
    # Sharded, a worker's plan is its own part of each batch; otherwise the whole batch.
    plan_batch = batch_size if shard is None else per_replica * dist.local_replicas
    pairs = PatchPairs(
        add_noise(train_parts, noise, seed, TRAIN_STREAM, realisations, shard=shard),
        patch_size, plan_batch, model.scale, seed, shard=shard,
    )

    variables = list(model.trainable_variables)
    with scope():
        # cosine: over this call's whole budget, so a resumed run with the same budget
        # follows the same schedule as an uninterrupted one.
        decay_steps = int(sum(plan)) if lr_decay == "cosine" else None
        opt = Adam(variables, lr=lr, names=model.weight_names(), decay_steps=decay_steps,
                   unit_gradients=grad_norm == "unit")
    forward = tf.function(model.call, reduce_retracing=True)
    rule = _weighted_rule(backprop, model, loss_weight)

    @tf.function
    def train_step(x, y):
        loss, grads = rule(model, x, y, tf.cast(opt.iterations, tf.float32))
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
        ok = tf.math.is_finite(loss) & tf.math.is_finite(tf.linalg.global_norm(grads))

        def update():
            opt.apply(grads)
            return tf.constant(True)

        return loss, tf.cond(ok, update, lambda: tf.constant(False))

    if dist is not None:
        train_step, batches = _distributed_step(dist, model, rule, opt, variables, pairs, per_replica, shard)
    else:
        batches = pairs.dataset

    extra = {"backprop": backprop.name, "noise": _noise_name(noise), "seed": int(seed)}
    rows: list[dict[str, Any]] = []
    start, resumed_from = 0, None
    if last is not None:
        start = resumed_from = last
        from denoisekit.weights import read_weights

        _, arrays = read_weights(run.epoch_weights(start))
        with scope():
            model.set_weights(arrays)
            opt.load(run.epoch_optimizer(start))
        rows = [old_rows[e] for e in range(start + 1) if e in old_rows]
        if chief:
            run.drop_epochs_after(start)
    new = not resume and chief
    if new:
        run.create(config)
    with run.discarded_unless_trained(new):  # a rerun would make all it holds
        if not rows:
            row = {"epoch": 0, "step": 0, "loss": None, "seconds": 0.0}
            rows = [row]
            if chief:
                row.update(evaluate(forward, model, val_noisy, val_clean, batch_size))
                if not row["val_psnr"] > -math.inf:  # NaN or -inf: no learning rate makes this, the model does
                    raise DenoiseKitError(f"model '{model.name}' gives NaN or infinite output before any training: "
                                          "its build() or call() is broken")
                row["noisy_psnr"] = M.psnr(val_clean, val_noisy)
                row["noisy_ssim"] = M.ssim(val_clean, val_noisy)
                run.save_epoch(0, model, opt, step=0, **extra)
                run.save_best(model, epoch=0, val_psnr=row["val_psnr"], **extra)
                run.write_metrics(rows)
                run.write_curves(rows)

        step = int(rows[-1]["step"])
        best_row = _best_row(rows)
        best_epoch, best_psnr = best_row["epoch"], best_row.get("val_psnr", -math.inf)
        if progress is not None:
            progress.start(int(sum(plan)), step)
        try:
            for epoch in range(start + 1, len(plan) + 1):
                t_epoch = time.perf_counter()
                losses = []
                for x, y in batches(epoch, plan[epoch - 1]):
                    loss, ok = train_step(x, y)
                    loss = float(loss)
                    if not bool(ok):
                        raise TrainingDiverged(_diverged(run, loss, step + 1, epoch, rows[-1]["epoch"], best_epoch,
                                                         lr, discarded=new and rows[-1]["epoch"] == 0))
                    step += 1
                    losses.append(loss)
                    if progress is not None:
                        progress.step(step, loss)
                t_eval = time.perf_counter()
                row = {"epoch": epoch, "step": step, "loss": float(np.mean(losses)),
                       "seconds": round(t_eval - t_epoch, 3)}  # training only, for per-step costs
                rows.append(row)
                if not chief:
                    continue
                row.update(evaluate(forward, model, val_noisy, val_clean, batch_size))
                row["eval_seconds"] = round(time.perf_counter() - t_eval, 3)
                run.save_epoch(epoch, model, opt, step=step, **extra)
                if row["val_psnr"] > best_psnr:
                    best_epoch, best_psnr = epoch, row["val_psnr"]
                    run.save_best(model, epoch=epoch, val_psnr=row["val_psnr"], **extra)
                run.write_metrics(rows)
                run.write_curves(rows)
                if progress is not None:
                    progress.epoch(row)
        finally:
            if progress is not None:
                progress.stop()
    best = next(r for r in rows if r["epoch"] == best_epoch)
    return TrainResult(
        run.path, model, rows[-1]["epoch"], step, rows, best_epoch,
        time.perf_counter() - t0, resumed_from, best,
    )


def _diverged(run: RunDir, loss: float, step: int, epoch: int, last: int, best_epoch: int, lr: float,
              discarded: bool) -> str:
    """What a stop on a non-finite loss says, and what it leaves."""
    kept = (f"the new run {run.path} is removed (no epoch was trained)" if discarded else
            f"the last good weights are kept: {run.epoch_weights(last)} and {run.path / 'best.npz'} "
            f"(epoch {best_epoch})")
    return (f"the loss became {'nan' if math.isnan(loss) else loss} at step {step} (epoch {epoch}); "
            f"training stopped and {kept}; try a lower --lr (was {lr:g})")


def finished_run(run_dir: str | Path, model: Any, backprop: Any, noise: Any, **settings: Any) -> TrainResult | None:
    """What ``train(volumes, model, backprop, noise, run_dir=run_dir, resume=True, **settings)``
    returns for a run that has trained its whole budget, found without the volumes, so that a
    caller need not read (or find) them first; None when there is training left. Refuses
    what ``train`` refuses of a resume: a run trained otherwise, or further."""
    import inspect

    bound = inspect.signature(train).bind((), model, backprop, noise, run_dir=run_dir, resume=True, **settings)
    bound.apply_defaults()  # train's own defaults: one place says what a run was trained with
    a = bound.arguments
    t0 = time.perf_counter()
    if isinstance(noise, (list, tuple)) and all(n is noise[0] for n in noise):
        noise = noise[0]  # as train records it
    plan = epoch_plan(a["epochs"], a["steps"], a["steps_per_epoch"])
    keys = ("seed", "batch_size", "patch_size", "lr", "lr_decay", "grad_norm", "loss_weight", "steps_per_epoch",
            "val_fraction", "realisations", "val_tiles", "sources", "read_options")
    run = RunDir(run_dir)
    _, last, old_rows = _resume_point(run, _config(model, backprop, noise, plan, **{k: a[k] for k in keys}), plan)
    if last != len(plan):
        return None
    if not model.built:
        from denoisekit.plugin import build_model

        build_model(model, a["patch_size"])
    return _complete(run, model, last, old_rows, t0)


def _config(model: Any, backprop: Any, noise: Any, plan: list[int], *, seed: int, batch_size: int, patch_size: int,
            lr: float, lr_decay: str, grad_norm: str, loss_weight: str, steps_per_epoch: int, val_fraction: float,
            realisations: int, val_tiles: int, sources: Sequence[str] | None = None,
            read_options: dict[str, Any] | None = None) -> dict[str, Any]:
    """A run's config.json: what it is trained with (a resume must match it) and on what."""
    import denoisekit

    return {
        "model": _plugin_config(model),
        "backprop": _plugin_config(backprop),
        "noise": [_plugin_config(n) for n in noise] if isinstance(noise, (list, tuple)) else _plugin_config(noise),
        "seed": int(seed),
        "batch_size": int(batch_size),
        "patch_size": int(patch_size),
        "lr": float(lr),
        "lr_decay": lr_decay,
        "grad_norm": grad_norm,
        "loss_weight": loss_weight,
        "epochs": len(plan),
        "steps": int(sum(plan)),
        "steps_per_epoch": int(steps_per_epoch),
        "val_fraction": float(val_fraction),
        "realisations": int(realisations),
        "val_tiles": int(val_tiles),
        "data": list(sources) if sources is not None else None,
        "read": dict(read_options) if read_options is not None else None,
        "denoisekit": denoisekit.__version__,
    }


def _values(old: Any, new: Any) -> str:
    """`` (0.002; now 0.001)`` for a setting that is one value, else nothing (a model's or
    noise's whole options would not fit a line): the user sees what to give to resume."""
    if isinstance(old, (dict, list)) or isinstance(new, (dict, list)):
        return ""
    return f" ({'none' if old is None else old}; now {new})"


def _resume_point(run: RunDir, config: dict[str, Any], plan: list[int]) -> tuple[dict, int | None, dict[int, dict]]:
    """The config of the run being resumed, the epoch to start from and its metrics rows by
    epoch; refuses a run trained with other settings, or for more steps than ``plan``."""
    old = read_run_config(run.path)
    diff = [k for k in _RESUME_KEYS if json_norm(old.get(k)) != json_norm(config[k])]
    if diff:
        said = ", ".join(k + _values(old.get(k), config[k]) for k in diff)
        raise DenoiseKitError(f"cannot resume {run.path}: it was trained with different {said}")
    other_data = _other_data(old, config)
    if other_data:
        raise DenoiseKitError(f"cannot resume {run.path}: {other_data}")
    last, old_rows = _last_usable_epoch(run, plan)
    trained = max((int(r["step"]) for r in old_rows.values()), default=0)
    if trained > sum(plan):  # resuming would drop trained epochs (and best.npz may be one)
        raise DenoiseKitError(
            f"{run.path} has trained {trained} steps ({max(old_rows)} epochs), more than the {sum(plan)} "
            "asked for: resume it with at least that budget, or start a new run with -o")
    return old, last, old_rows


def _other_data(old: dict[str, Any], config: dict[str, Any]) -> str | None:
    """How ``config`` would train on other data than the run ``old``, or None (the same
    data, or one side does not say). Paths as recorded: a moved folder is other data."""
    if None not in (old.get("data"), config["data"]) and json_norm(old["data"]) != json_norm(config["data"]):
        return (f"it was trained on {', '.join(old['data'])}, not {', '.join(config['data'])} "
                "(resume without DATA to train on its own, or start a new run with -o)")
    was, now = old.get("data_digest"), config.get("data_digest")
    if was is not None and now is not None and json_norm(was) != json_norm(now):
        where = f" at {', '.join(old['data'])}" if old.get("data") else ""
        what = (f"{was.get('slices')} slices then, {now.get('slices')} now" if was.get("slices") != now.get("slices")
                else "its voxels changed")
        return (f"the data{where} is not what it was trained on ({what}): its validation slices would be "
                "others; start a new run with -o")
    was, now = old.get("read"), config["read"]
    if was is None or now is None:
        return None
    differ = [k for k in sorted({*was, *now}) if json_norm(was.get(k)) != json_norm(now.get(k))]
    if not differ:
        return None
    return (f"its data was read with {_read_words(was, differ)}, not {_read_words(now, differ)} "
            "(resume without them to read it as it was)")


def data_digest(volumes: Sequence[Any]) -> dict[str, Any]:
    """What a run trains on, voxel for voxel: the volumes' slice count and a BLAKE2b of their
    shapes and float32 voxels, in order."""
    import hashlib

    h = hashlib.blake2b(digest_size=16)
    slices = 0
    for volume in volumes:
        array = np.ascontiguousarray(getattr(volume, "array", volume), dtype=np.float32)
        h.update(repr(array.shape).encode())
        h.update(memoryview(array).cast("B"))
        slices += array.shape[0] if array.ndim == 3 else 1
    return {"slices": slices, "blake2b": h.hexdigest()}


def _read_words(read: dict[str, Any], keys: list[str]) -> str:
    """Read options as the command line gives them: '--series 3, no --allow-tilt'."""
    words = []
    for key in keys:
        option, value = "--" + key.replace("_", "-"), read.get(key)
        words.append(f"no {option}" if value in (None, False) else option if value is True else f"{option} {value}")
    return ", ".join(words)


def _complete(run: RunDir, model: Any, last: int, old_rows: dict[int, dict], t0: float,
              scope: Any = contextlib.nullcontext) -> TrainResult:
    """A finished run as resuming it finds it: its last weights in ``model``, nothing trained."""
    from denoisekit.weights import read_weights

    _, arrays = read_weights(run.epoch_weights(last))
    with scope():
        model.set_weights(arrays)
    rows = [old_rows[e] for e in range(last + 1) if e in old_rows]
    best = _best_row(rows)
    return TrainResult(run.path, model, last, int(rows[-1]["step"]), rows, best["epoch"],
                       time.perf_counter() - t0, last, best, already_complete=True)


def _best_row(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The metrics row of the best epoch: highest validation PSNR, the earliest of a tie."""
    return max(rows, key=lambda r: (r.get("val_psnr", -math.inf), -r["epoch"]))


def _last_usable_epoch(run: RunDir, plan: list[int]) -> tuple[int | None, dict[int, dict]]:
    """The last saved epoch a resume can start from (weights, optimiser state and a metrics
    row at the step this plan puts it), and the metrics rows by epoch."""
    done = run.complete_epochs()
    if not done:
        return None, {}
    old_rows = {r["epoch"]: r for r in run.read_metrics()}
    cumulative = np.concatenate([[0], np.cumsum(plan)])
    usable = [e for e in done if e <= len(plan) and e in old_rows and old_rows[e]["step"] == cumulative[e]]
    return (usable[-1] if usable else None), old_rows


def _check_model(model: Any, backprop: Any, patch_size: int) -> None:
    """Refuse, before the run exists, a model with nothing to train or whose ``call`` does not
    answer a patch with a patch: either would "train" to the end without a word."""
    import tensorflow as tf

    from denoisekit.errors import PluginError
    from denoisekit.plugin import check_layers, check_output_shape

    if backprop.requires_manual_gradients:  # the layers' backward() is what such a rule runs
        check_layers(model)
    if not model.trainable_variables:
        raise PluginError(f"model '{model.name}' has no trainable variables after build(): nothing to train")
    probe = tf.zeros((1, patch_size, patch_size, 1), tf.float32)
    check_output_shape(model, model.call(probe), tuple(probe.shape))


def _seed_keras(seed: int) -> bool:
    """Seed Keras too, if something (a plugin's model) has imported it: Keras 3's initialisers
    ignore TensorFlow's seed, so ``--seed`` would not fix such a model's start. Importing Keras
    just for this would cost every run seconds. True if Keras was seeded."""
    if "keras" not in sys.modules:
        return False
    sys.modules["keras"].utils.set_random_seed(seed)
    return True


def _weighted_rule(backprop: Any, model: Any, loss_weight: str):
    """``backprop.gradients``, given the per-sample weights ``loss_weight`` asks for, and
    checked to give one gradient per variable (paired by ``zip``, a short list would leave the
    last variables untrained without a word)."""
    import numpy as np

    from denoisekit.errors import PluginError

    if loss_weight != "none":
        hu = np.array([0.0, NOISE_WEIGHT_FLOOR_HU], dtype=np.float32)
        floor = float(np.diff(np.asarray(model.scale(hu), dtype=np.float64))[0])  # HU -> model units

    def gradients(model, x, target, step):
        extra = {} if loss_weight == "none" else {"weights": noise_weights(x, target, floor)}
        returned = backprop.gradients(model, x, target, step, **extra)
        if not (isinstance(returned, (tuple, list)) and len(returned) == 2 and isinstance(returned[1], (tuple, list))):
            what = "None" if returned is None else f"a {type(returned).__name__}" + (
                f" of {len(returned)}" if isinstance(returned, (tuple, list)) else "")
            owner = getattr(backprop, "plugin", None)  # set when registered
            raise PluginError(f"backprop '{backprop.name}'" + (f" (plugin '{owner}')" if owner else "") +
                              f" returned {what} from gradients(); it must return (loss, [a gradient for each variable])")
        loss, grads = returned
        if len(grads) != len(model.trainable_variables):  # checked when traced: a Python list
            raise PluginError(f"backprop '{backprop.name}' returned {len(grads)} gradient(s) for the "
                              f"{len(model.trainable_variables)} variables of model '{model.name}'")
        for i, (g, v) in enumerate(zip(grads, model.trainable_variables)):
            # a gradient of another shape would be broadcast into the variable by Adam
            if g is not None and not hasattr(g, "indices") and not g.shape.is_compatible_with(v.shape):
                raise PluginError(f"backprop '{backprop.name}' returned a gradient of shape {tuple(g.shape)} for "
                                  f"variable {i} of model '{model.name}', of shape {tuple(v.shape)}")
        return loss, grads

    return gradients


def noise_weights(x, target, floor):
    """Per-sample loss weights ``1 / (noise variance + floor^2)``, normalised to mean 1.

    Blind training mixes noise from about 10 HU to a few hundred (sixteenth dose through a
    thick abdomen); with plain MSE the noisiest patches, whose squared errors are hundreds of
    times larger, decide the gradient and the model learns to smooth hard, blurring thin
    structures and edges at the noise levels people scan with. Dividing each patch's error
    by its own noise variance makes every patch count for its *relative* error (as PSNR
    does). ``floor`` (model units) keeps near noise-free patches from taking over. Constant
    with respect to the model's parameters.

    Under a distribution strategy the mean is over the global batch (one all-reduce), so
    every replica weighs its rows as the single process would."""
    import tensorflow as tf

    axes = list(range(1, len(x.shape)))
    variance = tf.reduce_mean(tf.square(tf.cast(x, tf.float32) - tf.cast(target, tf.float32)), axis=axes)
    w = 1.0 / (variance + floor * floor)
    total, count = tf.reduce_sum(w), tf.cast(tf.size(w), tf.float32)
    ctx = tf.distribute.get_replica_context()
    if ctx is not None and ctx.num_replicas_in_sync > 1:
        total, count = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [total, count])
    return tf.stop_gradient(w * (count / total))


def _distributed_step(dist, model, rule, opt, variables, pairs, per_replica, shard):
    """The training step and the per-epoch batches under ``dist``'s strategy.

    Each replica's rule returns the mean loss and gradients over its ``per_replica`` rows;
    divided by the number of replicas and summed by one all-reduce (the same for every
    rule, hand-written gradients included) they are the mean over the global batch, so every
    replica holds the same gradients and applies the same update."""
    import tensorflow as tf

    strategy, share = dist.strategy, 1.0 / dist.replicas
    first = 0 if shard is not None else dist.task.index * dist.local_replicas * per_replica

    def replica_step(x, y):
        loss, grads = rule(model, x, y, tf.cast(opt.iterations, tf.float32))
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
        ctx = tf.distribute.get_replica_context()
        return ctx.all_reduce(tf.distribute.ReduceOp.SUM, [loss * share] + [g * share for g in grads])

    @tf.function
    def train_step(x, y):
        summed = strategy.run(replica_step, args=(x, y))
        # all replicas hold the same sums: update the mirrored variables once, from the first
        loss, *grads = [strategy.experimental_local_results(t)[0] for t in summed]
        ok = tf.math.is_finite(loss) & tf.math.is_finite(tf.linalg.global_norm(grads))

        def update():
            opt.apply(grads)  # cross-replica context: each assign reaches every copy
            return tf.constant(True)

        return loss, tf.cond(ok, update, lambda: tf.constant(False))

    def batches(epoch: int, steps: int):
        return strategy.distribute_datasets_from_function(
            lambda _: pairs.replica_dataset(epoch, steps, first, per_replica, dist.local_replicas)
        )

    return train_step, batches


def json_norm(value: Any) -> Any:
    """Compare configs as JSON sees them (tuples and lists alike)."""
    import json

    return json.loads(json.dumps(value, default=str))
