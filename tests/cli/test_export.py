"""``denoisekit export`` through the real app."""

import json
import os

import numpy as np
import pytest
from typer.testing import CliRunner

from denoisekit.cli import get_app
from denoisekit.io import read_volume

runner = CliRunner()


def run(*args):
    return runner.invoke(get_app(), list(map(str, args)))


def test_dicom_to_nifti_and_back_to_a_derived_series(make_series, tmp_path):
    series = make_series(shuffle_names=True, descending=True)
    result = run("export", series.path, "-o", tmp_path / "v.nii.gz")
    assert result.exit_code == 0, result.output
    # the message is a status line (stderr, as infer's and noise's); stdout stays for --json
    assert "5x32x32" in result.stderr and "HU" in result.stderr and result.stdout == ""
    nifti = read_volume(tmp_path / "v.nii.gz")
    np.testing.assert_array_equal(nifti.array, series.hu)
    result = run("export", tmp_path / "v.nii.gz", "-o", tmp_path / "series", "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["format"] == "dicom" and info["shape"] == [5, 32, 32]
    back = read_volume(tmp_path / "series")
    assert np.abs(back.array - series.hu).max() <= 0.5
    assert back.origin == pytest.approx(series.origin, abs=1e-4)


def test_existing_output_needs_force(make_series, tmp_path):
    series = make_series()
    out = tmp_path / "out"
    assert run("export", series.path, "-o", out, "-q").exit_code == 0
    result = run("export", series.path, "-o", out)
    assert result.exit_code == 1 and "--force" in result.stderr
    assert run("export", series.path, "-o", out, "--force", "-q").exit_code == 0


def test_refusal_is_one_line_and_writes_nothing(make_series, tmp_path):
    series = make_series(shape=(6, 16, 16), drop=(2,))
    out = tmp_path / "out.nii.gz"
    result = run("export", series.path, "-o", out)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "missing" in result.stderr
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".")]
    result = run("export", series.path, "-o", out, "--allow-irregular")
    assert result.exit_code == 0 and out.exists()
    assert "note:" in result.stderr


def test_series_choice(make_series, tmp_path):
    shared = tmp_path / "mixed"
    make_series(shared, series_number=2, shape=(3, 16, 16))
    second = make_series(shared, series_number=5, shape=(4, 16, 16), seed=2)
    result = run("export", shared, "-o", tmp_path / "x.nii")
    assert result.exit_code == 1 and "--series" in result.stderr
    result = run("export", shared, "-o", tmp_path / "x.nii", "--series", "5", "-q")
    assert result.exit_code == 0
    np.testing.assert_array_equal(read_volume(tmp_path / "x.nii").array, second.hu)


def test_usage_errors(tmp_path):
    assert run("export", tmp_path).exit_code == 2  # no -o
    result = run("export", tmp_path, "-o", tmp_path / "x.dcm")
    assert result.exit_code == 2 and "use a directory" in result.stderr


def test_help_says_output_is_required_and_how_it_picks_the_format():
    result = runner.invoke(get_app(), ["export", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0
    text = " ".join(result.stdout.replace("│", " ").split())
    assert "-o is required: its suffix picks the format" in text
    assert "Output path (no default): a directory gives a DICOM series, .nii/.nii.gz NIfTI, .nrrd/.mha" in text


@pytest.mark.parametrize("as_json", [False, True])
def test_a_source_value_the_series_cannot_copy_is_a_note(real_ct, tmp_path, as_json):
    import pydicom

    ds = pydicom.dcmread(real_ct("CT_small.dcm"))
    ds.PatientIdentityRemoved = "YES"  # with no method recorded: not claimed again
    ds.save_as(tmp_path / "ct.dcm")
    result = run("export", tmp_path / "ct.dcm", "-o", tmp_path / "series", *(["--json"] if as_json else []))
    assert result.exit_code == 0, result.output
    if as_json:
        [note] = json.loads(result.stdout)["notes"]
        assert "PatientIdentityRemoved" in note
    else:
        assert "note: the source's PatientIdentityRemoved records no de-identification method" in result.stderr
    assert "PatientIdentityRemoved" not in pydicom.dcmread(next((tmp_path / "series").glob("*.dcm")))


def test_a_file_name_never_reaches_a_description(make_series, tmp_path):
    """A NIfTI's name may be its patient's ('Mueller_Juergen_thorax.nii.gz'): the series made
    from it is filed under an anonymous patient, so its description must not carry the name,
    nor the NIfTI's own description the DICOM folder's (a series made from the NIfTI carries
    that on), nor a series exported from DICOM (its source may be de-identified)."""
    import pydicom

    series = make_series(tmp_path / "Mueller_Juergen", shape=(2, 16, 16))
    named = tmp_path / "Mueller_Juergen_thorax.nii.gz"
    assert run("export", series.path, "-o", named, "--quiet").exit_code == 0
    assert run("export", named, "-o", tmp_path / "from_nifti", "--quiet").exit_code == 0
    assert run("export", series.path, "-o", tmp_path / "from_dicom", "--quiet").exit_code == 0
    assert read_volume(named).history == ("converted by denoisekit export from a DICOM series",)
    nifti = pydicom.dcmread(sorted((tmp_path / "from_nifti").iterdir())[0])
    assert nifti.SeriesDescription == "converted by denoisekit export from a NIfTI file"  # this conversion
    assert "Mueller" not in nifti.DerivationDescription and nifti.PatientName.family_name == "ANONYMOUS"
    dicom = pydicom.dcmread(sorted((tmp_path / "from_dicom").iterdir())[0])  # de-identified or not: no name
    assert dicom.SeriesDescription == "converted by denoisekit export from a DICOM series"


def test_series_made_from_one_nifti_file_into_one_study(tmp_path):
    """Original and denoised, exported on different runs, open side by side in a PACS: one
    study, one frame of reference, one patient; another volume is another study and patient."""
    import pydicom

    from denoisekit.io import write_volume
    from denoisekit.volume import Volume

    rng = np.random.default_rng(2)
    scan = write_volume(Volume(rng.normal(0, 200, (2, 16, 16)).astype(np.float32) - 500, spacing=(0.7, 0.7, 2.0)),
                        tmp_path / "scan.nii.gz")
    other = write_volume(Volume(rng.normal(0, 200, (2, 16, 16)).astype(np.float32) - 500, spacing=(0.7, 0.7, 2.0)),
                         tmp_path / "other.nii.gz")
    # and the NIfTI files made of it: a noisy copy, that denoised, each exported later (each was
    # a new patient and study: a PACS could not show them beside the original; new-user pass)
    for args in (["export", scan, "-o", tmp_path / "a"], ["export", scan, "-o", tmp_path / "b"],
                 ["infer", scan, "-m", "tv", "-o", tmp_path / "c"], ["export", other, "-o", tmp_path / "d"],
                 ["noise", scan, "--kind", "gaussian", "-o", tmp_path / "noisy.nii.gz"],
                 ["infer", tmp_path / "noisy.nii.gz", "-m", "tv", "-o", tmp_path / "den.nii.gz"],
                 ["export", tmp_path / "noisy.nii.gz", "-o", tmp_path / "e"],
                 ["export", tmp_path / "den.nii.gz", "-o", tmp_path / "f"]):
        assert runner.invoke(get_app(), list(map(str, args)) + ["--quiet"]).exit_code == 0, args
    first = {name: pydicom.dcmread(sorted((tmp_path / name).iterdir())[0]) for name in "abcdef"}
    same = {(ds.StudyInstanceUID, ds.FrameOfReferenceUID, ds.PatientID) for name, ds in first.items() if name != "d"}
    assert len(same) == 1 and len({first[n].SeriesInstanceUID for n in "abcef"}) == 5
    d = first["d"]
    assert (d.StudyInstanceUID, d.FrameOfReferenceUID, d.PatientID) not in same
    # a file a script rewrote (its descrip no longer ours, aux_file kept) may be in another space
    import SimpleITK as sitk

    assert read_volume(tmp_path / "den.nii.gz").tags.keys() == {"SourceIdentity"}
    image = sitk.ReadImage(str(tmp_path / "den.nii.gz"))
    image.SetMetaData("ITK_FileNotes", "registered to the atlas")
    sitk.WriteImage(image, str(tmp_path / "edited.nii.gz"))
    assert read_volume(tmp_path / "edited.nii.gz").tags == {}


def test_a_nifti_exported_from_a_denoised_series_says_what_was_done(make_series, tmp_path):
    """It said 'converted by denoisekit export from a DICOM series', as the original's export
    does: the two could not be told apart (new-user pass)."""
    series = make_series(tmp_path / "s", shape=(2, 24, 24))
    assert run("infer", series.path, "-m", "tv", "--strength", "1", "-o", tmp_path / "den", "-q").exit_code == 0
    for out in ("den.nii.gz", "orig.nii.gz"):
        source = tmp_path / "den" if out == "den.nii.gz" else series.path
        assert run("export", source, "-o", tmp_path / out, "-q").exit_code == 0
    assert read_volume(tmp_path / "den.nii.gz").history == ("denoised tv",)
    assert read_volume(tmp_path / "orig.nii.gz").history == ("converted by denoisekit export from a DICOM series",)


def test_a_series_exported_from_a_denoised_nifti_says_what_was_done(make_series, tmp_path):
    """infer writes no record beside a NIfTI: its description in the file is what a series
    exported from it can say (it said 'converted ... from a NIfTI file')."""
    import SimpleITK as sitk
    import pydicom

    series = make_series(tmp_path / "s", shape=(2, 24, 24))
    assert run("infer", series.path, "-m", "tv", "-o", tmp_path / "den.nii.gz", "-q").exit_code == 0
    assert run("export", tmp_path / "den.nii.gz", "-o", tmp_path / "den", "-q").exit_code == 0
    first = pydicom.dcmread(sorted((tmp_path / "den").iterdir())[0])
    assert first.SeriesDescription.startswith("denoised tv") and first.DerivationDescription.startswith("denoised tv")
    # another writer's descrip (a converter's) is no account of denoising
    image = sitk.ReadImage(str(tmp_path / "den.nii.gz"))
    image.EraseMetaData("aux_file")
    sitk.WriteImage(image, str(tmp_path / "other.nii.gz"))
    assert sitk.ReadImage(str(tmp_path / "other.nii.gz")).GetMetaData("descrip").startswith("denoised tv")
    assert read_volume(tmp_path / "other.nii.gz").history == ()
    # nor is a descrip rewritten by a script that kept our mark (it may name the patient)
    image = sitk.ReadImage(str(tmp_path / "den.nii.gz"))
    image.SetMetaData("ITK_FileNotes", "Doe^Jane MRN 1234567 follow-up")
    sitk.WriteImage(image, str(tmp_path / "edited.nii.gz"))
    assert sitk.ReadImage(str(tmp_path / "edited.nii.gz")).GetMetaData("aux_file").startswith("dk")
    assert read_volume(tmp_path / "edited.nii.gz").history == ()


def test_a_nifti_another_tool_changed_keeping_the_header_says_so(make_series, tmp_path):
    """nibabel copies a header by default: a script that edited a denoised NIfTI's voxels kept
    'denoised tv' alone, and its DICOM export presented the edit as the denoising (new-user
    pass). The mark holds digests of the description and of the voxels as written: a changed
    description is not taken (it may name the patient), changed voxels keep what denoisekit did
    and say another tool changed them after."""
    import SimpleITK as sitk

    series = make_series(tmp_path / "s", shape=(2, 24, 24))
    assert run("infer", series.path, "-m", "tv", "-o", tmp_path / "den.nii.gz", "-q").exit_code == 0
    [done] = read_volume(tmp_path / "den.nii.gz").history
    image = sitk.ReadImage(str(tmp_path / "den.nii.gz"))
    sitk.WriteImage(sitk.Image(image), str(tmp_path / "same.nii.gz"))  # the same voxels and header again: ours
    assert read_volume(tmp_path / "same.nii.gz").history == (done,)
    edited = sitk.Image(image) * 0.5  # the voxels changed, the header copied over
    for key in image.GetMetaDataKeys():
        edited.SetMetaData(key, image.GetMetaData(key))
    sitk.WriteImage(edited, str(tmp_path / "edited.nii.gz"))
    result = run("export", tmp_path / "edited.nii.gz", "-o", tmp_path / "out.nii.gz", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["description"] == f"{done}; then changed by another tool"
    assert any("changed after denoisekit wrote it" in n and "--description" in n for n in record["notes"])
    # --description says what the other tool did, after what denoisekit did
    result = run("export", tmp_path / "edited.nii.gz", "-o", tmp_path / "said.nii.gz", "--description",
                 "halved by a script", "-q")
    assert result.exit_code == 0 and read_volume(tmp_path / "said.nii.gz").history == (f"{done}; halved by a script",)
    # files from before the digests are read as they were
    legacy = sitk.Image(image)
    for key, value in (("aux_file", "denoisekit"), ("ITK_FileNotes", "denoised tv")):
        legacy.SetMetaData(key, value)
    sitk.WriteImage(legacy, str(tmp_path / "legacy.nii.gz"))
    assert read_volume(tmp_path / "legacy.nii.gz").history == ("denoised tv",)


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd", ".mha"])
@pytest.mark.parametrize("said", ["bereinigt für Müller ü", "nettoyé " + "a" * 60 + " : verylongwordhere"])
def test_an_unchanged_file_keeps_its_account_whatever_its_description(make_series, tmp_path, suffix, said):
    """A description cut before ' :' kept a trailing space that reading strips, and SimpleITK's
    MetaImage reader drops trailing non-ASCII letters: both read as changed (code review)."""
    series = make_series(tmp_path / "s", shape=(2, 12, 10))
    assert run("export", series.path, "-o", tmp_path / "v.nii.gz", "-q").exit_code == 0
    out = tmp_path / f"d{suffix}"
    assert run("export", tmp_path / "v.nii.gz", "-o", out, "--description", said, "-q").exit_code == 0
    result = run("export", out, "-o", tmp_path / "again.nii.gz", "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert not [n for n in record["notes"] if "changed" in n] and record["description"] != "converted by denoisekit export from a NIfTI file"

def _flipped_as_dcm2niix_writes(path, out):
    """The rows reversed, as dcm2niix writes a DICOM series to NIfTI."""
    import SimpleITK as sitk

    sitk.WriteImage(sitk.Flip(sitk.ReadImage(str(path)), [False, True, False]), str(out))
    return out


def test_like_puts_a_nifti_back_into_its_scan(make_series, tmp_path):
    """DICOM -> NIfTI -> another tool -> DICOM lands in the scan's patient, study and frame of
    reference, slice by slice where the scan's slices were (each was a new ANONYMOUS patient)."""
    import pydicom

    series = make_series(tmp_path / "scan", shape=(4, 12, 10))
    assert run("export", series.path, "-o", tmp_path / "v.nii.gz", "-q").exit_code == 0
    flipped = _flipped_as_dcm2niix_writes(tmp_path / "v.nii.gz", tmp_path / "tool.nii.gz")
    result = run("export", flipped, "-o", tmp_path / "back", "--like", series.path, "--json")
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert any("y reversed" in n for n in record["notes"])
    assert record["StudyInstanceUID"] == series.study_uid and record["SeriesInstanceUID"] != series.series_uid
    back = read_volume(tmp_path / "back")
    np.testing.assert_array_equal(back.array, series.hu)
    assert back.tags["SeriesInstanceUID"] == record["SeriesInstanceUID"]
    assert back.tags["SeriesNumber"] == int(record["SeriesNumber"])
    assert record["description"] == record["DerivationDescription"] == "converted by denoisekit export from a NIfTI file"
    source = {int(d.InstanceNumber): d for d in map(pydicom.dcmread, series.files)}
    written = {int(d.InstanceNumber): d for d in map(pydicom.dcmread, sorted((tmp_path / "back").iterdir()))}
    assert written.keys() == source.keys()
    for number, ds in written.items():
        original = source[number]
        for keyword in ("PatientName", "PatientID", "StudyInstanceUID", "FrameOfReferenceUID", "ImagePositionPatient"):
            assert ds[keyword].value == original[keyword].value, keyword
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == original.SOPInstanceUID
        assert ds.SeriesInstanceUID != original.SeriesInstanceUID
        assert ds.DerivationDescription == "converted by denoisekit export from a NIfTI file"


def test_like_declares_no_padding_the_nifti_s_voxels_may_hold_as_image(make_series, tmp_path):
    """The series' PixelPaddingValue (-1024 HU) was kept for another tool's voxels, so its
    denoised air at -1024 was hidden by viewers as padding (code review); padding below
    -1500, which no denoised voxel reaches, stays declared."""
    import pydicom
    import SimpleITK as sitk

    for padding, kept in ((0, False), (-2000, True)):  # stored values: -1024 and -3024 HU
        scan = make_series(tmp_path / f"scan{padding}", shape=(2, 8, 8), PixelPaddingValue=padding)
        assert read_volume(scan.path).tags["PixelPaddingHU"] == [padding - 1024.0]
        tool = tmp_path / f"tool{padding}.nii.gz"
        assert run("export", scan.path, "-o", tool, "-q").exit_code == 0
        image = sitk.ReadImage(str(tool))
        sitk.WriteImage(sitk.Cast(image, sitk.sitkFloat32) * 0 - 1024.0, str(tool))  # another tool's denoised air
        result = run("export", tool, "-o", tmp_path / f"back{padding}", "--like", scan.path,
                     "--description", "denoised by another tool", "--json")
        assert result.exit_code == 0, result.output
        said = [n for n in json.loads(result.stdout)["notes"] if "pixel padding" in n]
        ds = pydicom.dcmread(sorted((tmp_path / f"back{padding}").iterdir())[0])
        assert ("PixelPaddingValue" in ds) is kept and bool(said) is not kept


def test_like_refuses_what_it_cannot_place(make_series, tmp_path):
    series = make_series(tmp_path / "scan", shape=(4, 12, 10))
    other = make_series(tmp_path / "other", shape=(4, 12, 10), origin=(-12.0, -11.0, 41.0))
    assert run("export", series.path, "-o", tmp_path / "v.nii.gz", "-q").exit_code == 0
    nifti = tmp_path / "v.nii.gz"
    result = run("export", nifti, "-o", tmp_path / "back", "--like", other.path)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "up to 1 mm" in result.stderr
    assert not (tmp_path / "back").exists()
    for args, says in (
        (("-o", tmp_path / "x.nii.gz"), "-o must be a directory"),
        (("-o", tmp_path / "x", "--like", series.path), None),
    ):
        result = run("export", nifti, *args, "--like", series.path) if says else run("export", series.path, *args)
        assert result.exit_code == 2, result.output
        assert (says or "NIfTI, NRRD or MHA INPUT") in result.stderr
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("x")  # a wrong call is said before an existing output
    for args in (("--like", series.path), ("--description", " ")):
        source = series.path if args[0] == "--like" else nifti
        result = run("export", source, "-o", tmp_path / "full", *args)
        assert result.exit_code == 2 and "holds other files" not in result.stderr, result.output
    result = run("export", nifti, "-o", series.path / "inside", "--like", series.path)
    assert result.exit_code == 1 and "inside the --like series directory" in result.stderr
    assert not (series.path / "inside").exists()
    result = run("export", nifti, "-o", tmp_path / "back", "--like", nifti)  # a wrong call: exit 2, as the others
    assert result.exit_code == 2 and "has no patient or study to give" in result.stderr
    # one file of the series is one slice (new-user pass: the help said a file would do)
    result = run("export", nifti, "-o", tmp_path / "back", "--like", series.files[0])
    assert result.exit_code == 1 and "is one file, one slice: name its series' folder" in result.stderr
    # a spacing off by 0.005%, 0.012 mm at the 300th voxel: the two values shown differ (both read 0.8)
    import SimpleITK as sitk

    wide = make_series(tmp_path / "wide", shape=(2, 4, 300))
    assert run("export", wide.path, "-o", tmp_path / "wide.nii.gz", "-q").exit_code == 0
    image = sitk.ReadImage(str(tmp_path / "wide.nii.gz"))
    image.SetSpacing((0.80004, 0.7, 2.5))
    sitk.WriteImage(image, str(tmp_path / "spacing.nii.gz"))
    result = run("export", tmp_path / "spacing.nii.gz", "-o", tmp_path / "back", "--like", wide.path)
    assert result.exit_code == 1 and "spacing (0.80004, 0.7, 2.5) vs (0.8, 0.7, 2.5)" in result.stderr
    assert not (tmp_path / "back").exists()


def test_like_refuses_a_label_map(make_series, tmp_path):
    """It wrote a segmentation into the patient's study as CT images of 0 and 1 HU, after a note."""
    series = make_series(tmp_path / "scan", shape=(4, 12, 10))
    scan = read_volume(series.path)
    labels = np.zeros(scan.shape, np.float32)
    labels[1:3, 3:8, 2:6] = 1.0
    from dataclasses import replace

    from denoisekit.io import write_volume

    write_volume(replace(scan, array=labels, tags={}), tmp_path / "mask.nii.gz")
    result = run("export", tmp_path / "mask.nii.gz", "-o", tmp_path / "back", "--like", series.path)
    assert result.exit_code == 1 and "looks like a label map" in result.stderr and "not written" in result.stderr
    assert not (tmp_path / "back").exists()


def test_description_says_what_another_tool_did(make_series, tmp_path):
    """Every result of another tool was 'converted by denoisekit export from a NIfTI file', one
    SeriesNumber for all: two denoisers' results in one study could not be told apart."""
    import pydicom

    series = make_series(tmp_path / "scan", shape=(2, 12, 10))
    assert run("export", series.path, "-o", tmp_path / "v.nii.gz", "-q").exit_code == 0
    numbers = set()
    for name in ("denoised by RED-CNN", "denoised by BM4D"):
        out = tmp_path / name.split()[-1]
        result = run("export", tmp_path / "v.nii.gz", "-o", out, "--like", series.path, "--description", name, "-q")
        assert result.exit_code == 0, result.output
        ds = pydicom.dcmread(sorted(out.iterdir())[0])
        assert ds.SeriesDescription == name and ds.DerivationDescription == name
        numbers.add(int(ds.SeriesNumber))
    assert len(numbers) == 2
    # after what denoisekit recorded of the file
    assert run("infer", tmp_path / "v.nii.gz", "-m", "tv", "--strength", "1", "-q").exit_code == 0
    result = run("export", tmp_path / "v_denoised-tv.nii.gz", "-o", tmp_path / "edited.nii.gz",
                 "--description", "edited in Slicer", "-q")
    assert result.exit_code == 0, result.output
    assert read_volume(tmp_path / "edited.nii.gz").history == ("denoised tv; edited in Slicer",)
    result = run("export", tmp_path / "v.nii.gz", "-o", tmp_path / "x", "--description", " ")
    assert result.exit_code == 2 and "--description is empty" in result.stderr


def test_like_picks_the_series_with_series(make_series, tmp_path):
    shared = tmp_path / "study"
    make_series(shared, series_number=2, shape=(3, 16, 16))
    wanted = make_series(shared, series_number=3, shape=(4, 12, 10))
    alone = make_series(tmp_path / "alone", shape=(4, 12, 10))
    assert run("export", alone.path, "-o", tmp_path / "v.nii.gz", "-q").exit_code == 0
    result = run("export", tmp_path / "v.nii.gz", "-o", tmp_path / "back", "--like", shared)
    assert result.exit_code == 1 and "--series" in result.stderr
    result = run("export", tmp_path / "v.nii.gz", "-o", tmp_path / "back", "--like", shared, "--series", "3", "-q")
    assert result.exit_code == 0, result.output
    assert read_volume(tmp_path / "back").tags["StudyInstanceUID"] == wanted.study_uid


def test_like_says_what_the_nifti_went_through_not_what_the_series_did(make_series, tmp_path):
    """The series' derivation is not the NIfTI's: one denoised from the original scan, put
    like a simulated low-dose series of it, claimed the simulation (code review); one made from
    the low-dose series says so itself, once."""
    import pydicom

    def derivation(out):
        return pydicom.dcmread(sorted((tmp_path / out).iterdir())[0]).DerivationDescription

    series = make_series(tmp_path / "scan", shape=(2, 24, 24), spacing=(0.7, 0.7, 2.5))  # lowdose: square pixels
    assert run("noise", series.path, "-k", "lowdose", "--dose", "0.25", "-o", tmp_path / "low", "-q").exit_code == 0
    for source, nifti in ((tmp_path / "low", "low.nii.gz"), (series.path, "scan.nii.gz")):
        assert run("export", source, "-o", tmp_path / nifti, "-q").exit_code == 0
        assert run("infer", tmp_path / nifti, "-m", "tv", "--strength", "1", "-q").exit_code == 0
    for nifti, out in (("low.nii.gz", "again"), ("low_denoised-tv.nii.gz", "den"), ("scan_denoised-tv.nii.gz", "clean")):
        result = run("export", tmp_path / nifti, "-o", tmp_path / out, "--like", tmp_path / "low", "-q")
        assert result.exit_code == 0, result.output
    assert derivation("low").startswith("noise lowdose seed=0 dose=0.25 scan_relative=False")
    assert derivation("again").startswith("noise lowdose seed=0 dose=0.25") and derivation("again").count("noise l") == 1
    assert derivation("den") == "noise lowdose seed=0 dose=0.25 scan_relative=False i0=200000.0; denoised tv"
    assert derivation("clean") == "denoised tv"  # the scan itself was denoised: no simulation claimed
    # a NIfTI exported from a scan and put back says this conversion, not the one that made it
    assert run("export", tmp_path / "scan.nii.gz", "-o", tmp_path / "round", "--like", series.path, "-q").exit_code == 0
    assert derivation("round") == "converted by denoisekit export from a NIfTI file"


def test_a_description_on_two_lines_is_a_usage_error(make_series, tmp_path):
    """A line break in it lost a MetaImage's mark silently (code review)."""
    series = make_series(tmp_path / "s", shape=(2, 12, 10))
    result = run("export", series.path, "-o", tmp_path / "v.mha", "--description", "denoised\nby hand")
    assert result.exit_code == 2 and "line break or control character" in result.stderr
    assert not (tmp_path / "v.mha").exists()
