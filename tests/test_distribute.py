"""Training on tf.distribute: TF_CONFIG parsing, who reads which volumes, `mirrored` equal
to the plain loop, and two real worker processes on 127.0.0.1 under `multi-worker` reaching
the weights of single-process training with the same global batch and seed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from denoisekit.cli import get_app
from denoisekit.distribute import Distribution, Task, read_tf_config, replica_rows
from denoisekit.errors import DenoiseKitError
from denoisekit.weights import read_weights

runner = CliRunner()
# A three-layer residual-mul on 16x16 patches: seconds per run, manual gradients available.
# Each test names its rate schedule: a resume that extends the budget stretches a cosine one.
TINY = ["--option", "kernels=3,3,1", "--option", "channels=2,2", "--option", "activations=tanh,tanh,sigmoid2",
        "--sigma", "80", "--patch-size", "16", "--batch-size", "4", "--steps-per-epoch", "2",
        "--realisations", "1", "--lr", "0.01", "--seed", "3"]


CONSTANT = ["--lr-decay", "constant"]


def _chest(path: Path, shift: float = 0.0) -> Path:
    yy, xx = np.mgrid[:32, :32] / 32 - 0.5
    hu = np.full((32, 32), -1000.0, np.float32)
    hu[(xx / 0.45) ** 2 + ((yy - shift) / 0.35) ** 2 < 1] = 40.0
    hu[((xx + 0.18) / 0.12) ** 2 + (yy / 0.2) ** 2 < 1] = -850.0
    hu[xx**2 + (yy - 0.22) ** 2 < 0.05**2] = 700.0
    image = sitk.GetImageFromArray(np.repeat(hu[None], 4, axis=0))
    image.SetSpacing((0.7, 0.7, 2.0))
    sitk.WriteImage(image, str(path))
    return path


def _weights(path: Path) -> dict[str, np.ndarray]:
    return read_weights(path)[1]


def _assert_same(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert sorted(wa) == sorted(wb)
    for k in wa:
        np.testing.assert_allclose(wa[k], wb[k], rtol=1e-5, atol=1e-6, err_msg=k)


def _train(*args) -> dict:
    res = runner.invoke(get_app(), ["train", *map(str, args), "--json", "--quiet"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


# ---------------------------------------------------------------- no cluster needed
def test_tf_config_gives_each_task_its_place():
    two = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}
    assert read_tf_config(json.dumps(two)) == Task(workers=2, index=1)
    with_chief = {"cluster": {"chief": ["a:1"], "worker": ["b:1", "c:1"]}, "task": {"type": "worker", "index": 0}}
    task = read_tf_config(json.dumps(with_chief))
    assert task == Task(workers=3, index=1) and not task.is_chief
    with_chief["task"] = {"type": "chief", "index": 0}
    assert read_tf_config(json.dumps(with_chief)).is_chief
    for bad, message in [
        ("", "needs the TF_CONFIG"),
        ("{not json", "not a valid cluster"),
        (json.dumps({**two, "task": {"type": "worker", "index": 2}}), "outside the 2 worker"),
        (json.dumps({**two, "task": {"type": "ps", "index": 0}}), "cannot train"),
    ]:
        with pytest.raises(DenoiseKitError, match=message):
            read_tf_config(bad)


def test_batch_must_split_evenly_across_replicas():
    assert replica_rows(8, 4) == 2
    with pytest.raises(DenoiseKitError, match="multiple of 4"):
        replica_rows(6, 4)


def test_each_worker_reads_only_its_own_volumes_when_there_are_enough(tmp_path):
    from denoisekit.cli.train import _read_data

    paths = [_chest(tmp_path / f"v{i}.nii.gz", shift=0.02 * i) for i in range(3)]
    second = Distribution("multi-worker", None, Task(workers=2, index=1))
    sources, volumes, shard = _read_data(paths, None, None, False, False, True, second)
    assert shard and sources == [str(p.resolve()) for p in paths]  # the run records all data
    assert len(volumes) == 1
    np.testing.assert_array_equal(volumes[0].array, sitk.GetArrayFromImage(sitk.ReadImage(str(paths[1]))))
    first = Distribution("multi-worker", None, Task(workers=2, index=0))
    assert len(_read_data(paths, None, None, False, False, True, first)[1]) == 2
    # fewer volumes than workers: everyone reads everything and splits each batch instead
    _, volumes, shard = _read_data(paths[:1], None, None, False, False, True, first)
    assert not shard and len(volumes) == 1


@pytest.mark.parametrize("backprop", ["manual", "dilated"])
def test_mirrored_strategy_equals_the_plain_loop(tmp_path, backprop):
    chest = _chest(tmp_path / "chest.nii.gz")
    plain = _train(chest, *TINY, "--backprop", backprop, "--steps", "4", "-o", tmp_path / "plain")
    mirrored = _train(chest, *TINY, "--backprop", backprop, "--steps", "4", "-o", tmp_path / "mirrored",
                      "--strategy", "mirrored")
    _assert_same(tmp_path / "plain" / "epochs" / "epoch-002.npz", tmp_path / "mirrored" / "epochs" / "epoch-002.npz")
    assert mirrored["final"] == pytest.approx(plain["final"], rel=1e-4)
    config = json.loads((tmp_path / "mirrored" / "config.json").read_text())
    assert config["distribution"] == {"name": "mirrored", "workers": 1, "replicas": 1, "volume_shard": False}


def test_unknown_strategy_is_a_usage_error(tmp_path):
    res = runner.invoke(get_app(), ["train", "--strategy", "horovod", "-o", str(tmp_path / "r")])
    assert res.exit_code == 2 and "multi-worker" in res.output
    assert not (tmp_path / "r").exists()


def test_multi_worker_without_tf_config_fails_cleanly(tmp_path, monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    res = runner.invoke(get_app(), ["train", "--strategy", "multi-worker", "-o", str(tmp_path / "r"), "--quiet"])
    assert res.exit_code == 1 and "TF_CONFIG" in res.stderr
    assert not (tmp_path / "r").exists()


# ---------------------------------------------------------------- two real workers
def _free_ports(n: int) -> list[int]:
    socks = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def _run_workers(tmp_path: Path, argv_of, timeout: float = 300) -> list[str]:
    """Start two workers on 127.0.0.1 (``argv_of(index)``), wait for both, and stop them
    whatever happens; returns their stdout."""
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs, logs = [], []
    try:
        for i in range(2):
            env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": "",
                   "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
            out, err = tmp_path / f"worker{i}.out", tmp_path / f"worker{i}.err"
            logs.append((out, err))
            with open(out, "w") as fo, open(err, "w") as fe:
                procs.append(subprocess.Popen(argv_of(i), env=env, stdout=fo, stderr=fe, cwd=tmp_path))
        for p in procs:
            p.wait(timeout=timeout)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, (out, err) in zip(procs, logs):
        assert p.returncode == 0, err.read_text()[-4000:]
    return [out.read_text() for out, _ in logs]


CLI = [sys.executable, "-c", "from denoisekit.cli import main; main()"]


def test_multi_worker_cli_equals_single_process_and_resumes(tmp_path):
    """`manual` under multi-worker: 2 workers x 2 rows = the single-process batch of 4."""
    chest = _chest(tmp_path / "chest.nii.gz")
    runs = {0: tmp_path / "multi", 1: tmp_path / "worker1-run"}
    outs = _run_workers(tmp_path, lambda i: [*CLI, "train", str(chest), *TINY, *CONSTANT, "--backprop", "manual",
                                             "--steps", "4", "--strategy", "multi-worker", "-o", str(runs[i]), "--json"])
    summary = json.loads(outs[0])
    assert summary["steps"] == 4 and outs[1] == ""  # the chief reports for everyone
    assert not runs[1].exists()  # ... and alone writes
    config = json.loads((runs[0] / "config.json").read_text())
    assert config["distribution"] == {"name": "multi-worker", "workers": 2, "replicas": 2, "volume_shard": False}

    single = _train(chest, *TINY, *CONSTANT, "--backprop", "manual", "--steps", "4", "-o", tmp_path / "single")
    for name in ("epochs/epoch-001.npz", "epochs/epoch-002.npz", "best.npz"):
        _assert_same(runs[0] / name, tmp_path / "single" / name)
    assert summary["final"] == pytest.approx(single["final"], rel=1e-4)

    # ... and resumes under multi-worker (its recorded model, built to check it, made variables
    # before the strategy was set up: TensorFlow refused, code review)
    import shutil

    shutil.copytree(runs[0], tmp_path / "again")
    outs = _run_workers(tmp_path, lambda i: [*CLI, "train", "--resume", str(tmp_path / "again"), "--steps", "6",
                                             "--strategy", "multi-worker", "--json"])
    assert json.loads(outs[0])["steps"] == 6
    # the multi-worker run resumes (here in one process) exactly like an uninterrupted run
    resumed = _train("--resume", runs[0], "--steps", "6")
    whole = _train(chest, *TINY, *CONSTANT, "--backprop", "manual", "--steps", "6", "-o", tmp_path / "whole")
    assert resumed["resumed_from"] == 2 and resumed["steps"] == whole["steps"] == 6
    _assert_same(runs[0] / "epochs/epoch-003.npz", tmp_path / "whole" / "epochs/epoch-003.npz")


WORKER_SCRIPT = """
import json, sys
import numpy as np
import SimpleITK as sitk
from denoisekit import distribute
from denoisekit.plugins import get_backprop, get_model, get_noise
from denoisekit.train import train
from denoisekit.volume import Volume

dist = distribute.create("multi-worker")  # one cluster, several runs
paths, out = sys.argv[1:-1], sys.argv[-1]

def read(p):
    image = sitk.ReadImage(p)
    return Volume(sitk.GetArrayFromImage(image).astype(np.float32), spacing=image.GetSpacing())

for rule, data in (("autodiff", paths[:1]), ("autodiff-sharded", paths), ("autodiff-weighted", paths[:1])):
    shard = dist.shards_volumes(len(data))
    weighted = rule == "autodiff-weighted"  # mixed noise: per-patch loss weights that differ a lot
    noise = get_noise("mixed")() if weighted else get_noise("gaussian")(sigma=80.0)
    model = get_model("residual-mul")(kernels=(3, 3, 1), channels=(2, 2), activations=("tanh", "tanh", "sigmoid2"))
    train([read(p) for p in (dist.my_share(data) if shard else data)], model, get_backprop("autodiff")(),
          noise, run_dir=f"{out}/{rule}-{dist.task.index}", steps=4,
          steps_per_epoch=2, batch_size=4, patch_size=16, realisations=1, lr=0.01, lr_decay="cosine", grad_norm="unit", seed=3,
          distribution=dist, volume_shard=shard, loss_weight="noise" if weighted else "none")
    np.savez(f"{out}/{rule}-final-{dist.task.index}.npz", **model.get_weights())
"""


def test_multi_worker_autodiff_equals_single_process_and_shards_volumes(tmp_path):
    a, b = _chest(tmp_path / "a.nii.gz"), _chest(tmp_path / "b.nii.gz", shift=0.03)
    _run_workers(tmp_path, lambda i: [sys.executable, "-c", WORKER_SCRIPT, str(a), str(b), str(tmp_path)])
    single = _train(a, *TINY, "--lr-decay", "cosine", "--backprop", "autodiff", "--steps", "4", "-o", tmp_path / "single")
    assert single["steps"] == 4
    _assert_same(tmp_path / "autodiff-0" / "epochs/epoch-002.npz", tmp_path / "single" / "epochs/epoch-002.npz")
    assert not (tmp_path / "autodiff-1").exists() and not (tmp_path / "autodiff-sharded-1").exists()

    # two volumes, two workers: each trained on its own volume, yet the replicas agree
    final = [dict(np.load(tmp_path / f"autodiff-sharded-final-{i}.npz")) for i in range(2)]
    for k in final[0]:
        np.testing.assert_array_equal(final[0][k], final[1][k])
    config = json.loads((tmp_path / "autodiff-sharded-0" / "config.json").read_text())
    assert config["distribution"]["volume_shard"] is True
    trained = _weights(tmp_path / "autodiff-sharded-0" / "epochs/epoch-002.npz")
    assert any(not np.allclose(trained[k], final_k) for k, final_k in
               _weights(tmp_path / "autodiff-sharded-0" / "epochs/epoch-000.npz").items())

    # loss weights normalised over the global batch, as in one process (not per replica)
    tiny = [a for a in TINY if a not in ("--sigma", "80")]
    weighted = _train(a, *tiny, "--noise", "mixed", "--loss-weight", "noise", "--lr-decay", "cosine",
                      "--backprop", "autodiff", "--steps", "4", "-o", tmp_path / "single-weighted")
    assert weighted["steps"] == 4
    _assert_same(tmp_path / "autodiff-weighted-0" / "epochs/epoch-002.npz",
                 tmp_path / "single-weighted" / "epochs/epoch-002.npz")
