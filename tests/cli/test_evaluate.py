"""``denoisekit evaluate`` on files: numbers checked against NumPy/scikit-image directly."""

import json

import numpy as np
import pytest
from skimage.metrics import structural_similarity
from typer.testing import CliRunner

from denoisekit.cli import get_app
from denoisekit.io import write_volume
from denoisekit.volume import Volume

runner = CliRunner()


def _run(*args):
    return runner.invoke(get_app(), [str(a) for a in args])


@pytest.fixture
def volumes(tmp_path):
    rng = np.random.default_rng(3)
    y, x = np.mgrid[:32, :32]
    clean = np.where((y - 16) ** 2 + (x - 16) ** 2 < 12**2, 40.0, -1000.0)
    clean = np.repeat(clean[None], 2, axis=0).astype(np.float32)
    clean[:, 14:18, 14:18] = 1800.0  # above the default window
    noisy = clean + rng.normal(0, 60, clean.shape).astype(np.float32)
    denoised = clean + rng.normal(0, 15, clean.shape).astype(np.float32)
    paths = {}
    for name, array in (("clean", clean), ("noisy", noisy), ("denoised", denoised)):
        paths[name] = write_volume(Volume(array, spacing=(0.7, 0.7, 2.0)), tmp_path / f"{name}.nii.gz")
    return paths, clean, noisy, denoised


def test_json_numbers(volumes):
    paths, clean, noisy, denoised = volumes
    result = _run("evaluate", paths["denoised"], paths["clean"], "--noisy", paths["noisy"],
                  "--window", "-160,240", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    lo, hi = -160.0, 240.0
    c, n, d = (np.clip(a.astype(np.float64), lo, hi) for a in (clean, noisy, denoised))
    psnr = lambda a: 10 * np.log10((hi - lo) ** 2 / np.mean((c - a) ** 2))  # noqa: E731
    assert data["window"] == [lo, hi]
    assert data["overall"]["psnr"] == pytest.approx(psnr(d), rel=1e-5)
    assert data["overall"]["rmse"] == pytest.approx(np.sqrt(np.mean((c - d) ** 2)), rel=1e-5)
    assert data["overall"]["gain"]["psnr"] == pytest.approx(psnr(d) - psnr(n), rel=1e-4)
    ssims = [structural_similarity(a, b, data_range=hi - lo) for a, b in zip(c, d)]
    assert [s["ssim"] for s in data["per_slice"]] == pytest.approx(ssims, rel=1e-5)
    assert data["overall"]["ssim"] == pytest.approx(np.mean(ssims), rel=1e-5)


def test_table_prints_the_window_with_every_number(volumes):
    paths, *_ = volumes
    result = _run("evaluate", paths["denoised"], paths["clean"], "--noisy", paths["noisy"], "--per-slice")
    assert result.exit_code == 0, result.output
    for header in ("PSNR dB [-1000,1000]", "SSIM [-1000,1000]", "RMSE HU [-1000,1000]"):
        assert header in result.stdout
    assert "gain" in result.stdout and "+ is better" in result.stdout
    assert "per slice, all in window [-1000,1000] HU" in result.stdout


def test_table_title_shows_paths_with_brackets_as_they_are(volumes, tmp_path):
    paths, *_ = volumes
    named = tmp_path / "[ct] denoised.nii.gz"
    named.write_bytes(paths["denoised"].read_bytes())
    result = _run("evaluate", named, paths["clean"])
    assert result.exit_code == 0, result.output
    assert "[ct]" in result.stdout  # rich markup would swallow it


def test_figure_written_and_not_overwritten(volumes, tmp_path):
    paths, *_ = volumes
    fig = tmp_path / "fig.png"
    assert _run("evaluate", paths["denoised"], paths["clean"], "--noisy", paths["noisy"], "--figure", fig).exit_code == 0
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    again = _run("evaluate", paths["denoised"], paths["clean"], "--figure", fig)
    assert again.exit_code == 1 and "--force" in again.stderr


def test_mismatched_volumes_are_refused(volumes, tmp_path):
    paths, clean, *_ = volumes
    other = write_volume(Volume(clean[:1]), tmp_path / "one.nii.gz")
    result = _run("evaluate", other, paths["clean"])
    assert result.exit_code == 1 and "shape" in result.stderr
    moved = write_volume(Volume(clean, spacing=(0.7, 0.7, 5.0)), tmp_path / "moved.nii.gz")
    result = _run("evaluate", moved, paths["clean"])
    assert result.exit_code == 1 and "spacing" in result.stderr


def test_bad_window_is_refused(volumes):
    paths, *_ = volumes
    result = _run("evaluate", paths["denoised"], paths["clean"], "--window", "240,-160")
    assert result.exit_code == 1 and "window" in result.stderr


def test_identical_volumes_give_null_psnr_in_json(volumes):
    paths, *_ = volumes
    result = _run("evaluate", paths["clean"], paths["clean"], "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # strict JSON: no Infinity
    assert data["overall"]["psnr"] is None and data["overall"]["rmse"] == 0.0
