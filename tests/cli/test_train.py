"""`denoisekit train`: a run from a NIfTI file, --json, refusing to reuse a run, --resume,
and the errors a user meets (exit 1) or misuse (exit 2)."""

import json

import numpy as np
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from denoisekit.cli import get_app

runner = CliRunner()
FAST = ["--steps-per-epoch", "3", "--batch-size", "4", "--patch-size", "32", "--realisations", "1"]


@pytest.fixture
def chest_nifti(tmp_path):
    """Five 64x64 slices: air, a soft-tissue body, two lungs and a bone, 0.7 mm pixels."""
    yy, xx = np.mgrid[:64, :64] / 64 - 0.5
    hu = np.full((64, 64), -1000.0, np.float32)
    hu[(xx / 0.45) ** 2 + (yy / 0.35) ** 2 < 1] = 40.0
    for cx in (-0.18, 0.18):
        hu[((xx - cx) / 0.12) ** 2 + (yy / 0.2) ** 2 < 1] = -850.0
    hu[xx**2 + (yy - 0.22) ** 2 < 0.05**2] = 700.0
    image = sitk.GetImageFromArray(np.repeat(hu[None], 5, axis=0))
    image.SetSpacing((0.7, 0.7, 2.0))
    path = tmp_path / "chest.nii.gz"
    sitk.WriteImage(image, str(path))
    return path


def _train(*args):
    return runner.invoke(get_app(), ["train", *map(str, args)])


def test_trains_writes_the_run_and_resumes(tmp_path, chest_nifti):
    run = tmp_path / "run"
    res = _train(chest_nifti, "--model", "residual-mul", "--backprop", "manual", "--sigma", "80",
                 "--steps", "6", *FAST, "-o", run, "--json", "--quiet")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["model"] == "residual-mul" and out["backprop"] == "manual" and out["noise"] == "gaussian"
    assert out["steps"] == 6 and out["epochs"] == 2 and out["best_weights"] == str(run / "best.npz")
    config = json.loads((run / "config.json").read_text())
    assert config["noise"] == {"name": "gaussian", "options": {"sigma": 80.0, "relative": 0.0}}
    assert config["data"] == [str(chest_nifti.resolve())]
    assert config["lr_decay"] == "cosine"  # the default for a fixed budget
    assert config["grad_norm"] == "unit"
    assert config["loss_weight"] == "none"
    assert (run / "curves.png").is_file() and (run / "epochs" / "epoch-002.npz").is_file()

    again = _train(chest_nifti, "--sigma", "80", "--steps", "6", *FAST, "-o", run, "--quiet")
    assert again.exit_code == 1 and "already exists" in again.output

    # resume: everything (data, model, rule, noise) comes from the run; only the budget grows
    resumed = _train("--resume", run, "--steps", "9", "--json", "--quiet")
    assert resumed.exit_code == 0, resumed.output
    out = json.loads(resumed.stdout)
    assert out["resumed_from"] == 2 and out["steps"] == 9 and out["epochs"] == 3
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [0, 1, 2, 3]

    # resuming a finished run says so at once: it reads, simulates and trains nothing
    chest_nifti.write_bytes(b"no longer a volume")
    done = _train("--resume", run)
    assert done.exit_code == 0, done.output
    assert "already trained all 3 epochs (9 steps): nothing to do" in done.stderr
    assert "simulating" not in done.stderr
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2, 3]

    clash = _train("--resume", run, "--steps", "12", "--seed", "5", "--quiet")
    assert clash.exit_code == 1 and "different seed (0; now 5)" in " ".join(clash.output.split())


def test_progress_and_summary_go_to_stderr(tmp_path, chest_nifti):
    res = _train(chest_nifti, "--sigma", "80", "--steps", "3", *FAST, "-o", tmp_path / "run")
    assert res.exit_code == 0, res.output
    assert res.stdout == ""
    assert "best (epoch" in res.stderr and "val PSNR" in res.stderr


@pytest.mark.parametrize(
    "args, message, code",
    [
        (["--model", "nl-means"], "cannot be trained", 2),
        (["--model", "no-such-model"], "no model named 'no-such-model'", 1),  # maybe one not installed
        (["--noise", "gaussian", "--dose", "0.5"], "--dose does not apply to noise 'gaussian'", 2),
        (["--model", "residual-mul", "--lr", "1e39", "--sigma", "80"], "the loss became", 1),
        (["--option", "bogus=1"], "has no option 'bogus'", 2),
        (["--sigma", "20", "--noise-option", "sigma=30"], "--sigma and an option sigma=... both set", 2),
        (["--sigma", "20", "--dose", "0.25"], "--sigma picks Gaussian noise and --dose low-dose noise", 2),
    ],
)
def test_user_errors_exit_1_or_2_without_leaving_a_run(tmp_path, chest_nifti, args, message, code):
    """1 for what the data or the installed plugins decide, 2 for a command line that is wrong
    whatever the input (README: usage errors exit 2)."""
    run = tmp_path / "run"
    res = _train(chest_nifti, *args, "--steps", "6", *FAST, "-o", run, "--quiet")
    assert res.exit_code == code, res.output
    assert message in res.stderr
    assert not run.exists()  # a divergence in the first epoch too: nothing was trained


def test_usage_errors_exit_2(tmp_path, chest_nifti):
    both = _train(chest_nifti, "-o", tmp_path / "a", "--resume", tmp_path / "b")
    assert both.exit_code == 2
    budget = _train(chest_nifti, "--epochs", "2", "--steps", "5")
    assert budget.exit_code == 2
    schedule = _train(chest_nifti, "--lr-decay", "linear", "-o", tmp_path / "c")
    assert schedule.exit_code == 2 and "cosine" in schedule.output and not (tmp_path / "c").exists()
    norm = _train(chest_nifti, "--grad-norm", "clip", "-o", tmp_path / "d")
    assert norm.exit_code == 2 and "unit" in norm.output and not (tmp_path / "d").exists()


@pytest.mark.slow
def test_no_data_trains_on_the_embedded_sample_with_any_rule(tmp_path):
    run = tmp_path / "run"
    res = _train("--backprop", "dilated", "--steps", "2", "--steps-per-epoch", "2", "--batch-size", "2",
                 "--realisations", "1", "-o", run, "--json", "--quiet")
    assert res.exit_code == 0, res.output
    config = json.loads((run / "config.json").read_text())
    assert config["data"] == ["sample:chest-phantom"]
    assert config["noise"]["name"] == "mixed" and config["noise"]["options"]["dose_min"] == 0.0625
    assert config["backprop"]["name"] == "dilated"


def test_patch_larger_than_the_slices_is_refused_before_the_run_exists(tmp_path, chest_nifti):
    run = tmp_path / "run"
    res = _train(chest_nifti, "--sigma", "80", "--patch-size", "128", "-o", run, "--quiet")
    assert res.exit_code == 1 and "larger than the 64x64 slices" in res.stderr
    assert not run.exists()


def test_existing_run_directory_is_refused_before_reading_data(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "keep.txt").write_text("mine")
    res = _train(tmp_path / "no-such-scan.nii.gz", "-o", run, "--quiet")
    assert res.exit_code == 1
    assert "already exists" in res.stderr and "no-such-scan" not in res.stderr
    assert (run / "keep.txt").read_text() == "mine"


def test_loss_weight_noise_is_recorded_and_a_bad_value_refused(tmp_path, chest_nifti):
    run = tmp_path / "run"
    res = _train(chest_nifti, "--sigma", "80", "--steps", "2", *FAST, "--loss-weight", "noise", "-o", run, "--quiet")
    assert res.exit_code == 0, res.output
    assert json.loads((run / "config.json").read_text())["loss_weight"] == "noise"
    bad = _train(chest_nifti, "--loss-weight", "l1", "-o", tmp_path / "bad", "--quiet")
    assert bad.exit_code != 0 and "none, noise" in bad.output and not (tmp_path / "bad").exists()


def test_a_run_trained_with_noise_per_volume_is_not_resumed_with_one_noise(tmp_path, chest_nifti):
    from denoisekit.io import read_volume
    from denoisekit.plugins import get_backprop, get_model, get_noise
    from denoisekit.train import train

    gaussian = get_noise("gaussian")
    volume = read_volume(chest_nifti)
    run = tmp_path / "run"
    train([volume, volume], get_model("residual-mul")(), get_backprop("autodiff")(),
          [gaussian(sigma=20.0), gaussian(sigma=60.0)], run_dir=run, steps=2, steps_per_epoch=2,
          batch_size=2, patch_size=32, realisations=1)
    res = _train("--resume", run, "--steps", "4", "--quiet")
    assert res.exit_code == 1 and "noise kind per volume" in res.stderr


def test_patch_size_zero_is_refused_not_replaced_by_the_default(tmp_path, chest_nifti):
    run = tmp_path / "run"
    res = _train(chest_nifti, "--sigma", "80", "--steps", "2", "--patch-size", "0", "-o", run, "--quiet")
    assert res.exit_code == 2 and "--patch-size must be at least 4, not 0" in res.stderr, res.output
    assert not run.exists()


@pytest.mark.parametrize("args, message", [
    (["--lr", "-1"], "--lr must be positive, not -1"),
    (["--batch-size", "0"], "--batch-size must be at least 1, not 0"),
    (["--realisations", "0"], "--realisations must be at least 1, not 0"),
    (["--steps", "0"], "--steps must be at least 1, not 0"),
    (["--steps-per-epoch", "0"], "--steps-per-epoch must be at least 1, not 0"),
])
def test_an_option_out_of_range_is_named_with_its_value_before_reading_data(tmp_path, args, message):
    res = _train(tmp_path / "no-such-scan.nii.gz", *args, "-o", tmp_path / "run", "--quiet")
    assert res.exit_code == 2, res.output
    assert message in res.stderr and "no-such-scan" not in res.stderr
    assert not (tmp_path / "run").exists()


def test_resuming_a_missing_run_says_it_does_not_exist(tmp_path):
    res = _train("--resume", tmp_path / "nowhere", "--quiet")
    assert res.exit_code == 1
    assert f"{tmp_path / 'nowhere'} does not exist" in res.stderr and "config.json" not in res.stderr


def _second_chest(chest_nifti):
    """Another volume beside the chest: a slice fewer, brighter."""
    image = sitk.ReadImage(str(chest_nifti))
    other = chest_nifti.with_name("other.nii.gz")
    sitk.WriteImage(sitk.GetImageFromArray(sitk.GetArrayFromImage(image)[:4] + 50.0), str(other))
    return other


def test_resume_trains_on_the_runs_own_data_and_refuses_other_data(tmp_path, chest_nifti):
    run = tmp_path / "run"
    first = _train(chest_nifti, "--sigma", "80", "--steps", "3", *FAST, "-o", run, "--quiet")
    assert first.exit_code == 0, first.output
    other = _second_chest(chest_nifti)
    before = (run / "config.json").read_text()

    refused = _train(other, "--resume", run, "--steps", "6", "--quiet")
    assert refused.exit_code == 1, refused.output
    assert f"cannot resume {run}: it was trained on {chest_nifti.resolve()}, not {other.resolve()}" in refused.stderr
    assert (run / "config.json").read_text() == before and not (run / "epochs" / "epoch-002.npz").exists()
    done = _train(other, "--resume", run, "--steps", "3", "--quiet")  # finished or not: other data is refused
    assert done.exit_code == 1 and "it was trained on" in done.stderr

    same = _train(chest_nifti, "--resume", run, "--steps", "6", "--json", "--quiet")  # the same data, given again
    assert same.exit_code == 0, same.output
    assert json.loads(same.stdout)["resumed_from"] == 1

    moved = chest_nifti.rename(tmp_path / "moved.nii.gz")
    gone = _train("--resume", run, "--steps", "9", "--quiet")
    assert gone.exit_code == 1
    assert f"{chest_nifti.resolve()}, the data this run was trained on, is not there any more" in gone.stderr
    assert _train(moved, "--resume", run, "--steps", "9", "--quiet").exit_code == 1  # a moved folder is other data


def test_resume_reads_the_series_and_flags_the_run_was_read_with(tmp_path, make_series):
    shared = tmp_path / "mixed"
    make_series(shared, series_number=2, shape=(4, 32, 32))
    make_series(shared, series_number=5, shape=(5, 32, 32), seed=2)
    run = tmp_path / "run"
    res = _train(shared, "--series", "5", "--allow-irregular", "--sigma", "80", "--steps", "3", *FAST, "-o", run,
                 "--quiet")
    assert res.exit_code == 0, res.output
    config = json.loads((run / "config.json").read_text())
    assert config["read"] == {"series": "5", "allow_irregular": True, "allow_tilt": False}

    plain = _train("--resume", run, "--steps", "6", "--json", "--quiet")  # no --series needed again
    assert plain.exit_code == 0, plain.output
    again = _train(shared, "--resume", run, "--series", "5", "--allow-irregular", "--steps", "9", "--quiet")
    assert again.exit_code == 0, again.output
    other = _train("--resume", run, "--series", "2", "--steps", "12", "--quiet")
    assert other.exit_code == 1
    assert f"cannot resume {run}: its data was read with --series 5, not --series 2" in other.stderr
    tilt = _train("--resume", run, "--allow-tilt", "--steps", "12", "--quiet")
    assert tilt.exit_code == 1 and "with no --allow-tilt, not --allow-tilt" in tilt.stderr
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [0, 1, 2, 3]


def test_a_run_from_before_read_options_were_recorded_resumes_with_a_note(tmp_path, chest_nifti):
    run = tmp_path / "run"
    assert _train(chest_nifti, "--sigma", "80", "--steps", "3", *FAST, "-o", run, "--quiet").exit_code == 0
    config = json.loads((run / "config.json").read_text())
    del config["read"]
    (run / "config.json").write_text(json.dumps(config))
    res = _train("--resume", run, "--steps", "6")
    assert res.exit_code == 0, res.output
    assert "does not record how its data was read" in res.stderr
    assert json.loads((run / "config.json").read_text())["read"] == {  # learnt: the next resume is plain
        "series": None, "allow_irregular": False, "allow_tilt": False}


def test_json_of_a_finished_run_reports_what_this_call_did(tmp_path, chest_nifti):
    run = tmp_path / "run"
    first = _train(chest_nifti, "--sigma", "80", "--steps", "6", *FAST, "-o", run, "--json", "--quiet")
    assert first.exit_code == 0, first.output
    out = json.loads(first.stdout)
    assert out["steps_trained"] == 6 and out["seconds_per_step"] > 0
    done = json.loads(_train("--resume", run, "--json", "--quiet").stdout)
    assert done["already_complete"] and done["steps"] == 6
    assert done["steps_trained"] == 0 and done["seconds_per_step"] is None  # nothing trained in its seconds
    more = json.loads(_train("--resume", run, "--steps", "9", "--json", "--quiet").stdout)
    assert more["steps_trained"] == 3 and more["seconds_per_step"] > 0


def test_the_train_bar_fits_80_columns_without_cutting_its_numbers():
    import io

    from rich.console import Console

    from denoisekit.cli.train import _RichProgress

    out = io.StringIO()
    bar = _RichProgress(Console(file=out, width=80, force_terminal=False))
    bar.start(10000, 5000)
    bar.epoch({"step": 5000, "loss": 0.00123, "val_psnr": 35.12})
    bar.stop()  # off a terminal the bar is drawn once, at stop
    line = out.getvalue().strip().splitlines()[-1]
    assert "…" not in line and "5000/10000" in line and "val PSNR 35.12 dB" in line, line


def test_weights_worse_than_the_noisy_input_are_said_so(tmp_path):
    """The table showed it (best 28.4 dB, noisy input 39.4) but nothing said the weights make
    slices worse than leaving them alone (new-user pass)."""
    import SimpleITK as sitk

    from denoisekit.cli.train import _worse_than_noisy

    yy, xx = np.mgrid[:64, :64]
    hu = np.where(((yy - 32) / 26) ** 2 + ((xx - 32) / 20) ** 2 < 1, 40.0, -1000.0).astype(np.float32)
    sitk.WriteImage(sitk.GetImageFromArray(np.repeat(hu[None], 4, axis=0)), str(tmp_path / "flat.nii.gz"))
    res = _train(tmp_path / "flat.nii.gz", "--sigma", "10", "--steps", "3", *FAST, "-o", tmp_path / "run", "--json")
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["best"]["psnr"] < summary["noisy"]["psnr"]  # three steps at light noise: not yet a denoiser
    [note] = summary["notes"]
    assert note.startswith(f"the best epoch ({summary['best']['epoch']}) scores") and "below the noisy input" in note
    shown = _train("--resume", tmp_path / "run")  # the table's reader hears it too
    assert "note: the best epoch" in " ".join(shown.stderr.split())
    better = {"best": {"epoch": 2, "psnr": 40.0}, "noisy": {"psnr": 39.9}}
    assert _worse_than_noisy(better) == []


def test_a_run_whose_record_holds_a_bad_value_is_bad_input_naming_the_file(tmp_path, chest_nifti):
    """Resuming checked the recorded lr as if given: '--lr must be positive, not 0', exit 2,
    though no --lr was given (code review)."""
    run = tmp_path / "run"
    assert _train(chest_nifti, "--sigma", "80", "--steps", "3", *FAST, "-o", run, "--quiet").exit_code == 0
    config = json.loads((run / "config.json").read_text())
    for key, value, said in (("lr", 0, "--lr must be positive, not 0"),
                             ("noise", {**config["noise"], "options": {**config["noise"]["options"], "sigma": -80.0}},
                              "sigma must be >= 0"),
                             # models check options as they build: this exited 2, naming no file
                             ("model", {**config["model"], "options": {**config["model"]["options"], "channels": [8]}},
                              "channels lists")):
        (run / "config.json").write_text(json.dumps({**config, key: value}))
        res = _train("--resume", run, "--steps", "6")
        assert res.exit_code == 1 and res.stderr.startswith(f"Error: {run / 'config.json'} records a value no run can use"), res.output
        assert said in res.stderr


def test_a_model_whose_layers_lack_backward_is_refused_before_any_work(fake_manual, tmp_path):
    """Not an AttributeError naming no model after the noise simulation, with a run directory left."""
    run = tmp_path / "run"
    result = runner.invoke(get_app(), ["train", "-m", "acme-fake-manual", "-b", "manual", "--steps", "1", "-o", str(run)])
    assert result.exit_code == 1 and result.stderr == fake_manual and "simulating" not in result.stderr
    assert not run.exists()


def test_a_wrong_call_is_said_before_an_existing_run_directory(tmp_path):
    """It said 'run directory ... already exists' (exit 1), and after a new -o the usage error."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "notes.txt").write_text("x")
    res = _train("-o", tmp_path / "run", "--steps-per-epoch", "0")
    assert res.exit_code == 2 and "--steps-per-epoch must be at least 1" in res.stderr
    res = _train("-o", tmp_path / "run", "--steps", "1")
    assert res.exit_code == 1 and "already exists" in res.stderr
