"""The train stage: every model x rule pair learns, resume equals an uninterrupted run,
divergence keeps the last good weights, impossible pairs fail before any work."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from denoisekit.errors import DenoiseKitError, PluginError, UsageError
from denoisekit.plugin import Backprop, NoiseKind, TrainableModel
from denoisekit.train import TrainingDiverged, epoch_plan, finished_run, train
from denoisekit.volume import Volume
from denoisekit.weights import load_model, read_weights


def phantom(z: int = 5, n: int = 64) -> Volume:
    """A small chest-like stack: air, a soft-tissue body, two lungs, a bone, varying with z."""
    yy, xx = np.mgrid[:n, :n] / n - 0.5
    slices = []
    for k in range(z):
        s = np.full((n, n), -1000.0, np.float32)
        s[(xx / 0.45) ** 2 + (yy / 0.35) ** 2 < 1] = 40.0
        for cx in (-0.18, 0.18):
            s[((xx - cx) / 0.12) ** 2 + ((yy + 0.02 * k) / 0.2) ** 2 < 1] = -850.0
        s[xx**2 + (yy - 0.22) ** 2 < (0.04 + 0.005 * k) ** 2] = 700.0
        slices.append(s)
    return Volume(np.stack(slices), spacing=(0.7, 0.7, 2.0))


class WhiteNoise(NoiseKind):
    name = "white"
    description = "test noise"
    options = {"sigma": 100.0}

    def apply(self, hu, params, spacing=(1.0, 1.0, 1.0)):
        rng = np.random.default_rng(params["seed"])
        return (hu + params["sigma"] * rng.standard_normal(hu.shape)).astype(np.float32)


class ConvLayer:
    """h -> h + conv3x3(h): enough to learn a smoothing filter."""

    def __init__(self, name):
        self.name = name
        self.variables = [tf.Variable(tf.random.normal((3, 3, 1, 1), stddev=0.01))]

    def forward(self, h, x):
        return h + tf.nn.conv2d(h, self.variables[0], 1, "SAME"), h

    def backward(self, g, h):
        w = self.variables[0]
        dw = tf.compat.v1.nn.conv2d_backprop_filter(h, tf.shape(w), g, [1, 1, 1, 1], "SAME")
        dh = g + tf.nn.conv2d_transpose(g, w, tf.shape(h), 1, "SAME")
        return dh, [dw]


class TinyModel(TrainableModel):
    """A third party's model: one hand-written layer, nothing from the built-ins."""

    name = "tiny"
    description = "test model"
    manual_gradients = True

    def build(self, patch_size=None):
        self.layers = [ConvLayer("conv")]
        self.built = True


class KerasModel(TrainableModel):
    """A model with a plain ``call`` and no hand-written backward steps."""

    name = "plain"
    description = "test model without manual gradients"

    def build(self, patch_size=None):
        self.w = tf.Variable(tf.zeros((3, 3, 1, 1)))
        self.built = True

    @property
    def trainable_variables(self):
        return [self.w]

    def weight_names(self):
        return ["w"]

    def call(self, x):
        return x + tf.nn.conv2d(x, self.w, 1, "SAME")


class TapeRule(Backprop):
    """A third party's rule: plain GradientTape on mean squared error."""

    name = "tape"
    description = "test rule"
    nan_from_step = None

    def gradients(self, model, x, target, step):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model.call(x) - target))
        grads = tape.gradient(loss, model.trainable_variables)
        if self.nan_from_step is not None:
            loss = tf.where(step >= self.nan_from_step, tf.constant(np.nan, tf.float32), loss)
        return loss, grads


SMALL = dict(batch_size=4, patch_size=32, steps_per_epoch=6, realisations=2, val_tiles=8, lr=0.01)


def test_trains_a_third_party_model_and_writes_the_run(tmp_path):
    res = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "run",
                epochs=3, seed=1, **SMALL)
    rows = res.rows
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"]
    assert rows[-1]["val_psnr"] > rows[0]["noisy_psnr"]  # better than the noisy input
    assert res.steps == 18 and rows[-1]["step"] == 18
    files = {p.relative_to(res.run_dir).as_posix() for p in res.run_dir.rglob("*")}
    assert {"config.json", "metrics.jsonl", "curves.png", "best.npz", "epochs"} <= files
    assert {f"epochs/epoch-00{e}.npz" for e in range(4)} <= files
    assert {f"epochs/epoch-00{e}.adam.npz" for e in range(4)} <= files
    config = json.loads((res.run_dir / "config.json").read_text())
    assert config["model"]["name"] == "tiny" and config["seed"] == 1 and config["steps"] == 18
    lines = (res.run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in lines] == [0, 1, 2, 3]
    header, arrays = read_weights(res.run_dir / "best.npz")
    assert header["model"] == "tiny" and header["epoch"] == res.best_epoch
    best = max(rows, key=lambda r: r["val_psnr"])
    assert res.best_epoch == best["epoch"]
    np.testing.assert_array_equal(
        arrays["conv.0"], read_weights(res.run_dir / f"epochs/epoch-00{res.best_epoch}.npz")[1]["conv.0"]
    )
    summary = res.summary()
    assert summary["final"]["psnr"] == rows[-1]["val_psnr"]
    assert summary["seconds_per_step"] > 0
    with pytest.raises(DenoiseKitError, match="already exists"):
        train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=res.run_dir, epochs=1, **SMALL)


def test_resume_reaches_the_uninterrupted_result(tmp_path):
    whole = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "a",
                  epochs=2, seed=3, **SMALL)
    train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "b",
          epochs=1, seed=3, **SMALL)
    # the interrupted run's model object is gone; a fresh one resumes from disk
    resumed = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "b",
                    epochs=2, seed=3, resume=True, **SMALL)
    assert resumed.resumed_from == 1 and resumed.steps == whole.steps == 12
    np.testing.assert_allclose(
        resumed.model.trainable_variables[0].numpy(), whole.model.trainable_variables[0].numpy(),
        rtol=1e-5, atol=1e-7,
    )
    assert resumed.rows[-1]["val_psnr"] == pytest.approx(whole.rows[-1]["val_psnr"], abs=1e-3)
    assert len(resumed.rows) == 3
    # a different seed is a different run
    with pytest.raises(DenoiseKitError, match="different seed"):
        train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "b",
              epochs=3, seed=4, resume=True, **SMALL)


def test_resuming_a_finished_run_trains_nothing_and_returns_its_weights(tmp_path, monkeypatch):
    whole = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "a",
                  epochs=2, seed=3, **SMALL)
    import denoisekit.dataset

    def no_noise(*args, **kwargs):
        raise AssertionError("a finished run simulated noise again")

    monkeypatch.setattr(denoisekit.dataset, "add_noise", no_noise)
    again = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "a",
                  epochs=2, seed=3, resume=True, **SMALL)
    assert again.already_complete and again.summary()["already_complete"]
    assert (again.epochs, again.steps, again.best_epoch) == (whole.epochs, whole.steps, whole.best_epoch)
    assert [r["epoch"] for r in again.rows] == [0, 1, 2]
    np.testing.assert_array_equal(again.model.trainable_variables[0].numpy(),
                                  whole.model.trainable_variables[0].numpy())


def test_a_finished_run_is_found_without_its_volumes(tmp_path):
    whole = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "a",
                  epochs=2, seed=3, **SMALL)
    assert finished_run(tmp_path / "a", TinyModel(), TapeRule(), WhiteNoise(), epochs=3, seed=3, **SMALL) is None
    done = finished_run(tmp_path / "a", TinyModel(), TapeRule(), WhiteNoise(), epochs=2, seed=3, **SMALL)
    assert done.already_complete and done.resumed_from == 2
    assert (done.epochs, done.steps, done.best_epoch) == (whole.epochs, whole.steps, whole.best_epoch)
    np.testing.assert_array_equal(done.model.trainable_variables[0].numpy(),
                                  whole.model.trainable_variables[0].numpy())
    with pytest.raises(DenoiseKitError, match="different seed"):  # what train refuses, it refuses
        finished_run(tmp_path / "a", TinyModel(), TapeRule(), WhiteNoise(), epochs=2, seed=4, **SMALL)


@pytest.mark.parametrize("budget", [{"epochs": 1}, {"steps": 9}])
def test_resuming_with_a_smaller_budget_is_refused_and_keeps_every_epoch(tmp_path, budget):
    train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "a", epochs=2, seed=3, **SMALL)
    before = {p.name: p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()}
    with pytest.raises(DenoiseKitError, match=r"has trained 12 steps \(2 epochs\), more than the \d+ asked for"):
        train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "a", seed=3, resume=True,
              **{**SMALL, "epochs": None, **budget})
    assert {p.name: p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()} == before


def test_noise_per_volume_is_recorded_resumes_and_needs_one_per_volume(tmp_path):
    volumes = [phantom(), phantom(4)]
    noises = [WhiteNoise(sigma=40.0), WhiteNoise(sigma=200.0)]
    whole = train(volumes, TinyModel(), TapeRule(), noises, run_dir=tmp_path / "a", epochs=2, seed=2, **SMALL)
    config = json.loads((whole.run_dir / "config.json").read_text())
    assert [n["options"]["sigma"] for n in config["noise"]] == [40.0, 200.0]
    assert read_weights(whole.run_dir / "best.npz")[0]["noise"] == "white"
    train(volumes, TinyModel(), TapeRule(), noises, run_dir=tmp_path / "b", epochs=1, seed=2, **SMALL)
    resumed = train(volumes, TinyModel(), TapeRule(), noises, run_dir=tmp_path / "b", epochs=2, seed=2,
                    resume=True, **SMALL)
    np.testing.assert_allclose(resumed.model.trainable_variables[0].numpy(),
                               whole.model.trainable_variables[0].numpy(), rtol=1e-5, atol=1e-7)
    # the per-volume levels are part of the run: other levels cannot continue it
    with pytest.raises(DenoiseKitError, match="different noise"):
        train(volumes, TinyModel(), TapeRule(), noises[:1] * 2, run_dir=tmp_path / "b", epochs=3, seed=2,
              resume=True, **SMALL)
    with pytest.raises(DenoiseKitError, match="2 noise kinds for 1 volumes"):
        train(volumes[:1], TinyModel(), TapeRule(), noises, run_dir=tmp_path / "c", epochs=1, **SMALL)
    assert not (tmp_path / "c").exists()


def test_cosine_schedule_resumes_from_an_interruption(tmp_path):
    import shutil

    whole = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "a",
                  epochs=3, seed=3, lr_decay="cosine", **SMALL)
    constant = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "c",
                     epochs=3, seed=3, **SMALL)
    assert not np.allclose(whole.model.trainable_variables[0].numpy(), constant.model.trainable_variables[0].numpy())
    # an interruption during epoch 2: what a killed run leaves on disk
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    for epoch in (2, 3):
        for p in (tmp_path / "b" / "epochs").glob(f"epoch-{epoch:03d}*"):
            p.unlink()
    resumed = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "b",
                    epochs=3, seed=3, lr_decay="cosine", resume=True, **SMALL)
    assert resumed.resumed_from == 1
    np.testing.assert_allclose(
        resumed.model.trainable_variables[0].numpy(), whole.model.trainable_variables[0].numpy(),
        rtol=1e-5, atol=1e-7,
    )
    with pytest.raises(DenoiseKitError, match="different lr_decay"):
        train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "b",
              epochs=3, seed=3, resume=True, **SMALL)
    with pytest.raises(DenoiseKitError, match="unknown lr decay 'linear'"):
        train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "d",
              epochs=1, seed=3, lr_decay="linear", **SMALL)


def _as_before_the_option(run_dir, key):
    """Make ``run_dir`` look written by a version without option ``key``."""
    path = run_dir / "config.json"
    config = json.loads(path.read_text())
    del config[key]
    path.write_text(json.dumps(config))


def test_runs_from_before_lr_decay_resume_at_a_constant_rate(tmp_path):
    from denoisekit.train import read_run_config

    train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "old", epochs=1, seed=3, **SMALL)
    _as_before_the_option(tmp_path / "old", "lr_decay")
    assert read_run_config(tmp_path / "old")["lr_decay"] == "constant"
    resumed = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "old",
                    epochs=2, seed=3, resume=True, **SMALL)
    assert resumed.resumed_from == 1
    with pytest.raises(DenoiseKitError, match="different lr_decay"):
        train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "old",
              epochs=3, seed=3, lr_decay="cosine", resume=True, **SMALL)


def test_grad_norm_is_recorded_changes_training_and_must_match_on_resume(tmp_path):
    from denoisekit.train import read_run_config

    unit = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "u",
                 epochs=1, seed=3, grad_norm="unit", **SMALL)
    raw = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "r", epochs=1, seed=3, **SMALL)
    assert read_run_config(tmp_path / "u")["grad_norm"] == "unit"
    assert read_run_config(tmp_path / "r")["grad_norm"] == "raw"
    assert not np.allclose(unit.model.trainable_variables[0].numpy(), raw.model.trainable_variables[0].numpy())
    with pytest.raises(DenoiseKitError, match="different grad_norm"):
        train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "u",
              epochs=2, seed=3, resume=True, **SMALL)
    with pytest.raises(DenoiseKitError, match="unknown grad norm 'clip'"):
        train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "x",
              epochs=1, seed=3, grad_norm="clip", **SMALL)
    # runs from before the option trained on raw gradients
    _as_before_the_option(tmp_path / "r", "grad_norm")
    assert read_run_config(tmp_path / "r")["grad_norm"] == "raw"


def test_noise_weights_favour_the_less_noisy_patches_and_stop_at_the_floor():
    from denoisekit.train import noise_weights

    t = tf.zeros((3, 8, 8, 1))
    x = tf.constant(np.stack([np.full((8, 8, 1), s, np.float32) for s in (0.01, 0.02, 0.0)]))
    w = noise_weights(x, t, floor=0.005).numpy()
    assert w.mean() == pytest.approx(1.0)
    # 1 / (variance + floor^2): noise 0.01 -> 1/1.25e-4, 0.02 -> 1/4.25e-4, none -> 1/2.5e-5
    expect = 1 / np.array([1.25e-4, 4.25e-4, 2.5e-5])
    np.testing.assert_allclose(w, expect / expect.mean(), rtol=1e-5)


class WeightedTapeRule(TapeRule):
    name = "weighted-tape"

    def gradients(self, model, x, target, step, weights=None):
        with tf.GradientTape() as tape:
            sq = tf.reduce_mean(tf.square(model.call(x) - target), axis=[1, 2, 3])
            loss = tf.reduce_mean(sq if weights is None else weights * sq)
        return loss, tape.gradient(loss, model.trainable_variables)


class LevelNoise(WhiteNoise):
    """White noise whose level alternates between slices (30 and 300 HU), like blind training's."""

    name = "levels"

    def apply(self, hu, params, spacing=(1.0, 1.0, 1.0)):
        rng = np.random.default_rng(params["seed"])
        sigma = np.where(np.arange(hu.shape[0]) % 2 == 0, 30.0, 300.0)[:, None, None]
        return (hu + sigma * rng.standard_normal(hu.shape)).astype(np.float32)


def test_loss_weight_is_recorded_changes_training_and_needs_a_rule_that_takes_weights(tmp_path):
    from denoisekit.train import read_run_config

    noisy_sets = [phantom(z=8)]
    runs = {lw: train(noisy_sets, TinyModel(), WeightedTapeRule(), LevelNoise(), run_dir=tmp_path / lw,
                      epochs=1, seed=3, loss_weight=lw, **SMALL) for lw in ("none", "noise")}
    assert read_run_config(tmp_path / "noise")["loss_weight"] == "noise"
    assert not np.allclose(runs["none"].model.trainable_variables[0].numpy(),
                           runs["noise"].model.trainable_variables[0].numpy())
    with pytest.raises(DenoiseKitError, match="different loss_weight"):
        train(noisy_sets, TinyModel(), WeightedTapeRule(), LevelNoise(), run_dir=tmp_path / "noise",
              epochs=2, seed=3, resume=True, **SMALL)
    with pytest.raises(DenoiseKitError, match="'tape' takes no per-sample weights"):
        train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "x",
              epochs=1, seed=3, loss_weight="noise", **SMALL)
    assert not (tmp_path / "x").exists()
    with pytest.raises(DenoiseKitError, match="unknown loss weight 'l1'"):
        train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "y",
              epochs=1, seed=3, loss_weight="l1", **SMALL)
    _as_before_the_option(tmp_path / "none", "loss_weight")  # older runs trained on plain MSE
    assert read_run_config(tmp_path / "none")["loss_weight"] == "none"


def test_non_finite_loss_stops_and_keeps_the_last_good_weights(tmp_path):
    rule = TapeRule()
    rule.nan_from_step = SMALL["steps_per_epoch"] + 2  # in epoch 2
    model = TinyModel()
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 9 \(epoch 2\).*lower --lr"):
        train([phantom()], model, rule, WhiteNoise(), run_dir=tmp_path / "run", epochs=3, seed=0, **SMALL)
    _, saved = read_weights(tmp_path / "run" / "epochs" / "epoch-001.npz")
    assert not (tmp_path / "run" / "epochs" / "epoch-002.npz").exists()
    assert np.isfinite(model.trainable_variables[0].numpy()).all()
    assert [json.loads(l)["epoch"] for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()] == [0, 1]
    assert np.isfinite(saved["conv.0"]).all()


def test_huge_learning_rate_is_caught_and_its_untrained_run_removed(tmp_path):
    """Diverging in epoch 1 leaves only the untrained start: the run goes, so the corrected
    command can use the same directory (a resume with another lr is refused)."""
    with pytest.raises(TrainingDiverged, match=r"new run .* is removed \(no epoch was trained\); try a lower --lr"):
        train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "run",
              epochs=2, seed=0, **{**SMALL, "lr": 1e30})
    assert not (tmp_path / "run").exists()
    res = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "run", epochs=1, seed=0, **SMALL)
    assert np.isfinite(read_weights(res.run_dir / "best.npz")[1]["conv.0"]).all()


class Interrupt:
    """A progress display whose user presses Ctrl-C at step ``at``."""

    def __init__(self, at):
        self.at = at

    def start(self, total_steps, done_steps):
        pass

    def step(self, step, loss):
        if step == self.at:
            raise KeyboardInterrupt

    def epoch(self, row):
        pass

    def stop(self):
        pass


class InterruptedNoise(WhiteNoise):
    name = "interrupted"

    def apply(self, hu, params, spacing=(1.0, 1.0, 1.0)):
        raise KeyboardInterrupt


def test_a_new_run_stopped_before_its_first_epoch_leaves_nothing(tmp_path):
    run = tmp_path / "runs" / "new"
    with pytest.raises(KeyboardInterrupt):  # Ctrl-C while the noisy copies are made
        train([phantom()], TinyModel(), TapeRule(), InterruptedNoise(), run_dir=run, epochs=2, **SMALL)
    assert not (tmp_path / "runs").exists()
    with pytest.raises(KeyboardInterrupt):  # ... or during the first epoch
        train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=run, epochs=2, progress=Interrupt(3),
              **SMALL)
    assert not (tmp_path / "runs").exists()
    run.mkdir(parents=True)  # an empty directory given as the run stays as it was found
    with pytest.raises(KeyboardInterrupt):
        train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=run, epochs=2, progress=Interrupt(3),
              **SMALL)
    assert run.is_dir() and not any(run.iterdir())


def test_a_run_interrupted_after_an_epoch_stays_and_resumes_to_the_same_weights(tmp_path):
    whole = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "a", epochs=2, seed=3,
                  **SMALL)
    with pytest.raises(KeyboardInterrupt):
        train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "b", epochs=2, seed=3,
              progress=Interrupt(SMALL["steps_per_epoch"] + 2), **SMALL)
    resumed = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "b", epochs=2, seed=3,
                    resume=True, **SMALL)
    assert resumed.resumed_from == 1
    np.testing.assert_array_equal(resumed.model.trainable_variables[0].numpy(),
                                  whole.model.trainable_variables[0].numpy())


def test_resume_refuses_other_data_or_data_read_otherwise(tmp_path):
    read = {"series": "5", "allow_irregular": False, "allow_tilt": False}
    train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "a", epochs=1, seed=3,
          sources=["/scans/a"], read_options=read, **SMALL)
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["data"] == ["/scans/a"] and config["read"] == read
    with pytest.raises(DenoiseKitError, match="it was trained on /scans/a, not /scans/b"):
        train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "a", epochs=2, seed=3,
              resume=True, sources=["/scans/b"], read_options=read, **SMALL)
    with pytest.raises(DenoiseKitError, match="its data was read with --series 5, not --series 6"):
        finished_run(tmp_path / "a", TinyModel(), TapeRule(), WhiteNoise(), epochs=1, seed=3, sources=["/scans/a"],
                     read_options={**read, "series": "6"}, **SMALL)
    # what the call does not say is not compared (a run resumed from Python without its names)
    resumed = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "a", epochs=2, seed=3,
                    resume=True, **SMALL)
    assert resumed.resumed_from == 1
    assert json.loads((tmp_path / "a" / "config.json").read_text())["data"] == ["/scans/a"]


def test_resume_refuses_data_that_changed_at_the_recorded_path(tmp_path):
    """The check was by path only: a slice deleted from the folder moved the held-out slice to
    one the run had trained on, and metrics.jsonl mixed two validation sets (new-user pass)."""
    train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "a", epochs=1, seed=3,
          sources=["/scans/a"], **SMALL)
    recorded = json.loads((tmp_path / "a" / "config.json").read_text())["data_digest"]
    assert recorded["slices"] == 5
    with pytest.raises(DenoiseKitError, match=r"the data at /scans/a is not what it was trained on "
                                              r"\(5 slices then, 4 now\)"):
        train([phantom(z=4)], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "a", epochs=2, seed=3,
              resume=True, sources=["/scans/a"], **SMALL)
    edited = phantom()
    edited.array[0, 0, 0] += 1.0
    with pytest.raises(DenoiseKitError, match=r"not what it was trained on \(its voxels changed\)"):
        train([edited], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "a", epochs=2, seed=3,
              resume=True, sources=["/scans/a"], **SMALL)
    assert json.loads((tmp_path / "a" / "config.json").read_text())["data_digest"] == recorded
    resumed = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "a", epochs=2, seed=3,
                    resume=True, sources=["/scans/a"], **SMALL)
    assert resumed.resumed_from == 1


@pytest.mark.parametrize("option, value, message", [
    ("lr", -1.0, "--lr must be positive, not -1"),
    ("batch_size", 0, "--batch-size must be at least 1, not 0"),
    ("patch_size", 3, "--patch-size must be at least 4, not 3"),
    ("realisations", 0, "--realisations must be at least 1, not 0"),
])
def test_a_setting_out_of_range_is_a_usage_error_naming_it(tmp_path, option, value, message):
    from denoisekit.errors import UsageError

    with pytest.raises(UsageError, match=message):
        train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "run", epochs=1,
              **{**SMALL, option: value})
    assert not (tmp_path / "run").exists()


def test_summary_times_only_what_this_call_trained(tmp_path):
    train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "a", epochs=1, seed=3, **SMALL)
    resumed = train([phantom()], TinyModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "a", epochs=2, seed=3,
                    resume=True, **SMALL).summary()
    assert resumed["steps"] == 12 and resumed["steps_trained"] == 6 and resumed["seconds_per_step"] > 0
    done = finished_run(tmp_path / "a", TinyModel(), TapeRule(), WhiteNoise(), epochs=2, seed=3, **SMALL).summary()
    assert done["steps_trained"] == 0 and done["seconds_per_step"] is None


def test_capability_errors_come_before_any_work(tmp_path):
    from denoisekit.plugins import get_backprop, get_model

    with pytest.raises(UsageError, match="needs hand-written gradients"):
        train([phantom()], KerasModel(), get_backprop("manual")(), WhiteNoise(), run_dir=tmp_path / "a", epochs=1)
    with pytest.raises(UsageError, match="cannot be trained"):
        train([phantom()], get_model("nl-means")(), get_backprop("autodiff")(), WhiteNoise(),
              run_dir=tmp_path / "b", epochs=1)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_a_model_without_manual_gradients_trains_with_autodiff(tmp_path):
    from denoisekit.plugins import get_backprop

    res = train([phantom()], KerasModel(), get_backprop("autodiff")(), WhiteNoise(),
                run_dir=tmp_path / "run", epochs=2, seed=0, **SMALL)
    assert res.rows[-1]["val_loss"] < res.rows[0]["val_loss"]


def test_epoch_plan():
    assert epoch_plan(3, None, 5) == [5, 5, 5]
    assert epoch_plan(None, 12, 5) == [5, 5, 2]
    assert epoch_plan(99, 4, 5) == [4]
    with pytest.raises(DenoiseKitError):
        epoch_plan(0, None, 5)


# Small options so the nine combinations stay quick; the structures are the articles'.
BUILTIN_OPTIONS = {
    "vanilla-ae": {"channels": 4, "latent": 64},
    "residual-mul": {},
    "residual-mul-add": {},
}


@pytest.mark.parametrize("backprop", ["autodiff", "manual", "dilated"])
@pytest.mark.parametrize("model", sorted(BUILTIN_OPTIONS))
def test_every_builtin_combination_lowers_the_validation_loss(tmp_path, model, backprop):
    from denoisekit.plugins import get_backprop, get_model, get_noise

    m = get_model(model)(**BUILTIN_OPTIONS[model])
    res = train([phantom()], m, get_backprop(backprop)(), get_noise("gaussian")(sigma=100.0),
                run_dir=tmp_path / "run", epochs=4, seed=0,
                # lr 3e-3: at SMALL's 1e-2 the residual nets (air scaled to 1) overshoot
                **{**SMALL, "steps_per_epoch": 15, "lr": 3e-3})
    first, last = res.rows[0], res.rows[-1]
    assert last["val_loss"] < 0.95 * first["val_loss"], res.rows
    loaded = load_model(res.run_dir)  # best.npz rebuilds the same model
    assert loaded.name == model


class ShortRule(TapeRule):
    """A broken rule: one gradient fewer than the model has variables."""

    name = "short"

    def gradients(self, model, x, target, step):
        loss, grads = super().gradients(model, x, target, step)
        return loss, list(grads)[:-1]


def test_a_rule_returning_too_few_gradients_is_named(tmp_path):
    from denoisekit.errors import PluginError

    with pytest.raises(PluginError, match=r"backprop 'short' returned 0 gradient\(s\) for the 1 variables of model 'tiny'"):
        train([phantom()], TinyModel(), ShortRule(), WhiteNoise(), run_dir=tmp_path / "run", epochs=1, seed=1, **SMALL)


def test_the_cli_shows_the_message_of_an_error_raised_where_tensorflow_traced(tmp_path):
    """TensorFlow re-raises it as 'in user code:' and a traceback: the CLI's line is the message."""
    from denoisekit.cli import _first_line

    with pytest.raises(PluginError) as caught:
        train([phantom()], TinyModel(), ShortRule(), WhiteNoise(), run_dir=tmp_path / "run", epochs=1, seed=1, **SMALL)
    assert _first_line(caught.value) == "backprop 'short' returned 0 gradient(s) for the 1 variables of model 'tiny'"


class NoneRule(TapeRule):
    name = "none-rule"

    def gradients(self, model, x, target, step):
        super().gradients(model, x, target, step)  # forgot to return


class TripleRule(TapeRule):
    name = "triple-rule"

    def gradients(self, model, x, target, step):
        loss, grads = super().gradients(model, x, target, step)
        return loss, grads, step


class SilentLayer(ConvLayer):
    def backward(self, g, h):
        super().backward(g, h)  # forgot to return


class GradlessLayer(ConvLayer):
    def backward(self, g, h):
        dh, _ = super().backward(g, h)
        return dh, []


@pytest.mark.parametrize("rule, layer, message", [
    (NoneRule, ConvLayer, r"^backprop 'none-rule' returned None from gradients\(\); it must return "
                          r"\(loss, \[a gradient for each variable\]\)$"),
    (TripleRule, ConvLayer, r"^backprop 'triple-rule' returned a tuple of 3 from gradients\(\)"),
    ("manual", SilentLayer, r"^layer 0 \('conv'\) of model 'tiny': backward\(\) returned None; "
                            r"it must return \(gradient passed down, \[a gradient for each of its variables\]\)$"),
    ("dilated", GradlessLayer, r"^layer 0 \('conv'\) of model 'tiny': backward\(\) returned 0 gradient\(s\) "
                               r"for its 1 variable\(s\)$"),
])
def test_a_plugin_s_rule_or_layer_returning_the_wrong_thing_is_named(tmp_path, rule, layer, message):
    """A rule returning None was 'TypeError: cannot unpack non-iterable NoneType object',
    naming nobody; a layer's was a TypeError blamed on the built-in manual rule, and a layer
    returning no gradients was 'backprop manual returned 0 gradient(s)' (new-user pass)."""
    from denoisekit.cli import _first_line
    from denoisekit.plugins import get_backprop

    class Model(TinyModel):
        def build(self, patch_size=None):
            self.layers = [layer("conv")]
            self.built = True

    backprop = get_backprop(rule)() if isinstance(rule, str) else rule()
    with pytest.raises(PluginError) as caught:
        train([phantom()], Model(), backprop, WhiteNoise(), run_dir=tmp_path / "run", epochs=1, seed=1, **SMALL)
    assert re.match(message, _first_line(caught.value)), _first_line(caught.value)
    assert not (tmp_path / "run").exists()


class ScalarGradientRule(TapeRule):
    name = "scalar-grad"

    def gradients(self, model, x, target, step):
        loss, grads = super().gradients(model, x, target, step)
        return loss, [tf.reduce_sum(g) for g in grads]  # broadcast by Adam into the whole kernel


def test_a_gradient_of_another_shape_than_its_variable_is_named(tmp_path):
    with pytest.raises(PluginError, match=r"backprop 'scalar-grad' returned a gradient of shape \(\) for variable 0 "
                                          r"of model 'tiny', of shape \(3, 3, 1, 1\)"):
        train([phantom()], TinyModel(), ScalarGradientRule(), WhiteNoise(), run_dir=tmp_path / "run", epochs=1,
              seed=1, **SMALL)


class NoLayers(TinyModel):
    name = "no-layers"
    manual_gradients = False  # with them, its missing layers are refused first (test_plugin.py)

    def build(self, patch_size=None):
        self.layers = []
        self.built = True


class TwoChannels(KerasModel):
    name = "two-channels"

    def call(self, x):
        y = super().call(x)
        return tf.concat([y, y], axis=-1)


class NaNModel(KerasModel):
    name = "nan-model"

    def call(self, x):
        return super().call(x) * np.nan


@pytest.mark.parametrize("model, message", [
    (NoLayers(), "model 'no-layers' has no trainable variables after build"),
    (TwoChannels(), r"model 'two-channels' call\(\) returned shape \(1, 32, 32, 2\) for input \(1, 32, 32, 1\)"),
    (NaNModel(), "model 'nan-model' gives NaN or infinite output before any training"),
], ids=["no variables", "two channels", "NaN"])
def test_a_model_that_cannot_train_is_refused_before_training(tmp_path, model, message):
    with pytest.raises(DenoiseKitError, match=message):
        train([phantom()], model, TapeRule(), WhiteNoise(), run_dir=tmp_path / "run", epochs=1, seed=1, **SMALL)
    assert not (tmp_path / "run").exists()  # refused before, or removed once it failed


class Crops(KerasModel):
    name = "crops"

    def call(self, x):
        return super().call(x)[:, 1:-1, 1:-1, :]


def test_denoise_names_a_model_whose_call_gives_another_shape():
    """Not numpy's broadcast error from restoring the padding."""
    model = Crops()
    model.build()
    with pytest.raises(PluginError, match=r"model 'crops' call\(\) returned shape \(2, 62, 62, 1\) for input \(2, 64, 64, 1\)"):
        model.denoise(phantom().array[:2])


class BuildFails(KerasModel):
    name = "build-fails"

    def build(self, patch_size=None):
        raise ValueError("channels must be even")


def test_an_error_in_build_names_the_model_and_its_module(tmp_path):
    with pytest.raises(PluginError, match=r"model 'build-fails' \([\w.]*test_train\) failed in build\(\): "
                                          "ValueError: channels must be even"):
        train([phantom()], BuildFails(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "run", epochs=1, seed=1, **SMALL)


class ForgetsBuilt(KerasModel):
    name = "forgets-built"

    def build(self, patch_size=None):
        self.w = tf.Variable(tf.random.normal((3, 3, 1, 1), stddev=0.3))  # and no self.built = True


def test_a_model_whose_build_forgets_built_keeps_its_loaded_weights(tmp_path, monkeypatch):
    import denoisekit.plugins

    monkeypatch.setattr(denoisekit.plugins, "get_model", lambda name: ForgetsBuilt)
    res = train([phantom()], ForgetsBuilt(), TapeRule(), WhiteNoise(), run_dir=tmp_path / "run", epochs=1, seed=1,
                **SMALL)
    x = phantom().array[:2]
    loaded = [load_model(res.run_dir / "best.npz").denoise(x) for _ in range(2)]
    np.testing.assert_array_equal(loaded[0], loaded[1])  # not rebuilt with fresh random weights
    np.testing.assert_allclose(loaded[0], res.model.denoise(x), atol=1e-3)


class NaNNoise(WhiteNoise):
    name = "nan-noise"

    def apply(self, hu, params, spacing=(1.0, 1.0, 1.0)):
        out = super().apply(hu, params, spacing)
        out[..., 0, 0] = np.nan
        return out


def test_noise_giving_nan_is_named_before_training(tmp_path):
    from denoisekit.errors import DenoiseKitError
    from denoisekit.noise import add_noise

    with pytest.raises(DenoiseKitError, match="noise 'nan-noise' returned NaN or infinite values"):
        train([phantom()], TinyModel(), TapeRule(), NaNNoise(), run_dir=tmp_path / "run", epochs=1, seed=1, **SMALL)
    assert not (tmp_path / "run").exists()  # the run appears once its noise is made
    with pytest.raises(DenoiseKitError, match="noise 'nan-noise' returned NaN or infinite values"):
        add_noise(phantom(), NaNNoise(), seed=0)


class KerasInitModel(KerasModel):
    """A plugin's model whose start comes from a Keras initialiser, imported when built."""

    name = "keras-init"

    def build(self, patch_size=None):
        import keras

        self.w = tf.Variable(keras.initializers.GlorotUniform()((3, 3, 1, 1)))
        self.built = True


def test_seed_fixes_the_start_of_a_keras_model(tmp_path):
    starts = []
    for run in ("a", "b"):
        res = train([phantom()], KerasInitModel(), TapeRule(), WhiteNoise(), run_dir=tmp_path / run, epochs=1,
                    seed=3, **SMALL)
        starts.append(read_weights(res.run_dir / "epochs" / "epoch-000.npz")[1])
    assert all(np.array_equal(starts[0][k], starts[1][k]) for k in starts[0])
    assert np.abs(next(iter(starts[0].values()))).max() > 0  # the initialiser did run
