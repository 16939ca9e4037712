"""`denoisekit demo`: the README's main job writes every output and a table of scores."""

import json
import os

import SimpleITK as sitk
from typer.testing import CliRunner

from denoisekit.cli import get_app

runner = CliRunner()


def test_demo_writes_volumes_series_figure_and_scores(tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(get_app(), ["demo", "-o", str(out), "--model", "tv", "--baseline", "nl-means",
                                       "--slices", "2", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["window"] == [-1000.0, 1000.0] and report["slices"] == 2
    assert report["trained_on_sample"] == []  # classical filters learn nothing from it
    for name in ("tv", "nl-means"):
        scores = report["scores"][name]
        # the denoised volume is closer to the clean phantom than the noisy one
        assert scores["gain"]["psnr"] > 0 and scores["rmse"] < scores["noisy"]["rmse"]
    names = {p.name for p in out.iterdir()}
    assert sorted(report["files"]) == sorted(str(out / n) for n in names)  # the sidecar counts too
    assert {"clean.nii.gz", "noisy.nii.gz", "noisy.json", "denoised-tv.nii.gz", "denoised-nl-means.nii.gz",
            "denoised-tv", "figure.png", "scores.json"} <= names
    clean = sitk.ReadImage(str(out / "clean.nii.gz"))
    series = sitk.ImageSeriesReader()
    series.SetFileNames(series.GetGDCMSeriesFileNames(str(out / "denoised-tv")))
    dicom = series.Execute()
    assert dicom.GetSize() == clean.GetSize()
    assert max(abs(a - b) for a, b in zip(dicom.GetOrigin(), clean.GetOrigin())) < 1e-3
    assert json.loads((out / "noisy.json").read_text())["kind"] == "lowdose"
    # each output says what it is: the denoised NIfTI was labelled with the noise alone (its
    # history cut at 79 bytes), the series' derivation left the simulated noise out
    import pydicom

    from denoisekit.io import read_volume

    # and through NIfTI's 79 bytes, that its input was a simulated low dose (it said the denoising only)
    denoised = read_volume(out / "denoised-tv.nii.gz").history[0]
    assert denoised.startswith("noise lowdose seed=0 dose=0.25; denoised tv strength auto"), denoised
    assert read_volume(out / "noisy.nii.gz").history[0].startswith("noise lowdose")
    ds = pydicom.dcmread(sorted((out / "denoised-tv").iterdir())[0])
    assert ds.SeriesDescription.startswith("denoised tv strength auto")
    assert ds.DerivationDescription.startswith("noise lowdose seed=") and "; denoised tv strength auto" in ds.DerivationDescription
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no partial folder left
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o777 & ~umask  # as any folder the user makes, not private


def test_demo_refuses_an_existing_output(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    result = runner.invoke(get_app(), ["demo", "-o", str(out), "--model", "tv", "--slices", "1"])
    assert result.exit_code == 1 and "--force" in result.stderr


def test_demo_force_never_replaces_someone_elses_folder(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = runner.invoke(get_app(), ["demo", "-o", str(out), "--model", "tv", "--slices", "1", "--force"])
    assert result.exit_code == 1 and "holds other files (keep.txt)" in result.stderr
    assert (out / "keep.txt").read_text() == "mine"


def test_demo_force_replaces_an_earlier_demo_whole(tmp_path):
    out = tmp_path / "demo"
    args = ["demo", "-o", str(out), "--model", "tv", "--slices", "1", "--quiet"]
    assert runner.invoke(get_app(), [*args, "--baseline", "nl-means"]).exit_code == 0
    assert (out / "denoised-nl-means.nii.gz").is_file()
    result = runner.invoke(get_app(), [*args, "--baseline", "tv", "--force"])
    assert result.exit_code == 0, result.output
    assert not (out / "denoised-nl-means.nii.gz").exists() and (out / "scores.json").is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["demo"]  # no partial or backup folder left


def test_demo_says_when_the_default_model_was_trained_on_the_sample(tmp_path):
    # the shipped weights' record lists the chest phantom among their training data
    from denoisekit.pretrained import training_data

    assert any(d.startswith("sample:chest-phantom") for d in training_data("residual-mul"))
    result = runner.invoke(get_app(), ["demo", "-o", str(tmp_path / "demo"), "--slices", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["trained_on_sample"] == ["residual-mul"]  # not the baseline, tv
    result = runner.invoke(get_app(), ["demo", "-o", str(tmp_path / "demo2"), "--slices", "1", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "trained on this phantom" in " ".join(result.stdout.split())  # beside the table, even --quiet


def test_demo_says_a_wrong_call_before_an_existing_output(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    result = runner.invoke(get_app(), ["demo", "-o", str(out), "--slices", "0"])
    assert result.exit_code == 2 and "--slices must be at least 1" in result.stderr


def test_demo_refuses_a_file_name_and_an_unwritable_place_before_any_work(tmp_path, monkeypatch):
    """`-o demo.nii.gz` made a folder of that name; `-o /proc/demo` ran the whole demo, then
    failed naming its temporary folder (new-user pass)."""
    import denoisekit.demo

    def never(**_):
        raise AssertionError("the demo ran")

    monkeypatch.setattr(denoisekit.demo, "run_demo", never)
    result = runner.invoke(get_app(), ["demo", "-o", str(tmp_path / "demo.nii.gz")])
    assert result.exit_code == 2 and "names a file: the demo writes a folder" in result.stderr
    (tmp_path / "notes.txt").write_text("x")
    result = runner.invoke(get_app(), ["demo", "-o", str(tmp_path / "notes.txt" / "demo")])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: cannot write {tmp_path}/notes.txt/demo: {tmp_path}/notes.txt is a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
