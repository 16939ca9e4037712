"""`denoisekit noise`: NIfTI and DICOM in and out, recorded parameters, refusals."""

import json

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from typer.testing import CliRunner

from denoisekit.cli import get_app
from denoisekit.io import read_volume
from denoisekit.noise import apply_recorded

runner = CliRunner()


@pytest.fixture
def body_nifti(tmp_path):
    """A 3-slice 64x64 water ellipse with a bone insert, in HU, 5 mm pixels."""
    return body_volume(tmp_path)


def body_volume(tmp_path, size=64, name="body.nii.gz"):
    """``body_nifti``'s volume (the same body over ``size`` pixels), for a test that needs
    another besides."""
    k = size / 64
    yy, xx = np.mgrid[:size, :size]
    x, y = xx - size // 2, yy - size // 2
    hu = np.full((size, size), -1000.0, np.float32)
    hu[(x / (26 * k)) ** 2 + (y / (18 * k)) ** 2 < 1] = 40.0
    hu[(x - 10 * k) ** 2 + y**2 < 9 * k * k] = 1100.0
    image = sitk.GetImageFromArray(np.repeat(hu[None], 3, axis=0))
    image.SetSpacing((5.0 / k, 5.0 / k, 3.0))
    path = tmp_path / name
    sitk.WriteImage(image, str(path))
    return path


def run(*args):
    return runner.invoke(get_app(), ["noise", *map(str, args)])


def test_gaussian_nifti_honours_sigma_and_records_what_reproduces_it(body_nifti, tmp_path):
    out = tmp_path / "noisy.nii.gz"
    result = run(body_nifti, "-o", out, "--kind", "gaussian", "--sigma", 30, "--seed", 4, "--quiet", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["output"] == str(out) and report["seed"] == 4
    clean, noisy = read_volume(body_nifti), read_volume(out)
    assert (noisy.array - clean.array).std() == pytest.approx(30.0, rel=0.05)
    record = json.loads((tmp_path / "noisy.json").read_text())
    assert record["kind"] == "gaussian" and record["options"]["sigma"] == 30.0
    assert np.array_equal(apply_recorded(clean, record).array, noisy.array)


def test_lowdose_to_dicom_writes_parameters_into_the_derivation_tags(body_nifti, tmp_path):
    out = tmp_path / "noisy_series"
    result = run(body_nifti, "-o", out, "--kind", "lowdose", "--dose", 0.5, "--i0", 2e5,
                 "--option", "views=90", "--seed", 7, "--quiet")
    assert result.exit_code == 0, result.output
    files = sorted(out.glob("*.dcm")) or sorted(p for p in out.iterdir() if p.is_file())
    assert len(files) == 3
    ds = pydicom.dcmread(files[0])
    assert "noise lowdose seed=7" in ds.DerivationDescription
    assert "dose=0.5" in ds.DerivationDescription and "i0=200000.0" in ds.DerivationDescription
    record = json.loads((tmp_path / "noisy_series.json").read_text())
    assert record["options"]["views"] == 90 and record["params"]["dose"] == 0.5
    # DICOM stores integers: the reproduction matches to the stored precision.
    again = apply_recorded(read_volume(body_nifti), record).array
    assert np.abs(read_volume(out).array - again).max() <= 0.5 + 1e-3


def test_aec_is_recorded_and_changes_the_noise(body_nifti, tmp_path):
    off, z = tmp_path / "off.nii.gz", tmp_path / "z.nii.gz"
    for out, aec in ((off, "off"), (z, "z")):
        result = run(body_nifti, "-o", out, "--kind", "lowdose", "--aec", aec, "--option", "views=90", "--quiet")
        assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "z.json").read_text())
    assert record["options"]["aec"] == "z"
    clean = read_volume(body_nifti)
    assert np.array_equal(apply_recorded(clean, record).array, read_volume(z).array)
    # 26 cm of water (and bone) across is more than the 225 mm reference: more flux, less noise
    assert (read_volume(z).array - clean.array).std() < 0.85 * (read_volume(off).array - clean.array).std()


def test_default_seed_makes_runs_reproducible_and_output_is_never_overwritten(body_nifti, tmp_path):
    a, b = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    assert run(body_nifti, "-o", a, "--kind", "poisson", "--quiet").exit_code == 0
    assert run(body_nifti, "-o", b, "--kind", "poisson", "--quiet").exit_code == 0
    assert np.array_equal(read_volume(a).array, read_volume(b).array)
    again = run(body_nifti, "-o", a, "--kind", "poisson", "--seed", 1, "--quiet")
    assert again.exit_code == 1 and "already exists" in again.output
    assert np.array_equal(read_volume(a).array, read_volume(b).array)
    forced = run(body_nifti, "-o", a, "--kind", "poisson", "--seed", 1, "--force", "--quiet")
    assert forced.exit_code == 0
    assert not np.array_equal(read_volume(a).array, read_volume(b).array)


@pytest.mark.parametrize(
    "args,message,code",
    [
        (["--kind", "lowdose", "--sigma", "5"], "--sigma does not apply", 2),
        (["--kind", "salt"], "no noise kind named 'salt'", 1),  # maybe a plugin not installed
        (["--kind", "gaussian", "--option", "dose=0.1"], "no option 'dose'", 2),
        (["--kind", "gaussian", "--aec", "z"], "--aec does not apply", 2),
        (["--kind", "lowdose", "--aec", "auto"], "unknown aec 'auto'", 2),
        (["--kind", "lowdose", "--dose", "0.25", "--option", "dose=0.5"], "--dose and an option dose=... both set", 2),
        (["--kind", "gaussian", "--sigma", "-3"], "sigma must be >= 0", 2),
    ],
)
def test_bad_requests_fail_with_one_line(body_nifti, tmp_path, args, message, code):
    result = run(body_nifti, "-o", tmp_path / "x.nii.gz", *args, "--quiet")
    assert result.exit_code == code
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "x.nii.gz").exists()


def test_kind_is_required(body_nifti, tmp_path):
    assert run(body_nifti, "-o", tmp_path / "x.nii.gz").exit_code == 2


def test_help_states_gaussians_actual_default_sigma():
    from denoisekit_plugins.noise.gaussian import Gaussian

    result = runner.invoke(get_app(), ["noise", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert f"(default {Gaussian.options['sigma']:g})" in result.stdout


def test_the_status_line_is_the_log_s_first_line(body_nifti, tmp_path):
    """Off a terminal the progress bar draws nothing: it must not leave an empty line."""
    result = run(body_nifti, "-o", tmp_path / "noisy.nii.gz", "--kind", "gaussian", "--sigma", 30)
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("wrote "), repr(result.stderr[:40])


def _help_text(*args):
    result = runner.invoke(get_app(), [*args, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    return " ".join(result.stdout.replace("│", " ").split())


def test_help_says_where_the_output_goes_by_default_and_it_does(body_nifti):
    assert "Default: <input>_noise-<kind> next to the input (<input>_series-<S>_noise-<kind> with --series S), in its format" in _help_text("noise")
    assert "Output path: a directory gives a DICOM series, .nii/.nii.gz NIfTI, .nrrd/.mha" in _help_text("noise")
    result = run(body_nifti, "--kind", "gaussian", "--quiet")
    assert result.exit_code == 0, result.output
    assert (body_nifti.parent / "body_noise-gaussian.nii.gz").exists()
    assert (body_nifti.parent / "body_noise-gaussian.json").exists()  # the sidecar the help names


def test_a_source_value_the_series_cannot_copy_is_a_note_in_json(real_ct, tmp_path):
    ds = pydicom.dcmread(real_ct("CT_small.dcm"))
    ds.PatientIdentityRemoved = "YES"  # with no method recorded: not claimed again
    ds.save_as(tmp_path / "ct.dcm")
    result = run(tmp_path / "ct.dcm", "-o", tmp_path / "low", "--kind", "gaussian", "--json")
    assert result.exit_code == 0, result.output
    [note] = json.loads(result.stdout)["notes"]
    assert "PatientIdentityRemoved" in note and f"note: {note}" in result.stderr


def test_the_noise_level_said_is_the_one_in_the_field_of_view(tmp_path):
    """The padding outside it (-3024 HU) gets no noise: counting it would read the level low."""
    from denoisekit.io import write_volume
    from denoisekit.volume import Volume

    hu = np.full((2, 64, 64), 40.0, np.float32)
    hu[:, :, :32] = -3024.0
    source = write_volume(Volume(hu, spacing=(0.7, 0.7, 2.0)), tmp_path / "half.nii.gz")
    result = run(source, "-o", tmp_path / "noisy.nii.gz", "--kind", "gaussian", "--sigma", 30, "--json", "--quiet")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["noise_std_hu"] == pytest.approx(30, rel=0.05)


def test_scan_relative_dose_is_a_fraction_of_the_scans_own_and_the_levels_are_said(tmp_path):
    # 128x128: enough soft tissue to read the scan's own noise in (lowdose.READ_WINDOWS)
    body = body_volume(tmp_path, size=128, name="body128.nii.gz")
    scan = tmp_path / "scan.nii.gz"
    assert run(body, "-o", scan, "--kind", "lowdose", "--dose", 0.5, "--quiet").exit_code == 0
    small = run(body_volume(tmp_path), "-o", tmp_path / "s.nii.gz", "--kind", "lowdose", "--scan-relative")
    assert small.exit_code == 1 and "a crop or a small slice has too few" in small.output  # 64x64: refused
    out = tmp_path / "quarter.nii.gz"
    result = run(scan, "-o", out, "--kind", "lowdose", "--dose", 0.25, "--scan-relative", "--json")
    assert result.exit_code == 0, result.output
    before, after = json.loads(result.stdout)["soft_tissue_noise_hu"]
    assert after / before == pytest.approx(2.0, rel=0.2)
    assert f"soft tissue {before:.1f} -> {after:.1f} HU" in result.stderr
    assert json.loads((tmp_path / "quarter.json").read_text())["options"]["scan_relative"] is True
    # where the flux came from is said: a NIfTI records no tube current
    [how] = [n for n in json.loads(result.stdout)["notes"] if n.startswith("flux from")]
    assert how.startswith("flux from each slice's own noise, pooled") and f"note: {how}" in " ".join(result.stderr.split())


def test_scan_relative_on_a_series_with_its_tube_current_says_so(tmp_path):
    import pydicom

    from denoisekit.io import read_volume, write_volume

    body = body_volume(tmp_path, size=128, name="body128.nii.gz")
    assert run(body, "-o", tmp_path / "scan.nii.gz", "--kind", "lowdose", "--dose", 0.5, "--quiet").exit_code == 0
    series = write_volume(read_volume(tmp_path / "scan.nii.gz"), tmp_path / "series")
    for path in series.iterdir():  # as a scanner records it, slice by slice
        ds = pydicom.dcmread(path)
        ds.XRayTubeCurrent = 300
        ds.save_as(path)
    result = run(series, "-o", tmp_path / "quarter", "--kind", "lowdose", "--scan-relative", "--json")
    assert result.exit_code == 0, result.output
    slices = len(list(series.iterdir()))
    expected = f"flux from the series' tube current (300 mA on all {slices} slices), scaled to the scan's own noise"
    assert expected in json.loads(result.stdout)["notes"]
    assert json.loads((tmp_path / "quarter.json").read_text())["params"]["TubeCurrents"] == [300.0] * slices


def test_scan_relative_is_refused_where_it_means_nothing(body_nifti, tmp_path):
    result = run(body_nifti, "-o", tmp_path / "g.nii.gz", "--kind", "gaussian", "--scan-relative")
    assert result.exit_code == 2 and "--scan-relative does not apply to noise 'gaussian'" in result.output
    result = run(body_nifti, "-o", tmp_path / "q.nii.gz", "--kind", "lowdose", "--dose", 2, "--scan-relative")
    assert result.exit_code == 2 and "below 1" in result.output
    for i0 in (["--i0", "1000"], ["--option", "i0=1000"]):  # the scan sets the flux: i0 would only skew the trials
        result = run(body_nifti, "-o", tmp_path / "q.nii.gz", "--kind", "lowdose", "--scan-relative", *i0)
        assert result.exit_code == 2 and "--i0 has no meaning with --scan-relative" in result.output


def test_projection_noise_on_slices_that_are_not_axial_gets_a_note(tmp_path):
    from denoisekit.io import write_volume
    from denoisekit.volume import Volume

    y, x = np.mgrid[:48, :48]
    hu = np.where(((y - 24) / 20) ** 2 + ((x - 24) / 16) ** 2 < 1, 40.0, -1000.0).astype(np.float32)
    coronal = write_volume(Volume(np.repeat(hu[None], 2, axis=0), direction=(1, 0, 0, 0, 0, 1, 0, -1, 0)),
                           tmp_path / "coronal.nii.gz")
    result = run(coronal, "-o", tmp_path / "low.nii.gz", "--kind", "lowdose", "--json")
    assert result.exit_code == 0, result.output
    assert any("coronal, not axial" in n for n in json.loads(result.stdout)["notes"])
    assert "note: the slices are coronal" in result.stderr
    white = run(coronal, "-o", tmp_path / "white.nii.gz", "--kind", "gaussian")
    assert white.exit_code == 0 and "axial" not in white.stderr  # white noise has no plane


def test_an_absolute_dose_far_from_the_scans_own_fraction_gets_a_note(tmp_path):
    body = body_volume(tmp_path, size=128)

    def scan_at(dose):
        path = tmp_path / f"scan-{dose}.nii.gz"
        assert run(body, "-o", path, "--kind", "lowdose", "--dose", dose, "--quiet").exit_code == 0
        return path

    near = run(scan_at(1.0), "-o", tmp_path / "a.nii.gz", "--kind", "lowdose", "--dose", 0.25, "--json")
    assert near.exit_code == 0 and json.loads(near.stdout)["notes"] == []  # a quarter of i0 is near a quarter of its own
    far = run(scan_at(0.0625), "-o", tmp_path / "b.nii.gz", "--kind", "lowdose", "--dose", 0.25, "--json")
    assert far.exit_code == 0
    [note] = json.loads(far.stdout)["notes"]
    assert note.startswith("dose 0.25 is a fraction of i0, not of this scan's own dose") and "--scan-relative" in note


def test_notes_from_reading_reach_json_as_well(make_series, tmp_path):
    import shutil

    series = make_series(tmp_path / "scan", shape=(3, 16, 16))
    shutil.copyfile(series.files[1], series.path / "copy.dcm")
    result = run(series.path, "-o", tmp_path / "n.nii.gz", "--kind", "gaussian", "--json", "--quiet")
    assert result.exit_code == 0, result.output
    assert any("duplicate" in n for n in json.loads(result.stdout)["notes"])
    exported = runner.invoke(get_app(), ["export", str(series.path), "-o", str(tmp_path / "e.nii.gz"), "--json"])
    assert exported.exit_code == 0 and any("duplicate" in n for n in json.loads(exported.stdout)["notes"])


def test_a_label_map_is_noised_with_a_note_and_ct_written_by_noise_gets_none(body_nifti, tmp_path):
    labels = np.zeros((3, 16, 16), np.uint8)
    labels[:, 4:12, 4:12] = 2
    sitk.WriteImage(sitk.GetImageFromArray(labels), str(tmp_path / "seg.nii.gz"))
    result = run(tmp_path / "seg.nii.gz", "-o", tmp_path / "n.nii.gz", "--kind", "gaussian", "--json")
    assert result.exit_code == 0, result.output  # said, not refused
    [note] = [n for n in json.loads(result.stdout)["notes"] if "label map" in n]
    assert note.startswith("seg.nii.gz: few distinct whole values, 0 to 2, none below -200") and "as HU" in note
    assert f"note: {note}" in result.stderr
    noisy = run(body_nifti, "-o", tmp_path / "noisy.nii.gz", "--kind", "lowdose", "--json")  # CT in HU
    assert noisy.exit_code == 0 and json.loads(noisy.stdout)["notes"] == []
    again = run(tmp_path / "noisy.nii.gz", "-o", tmp_path / "again.nii.gz", "--kind", "gaussian", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["notes"] == []  # what denoisekit wrote


def test_an_absolute_dose_of_1_or_more_does_not_suggest_scan_relative(tmp_path):
    body = body_volume(tmp_path, size=128)
    scan = tmp_path / "scan.nii.gz"
    assert run(body, "-o", scan, "--kind", "lowdose", "--dose", 0.0625, "--quiet").exit_code == 0
    result = run(scan, "-o", tmp_path / "b.nii.gz", "--kind", "lowdose", "--dose", 2, "--json")
    assert result.exit_code == 0, result.output
    [note] = json.loads(result.stdout)["notes"]  # still said: the dose is i0's, not the scan's
    assert note.startswith("dose 2 is a fraction of i0, not of this scan's own dose")
    assert "--scan-relative" not in note and "--scan-relative" not in result.stderr  # which refuses a dose >= 1


def test_slices_with_far_more_added_noise_are_named():
    """A head CT's two dental slices got 199 and 119 HU of added noise against 13: the one std
    figure of the volume hid them (new-user pass)."""
    from denoisekit.cli.noise import _outlier_slices

    rng = np.random.default_rng(0)
    added = rng.normal(0, 13, (6, 32, 32)).astype(np.float32)
    padding = np.zeros(added.shape, bool)
    assert _outlier_slices(added, padding) is None  # even noise: nothing to say
    added[4] *= 15
    padding[:, :, :8] = True
    added[2][padding[2]] = 5000.0  # the padding is no slice's noise
    note = _outlier_slices(added, padding)
    assert note.startswith("slice 4 (19") and "median slice (13 HU std)" in note


def test_the_sidecar_names_its_source_by_uid_or_hash_never_by_path(make_series, body_nifti, tmp_path):
    """A sidecar travels with the noisy file; the folder it was made from may be named after
    its patient (the record kept the input's path)."""
    from denoisekit.io.identity import file_identity

    series = make_series(tmp_path / "Doe_Jane" / "CT", shape=(2, 16, 16))
    assert run(series.path, "-o", tmp_path / "low", "-k", "gaussian", "-q").exit_code == 0
    text = (tmp_path / "low.json").read_text()
    assert "Doe_Jane" not in text and json.loads(text)["source"] == {"SeriesInstanceUID": series.series_uid}
    assert run(body_nifti, "-o", tmp_path / "n.nii.gz", "-k", "gaussian", "-q").exit_code == 0
    record = json.loads((tmp_path / "n.json").read_text())
    assert record["source"] == {"blake2b": file_identity(body_nifti)} and str(body_nifti) not in json.dumps(record)


def test_noise_on_a_denoised_nifti_says_both_steps(body_nifti, tmp_path):
    """It wrote the noise alone, as if added to the scan itself."""
    assert runner.invoke(get_app(), ["infer", str(body_nifti), "-m", "tv", "--strength", "1", "-o",
                                     str(tmp_path / "den.nii.gz"), "-q"]).exit_code == 0
    assert run(tmp_path / "den.nii.gz", "-o", tmp_path / "n.nii.gz", "-k", "gaussian", "-q").exit_code == 0
    [said] = read_volume(tmp_path / "n.nii.gz").history
    assert said.startswith("denoised tv; noise gaussian seed=0"), said


def test_a_negative_seed_is_a_usage_error_naming_it(tmp_path):
    """It was 'ValueError: expected non-negative integer', exit 1, naming no option (new-user pass)."""
    from typer.testing import CliRunner

    from denoisekit.cli import get_app

    result = CliRunner().invoke(get_app(), ["noise", str(tmp_path / "x.nii.gz"), "--seed", "-1"])
    assert result.exit_code == 2 and "--seed" in result.output
