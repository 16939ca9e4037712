"""Run directory layout: refuses to reuse a run, epochs count only when complete, metrics
survive a truncated last line."""

import json

import numpy as np
import pytest

from denoisekit.errors import DenoiseKitError
from denoisekit.rundir import RunDir, default_run_dir


def test_default_run_dir_is_new_and_named(tmp_path):
    a = default_run_dir("residual-mul", "manual", root=tmp_path)
    assert a.parent == tmp_path and a.name.endswith("-residual-mul-manual")
    a.mkdir()
    b = default_run_dir("residual-mul", "manual", root=tmp_path)
    assert b != a and not b.exists()


def test_create_refuses_an_existing_run(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create({"seed": 1})
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == {"seed": 1}
    with pytest.raises(DenoiseKitError, match="--resume"):
        RunDir(tmp_path / "run").create({"seed": 2})
    assert run.read_config() == {"seed": 1}
    with pytest.raises(DenoiseKitError, match="not a training run"):
        RunDir(tmp_path).read_config()
    with pytest.raises(DenoiseKitError, match="nowhere does not exist"):
        RunDir(tmp_path / "nowhere").read_config()
    # what is no run is not offered to --resume, which would refuse it (new-user pass)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DenoiseKitError, match=r"afile is a file, not a run directory: choose another -o$"):
        RunDir(tmp_path / "afile").check_new()
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(DenoiseKitError, match=r"mine already exists and holds no training run \(no config.json\)"):
        RunDir(tmp_path / "mine").check_new()
    (tmp_path / "empty").mkdir()
    RunDir(tmp_path / "empty").check_new()


def test_discard_removes_an_untrained_run_and_nothing_else(tmp_path):
    run = RunDir(tmp_path / "runs" / "new")
    with pytest.raises(RuntimeError):
        with run.discarded_unless_trained():
            run.create({})
            np.savez(run.epoch_optimizer(0), t=np.int64(1))
            np.savez(run.epoch_weights(0), t=np.int64(1))
            run.write_metrics([{"epoch": 0}])
            raise RuntimeError("failed in epoch 1")
    assert not (tmp_path / "runs").exists()  # the directories it made go too

    kept = RunDir(tmp_path / "kept")
    with pytest.raises(RuntimeError):
        with kept.discarded_unless_trained():
            kept.create({})
            (kept.path / "notes.txt").write_text("mine")  # someone's file: never lost
            raise RuntimeError
    assert [p.name for p in kept.path.iterdir()] == ["notes.txt"]

    trained = RunDir(tmp_path / "trained")
    with pytest.raises(KeyboardInterrupt):
        with trained.discarded_unless_trained():
            trained.create({})
            for epoch in (0, 1):
                np.savez(trained.epoch_optimizer(epoch), t=np.int64(1))
                np.savez(trained.epoch_weights(epoch), t=np.int64(1))
            raise KeyboardInterrupt
    assert trained.complete_epochs() == [0, 1]  # resumable


class _Opt:
    def __init__(self):
        self.saved = []

    def save(self, path):
        np.savez(path, t=np.int64(1))
        self.saved.append(path)


def test_an_epoch_without_optimizer_state_is_incomplete(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create({})
    (run.path / "epochs" / "epoch-001.npz").write_bytes(b"")
    assert run.complete_epochs() == []
    np.savez(run.epoch_optimizer(1), t=np.int64(1))
    np.savez(run.epoch_optimizer(2), t=np.int64(1))
    (run.path / "epochs" / "epoch-002.npz").write_bytes(b"")
    assert run.complete_epochs() == [1, 2]
    run.drop_epochs_after(1)
    assert run.complete_epochs() == [1]
    assert not run.epoch_optimizer(2).exists()


def test_metrics_round_trip_and_ignore_a_cut_line(tmp_path):
    run = RunDir(tmp_path / "run")
    run.create({})
    rows = [{"epoch": 0, "val_psnr": 30.0, "loss": None}, {"epoch": 1, "val_psnr": 31.5, "loss": 0.01}]
    run.write_metrics(rows)
    assert run.read_metrics() == rows
    with open(run.path / "metrics.jsonl", "a") as fh:
        fh.write('{"epoch": 2, "val_ps')
    assert run.read_metrics() == rows
    png = run.write_curves([{**r, "val_loss": 0.1, "noisy_psnr": 25.0} for r in rows])
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert not [p for p in run.path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_curves_leave_the_callers_matplotlib_backend_alone(tmp_path):
    # train() is a library call too: switching a notebook's backend to Agg would break its plots
    import matplotlib

    before = matplotlib.get_backend()
    matplotlib.use("svg")
    try:
        run = RunDir(tmp_path / "run")
        run.create({})
        png = run.write_curves([{"epoch": 0, "loss": None, "val_loss": 0.2, "val_psnr": 30.0}])
        assert png.read_bytes()[:4] == b"\x89PNG"
        assert matplotlib.get_backend() == "svg"
    finally:
        matplotlib.use(before)
