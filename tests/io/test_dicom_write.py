"""Derived DICOM series: read back by pydicom and SimpleITK with the same geometry and HU,
valid per dciodvfy, carrying the source's patient/study and new series/instance UIDs."""

import shutil
import subprocess

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

from denoisekit.io import read_volume, write_volume
from denoisekit.io.dicom_write import storage_scale
from denoisekit.volume import Volume


def _itk_series(directory):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(directory)))
    return reader.Execute()


@pytest.fixture
def derived(make_series, tmp_path):
    """An oblique, descending synthetic series, 'denoised' (shifted by a fraction of an HU)."""
    c, s = np.cos(np.radians(15)), np.sin(np.radians(15))
    series = make_series(orientation=(1, 0, 0, 0, c, s), descending=True, shape=(5, 32, 32))
    source = read_volume(series.path)
    volume = source.derive(source.array + 0.3, "denoised by residual-mul, manual backprop")
    out = write_volume(volume, tmp_path / "out")
    return series, source, volume, out


def test_reads_back_with_same_geometry_and_hu(derived):
    series, source, volume, out = derived
    back = read_volume(out)
    assert np.abs(back.array - volume.array).max() <= 0.5
    assert back.origin == pytest.approx(volume.origin, abs=1e-4)
    assert back.spacing == pytest.approx(volume.spacing, abs=1e-4)
    assert back.direction == pytest.approx(volume.direction, abs=1e-6)
    image = _itk_series(out)
    assert np.abs(sitk.GetArrayFromImage(image) - volume.array).max() <= 0.5
    assert image.GetOrigin() == pytest.approx(volume.origin, abs=1e-4)
    assert image.GetSpacing() == pytest.approx(volume.spacing, abs=1e-4)
    assert image.GetDirection() == pytest.approx(volume.direction, abs=1e-6)


def test_derived_series_tags(derived):
    series, source, volume, out = derived
    files = sorted(out.iterdir())
    assert len(files) == 5
    datasets = [pydicom.dcmread(f) for f in files]
    first = datasets[0]
    src = pydicom.dcmread(series.files[0])
    assert first.StudyInstanceUID == series.study_uid
    assert first.FrameOfReferenceUID == series.frame_of_reference_uid
    assert first.PatientName == src.PatientName and first.PatientID == src.PatientID
    assert first.SeriesInstanceUID != series.series_uid
    assert len({d.SeriesInstanceUID for d in datasets}) == 1
    sops = {d.SOPInstanceUID for d in datasets}
    assert len(sops) == 5 and not sops & {pydicom.dcmread(f).SOPInstanceUID for f in series.files}
    assert all(pydicom.uid.UID(u).is_valid for u in sops | {first.SeriesInstanceUID})
    assert list(first.ImageType[:2]) == ["DERIVED", "SECONDARY"]
    assert first.SeriesDescription == "denoised by residual-mul, manual backprop"
    assert first.DerivationDescription == first.SeriesDescription
    assert first.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    assert (first.PixelRepresentation, first.BitsAllocated) == (1, 16)
    assert [d.InstanceNumber for d in datasets] == [5, 4, 3, 2, 1]  # the descending source's, slice by slice
    assert [float(d.SpacingBetweenSlices) for d in datasets] == pytest.approx([volume.spacing[2]] * 5)
    refs = [d.SourceImageSequence[0].ReferencedSOPInstanceUID for d in datasets]
    assert refs == [s[1] for s in source.tags["SourceImages"]]


def test_passes_dciodvfy(derived):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    *_, out = derived
    for path in sorted(out.iterdir())[:2]:
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        errors = [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]
        assert not errors, errors


def test_from_non_dicom_source_new_study(tmp_path):
    rng = np.random.default_rng(3)
    volume = Volume(rng.normal(0, 300, (3, 16, 20)).astype(np.float32), spacing=(0.5, 0.6, 3.0),
                    origin=(10.0, -5.0, 2.0))
    out = write_volume(volume, tmp_path / "new")
    ds = pydicom.dcmread(sorted(out.iterdir())[0])
    assert pydicom.uid.UID(ds.StudyInstanceUID).is_valid and ds.Modality == "CT"
    back = read_volume(out)
    assert np.abs(back.array - volume.array).max() <= 0.5
    assert back.spacing == pytest.approx((0.5, 0.6, 3.0))
    if shutil.which("dciodvfy"):
        result = subprocess.run(["dciodvfy", str(sorted(out.iterdir())[0])], capture_output=True, text=True)
        assert not [l for l in (result.stdout + result.stderr).splitlines() if l.startswith("Error")]
        assert "Retired Person Name form" not in result.stdout + result.stderr  # 'ANONYMOUS' without '^' was
    # each new study its own patient: a PACS must not file unrelated volumes under one
    other = pydicom.dcmread(sorted(write_volume(volume, tmp_path / "again").iterdir())[0])
    assert ds.PatientName == other.PatientName == "ANONYMOUS^" and ds.PatientID.startswith("DENOISEKIT-")
    assert other.StudyInstanceUID != ds.StudyInstanceUID and other.PatientID != ds.PatientID
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (40.0, 400.0)  # viewers show CT black without


def test_descriptions_fit_their_vr_in_bytes_whatever_the_characters(tmp_path):
    volume = Volume(np.zeros((1, 16, 16), np.float32), spacing=(0.7, 0.7, 2.0))
    text = "entrauscht für Müller_Jürgen_Überlänge " * 40  # 2 bytes a character for the umlauts
    ds = pydicom.dcmread(sorted(write_volume(volume, tmp_path / "out", description=text).iterdir())[0])
    assert len(ds.SeriesDescription.encode("utf-8")) <= 64 and text.startswith(ds.SeriesDescription)
    assert text[len(ds.SeriesDescription)] == " "  # the label a PACS shows ends with a whole word
    assert len(ds.DerivationDescription.encode("utf-8")) <= 1024 and text.startswith(ds.DerivationDescription)
    if shutil.which("dciodvfy"):
        result = subprocess.run(["dciodvfy", str(sorted((tmp_path / "out").iterdir())[0])], capture_output=True,
                                text=True)
        assert not [l for l in (result.stdout + result.stderr).splitlines() if l.startswith("Error")]


def test_values_beyond_int16_use_a_slope():
    array = np.array([-1024.0, 0.0, 60000.0], dtype=np.float32)
    slope, intercept = storage_scale(array)
    stored = np.rint((array - intercept) / slope)
    assert stored.min() >= -32768 and stored.max() <= 32767
    assert np.abs(stored * slope + intercept - array).max() <= slope / 2 + 1e-6
    assert storage_scale(np.array([-3024.0, 3071.0])) == (1.0, 0.0)


def test_a_constant_volume_beyond_int16_round_trips():
    array = np.full(4, 50000.0, dtype=np.float32)
    slope, intercept = storage_scale(array)
    stored = np.rint((array - intercept) / slope)
    assert np.isfinite(stored).all() and (stored * slope + intercept == array).all()


def test_phantom_series_passes_dciodvfy(tmp_path):
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    from denoisekit.samples import load_sample

    volume = load_sample("chest-phantom", slices=2, size=64)
    out = write_volume(volume, tmp_path / "phantom", description="chest phantom")
    ds = pydicom.dcmread(sorted(out.iterdir())[0])
    assert ds.StudyInstanceUID == volume.tags["StudyInstanceUID"] and ds.PatientName == "DENOISEKIT^PHANTOM"
    result = subprocess.run(["dciodvfy", str(sorted(out.iterdir())[0])], capture_output=True, text=True)
    assert not [l for l in (result.stdout + result.stderr).splitlines() if l.startswith("Error")]


@pytest.mark.parametrize("kind", ["missing slice", "gantry tilt"])
def test_a_stack_off_the_grid_keeps_each_slice_where_its_source_was(make_series, tmp_path, kind):
    series = make_series(shape=(6, 16, 16), drop=(3,)) if kind == "missing slice" else make_series(tilt=0.5)
    volume = read_volume(series.path, allow_irregular=True, allow_tilt=True)
    out = write_volume(volume, tmp_path / "out")
    sources = {str(ds.SOPInstanceUID): ds for ds in map(pydicom.dcmread, series.files)}
    written = [pydicom.dcmread(f) for f in sorted(out.iterdir())]
    assert len(written) == len(sources)
    for ds in written:
        source = sources[str(ds.SourceImageSequence[0].ReferencedSOPInstanceUID)]
        assert "SpacingBetweenSlices" not in ds  # the gaps vary: the positions say them
        np.testing.assert_allclose([float(v) for v in ds.ImagePositionPatient],
                                   [float(v) for v in source.ImagePositionPatient], atol=1e-3)
        np.testing.assert_array_equal(ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept),
                                      source.pixel_array * float(source.RescaleSlope) + float(source.RescaleIntercept))


def test_a_perfusion_map_stays_labelled_as_one(tmp_path):
    from pydicom.data import get_testdata_file

    notes = []
    volume = read_volume(get_testdata_file("eCT_Supplemental.dcm"), note=notes.append)
    assert any("not Hounsfield units" in n for n in notes)
    first = pydicom.dcmread(sorted(write_volume(volume, tmp_path / "out").iterdir())[0])
    assert first.RescaleType == "US"  # not "HU": its values are blood flow
    assert list(first.ImageType) == ["DERIVED", "SECONDARY", "AXIAL", "RCBF"]


def test_a_ct_series_stays_hu_and_axial(derived):
    first = pydicom.dcmread(sorted(derived[3].iterdir())[0])
    assert first.RescaleType == "HU" and list(first.ImageType) == ["DERIVED", "SECONDARY", "AXIAL"]


def _series_number(tags, tmp_path, description):
    volume = Volume(np.zeros((1, 4, 4), np.float32), tags=tags)
    out = write_volume(volume, tmp_path / f"out{len(list(tmp_path.iterdir()))}", description=description)
    return pydicom.dcmread(next(out.iterdir())).SeriesNumber


def test_series_derived_from_one_source_are_numbered_apart(tmp_path):
    """A viewer listing a study by series number told the noisy and every denoised series of one
    source apart by description only: all were source + 1000."""
    descriptions = [
        "lowdose noise, dose 0.25 of i0 2e+05", "denoised by residual-mul (pretrained)",
        "denoised by residual-mul-add (pretrained)", "denoised by vanilla-ae (pretrained)",
        "denoised by tv (weight 0.08)", "denoised by nl-means", "converted by denoisekit export",
    ]
    numbers = [_series_number({"SeriesNumber": 7}, tmp_path, d) for d in descriptions]
    assert len(set(numbers)) == len(numbers)
    assert all(n % 1000 == 7 and 1007 <= n <= 99007 for n in numbers)  # still read as "from 7"
    assert _series_number({"SeriesNumber": 7}, tmp_path, descriptions[1]) == numbers[1]  # a rerun keeps it


@pytest.mark.parametrize("source", [2**31 - 600, None])
def test_the_series_number_stays_within_dicoms_range(source, tmp_path):
    tags = {} if source is None else {"SeriesNumber": source}
    number = _series_number(tags, tmp_path, "denoised")
    assert 0 < number <= 2**31 - 1 and number % 1000 == (source or 1) % 1000 and number != source


@pytest.mark.parametrize("tags", [{}, {"SliceThickness": 1.0}], ids=["no source", "thinner source slices"])
def test_a_single_slice_keeps_its_z_spacing(tmp_path, tags):
    volume = Volume(np.zeros((1, 8, 8), np.float32), (0.7, 0.7, 2.5), (0.0, 0.0, 0.0), tags=tags)
    out = write_volume(volume, tmp_path / "out")
    assert read_volume(out).spacing == pytest.approx((0.7, 0.7, 2.5))
    assert _itk_series(out).GetSpacing() == pytest.approx((0.7, 0.7, 2.5))


def _dciodvfy_errors(path):
    """dciodvfy's Error lines for one file; none when dicom3tools is not installed."""
    if shutil.which("dciodvfy") is None:
        return []
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
    return [line for line in (result.stdout + result.stderr).splitlines() if line.startswith("Error")]


def _derive_ct_small(real_ct, tmp_path, caplog, runs=1, **changes):
    """pydicom's CT_small.dcm with ``changes`` (keyword -> value, None removes it), read and
    written as a derived series ``runs`` times: (source, [first file of each run], notes)."""
    import warnings

    ds = pydicom.dcmread(real_ct("CT_small.dcm"))
    (tmp_path / "src").mkdir()
    with warnings.catch_warnings():  # pydicom warns of the invalid values the test means
        warnings.simplefilter("ignore")
        for keyword, value in changes.items():
            if value is None:
                delattr(ds, keyword)
            else:
                setattr(ds, keyword, value)
        if "SOPInstanceUID" in changes:
            ds.file_meta.MediaStorageSOPInstanceUID = changes["SOPInstanceUID"]
        ds.save_as(tmp_path / "src" / "CT_small.dcm")
    volume = read_volume(tmp_path / "src")
    caplog.clear()
    with caplog.at_level("WARNING", logger="denoisekit.io"):
        firsts = [sorted(write_volume(volume, tmp_path / f"out{run}").iterdir())[0] for run in range(runs)]
    return ds, firsts, [r.getMessage() for r in caplog.records if r.name == "denoisekit.io"]


@pytest.mark.parametrize("keyword", ["StudyInstanceUID", "FrameOfReferenceUID"])
@pytest.mark.parametrize("value", ["STUDY-0042", "1.2.03", "1.2." + "3" * 70, None],
                         ids=["letters", "leading zero", "over 64", "missing"])
def test_a_study_or_frame_uid_not_valid_is_replaced_the_same_way_every_run(real_ct, tmp_path, caplog, keyword, value):
    source, firsts, notes = _derive_ct_small(real_ct, tmp_path, caplog, runs=2, **{keyword: value})
    written = [pydicom.dcmread(path) for path in firsts]
    uid = written[0][keyword].value
    assert pydicom.uid.UID(uid).is_valid and uid != value
    assert written[1][keyword].value == uid  # a re-run lands in the same study / frame
    other = "FrameOfReferenceUID" if keyword == "StudyInstanceUID" else "StudyInstanceUID"
    assert written[0][other].value == source[other].value  # a valid one is copied
    assert len(notes) == 2 and all(keyword in n and uid in n for n in notes)
    assert not _dciodvfy_errors(firsts[0])


def test_the_same_placeholder_uid_of_two_patients_gives_two_studies(real_ct, tmp_path, caplog):
    """Anonymisers leave one placeholder for every patient: two patients must not merge."""
    uids = []
    for patient in ("P1", "P2"):
        (tmp_path / patient).mkdir()
        _, [first], _ = _derive_ct_small(real_ct, tmp_path / patient, caplog, StudyInstanceUID="REMOVED",
                                         PatientID=patient)
        uids.append(pydicom.dcmread(first).StudyInstanceUID)
    assert uids[0] != uids[1]


def test_a_study_uid_derived_from_the_series_gets_no_date_of_today(real_ct, tmp_path, caplog):
    """The same study UID every run must come with the same study date, not each run's now."""
    _, firsts, _ = _derive_ct_small(real_ct, tmp_path, caplog, StudyInstanceUID=None, StudyDate="",
                                    StudyTime="")
    ds = pydicom.dcmread(firsts[0])
    assert ds.StudyDate == "" and ds.StudyTime == ""


def test_source_values_invalid_for_their_vr_are_one_note_each_not_a_warning_per_file(real_ct, tmp_path, caplog):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # pydicom's own warnings would fail here
        source, [first], notes = _derive_ct_small(real_ct, tmp_path, caplog, StudyID="X" * 40, PatientAge="22Y")
    assert sorted(n.split(" is not valid")[0] for n in notes) == ["the source's PatientAge", "the source's StudyID"]
    assert all(n.endswith("copied as it was") for n in notes)
    ds = pydicom.dcmread(first)
    assert ds.StudyID == "X" * 40 and ds.PatientAge == "22Y"


def test_valid_source_uids_are_copied_without_a_note(real_ct, tmp_path, caplog):
    source, [first], notes = _derive_ct_small(real_ct, tmp_path, caplog)
    ds = pydicom.dcmread(first)
    assert ds.StudyInstanceUID == source.StudyInstanceUID
    assert ds.FrameOfReferenceUID == source.FrameOfReferenceUID
    assert "SourceImageSequence" in ds and not notes


def _code(value, meaning):
    from pydicom.dataset import Dataset

    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, "DCM", meaning
    return pydicom.sequence.Sequence([item])


@pytest.mark.parametrize("changes, kept", [
    ({"PatientIdentityRemoved": "YES"}, False),
    ({"PatientIdentityRemoved": "YES", "DeidentificationMethod": ""}, False),
    ({"PatientIdentityRemoved": "Y", "DeidentificationMethod": "DicomCleaner"}, False),
    ({"PatientIdentityRemoved": "YES", "DeidentificationMethod": "DicomCleaner"}, True),
    ({"PatientIdentityRemoved": "YES",
      "DeidentificationMethodCodeSequence": _code("113100", "Basic Application Confidentiality Profile")}, True),
    ({"PatientIdentityRemoved": "NO"}, True),
], ids=["yes, no method", "yes, empty method", "neither yes nor no", "yes, method", "yes, method code", "no"])
def test_patient_identity_removed_is_claimed_only_with_a_method(real_ct, tmp_path, caplog, changes, kept):
    source, [first], notes = _derive_ct_small(real_ct, tmp_path, caplog, **changes)
    ds = pydicom.dcmread(first)
    if kept:
        assert ds.PatientIdentityRemoved == source.PatientIdentityRemoved and not notes
        for keyword in ("DeidentificationMethod", "DeidentificationMethodCodeSequence"):
            assert ds.get(keyword) == source.get(keyword)
    else:
        assert "PatientIdentityRemoved" not in ds
        assert ds.get("DeidentificationMethod") == (source.get("DeidentificationMethod") or None)  # a method alone may stay
        assert len(notes) == 1 and "PatientIdentityRemoved" in notes[0]
    assert not _dciodvfy_errors(first)


def test_source_images_with_invalid_uids_are_not_referenced(real_ct, tmp_path, caplog):
    _, [first], notes = _derive_ct_small(real_ct, tmp_path, caplog, SOPInstanceUID="IMG-0001")
    assert "SourceImageSequence" not in pydicom.dcmread(first)
    assert len(notes) == 1 and "reference" in notes[0]
    assert not _dciodvfy_errors(first)


def test_a_derived_series_numbers_its_slices_as_the_source_did(make_series, tmp_path):
    """InstanceNumber 1 at the top (last along the normal), as scanners often number: kept
    slice by slice, so a viewer listing by number shows the reader's order."""
    series = make_series(descending=True)
    out = write_volume(read_volume(series.path), tmp_path / "out")

    def number_by_position(files):
        by = {}
        for f in files:
            ds = pydicom.dcmread(f)
            by[round(float(ds.ImagePositionPatient[2]), 3)] = int(ds.InstanceNumber)
        return by

    assert number_by_position(sorted(out.iterdir())) == number_by_position(series.files)
    assert number_by_position(series.files)[round(series.origin[2], 3)] == 5  # the source's were descending


def _padded_ct_small(real_ct, directory, slope=1, padding=None, limit=None):
    """CT_small.dcm with RescaleSlope ``slope`` and a corner of stored -2000 (its own
    PixelPaddingValue), rows alternating with ``limit`` when given; declared by
    PixelPaddingValue ``padding`` (and PixelPaddingRangeLimit ``limit``), or not at all."""
    ds = pydicom.dcmread(real_ct("CT_small.dcm"))
    pixels = ds.pixel_array.copy()
    pixels[:20, :20] = -2000
    if limit is not None:
        pixels[:20:2, :20] = limit
    ds.PixelData = pixels.astype("<i2").tobytes()
    ds.RescaleSlope = slope
    del ds.PixelPaddingValue
    if padding is not None:
        ds.add_new(0x00280120, "SS", padding)
        if limit is not None:
            ds.add_new(0x00280121, "SS", limit)
    directory.mkdir()
    ds.save_as(directory / "CT_small.dcm")
    return _only_file(directory)


def _only_file(directory):
    (path,) = directory.iterdir()
    return path


def _check_padding(volume, out, hu, corner):
    """The derived series ``out`` of ``volume`` declares padding ``hu`` (value, range limit),
    stored exactly as the pixels of ``corner`` that hold it."""
    np.testing.assert_array_equal(np.unique(volume.array[0][corner]), sorted(hu))
    write_volume(volume.derive(volume.array + 0.3, "denoised"), out)  # padding comes back as it was
    written = pydicom.dcmread(_only_file(out))
    ends = [written.PixelPaddingValue] + ([written.PixelPaddingRangeLimit] if len(hu) > 1 else [])
    assert written["PixelPaddingValue"].VR == "SS" and written.PixelRepresentation == 1
    assert set(np.unique(written.pixel_array[corner])) == set(ends)  # exactly the declared values
    as_hu = [v * float(written.RescaleSlope) + float(written.RescaleIntercept) for v in ends]
    assert as_hu == pytest.approx(hu, abs=float(written.RescaleSlope) / 2)
    if shutil.which("dciodvfy"):
        assert not _dciodvfy_errors(_only_file(out))
    return written


def test_a_derived_series_keeps_the_pixel_padding_of_a_real_ct(real_ct, tmp_path):
    source = pydicom.dcmread(real_ct("693_UNCR.dcm"))
    assert source.PixelPaddingValue == -2000 and source.RescaleIntercept == -1024  # -3024 HU around the FOV
    written = _check_padding(read_volume(real_ct("693_UNCR.dcm")), tmp_path / "out", [-3024], np.s_[:40, :40])
    assert written.PixelPaddingValue == -3024 and float(written.RescaleIntercept) == 0
    assert "PixelPaddingRangeLimit" not in written


def test_a_padding_range_is_stored_anew_for_the_derived_rescale(real_ct, tmp_path):
    path = _padded_ct_small(real_ct, tmp_path / "src", slope=20, padding=-2000, limit=-1990)
    written = _check_padding(read_volume(path), tmp_path / "out", [-41024, -40824], np.s_[:20, :20])
    assert float(written.RescaleSlope) != 1  # 20 x 2191 is beyond int16: stored with another rescale


def test_a_source_without_pixel_padding_gives_none(real_ct, tmp_path):
    path = _padded_ct_small(real_ct, tmp_path / "src")  # -3024 HU in a corner, not declared padding
    write_volume(read_volume(path), tmp_path / "out")
    written = pydicom.dcmread(_only_file(tmp_path / "out"))
    assert "PixelPaddingValue" not in written and "PixelPaddingRangeLimit" not in written


def test_a_padding_value_the_stages_change_is_declared_only_if_nothing_changed(real_ct, tmp_path, caplog):
    path = _padded_ct_small(real_ct, tmp_path / "src", padding=0)  # stored 0 is -1024 HU: air, which stages change
    volume = read_volume(path)
    write_volume(volume, tmp_path / "converted")
    assert pydicom.dcmread(_only_file(tmp_path / "converted")).PixelPaddingValue == -1024
    with caplog.at_level("WARNING", logger="denoisekit.io"):
        write_volume(volume.derive(volume.array + 0.3, "denoised"), tmp_path / "denoised")
    assert "PixelPaddingValue" not in pydicom.dcmread(_only_file(tmp_path / "denoised"))
    assert [r.getMessage() for r in caplog.records] == [
        "the source's pixel padding (-1024 HU) is not below -1500 HU, which denoisekit's stages keep as it was: "
        "the derived series declares none"]


@pytest.mark.parametrize("empty", [("PatientName",), ("PatientID",), ("PatientName", "PatientID")])
def test_an_empty_patient_name_or_id_stays_present_and_empty(make_series, tmp_path, empty):
    """PatientName and PatientID are type 2 (present, may be empty): a source that has them
    empty, as LIDC-IDRI's anonymised series do, must not lose them (dciodvfy: missing type 2),
    nor get a placeholder patient inside its own study (one study under two patients)."""
    series = make_series(shape=(2, 16, 16))
    for path in series.files:
        ds = pydicom.dcmread(path)
        for keyword in empty:
            setattr(ds, keyword, "")
        ds.save_as(path)
    out = write_volume(read_volume(series.path), tmp_path / "out")
    ds = pydicom.dcmread(sorted(out.iterdir())[0])
    assert str(ds.PatientName) == ("" if "PatientName" in empty else "SYNTHETIC^SERIES")
    assert ds.PatientID == ("" if "PatientID" in empty else "SYN-001")
    assert "PatientName" in ds and "PatientID" in ds and ds.StudyInstanceUID == series.study_uid
    if shutil.which("dciodvfy"):
        result = subprocess.run(["dciodvfy", str(sorted(out.iterdir())[0])], capture_output=True, text=True)
        assert not [l for l in (result.stdout + result.stderr).splitlines() if l.startswith("Error")]


@pytest.mark.parametrize("name", ["CT_small.dcm", "693_J2KR.dcm", "J2K_pixelrep_mismatch.dcm", "eCT_Supplemental.dcm"])
def test_series_derived_from_real_ct_pass_dciodvfy(real_ct, tmp_path, name):
    """Real sources carry what synthetic ones don't (empty type 2 values, private and retired
    tags, enhanced multi-frame functional groups): what the derived series copies of them
    must still make a valid CT image."""
    if shutil.which("dciodvfy") is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    source = read_volume(real_ct(name))
    out = write_volume(source.derive(source.array, "denoised"), tmp_path / "out")
    for path in sorted(out.iterdir())[:2]:
        result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
        assert not [l for l in (result.stdout + result.stderr).splitlines() if l.startswith("Error")]


def test_a_long_derivation_keeps_its_latest_steps_within_st(tmp_path):
    earlier = "registered " + "x" * 2000 + " the latest earlier step"
    volume = Volume(np.zeros((1, 4, 4), np.float32), tags={"DerivationDescription": earlier})
    ds = pydicom.dcmread(next(write_volume(volume, tmp_path / "out", description="denoised tv").iterdir()))
    text = ds.DerivationDescription
    assert len(text.encode("utf-8")) <= 1024 and text.startswith("...x")
    assert text.endswith("the latest earlier step; denoised tv")


def test_a_long_derivation_keeps_saying_the_noise_was_simulated(tmp_path):
    """The oldest steps are cut past ST's 1024 bytes, and a simulation is the oldest: a series
    derived after many steps lost it, and its SeriesDescription no longer said
    '(on simulated noise)'."""
    noise = "noise lowdose seed=7 dose=0.25 scan_relative=False i0=200000.0 electronic_noise=8.0"
    said = noise + "".join(f"; denoised tv weight {k} {'w' * 60}" for k in range(20))
    volume = Volume(np.zeros((1, 4, 4), np.float32), tags={"DerivationDescription": said})
    out = write_volume(volume, tmp_path / "out", description="denoised nl-means")
    ds = pydicom.dcmread(next(out.iterdir()))
    text = ds.DerivationDescription
    assert len(text.encode("utf-8")) <= 1024
    assert text.startswith(noise + "; ...") and text.endswith(f"weight 19 {'w' * 60}; denoised nl-means")
    assert ds.SeriesDescription == "denoised nl-means (on simulated noise)"
    again = write_volume(read_volume(out), tmp_path / "again", description="denoised tv")  # and after that
    assert pydicom.dcmread(next(again.iterdir())).SeriesDescription == "denoised tv (on simulated noise)"
    short = "noise lowdose seed=7; " + "; ".join(f"denoised {'v' * 40} {k}" for k in range(30))
    kept = pydicom.dcmread(next(write_volume(Volume(np.zeros((1, 4, 4), np.float32), tags={"DerivationDescription": short}),
                                             tmp_path / "short", description="denoised tv").iterdir()))
    assert kept.DerivationDescription.startswith("noise lowdose seed=7; ...")


def test_a_conversion_of_the_source_is_no_step_of_the_derivation(tmp_path):
    """A series exported from a NIfTI and then denoised said 'converted by denoisekit export
    from a NIfTI file; denoised tv': the conversion changed nothing worth saying."""
    said = "noise lowdose seed=0; converted by denoisekit export from a NIfTI file"
    volume = Volume(np.zeros((1, 4, 4), np.float32), tags={"DerivationDescription": said})
    ds = pydicom.dcmread(next(write_volume(volume, tmp_path / "out", description="denoised tv").iterdir()))
    assert ds.DerivationDescription == "noise lowdose seed=0; denoised tv"


def test_the_label_says_where_noise_was_simulated():
    """A PACS lists series by SeriesDescription: a denoised simulated low dose beside the
    patient's scan read as the scan denoised, and 'noise lowdose dose=0.25' as a real low-dose
    acquisition (new-user pass)."""
    from denoisekit.io.dicom_write import series_label

    noise = "noise lowdose seed=7 dose=0.25 scan_relative=False i0=200000.0 electronic_noise=8.0"
    assert series_label(noise) == "simulated noise lowdose seed=7 dose=0.25 scan_relative=False"
    assert series_label(f"{noise}; denoised tv") == "denoised tv (on simulated noise)"
    assert series_label("denoised tv", source=noise) == "denoised tv (on simulated noise)"
    long = "denoised residual-mul strength auto 1.00 weights run-2024/best.weights.h5"
    label = series_label(long, source=noise)
    assert label == "denoised residual-mul strength auto 1.00 (on simulated noise)" and len(label) <= 64
    assert series_label("denoised tv", source="Lossy compression") == "denoised tv"
    assert series_label("converted by denoisekit export from a NIfTI file") == "converted by denoisekit export from a NIfTI file"


def test_each_slice_goes_where_its_source_slice_was(make_series, tmp_path):
    """A regular stack's grid comes from its first slice and mean spacing: a derived series
    moved a jittered scan's slices by up to 0.025 mm (IPP -296.7 for the scan's -296.696; code
    review). Now each slice is written at its source's own position, unless the volume's
    geometry no longer agrees with them (a caller changed it: the grid's then)."""
    from dataclasses import replace

    offsets = np.arange(6) * 2.5 + np.array([0.0, 0.004, -0.003, 0.002, -0.004, 0.0])  # regular within 1%
    series = make_series(shape=(6, 8, 8), offsets=offsets, origin=(-12.0, -11.0, -296.696))
    volume = read_volume(series.path)
    assert "SlicePositions" not in volume.tags  # read as a regular stack
    source = sorted(float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in series.files)
    out = write_volume(volume.derive(volume.array, "denoised tv"), tmp_path / "out")
    written = sorted(float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in out.iterdir())
    assert written == source
    assert float(pydicom.dcmread(next(out.iterdir())).SpacingBetweenSlices) == pytest.approx(volume.spacing[2])
    moved = replace(volume, origin=(volume.origin[0], volume.origin[1], volume.origin[2] + 1.0))  # stale positions
    out = write_volume(moved.derive(moved.array, "denoised tv"), tmp_path / "moved")
    written = sorted(float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in out.iterdir())
    assert written == pytest.approx([moved.slice_origin(k)[2] for k in range(6)], abs=1e-6)


def test_a_series_derived_from_lossy_pixels_says_so(real_ct, make_series, tmp_path):
    """PS3.3 C.7.6.1.1.5: once LossyImageCompression is 01 an image and all derived from it stay
    01. A series derived from a 338:1 JPEG 2000 scan dropped it (new-user pass)."""
    source = read_volume(real_ct("693_J2KI.dcm"))
    out = write_volume(source.derive(source.array, "denoised tv"), tmp_path / "out", note=lambda m: None)
    ds = pydicom.dcmread(next(out.iterdir()))
    assert ds.LossyImageCompression == "01"
    assert float(ds.LossyImageCompressionRatio) == pytest.approx(338.687, abs=1e-3)
    assert ds.LossyImageCompressionMethod == "ISO_15444_1"  # the file's transfer syntax: it named none
    lossless = read_volume(real_ct("693_J2KR.dcm"))
    out = write_volume(lossless.derive(lossless.array, "denoised tv"), tmp_path / "lossless", note=lambda m: None)
    assert "LossyImageCompression" not in pydicom.dcmread(next(out.iterdir()))
    # a transfer syntax that is always lossy says so even where the file does not
    series = make_series(shape=(2, 8, 8))
    ds = pydicom.dcmread(series.files[1])
    from pydicom.encaps import encapsulate

    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.50"
    ds.PixelData = encapsulate([b"\xff\xd8\xff\xd9"])  # headers only are read: the pixels are never decoded
    ds.save_as(series.files[1], enforce_file_format=True)
    tags = read_volume(series.path, pixels=False).tags
    assert tags["LossyImageCompression"] == "01" and tags["LossyImageCompressionMethod"] == ["ISO_10918_1"]


def test_copied_values_keep_the_series_valid_and_true(make_series, tmp_path):
    """From a code review: a backslash in a description split SeriesDescription (LO) into three
    values; BurnedInAnnotation was always NO, even from a source that said YES; a centre
    copied without its width failed the VOI LUT module."""
    from denoisekit.io.dicom_write import series_label

    assert series_label(r"denoised by RED-CNN weights C:\models\redcnn.pt") == "denoised by RED-CNN weights C:/models/redcnn.pt"
    series = make_series(shape=(1, 8, 8), BurnedInAnnotation="YES", WindowCenter="-600")
    out = write_volume(read_volume(series.path), tmp_path / "out", description=r"denoised by x C:\w.pt",
                       note=lambda m: None)
    ds = pydicom.dcmread(next(out.iterdir()))
    assert ds.BurnedInAnnotation == "YES" and ds["SeriesDescription"].VM == 1
    assert (ds.WindowCenter, ds.WindowWidth) == (40, 400)  # the source's half window: the default pair instead
    plain = make_series(shape=(1, 8, 8), WindowCenter=["-600", "40"], WindowWidth=["1500", "400"])
    ds = pydicom.dcmread(next(write_volume(read_volume(plain.path), tmp_path / "plain").iterdir()))
    assert "BurnedInAnnotation" not in ds  # unsaid: not claimed NO
    assert list(ds.WindowCenter) == [-600, 40] and list(ds.WindowWidth) == [1500, 400]
    if shutil.which("dciodvfy"):
        for path in (next((tmp_path / "out").iterdir()), next((tmp_path / "plain").iterdir())):
            result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
            assert not [l for l in (result.stdout + result.stderr).splitlines() if l.startswith("Error")]


def test_an_enhanced_ct_s_window_is_kept(real_ct, tmp_path):
    """An Enhanced CT keeps its window in the Frame VOI LUT functional group, which was not read."""
    source = pydicom.dcmread(real_ct("eCT_Supplemental.dcm"))
    shared = source.SharedFunctionalGroupsSequence[0]
    for group in [shared, *source.PerFrameFunctionalGroupsSequence]:
        if "FrameVOILUTSequence" in group:
            del group.FrameVOILUTSequence
    voi = pydicom.Dataset()
    voi.WindowCenter, voi.WindowWidth = "-600", "1500"
    shared.FrameVOILUTSequence = pydicom.Sequence([voi])
    for keyword in ("WindowCenter", "WindowWidth"):
        source.pop(keyword, None)
    path = tmp_path / "ect.dcm"
    source.save_as(path)
    volume = read_volume(path, note=lambda m: None)
    assert (volume.tags["WindowCenter"], volume.tags["WindowWidth"]) == (-600.0, 1500.0)
    ds = pydicom.dcmread(next(write_volume(volume, tmp_path / "out", note=lambda m: None).iterdir()))
    assert (float(ds.WindowCenter), float(ds.WindowWidth)) == (-600.0, 1500.0)
