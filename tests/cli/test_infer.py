"""``denoisekit infer`` end to end on real files: DICOM in, derived DICOM out; NIfTI in,
NIfTI out; trained weights; refusals that protect existing files."""

import json
import re
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from denoisekit.cli import get_app
from denoisekit.io import read_volume, write_volume
from denoisekit.plugins import get_model
from denoisekit.volume import Volume
from denoisekit.weights import save_weights

runner = CliRunner()


def _run(*args):
    return runner.invoke(get_app(), [str(a) for a in args])


def _phantom_nifti(path, seed=0, shape=(3, 32, 32)):
    y, x = np.mgrid[: shape[1], : shape[2]]
    clean = np.where((y - 16) ** 2 + (x - 16) ** 2 < 12**2, 40.0, -1000.0).astype(np.float32)
    noisy = clean + np.random.default_rng(seed).normal(0, 40, shape).astype(np.float32)
    return write_volume(Volume(noisy, spacing=(0.7, 0.7, 2.0)), path), clean


@pytest.fixture
def ct_small(tmp_path, real_ct):
    path = tmp_path / "CT_small.dcm"
    shutil.copy(real_ct("CT_small.dcm"), path)
    return path


def test_dicom_in_gives_a_derived_series_naming_the_model(ct_small):
    import pydicom

    before = ct_small.read_bytes()
    result = _run("infer", ct_small, "--model", "tv", "--json", "--quiet")
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)
    out = ct_small.parent / "CT_small_denoised-tv"
    assert record["output"] == str(out) and record["model"] == "tv" and record["slices"] == 1
    assert record["weights"] is None
    assert ct_small.read_bytes() == before  # the input is never modified

    source = read_volume(ct_small)
    denoised = read_volume(out)
    assert denoised.shape == source.shape
    np.testing.assert_allclose(denoised.spacing, source.spacing)
    assert not np.array_equal(denoised.array, source.array)
    assert np.abs(denoised.array - source.array).mean() < 50  # denoised, not destroyed
    [file] = [f for f in out.iterdir() if f.is_file()]
    ds = pydicom.dcmread(file)
    original = pydicom.dcmread(ct_small)
    # what was run, and how much of its correction auto kept
    assert re.fullmatch(r"denoised tv strength auto [01]\.\d\d", ds.SeriesDescription)
    assert ds.SeriesInstanceUID != original.SeriesInstanceUID
    assert ds.StudyInstanceUID == original.StudyInstanceUID


def test_a_source_value_the_series_cannot_copy_is_a_note_on_stderr_and_in_json(ct_small):
    import pydicom

    ds = pydicom.dcmread(ct_small)
    ds.StudyInstanceUID = "not.a.uid"
    ds.save_as(ct_small)
    result = _run("infer", ct_small, "--model", "tv", "--json")
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)
    [note] = [n for n in record["notes"] if "StudyInstanceUID" in n]
    assert "is not a valid UID ('not.a.uid')" in note
    assert f"note: {note}" in result.stderr


def test_a_classical_filter_that_reads_no_noise_says_so(tmp_path):
    flat = write_volume(Volume(np.full((2, 32, 32), 40.0, np.float32), spacing=(0.7, 0.7, 2.0)), tmp_path / "flat.nii.gz")
    result = _run("infer", flat, "--model", "tv", "--json")
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)
    assert any(n.startswith("tv read no noise in 2 of 2 slices") for n in record["notes"]), record["notes"]
    assert "note: tv read no noise in 2 of 2 slices" in result.stderr


def test_existing_output_is_refused_then_force_overwrites(tmp_path):
    src, _ = _phantom_nifti(tmp_path / "scan.nii.gz")
    out = tmp_path / "scan_denoised-tv.nii.gz"
    assert _run("infer", src, "--model", "tv", "--quiet").exit_code == 0
    first = out.read_bytes()

    refused = _run("infer", src, "--model", "tv", "--option", "strength=4", "--quiet")
    assert refused.exit_code == 1
    assert "already exists" in refused.stderr and "--force" in refused.stderr
    assert out.read_bytes() == first

    forced = _run("infer", src, "--model", "tv", "--option", "strength=4", "--quiet", "--force")
    assert forced.exit_code == 0, forced.output
    assert out.read_bytes() != first


def test_several_inputs_each_get_their_output(tmp_path):
    a, clean = _phantom_nifti(tmp_path / "a.nii.gz", seed=1)
    b, _ = _phantom_nifti(tmp_path / "b.nii.gz", seed=2)
    result = _run("infer", a, b, "--model", "nl-means", "--json", "--quiet", "--batch-size", "2")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert [r["input"] for r in records] == [str(a), str(b)]
    for src, record in zip((a, b), records):
        noisy, denoised = read_volume(src).array, read_volume(record["output"]).array
        assert record["output"].endswith("_denoised-nl-means.nii.gz") and record["slices"] == 3
        assert np.sqrt(np.mean((denoised - clean) ** 2)) < np.sqrt(np.mean((noisy - clean) ** 2))


@pytest.mark.parametrize("order", ["good first", "bad first"])
def test_a_failed_input_does_not_stop_the_others_and_every_one_is_in_json(tmp_path, order):
    a, _ = _phantom_nifti(tmp_path / "a.nii.gz")
    b = tmp_path / "b.nii.gz"
    b.write_bytes(b"not a volume")
    inputs = [a, b] if order == "good first" else [b, a]
    result = _run("infer", *inputs, "--model", "tv", "--json")
    assert result.exit_code == 1
    records = {r["input"]: r for r in json.loads(result.stdout)}  # what a script needs: what exists, what failed
    assert records[str(a)]["output"] == str(tmp_path / "a_denoised-tv.nii.gz")
    assert (tmp_path / "a_denoised-tv.nii.gz").is_file()
    assert records[str(b)]["output"] is None and "b.nii.gz" in records[str(b)]["error"]
    assert f"wrote {records[str(a)]['output']}" in result.stderr and f"error: {b}:" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == "Error: 1 of 2 inputs failed (b.nii.gz); the other was written"


def test_a_single_failed_input_is_the_one_line_error_as_ever(tmp_path):
    b = tmp_path / "b.nii.gz"
    b.write_bytes(b"not a volume")
    result = _run("infer", b, "--model", "tv", "--json")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error:") and "b.nii.gz" in result.stderr


def test_one_output_for_several_inputs_is_refused(tmp_path):
    a, _ = _phantom_nifti(tmp_path / "a.nii.gz")
    b, _ = _phantom_nifti(tmp_path / "b.nii.gz")
    result = _run("infer", a, b, "--model", "tv", "-o", tmp_path / "x.nii.gz")
    assert result.exit_code == 2 and "several inputs" in result.stderr
    assert not (tmp_path / "x.nii.gz").exists()


def test_output_onto_the_input_is_refused(tmp_path):
    src, _ = _phantom_nifti(tmp_path / "scan.nii.gz")
    before = src.read_bytes()
    result = _run("infer", src, "--model", "tv", "-o", src, "--force")
    assert result.exit_code == 1 and "input" in result.stderr
    assert src.read_bytes() == before


@pytest.mark.parametrize("where", ["inside", "parent"])
def test_output_inside_or_around_the_input_is_refused_before_any_work(make_series, tmp_path, where):
    series = make_series(shape=(2, 16, 16))
    series.files[0].write_bytes(series.files[0].read_bytes()[:140])  # reading it would fail: it is never read
    out = series.path / "den" if where == "inside" else series.path.parent
    result = _run("infer", series.path, "--model", "tv", "-o", out, "--force")
    expected = "is inside the input directory" if where == "inside" else "would overwrite the input"
    assert result.exit_code == 1 and expected in result.stderr, result.output
    assert series.path.is_dir() and not (series.path / "den").exists()


def test_dicom_series_directory_with_explicit_output(make_series, tmp_path):
    series = make_series(shape=(4, 24, 24))
    out = tmp_path / "den"
    result = _run("infer", series.path, "--model", "tv", "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    denoised = read_volume(out)
    assert denoised.shape == series.hu.shape
    np.testing.assert_allclose(denoised.origin, series.origin, atol=1e-3)


def test_a_long_weights_name_is_whole_in_the_series_derivation(make_series, tmp_path):
    """The SeriesDescription a PACS lists holds 64 bytes; the DerivationDescription (1024) kept
    only those too, so a long run name was cut there as well ('weights keras-auto2/best...')."""
    import pydicom

    model = get_model("residual-mul")()
    model.build(16)
    run = "a-long-run-name-" * 3 + "for-the-chest-series"
    weights = save_weights(tmp_path / run / "best.npz", model)
    series = make_series(shape=(2, 24, 24))
    result = _run("infer", series.path, "--weights", weights, "--strength", "1", "-o", tmp_path / "den", "--quiet")
    assert result.exit_code == 0, result.output
    ds = pydicom.dcmread(sorted((tmp_path / "den").iterdir())[0])
    assert ds.DerivationDescription == f"denoised residual-mul weights {run}/best.npz"
    assert len(ds.SeriesDescription) <= 64 and ds.DerivationDescription.startswith(ds.SeriesDescription)


def test_a_series_denoised_from_a_simulated_one_says_both(make_series, tmp_path):
    """Filed in the patient's study, a denoised simulated low dose was described as denoised
    only: nothing said its input was simulated (new-user pass)."""
    import pydicom

    series = make_series(shape=(2, 24, 24))
    noisy = tmp_path / "noisy"
    assert runner.invoke(get_app(), ["noise", str(series.path), "--kind", "gaussian", "-o", str(noisy), "-q"]).exit_code == 0
    assert _run("infer", noisy, "-m", "tv", "--strength", "1", "-o", tmp_path / "den", "-q").exit_code == 0
    first = pydicom.dcmread(sorted((tmp_path / "den").iterdir())[0])
    said = pydicom.dcmread(sorted(noisy.iterdir())[0]).DerivationDescription
    assert said.startswith("noise gaussian seed=0") and first.DerivationDescription == f"{said}; denoised tv"
    # the label a PACS lists: the last step, and that its input was simulated (it said 'denoised tv')
    assert first.SeriesDescription == "denoised tv (on simulated noise)"
    assert pydicom.dcmread(sorted(noisy.iterdir())[0]).SeriesDescription.startswith("simulated noise gaussian seed=0")


def test_trained_weights_file_picks_the_model(tmp_path):
    src, _ = _phantom_nifti(tmp_path / "scan.nii.gz")
    model = get_model("residual-mul")()
    model.build(16)
    weights = save_weights(tmp_path / "w.npz", model)
    result = _run("infer", src, "--weights", weights, "--json", "--quiet", "--strength", "1")
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)
    assert record["model"] == "residual-mul" and record["weights"] == str(weights)
    assert record["strength"] == 1.0 and record["strengths"] == [1.0] * 3
    expected = model.denoise(read_volume(src).array)
    np.testing.assert_allclose(read_volume(record["output"]).array, expected, atol=0.5)

    wrong = _run("infer", src, "--model", "residual-mul-add", "--weights", weights, "--quiet")
    assert wrong.exit_code == 1 and "not 'residual-mul-add'" in wrong.stderr
    mixed = _run("infer", src, "--weights", weights, "--option", "sigma=3", "--force", "--quiet")
    assert mixed.exit_code == 2 and "--option" in mixed.stderr


def test_strength_auto_blends_each_slice_and_says_how_much(tmp_path):
    src, _ = _phantom_nifti(tmp_path / "scan.nii.gz")
    result = _run("infer", src, "--model", "tv", "--option", "strength=4", "--json")
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)
    kept = np.array(record["strengths"])
    assert record["strength"] == "auto" and kept.shape == (3,) and np.all((kept >= 0) & (kept <= 1))
    assert "strength auto" in result.stderr
    noisy = read_volume(src).array
    from denoisekit_plugins.models.classical import TotalVariation

    whole = TotalVariation(strength=4).denoise(noisy)  # a strong tv smooths more than the noise away
    assert kept.max() < 0.95
    expected = noisy - kept[:, None, None] * (noisy - whole)
    np.testing.assert_allclose(read_volume(record["output"]).array, expected, atol=0.5)


def test_a_scan_left_mostly_as_it_was_is_said_so(tmp_path):
    y, x = np.mgrid[:32, :32]
    clean = np.where((y - 16) ** 2 + (x - 16) ** 2 < 12**2, 40.0, -1000.0).astype(np.float32)
    clean = clean + np.random.default_rng(0).normal(0, 2, (3, 32, 32)).astype(np.float32)  # little noise
    src = write_volume(Volume(clean, spacing=(0.7, 0.7, 2.0)), tmp_path / "quiet.nii.gz")
    result = _run("infer", src, "--model", "tv", "--option", "sigma=40", "--json")
    assert result.exit_code == 0, result.output
    [record] = json.loads(result.stdout)
    assert max(record["strengths"]) < 0.25
    assert "note: --strength auto kept a median" in result.stderr
    assert any(note.startswith("--strength auto kept a median") for note in record["notes"])  # no "note: " in JSON
    forced = _run("infer", src, "--model", "tv", "--option", "sigma=40", "--strength", "1", "-o", tmp_path / "f.nii.gz")
    assert forced.exit_code == 0 and "kept a median" not in forced.stderr


@pytest.mark.parametrize(("value", "message"), [
    ("1.5", "must be from 0 (the input) to 1 (the model's output), got 1.5"),
    ("2", "got 2"),
    ("-0.5", "got -0.5"),
    ("strong", "must be 'auto' or a number from 0 to 1, got 'strong'"),
])
def test_bad_strength_is_a_usage_error_before_any_work(tmp_path, value, message):
    src, _ = _phantom_nifti(tmp_path / "scan.nii.gz")
    result = _run("infer", src, "--model", "tv", "--strength", value)
    assert result.exit_code == 2, result.output  # a bad option value, as --batch-size 0
    assert result.stderr.startswith("Error: --strength ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1  # one line, as the README says
    assert list(tmp_path.iterdir()) == [src]


def test_fixed_size_model_is_tiled(tmp_path):
    src, _ = _phantom_nifti(tmp_path / "scan.nii.gz", shape=(2, 40, 40))
    model = get_model("vanilla-ae")()
    model.build(16)
    weights = save_weights(tmp_path / "ae.npz", model)
    out = tmp_path / "ae.nii.gz"
    result = _run("infer", src, "--weights", weights, "-o", out, "--quiet")
    assert result.exit_code == 0, result.output
    from denoisekit.infer import denoise_volume

    denoised = read_volume(out).array
    assert denoised.shape == (2, 40, 40) and np.isfinite(denoised).all()
    expected = denoise_volume(read_volume(src), model).array  # 16x16 tiles, blended
    np.testing.assert_allclose(denoised, expected, atol=0.5)


def test_unknown_model_lists_the_available_ones(tmp_path):
    src, _ = _phantom_nifti(tmp_path / "scan.nii.gz")
    result = _run("infer", src, "--model", "no-such-model")
    assert result.exit_code == 1 and "nl-means" in result.stderr


def test_unwritable_output_format_is_refused_before_any_work(tmp_path):
    src, _ = _phantom_nifti(tmp_path / "in.nii.gz")
    res = _run("infer", src, "--model", "tv", "-o", tmp_path / "out.png", "--quiet")
    assert res.exit_code == 2 and "out.png" in res.stderr and "Traceback" not in res.output
    assert not list(tmp_path.glob("*out*"))


def test_status_line_names_the_output_whole_on_one_line(tmp_path):
    # a long name with brackets, as scanners' exports have: no rich markup, no wrapping
    folder = tmp_path / ("study [ct] " + "x" * 80)
    folder.mkdir()
    src, _ = _phantom_nifti(folder / "scan.nii.gz")
    result = _run("infer", src, "--model", "tv")
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("wrote ")]
    assert str(folder / "scan_denoised-tv.nii.gz") in line


def test_progress_bars_show_names_as_they_are(tmp_path, monkeypatch):
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich draws its bars as on a terminal
    folder = tmp_path / "a[/x]"  # a closing tag rich cannot match: MarkupError unescaped
    folder.mkdir(parents=True)
    src, _ = _phantom_nifti(folder / "[b]scan.nii.gz")
    result = _run("infer", src, "--model", "tv")
    assert result.exit_code == 0, result.output
    assert "[b]scan.nii.gz [tv]" in result.stderr
    exported = _run("export", src, "-o", folder / "[b]out")
    assert exported.exit_code == 0, exported.output


def test_pretrained_weights_on_coarse_pixels_get_a_note(tmp_path):
    y, x = np.mgrid[:32, :32]
    clean = np.where((y - 16) ** 2 + (x - 16) ** 2 < 12**2, 40.0, -1000.0).astype(np.float32)
    coarse = write_volume(Volume(np.repeat(clean[None], 2, axis=0), spacing=(1.0, 1.0, 2.0)), tmp_path / "c.nii.gz")
    fine = write_volume(Volume(np.repeat(clean[None], 2, axis=0), spacing=(0.7, 0.7, 2.0)), tmp_path / "f.nii.gz")
    learned = _run("infer", coarse, "--model", "residual-mul")
    assert learned.exit_code == 0 and "1.00 mm pixels are coarser" in learned.stderr
    assert "coarser" not in _run("infer", fine, "--model", "residual-mul").stderr
    assert "coarser" not in _run("infer", coarse, "--model", "tv", "-o", tmp_path / "tv.nii.gz").stderr
    quiet = _run("infer", coarse, "--model", "residual-mul", "--quiet", "--force", "--json")
    assert "coarser" not in quiet.stderr  # scripts see it in the record:
    assert any("coarser" in note for note in json.loads(quiet.stdout)[0]["notes"])


def test_learned_models_on_slices_that_are_not_axial_get_a_note(tmp_path):
    y, x = np.mgrid[:32, :32]
    clean = np.where((y - 16) ** 2 + (x - 16) ** 2 < 12**2, 40.0, -1000.0).astype(np.float32)
    sagittal = write_volume(Volume(np.repeat(clean[None], 2, axis=0), spacing=(0.7, 0.7, 2.0),
                                   direction=(0, 0, 1, 1, 0, 0, 0, -1, 0)), tmp_path / "s.nii.gz")
    learned = _run("infer", sagittal, "--model", "residual-mul", "--json", "--quiet")
    assert learned.exit_code == 0, learned.output
    assert any("sagittal, not axial" in note for note in json.loads(learned.stdout)[0]["notes"])
    assert "axial" not in _run("infer", sagittal, "--model", "tv", "-o", tmp_path / "tv.nii.gz").stderr


def test_each_series_of_a_folder_gets_its_own_default_output(make_series, tmp_path):
    """Two series of one folder, denoised one after the other: the second must not need
    --force, nor replace the first's output."""
    shared = tmp_path / "mixed"
    make_series(shared, series_number=2, shape=(2, 16, 16))
    make_series(shared, series_number=5, shape=(3, 16, 16), seed=2)
    for number, slices in (("2", 2), ("5", 3)):
        result = _run("infer", shared, "--series", number, "--model", "tv", "--strength", "1", "--json", "--quiet")
        assert result.exit_code == 0, result.output
        [record] = json.loads(result.stdout)
        assert record["output"] == str(tmp_path / f"mixed_series-{number}_denoised-tv") and record["slices"] == slices
    noisy = runner.invoke(get_app(), ["noise", str(shared), "--series", "5", "--kind", "gaussian", "--quiet"])
    assert noisy.exit_code == 0, noisy.output
    assert (tmp_path / "mixed_series-5_noise-gaussian").is_dir()


def test_a_missing_input_among_several_is_one_failed_input(tmp_path):
    a, _ = _phantom_nifti(tmp_path / "a.nii.gz")
    missing = tmp_path / "nope.nii.gz"
    result = _run("infer", a, missing, "--model", "tv", "--json")
    assert result.exit_code == 1, result.output
    records = {r["input"]: r for r in json.loads(result.stdout)}
    assert records[str(a)]["output"] == str(tmp_path / "a_denoised-tv.nii.gz")
    assert (tmp_path / "a_denoised-tv.nii.gz").is_file()
    assert records[str(missing)]["output"] is None and "does not exist" in records[str(missing)]["error"]
    assert f"error: {missing}:" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == "Error: 1 of 2 inputs failed (nope.nii.gz); the other was written"


def test_all_inputs_missing_fail_before_a_model_loads_and_none_failing_is_not_called_written(tmp_path, monkeypatch):
    import denoisekit.infer

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded with nothing to denoise")

    with monkeypatch.context() as patch:
        patch.setattr(denoisekit.infer, "load_model_for_inference", no_model)
        result = _run("infer", tmp_path / "m1.nii.gz", tmp_path / "m2.nii.gz", "-m", "tv")
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: none of the inputs exists: {tmp_path / 'm1.nii.gz'}, {tmp_path / 'm2.nii.gz'}"
    (tmp_path / "bad.nii.gz").write_bytes(b"not a volume")  # exists, unreadable: fails in its turn
    result = _run("infer", tmp_path / "bad.nii.gz", tmp_path / "m2.nii.gz", "-m", "tv")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == ("Error: 2 of 2 inputs failed (bad.nii.gz, m2.nii.gz); "
                                                      "nothing was written")


@pytest.mark.parametrize("model", ["tv", "nl-means"])
def test_weights_for_a_fixed_filter_are_refused_up_front(tmp_path, model):
    src, _ = _phantom_nifti(tmp_path / "scan.nii.gz")
    (tmp_path / "w.npz").write_bytes(b"not weights")
    for weights in (tmp_path / "nope.npz", tmp_path / "w.npz"):
        result = _run("infer", src, "-m", model, "--weights", weights)
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == (f"Error: model '{model}' is a fixed filter and takes no --weights; "
                                         "set its options with --option (see 'denoisekit models')")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.nii.gz", "w.npz"]


def test_a_denoised_nifti_says_its_input_was_a_simulated_low_dose(tmp_path):
    """infer wrote the denoising alone into the NIfTI (and so into every DICOM export of it):
    a denoised simulated low dose read as a denoised real scan (new-user pass)."""
    import pydicom

    clean, _ = _phantom_nifti(tmp_path / "clean.nii.gz")
    assert _run("noise", clean, "-k", "lowdose", "--dose", "0.25", "-o", tmp_path / "low.nii.gz", "-q").exit_code == 0
    result = _run("infer", tmp_path / "low.nii.gz", "-m", "tv", "--strength", "1", "-q")
    assert result.exit_code == 0, result.output
    [said] = read_volume(tmp_path / "low_denoised-tv.nii.gz").history
    assert said.startswith("noise lowdose seed=0 dose=0.25") and said.endswith("; denoised tv"), said
    for source, out in ((tmp_path / "low_denoised-tv.nii.gz", "series"), (tmp_path / "low.nii.gz", "low_series")):
        assert _run("export", source, "-o", tmp_path / out, "-q").exit_code == 0
    assert _run("infer", tmp_path / "low_series", "-m", "tv", "--strength", "1", "-q").exit_code == 0
    for series in ("series", "low_series_denoised-tv"):  # through NIfTI, and a DICOM series' own chain
        ds = pydicom.dcmread(sorted((tmp_path / series).iterdir())[0])
        assert ds.SeriesDescription == "denoised tv (on simulated noise)"
        assert ds.DerivationDescription.startswith("noise lowdose seed=0 dose=0.25")
        assert ds.DerivationDescription.endswith("; denoised tv") and ds.DerivationDescription.count("noise lowdose") == 1


def test_a_nifti_denoised_from_a_simulated_low_dose_series_says_so(tmp_path):
    """The series' DerivationDescription held the simulation; the NIfTI said 'denoised tv'
    alone (code review)."""
    clean, _ = _phantom_nifti(tmp_path / "clean.nii.gz")
    assert _run("noise", clean, "-k", "lowdose", "--dose", "0.25", "-o", tmp_path / "low", "-q").exit_code == 0
    assert _run("infer", tmp_path / "low", "-m", "tv", "--strength", "1", "-o", tmp_path / "d.nii.gz", "-q").exit_code == 0
    [said] = read_volume(tmp_path / "d.nii.gz").history
    assert said.startswith("noise lowdose seed=0 dose=0.25") and said.endswith("; denoised tv"), said
    assert _run("noise", tmp_path / "low", "-k", "gaussian", "-o", tmp_path / "n.nii.gz", "-q").exit_code == 0
    [said] = read_volume(tmp_path / "n.nii.gz").history
    assert said.startswith("noise lowdose seed=0 dose=0.25") and "; noise gaussian seed=0" in said, said
