"""``denoisekit evaluate`` on files: numbers checked against NumPy/scikit-image directly."""

import json
import re

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
                  "--window", "-160,240", "--json", "--per-slice")
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
    result = _run("evaluate", paths["denoised"], paths["clean"], "--noisy", paths["noisy"], "--figure", fig)
    assert result.exit_code == 0 and fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a status line, as every command's: stdout holds the table alone (it said 'figure:' there)
    assert f"figure: {fig}" in " ".join(result.stderr.split()) and "figure:" not in result.stdout
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
    assert result.exit_code == 2 and "window" in result.stderr


def test_identical_volumes_give_null_psnr_in_json(volumes):
    paths, *_ = volumes
    result = _run("evaluate", paths["clean"], paths["clean"], "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # strict JSON: no Infinity
    assert data["overall"]["psnr"] is None and data["overall"]["rmse"] == 0.0


def test_per_slice_rows_only_when_asked_in_json_and_table_alike(volumes):
    paths, *_ = volumes
    args = ("evaluate", paths["denoised"], paths["clean"], "--noisy", paths["noisy"])
    data = json.loads(_run(*args, "--json").stdout)
    assert "per_slice" not in data and data["overall"]["gain"]  # the summary, not a flood of rows
    assert "per_slice" not in json.loads(_run(*args, "--json", "--no-per-slice").stdout)
    rows = json.loads(_run(*args, "--json", "--per-slice").stdout)["per_slice"]
    assert [r["slice"] for r in rows] == [0, 1] and "gain" in rows[0]
    assert "per slice" not in _run(*args).stdout
    assert "per slice" not in _run(*args, "--no-per-slice").stdout
    assert "per slice" in _run(*args, "--per-slice").stdout


def _png_size(path):
    import matplotlib.image

    return matplotlib.image.imread(path).shape[:2]


def test_figure_windows_choose_the_rows(volumes, tmp_path):
    paths, *_ = volumes
    base = ("evaluate", paths["denoised"], paths["clean"], "--noisy", paths["noisy"], "--figure")
    assert _run(*base, tmp_path / "default.png").exit_code == 0
    result = _run(*base, tmp_path / "brain.png", "--figure-window", "brain")
    assert result.exit_code == 0, result.output
    two = _run(*base, tmp_path / "two.png", "--figure-window", "brain", "--figure-window", "-100,100")
    assert two.exit_code == 0, two.output
    default, brain = _png_size(tmp_path / "default.png"), _png_size(tmp_path / "brain.png")
    assert brain[0] < default[0]  # one row instead of lung + soft tissue
    assert brain[1] == default[1] * 5 // 4  # both differences side by side: a fifth column
    assert _png_size(tmp_path / "two.png") == default


def test_figure_windows_are_passed_to_the_figure(volumes, tmp_path, monkeypatch):
    import denoisekit.evaluate

    seen = {}
    monkeypatch.setattr(denoisekit.evaluate, "figure", lambda *a, **k: seen.update(k))
    paths, *_ = volumes
    result = _run("evaluate", paths["denoised"], paths["clean"], "--figure", tmp_path / "f.png",
                  "--figure-window", "mediastinum", "--figure-window", "-50,150")
    assert result.exit_code == 0, result.output
    assert seen["windows"] == [("mediastinum", (-160.0, 240.0)), ("", (-50.0, 150.0))]
    # the slice shown is chosen as the scores are read: in their window and mask
    result = _run("evaluate", paths["denoised"], paths["clean"], "--figure", tmp_path / "f.png",
                  "--window", "-500,500", "--mask", "body", "--json")
    assert result.exit_code == 0, result.output
    from denoisekit.evaluate import body_mask
    from denoisekit.io import read_volume

    assert seen["window"] == (-500.0, 500.0)
    assert np.array_equal(seen["mask"], body_mask(read_volume(paths["clean"])))
    assert json.loads(result.stdout)["mask"]["what"] == "body"


@pytest.mark.parametrize(
    ("window", "with_figure", "message"),
    [
        ("liver", True, "unknown figure window 'liver': use one of lung, soft-tissue, mediastinum, brain, bone"),
        ("80,0", True, "figure window '80,0' must have finite HI above LO"),
        ("brain", False, "--figure-window sets the figure's display windows: it needs --figure"),
    ],
)
def test_bad_figure_windows_are_refused_before_reading(tmp_path, window, with_figure, message):
    fig = tmp_path / "f.png"
    args = ["--figure-window", window, *(["--figure", fig] if with_figure else [])]
    result = _run("evaluate", tmp_path / "missing.nii.gz", tmp_path / "missing2.nii.gz", *args)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert len(result.stderr.strip().splitlines()) == 1 and not fig.exists()


def test_force_replaces_a_png_but_never_another_file_and_says_so_before_reading(volumes, tmp_path):
    paths, *_ = volumes
    notes = tmp_path / "notes.png"
    notes.write_text("my notes")
    missing = tmp_path / "missing.nii.gz"  # reading it would fail: the refusal must come first
    result = _run("evaluate", missing, paths["clean"], "--figure", notes, "--force")
    assert result.exit_code == 1 and "not a figure denoisekit wrote" in result.stderr, result.output
    assert notes.read_text() == "my notes"
    (tmp_path / "dir.png").mkdir()
    result = _run("evaluate", missing, paths["clean"], "--figure", tmp_path / "dir.png", "--force")
    assert result.exit_code == 1 and "is a directory" in result.stderr and (tmp_path / "dir.png").is_dir()
    result = _run("evaluate", missing, paths["clean"], "--figure", tmp_path / "fig.jpg")
    assert result.exit_code == 2 and "must end in .png" in result.stderr

    fig = tmp_path / "fig.png"
    assert _run("evaluate", paths["denoised"], paths["clean"], "--figure", fig).exit_code == 0
    first = fig.read_bytes()
    refused = _run("evaluate", missing, paths["clean"], "--figure", fig)
    assert refused.exit_code == 1 and "already exists (use --force" in refused.stderr
    again = _run("evaluate", paths["denoised"], paths["clean"], "--noisy", paths["noisy"], "--figure", fig, "--force")
    assert again.exit_code == 0, again.output
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and fig.read_bytes() != first
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left behind


def test_mask_body_scores_the_patient_and_says_so_with_every_table(volumes):
    paths, clean, noisy, denoised = volumes
    result = _run("evaluate", paths["denoised"], paths["clean"], "--noisy", paths["noisy"], "--mask", "body", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    inside = clean > -500  # the disc and its bone: no lungs, no table
    c, d = (np.clip(a.astype(np.float64), -1000, 1000)[inside] for a in (clean, denoised))
    assert data["mask"]["what"] == "body" and data["mask"]["voxels"] == int(inside.sum())
    assert data["overall"]["rmse"] == pytest.approx(np.sqrt(np.mean((c - d) ** 2)), rel=1e-5)
    table = runner.invoke(get_app(), ["evaluate", str(paths["denoised"]), str(paths["clean"]), "--mask", "body",
                                      "--per-slice"], env={"COLUMNS": "200"})
    words = " ".join(table.stdout.split())  # a title wraps to its table's width
    assert words.count("in mask body") == 2  # the overall table's title and the per-slice one's


def test_a_label_volume_mask_on_another_grid_is_refused(volumes, tmp_path):
    paths, clean, *_ = volumes
    labels = write_volume(Volume((clean > 0).astype(np.float32), spacing=(0.7, 0.7, 2.5)), tmp_path / "l.nii.gz")
    result = _run("evaluate", paths["denoised"], paths["clean"], "--mask", labels)
    assert result.exit_code == 1 and "mask and reference differ in spacing" in result.output
    result = _run("evaluate", paths["denoised"], paths["clean"], "--mask", tmp_path / "none.nii.gz")
    assert result.exit_code == 1 and "no such file" in result.output


def test_a_border_only_mask_shows_no_ssim_and_says_why(volumes, tmp_path):
    paths, clean, *_ = volumes
    labels = np.zeros(clean.shape, np.float32)
    labels[:, 0:2, :] = 1.0
    mask = write_volume(Volume(labels, spacing=(0.7, 0.7, 2.0)), tmp_path / "edge.nii.gz")
    result = runner.invoke(get_app(), ["evaluate", str(paths["denoised"]), str(paths["clean"]), "--mask", str(mask)],
                           env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "not within half a window of a slice's edge" in " ".join(result.stdout.split())


def test_mask_body_says_so_when_a_file_named_body_is_here(volumes, tmp_path, monkeypatch):
    paths, *_ = volumes
    monkeypatch.chdir(tmp_path)
    (tmp_path / "body").write_text("a user's file")
    result = _run("evaluate", paths["denoised"], paths["clean"], "--mask", "body")
    assert result.exit_code == 0, result.output
    assert "note: --mask body is the body found in the reference, not the file 'body' here" in result.stderr


def test_read_notes_reach_json_and_quiet_hides_them(make_series):
    series = make_series(shape=(4, 16, 16), drop=(2,))  # a missing slice: read with the mean spacing, and said so
    args = ["evaluate", series.path, series.path, "--allow-irregular"]
    result = _run(*args, "--json")
    assert result.exit_code == 0, result.output
    notes = json.loads(result.stdout)["notes"]  # the file's note once (it was read twice), naming it
    assert notes == [f"{series.path}: irregular slice spacing: gaps from 2.500 to 5.000 mm: read with the mean "
                     "spacing 3.750 mm",
                     f"{series.path} is both the denoised volume and the reference: the scores are perfect by "
                     "construction"]
    shown = _run(*args)
    assert shown.exit_code == 0 and f"note: {notes[0]}" in " ".join(shown.stderr.split())
    for quiet in ("--quiet", "-q"):
        hidden = _run(*args, quiet)
        assert hidden.exit_code == 0 and hidden.stderr == "" and "PSNR" in hidden.stdout, hidden.output


@pytest.mark.parametrize(("name", "lo_hi"),
                         [("brain", [0.0, 80.0]), ("Soft tissue", [-160.0, 240.0]), ("bone", [-500.0, 1300.0])])
def test_window_takes_the_figure_windows_names(volumes, name, lo_hi):
    paths, *_ = volumes
    result = _run("evaluate", paths["denoised"], paths["clean"], "--window", name, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["window"] == lo_hi
    as_numbers = ",".join(f"{v:g}" for v in lo_hi)
    numbers = _run("evaluate", paths["denoised"], paths["clean"], "--window", as_numbers, "--json")
    assert json.loads(numbers.stdout)["overall"] == json.loads(result.stdout)["overall"]


def test_unknown_window_name_lists_the_names(volumes):
    paths, *_ = volumes
    result = _run("evaluate", paths["denoised"], paths["clean"], "--window", "liver")
    assert result.exit_code == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "lung, soft-tissue, mediastinum, brain, bone" in result.stderr and "LO,HI" in result.stderr
    helped = runner.invoke(get_app(), ["evaluate", "--help"], env={"COLUMNS": "200"})
    text = " ".join(helped.stdout.replace("│", " ").split())
    assert "HU window LO,HI, or one of the --figure-window names (lung, soft-tissue, mediastinum, brain, bone)" in text


def test_a_label_mask_is_not_said_to_look_unlike_ct(volumes, tmp_path):
    """A label volume is read as --mask on purpose: no 'may be a label map' note for it,
    while the same file given as the reference still gets one."""
    paths, clean, *_ = volumes
    mask = write_volume(Volume((clean > 0).astype(np.uint8), spacing=(0.7, 0.7, 2.0)), tmp_path / "seg.nii.gz")
    result = _run("evaluate", paths["denoised"], paths["clean"], "--mask", mask, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["notes"] == []
    result = _run("evaluate", mask, mask, "--json")
    *notes, same = json.loads(result.stdout)["notes"]
    assert notes and all(n.startswith("seg.nii.gz: ") and n.count("seg.nii.gz") == 1 for n in notes)
    assert "is both the denoised volume and the reference" in same


def test_notes_name_each_volume_as_given_even_with_short_folder_names(make_series, tmp_path, monkeypatch):
    """Numbered series folders ('1', 's') and '.' are common: their notes still say which
    volume each is about (a name found anywhere in the text, or '', is no proof)."""
    import shutil

    series = make_series(tmp_path / "1", shape=(4, 16, 16), drop=(2,))
    shutil.copytree(series.path, tmp_path / "s")
    monkeypatch.chdir(tmp_path / "1")
    result = _run("evaluate", ".", "../s", "--allow-irregular", "--json")
    assert result.exit_code == 0, result.output
    notes = json.loads(result.stdout)["notes"]
    assert [n.split(":")[0] for n in notes] == [".", "../s"] and "slice" in notes[0]


@pytest.mark.parametrize("suffix", ["/", "/."])
def test_a_figure_path_with_a_trailing_slash_is_refused(volumes, tmp_path, suffix):
    paths, *_ = volumes
    result = _run("evaluate", paths["denoised"], paths["clean"], "--figure", f"{tmp_path}/cmp.png{suffix}")
    assert result.exit_code == 2 and "a trailing '/' means a folder" in result.output
    assert not (tmp_path / "cmp.png").exists()


def test_a_volume_with_its_axes_in_another_order_is_scored_on_the_reference_grid(volumes, tmp_path):
    """dcm2niix reverses the rows of the series it converts: a denoiser's NIfTI output scored
    against the DICOM reference was refused ('differ in direction')."""
    import SimpleITK as sitk

    paths, *_ = volumes
    for name in ("denoised", "noisy"):
        flipped = sitk.Flip(sitk.ReadImage(str(paths[name])), [False, True, False])
        sitk.WriteImage(flipped, str(tmp_path / f"{name}_flipped.nii.gz"))
    base = _run("evaluate", paths["denoised"], paths["clean"], "--noisy", paths["noisy"], "--json")
    result = _run("evaluate", tmp_path / "denoised_flipped.nii.gz", paths["clean"], "--noisy",
                  tmp_path / "noisy_flipped.nii.gz", "--json")
    assert result.exit_code == 0, result.output
    ours, theirs = json.loads(result.stdout), json.loads(base.stdout)
    assert ours["overall"] == theirs["overall"]
    assert sum("reordered exactly" in n and "y reversed" in n for n in ours["notes"]) == 2
    shifted = sitk.ReadImage(str(paths["denoised"]))
    shifted.SetOrigin((0.35, 0.0, 0.0))  # half a voxel: no reordering places it
    sitk.WriteImage(shifted, str(tmp_path / "shifted.nii.gz"))
    result = _run("evaluate", tmp_path / "shifted.nii.gz", paths["clean"])
    assert result.exit_code == 1 and "differ in origin" in result.stderr


def test_the_figure_names_what_was_done_never_the_file(volumes, tmp_path, monkeypatch):
    """The denoised panels were titled with the file's name, which went into the PNG (a folder
    may bear the patient's name; new-user pass)."""
    import shutil

    import denoisekit.evaluate

    seen = {}
    monkeypatch.setattr(denoisekit.evaluate, "figure", lambda *a, **k: seen.update(k))
    paths, *_ = volumes
    named = tmp_path / "Doe_Jane_denoised.nii.gz"
    shutil.copy(paths["denoised"], named)  # not written by denoisekit's infer: nothing recorded
    assert _run("evaluate", named, paths["clean"], "--figure", tmp_path / "f.png").exit_code == 0
    assert seen["label"] == "denoised"
    assert _run("infer", paths["noisy"], "-m", "tv", "--strength", "1", "-o", tmp_path / "Doe_Jane.nii.gz",
                "-q").exit_code == 0
    assert _run("evaluate", tmp_path / "Doe_Jane.nii.gz", paths["clean"], "--figure", tmp_path / "g.png").exit_code == 0
    assert seen["label"] == "denoised tv"


def test_a_reference_with_noise_of_its_own_is_said(tmp_path):
    """CT_small's own 25 HU under 7 HU added gave every denoiser a negative gain, with nothing
    to say the reference was not clean (new-user pass)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[:96, :96]
    body = np.where((y - 48) ** 2 + (x - 48) ** 2 < 40**2, 40.0, -1000.0).astype(np.float32)
    clean = np.repeat(body[None], 2, axis=0)
    scanned = clean + rng.normal(0, 30, clean.shape).astype(np.float32)  # a real scan's own noise
    paths = {}
    for name, array in (("clean", clean), ("scan", scanned), ("low", scanned + rng.normal(0, 20, clean.shape)),
                        ("clean_low", clean + rng.normal(0, 20, clean.shape))):
        paths[name] = write_volume(Volume(array.astype(np.float32), spacing=(0.7, 0.7, 2.0)), tmp_path / f"{name}.nii.gz")
    result = _run("evaluate", paths["low"], paths["scan"], "--noisy", paths["low"], "--json")
    assert result.exit_code == 0, result.output
    [said] = [n for n in json.loads(result.stdout)["notes"] if "noise of its own" in n]
    own, added = (float(v) for v in re.findall(r"\((\d+\.\d) HU in soft tissue\) against (\d+\.\d) HU", said)[0])
    assert own == pytest.approx(30, rel=0.15) and added == pytest.approx(20, rel=0.15)
    result = _run("evaluate", paths["clean_low"], paths["clean"], "--noisy", paths["clean_low"], "--json")
    assert not [n for n in json.loads(result.stdout)["notes"] if "noise of its own" in n]


def test_a_missing_mask_says_what_mask_takes(volumes, tmp_path):
    paths, *_ = volumes
    result = _run("evaluate", paths["denoised"], paths["clean"], "--mask", tmp_path / "nosuch")
    assert result.exit_code == 1 and result.stderr.count("\n") == 1
    assert "no such file; --mask takes 'body' or a label volume" in result.stderr
