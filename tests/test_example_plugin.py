"""The example third-party plugin, installed by pip as a user would, works end to end."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "denoisekit-example-plugin"


@pytest.fixture(scope="module")
def example_env(tmp_path_factory):
    target = tmp_path_factory.mktemp("example-site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLE)],
        check=True, capture_output=True,
    )
    env = dict(os.environ, PYTHONPATH=str(target), TF_CPP_MIN_LOG_LEVEL="2")
    for var in ("DENOISEKIT_LOAD_PLUGINS", "DENOISEKIT_BLOCK_PLUGINS"):
        env.pop(var, None)
    return env


def run(env, *args):
    return subprocess.run(["denoisekit", *args], capture_output=True, text=True, env=env)


def test_example_is_listed_once_installed(example_env):
    proc = run(example_env, "models", "--json")
    assert proc.returncode == 0, proc.stderr
    entry = json.loads(proc.stdout)["example-tiny-cnn"]
    assert entry["plugin"] == "denoisekit_example"
    assert entry["trainable"] is True and entry["manual_gradients"] is False
    plugins = {p["name"]: p for p in json.loads(run(example_env, "plugins", "--json").stdout)}
    assert plugins["denoisekit_example"]["hooks"] == ["register_commands", "register_models"]
    assert plugins["denoisekit_example"]["version"] == "0.1.0"


def test_example_command_runs(example_env):
    proc = run(example_env, "example-hello", "--name", "ct")
    assert proc.returncode == 0 and proc.stdout == "hello ct, from denoisekit-example\n"


def test_allowlist_can_exclude_the_example(example_env):
    env = dict(example_env, DENOISEKIT_LOAD_PLUGINS="")
    assert "example-tiny-cnn" not in json.loads(run(env, "models", "--json").stdout)


def test_example_refuses_manual_backprop(example_env, tmp_path):
    proc = run(example_env, "train", "--model", "example-tiny-cnn", "--backprop", "manual",
               "--steps", "1", "-o", str(tmp_path / "run"))
    assert proc.returncode == 2  # a model and rule that cannot go together: a usage error
    assert "needs hand-written gradients" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_example_trains_and_infers(example_env, tmp_path):
    import SimpleITK as sitk

    yy, xx = np.mgrid[-1:1:48j, -1:1:48j]
    body = np.where(xx**2 / 0.8 + yy**2 / 0.5 < 1, 40.0, -1000.0)
    body[(xx - 0.3) ** 2 + yy**2 < 0.02] = 700.0
    vol = np.stack([body] * 4).astype(np.float32)
    img = sitk.GetImageFromArray(vol)
    img.SetSpacing((0.8, 0.8, 2.0))
    scan = tmp_path / "scan.nii.gz"
    sitk.WriteImage(img, str(scan))

    run_dir = tmp_path / "run"
    proc = run(example_env, "train", str(scan), "--model", "example-tiny-cnn", "--backprop", "autodiff",
               "--noise", "gaussian", "--sigma", "30", "--steps", "6", "--batch-size", "2",
               "--patch-size", "32", "--quiet", "-o", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert (run_dir / "best.npz").is_file()

    out = tmp_path / "denoised.nii.gz"
    proc = run(example_env, "infer", str(scan), "--model", "example-tiny-cnn", "--weights", str(run_dir),
               "-o", str(out), "--quiet")
    assert proc.returncode == 0, proc.stderr
    result = sitk.ReadImage(str(out))
    assert result.GetSize() == img.GetSize() and result.GetSpacing() == pytest.approx(img.GetSpacing())
