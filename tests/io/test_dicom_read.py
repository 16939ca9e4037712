"""Reading DICOM: real CT from pydicom/pydicom-data and synthetic series whose HU and
geometry are known exactly."""

import shutil
import tracemalloc

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_modality_lut

from denoisekit.errors import DenoiseKitError
from denoisekit.io import read_volume


def _hu(path):
    ds = pydicom.dcmread(path)
    return apply_modality_lut(ds.pixel_array, ds).astype(np.float32)


def _assert_matches(volume, series, tol=1e-6):
    np.testing.assert_array_equal(volume.array, series.hu)
    assert volume.spacing == pytest.approx(series.spacing, abs=tol)
    assert volume.origin == pytest.approx(series.origin, abs=1e-5)
    assert volume.direction == pytest.approx(series.direction, abs=1e-7)


# -- real CT -----------------------------------------------------------------------------


def test_ct_small_hu_and_geometry(real_ct):
    path = real_ct("CT_small.dcm")
    ds = pydicom.dcmread(path)
    volume = read_volume(path)
    assert volume.shape == (1, 128, 128)
    np.testing.assert_array_equal(volume.array[0], _hu(path))
    assert volume.array.dtype == np.float32
    assert volume.origin == pytest.approx([float(v) for v in ds.ImagePositionPatient])
    assert volume.spacing[:2] == pytest.approx((float(ds.PixelSpacing[1]), float(ds.PixelSpacing[0])))
    assert volume.tags["StudyInstanceUID"] == ds.StudyInstanceUID
    assert volume.tags["PatientName"] == str(ds.PatientName)
    assert volume.tags["SourceImages"] == [[ds.SOPClassUID, ds.SOPInstanceUID, None]]
    assert volume.tags["TubeCurrents"] == [170.0]  # its XRayTubeCurrent, mA


def test_real_512_slice_and_its_lossless_jpeg2000_copy_agree(real_ct):
    reference = read_volume(real_ct("693_UNCR.dcm"))
    assert reference.shape == (1, 512, 512)
    np.testing.assert_array_equal(reference.array[0], _hu(real_ct("693_UNCR.dcm")))
    assert reference.array.min() == -3024  # unsigned stored values with intercept -1024
    other = read_volume(real_ct("693_J2KR.dcm"))
    np.testing.assert_array_equal(other.array, reference.array)
    assert other.origin == reference.origin and other.spacing == reference.spacing


def test_real_jpeg_lossless_ct(real_ct):
    import warnings

    path = real_ct("bad_sequence.dcm")  # CT, JPEG Lossless SV1, with malformed (hash) UIDs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        volume = read_volume(path)
    np.testing.assert_array_equal(volume.array[0], _hu(path))
    # no raw pydicom warning per malformed UID: writing a derived series notes them once
    assert not [w for w in caught if "Invalid value for VR" in str(w.message)]


def test_enhanced_ct_multiframe_uses_functional_groups(real_ct):
    path = real_ct("eCT_Supplemental.dcm")
    ds = pydicom.dcmread(path)
    volume = read_volume(path)
    frames = ds.pixel_array.astype(np.float32) - 1024.0  # shared group: intercept -1024, slope 1
    # orientation (-1,0,0, 0,1,0): the normal is -z, so frame 2 (z=-149) comes first
    np.testing.assert_array_equal(volume.array, frames[::-1])
    assert volume.origin == pytest.approx((99.5, -301.5, -149.0))
    assert volume.spacing == pytest.approx((0.388672, 0.388672, 10.0))
    assert volume.direction == pytest.approx((-1, 0, 0, 0, 1, 0, 0, 0, -1))
    assert volume.tags["SourceImages"][0][2] == 2
    assert "TubeCurrents" not in volume.tags  # a frame's current lies in its functional groups: not read


def test_values_that_are_not_hu_are_said_so(real_ct):
    notes = []
    read_volume(real_ct("eCT_Supplemental.dcm"), note=notes.append)  # a cerebral blood flow map
    assert len(notes) == 1 and "not Hounsfield units (RescaleType 'US'" in notes[0] and "PERFUSION" in notes[0]
    for name in ("693_UNCR.dcm", "CT_small.dcm", "bad_sequence.dcm"):  # CT in HU (RescaleType absent or HU)
        read_volume(real_ct(name), note=notes.append)
    assert len(notes) == 1


# -- synthetic series ----------------------------------------------------------------------


def test_shuffled_names_reversed_instances_descending_positions(make_series):
    series = make_series(shuffle_names=True, reverse_instance=True, descending=True)
    _assert_matches(read_volume(series.path), series)


def _rotation(about_x, about_z):
    a, b = np.radians(about_x), np.radians(about_z)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    return rx @ rz


def test_oblique_orientation(make_series):
    r = _rotation(25, 20)
    series = make_series(orientation=tuple(r[:, 0]) + tuple(r[:, 1]), shape=(4, 24, 32))
    volume = read_volume(series.path)
    _assert_matches(volume, series, tol=1e-5)
    assert volume.shape == (4, 24, 32)


def test_flipped_normal_orders_top_down(make_series):
    series = make_series(orientation=(-1, 0, 0, 0, 1, 0))
    volume = read_volume(series.path)
    _assert_matches(volume, series)
    assert volume.direction[8] == -1.0


def test_unsigned_pixels_with_intercept(make_series):
    series = make_series(unsigned=True, intercept=-1024.0)
    volume = read_volume(series.path)
    _assert_matches(volume, series)
    assert volume.array.min() >= -1024


def test_rescale_slope(make_series):
    series = make_series(slope=0.5, intercept=-1000.0)
    _assert_matches(read_volume(series.path), series)


def test_slices_without_their_rescale_are_said_to_be(make_series):
    """RescaleIntercept is type 1 in a CT image; without it the stored values (air near 0)
    were read as HU with nothing said, where a NIfTI of the same values had a note (new-user
    pass)."""
    series = make_series(unsigned=True, intercept=-1024.0)
    notes = []
    read_volume(series.path, note=notes.append)
    assert not any("RescaleIntercept" in n for n in notes)
    for path in series.files[:3]:
        ds = pydicom.dcmread(path)
        del ds.RescaleIntercept, ds.RescaleSlope
        ds.save_as(path)
    volume = read_volume(series.path, note=notes.append)
    assert volume.array[:3].min() >= 0 > volume.array[3:].min()  # read as stored: said, not guessed
    said = [n for n in notes if "RescaleIntercept" in n]
    assert len(said) == 1 and "3 of 5 slice(s) have no RescaleIntercept" in said[0]
    assert "CT stored without its rescale" not in said[0]  # the other slices hold HU: -1024 and below
    for path in series.files:
        ds = pydicom.dcmread(path)
        ds.pop("RescaleIntercept", None)
        ds.pop("RescaleSlope", None)
        ds.save_as(path)
    notes.clear()
    read_volume(series.path, note=notes.append)
    assert any("5 of 5 slice(s)" in n and "CT stored without its rescale (HU = value - 1024)" in n for n in notes)


def test_recursive_search_and_non_dicom_files_skipped_with_a_note(make_series, tmp_path):
    root = tmp_path / "study"
    series = make_series(root / "a" / "b")
    (root / "README.txt").write_text("not dicom")
    (root / "params.json").write_text("{}")
    notes = []
    _assert_matches(read_volume(root, note=notes.append), series)
    assert any("2 file(s) that are not DICOM" in n for n in notes)


def _without_preamble(source, path, encoding):
    """``source`` written from byte 0, without preamble and 'DICM' (ACR-NEMA style, some PACS
    exports): dataset only (implicit or explicit VR, big endian), or the file meta group first."""
    import copy

    ds = copy.deepcopy(pydicom.dcmread(source))
    ds.preamble = None
    if encoding == "file meta first":
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        pydicom.dcmwrite(path, ds, enforce_file_format=False)
    else:
        big = encoding == "big endian"
        if big:  # pydicom writes the pixel bytes as they are
            ds.PixelData = ds.pixel_array.astype(ds.pixel_array.dtype.newbyteorder(">")).tobytes()
        del ds.file_meta
        pydicom.dcmwrite(path, ds, enforce_file_format=False, implicit_vr=encoding == "implicit VR",
                         little_endian=not big)
    assert path.read_bytes()[128:132] != b"DICM"
    return path


@pytest.mark.parametrize("encoding", ["implicit VR", "explicit VR", "big endian", "file meta first"])
def test_a_dataset_without_the_preamble_is_read(real_ct, tmp_path, encoding):
    original = read_volume(real_ct("CT_small.dcm"))
    (tmp_path / "export").mkdir()
    bare = _without_preamble(real_ct("CT_small.dcm"), tmp_path / "export" / "IM0001", encoding)
    for path in (bare, bare.parent):  # the file alone, and found in a directory
        volume = read_volume(path)
        np.testing.assert_array_equal(volume.array, original.array)
        assert (volume.spacing, volume.origin, volume.direction) == (original.spacing, original.origin,
                                                                     original.direction)
        assert volume.tags["SOPClassUID"] == original.tags["SOPClassUID"]


def test_files_that_only_resemble_a_dataset_stay_not_dicom(real_ct, tmp_path):
    import SimpleITK as sitk

    (tmp_path / "export").mkdir()
    _without_preamble(real_ct("CT_small.dcm"), tmp_path / "export" / "IM0001", "implicit VR")
    junk = {
        "notes.txt": b"hello, not DICOM\n",
        "image.png": b"\x89PNG\r\n\x1a\n" + bytes(64),
        "chance.bin": b"\x08\x00\x05\x00" + bytes(64),  # a group 0008 tag, then nothing in order
        "short.bin": b"\x08\x00",
    }
    for name, data in junk.items():
        (tmp_path / "export" / name).write_bytes(data)
    sitk.WriteImage(sitk.Image(4, 4, sitk.sitkInt16), str(tmp_path / "export" / "scan.nii"))
    sitk.WriteImage(sitk.Image(4, 4, sitk.sitkInt16), str(tmp_path / "export" / "scan.nii.gz"))
    notes = []
    assert read_volume(tmp_path / "export", note=notes.append).shape == (1, 128, 128)
    assert any("6 file(s) that are not DICOM" in n for n in notes), notes
    for name in junk:
        with pytest.raises(DenoiseKitError, match="not a DICOM file"):
            read_volume(tmp_path / "export" / name)


def test_non_image_objects_are_skipped(make_series):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    series = make_series()
    sr = Dataset()
    sr.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    sr.SOPInstanceUID = generate_uid()
    sr.Modality = "SR"
    sr.SeriesInstanceUID = generate_uid()
    sr.file_meta = FileMetaDataset()
    sr.file_meta.MediaStorageSOPClassUID = sr.SOPClassUID
    sr.file_meta.MediaStorageSOPInstanceUID = sr.SOPInstanceUID
    sr.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    sr.save_as(series.path / "report.dcm", enforce_file_format=True)
    notes = []
    _assert_matches(read_volume(series.path, note=notes.append), series)
    assert any("1 SR" in n for n in notes)


def test_several_series_need_a_choice(make_series, tmp_path):
    shared = tmp_path / "mixed"
    first = make_series(shared, series_number=3, description="soft tissue", shape=(4, 16, 16))
    second = make_series(shared, series_number=7, description="lung", shape=(6, 16, 16), seed=1)
    with pytest.raises(DenoiseKitError) as info:
        read_volume(shared)
    message = str(info.value)
    assert first.series_uid in message and second.series_uid in message
    assert "'lung', 6 slices" in message and "--series" in message
    make_series(shared, series_number=8, description="scout", shape=(1, 16, 16), seed=2)
    with pytest.raises(DenoiseKitError, match="'scout', 1 slice\\)"):
        read_volume(shared)
    _assert_matches(read_volume(shared, "7"), second)
    _assert_matches(read_volume(shared, first.series_uid), first)
    with pytest.raises(DenoiseKitError, match="no series '9'"):
        read_volume(shared, "9")


def _with_tube_currents(series, current_of, **other):
    """Each file of ``series`` given XRayTubeCurrent ``current_of(k)`` (None: none), k its slice
    in the volume (the position along the normal), and ``other`` attributes per slice alike."""
    for path in series.files:
        ds = pydicom.dcmread(path)
        k = round((float(ds.ImagePositionPatient[2]) - series.origin[2]) / series.spacing[2])
        if current_of(k) is not None:
            ds.XRayTubeCurrent = current_of(k)
        for keyword, value_of in other.items():
            setattr(ds, keyword, value_of(k))
        ds.save_as(path)


def test_each_slices_tube_current_is_kept_in_slice_order(make_series):
    series = make_series(shape=(5, 16, 16), shuffle_names=True, reverse_instance=True, descending=True, KVP="120")
    _with_tube_currents(series, lambda k: 100 + 10 * k, ExposureTime=lambda k: 500)
    assert read_volume(series.path).tags["TubeCurrents"] == [100.0, 110.0, 120.0, 130.0, 140.0]


@pytest.mark.parametrize(
    "current_of, other",
    [
        (lambda k: None if k == 3 else 200, {}),  # one slice without
        (lambda k: 0 if k == 3 else 200, {}),  # or with none
        (lambda k: 200, {"KVP": lambda k: "100" if k == 3 else "120"}),  # another kV on one slice
        (lambda k: 200, {"ExposureTime": lambda k: 1000 if k == 3 else 500}),  # or another rotation time
    ],
    ids=["missing", "zero", "kv", "exposure-time"],
)
def test_no_tube_currents_unless_every_slice_has_one_at_one_kv(make_series, current_of, other):
    series = make_series(shape=(5, 16, 16), shuffle_names=True)
    _with_tube_currents(series, current_of, **other)
    assert "TubeCurrents" not in read_volume(series.path).tags


def test_a_copy_of_a_slice_is_read_once_with_a_note(make_series):
    """A file manager's copy (same SOPInstanceUID, same content) stopped the read with 'two
    slices share the position ... pick one series with --series', which --series could not fix."""
    series = make_series(shape=(5, 16, 16))
    original = series.files[2]
    for copy in ("IM0003 (1).dcm", "Copy of IM0003.dcm"):  # sorted by name, both come before the original
        shutil.copyfile(original, series.path / copy)
    notes = []
    _assert_matches(read_volume(series.path, note=notes.append), series)
    assert "skipped 2 duplicate file(s) of instances already read: Copy of IM0003.dcm, IM0003 (1).dcm" in notes
    _assert_matches(read_volume(series.path, series.series_uid), series)


def test_a_copy_of_a_real_ct_file_is_read_once(real_ct, tmp_path):
    shutil.copyfile(real_ct("CT_small.dcm"), tmp_path / "slice_03.dcm")
    shutil.copyfile(real_ct("CT_small.dcm"), tmp_path / "slice_03 (1).dcm")
    notes = []
    assert read_volume(tmp_path, note=notes.append).shape == (1, 128, 128)
    assert notes == ["skipped 1 duplicate file(s) of instances already read: slice_03 (1).dcm"]


@pytest.mark.parametrize("differ, change", [
    ("position", lambda ds: setattr(ds, "ImagePositionPatient", [0, 0, 99])),
    ("rescale", lambda ds: setattr(ds, "RescaleIntercept", "-1000")),
    ("pixel data length", lambda ds: setattr(ds, "PixelData", ds.PixelData[:-32])),
    ("pixel data", lambda ds: setattr(ds, "PixelData", bytes(len(ds.PixelData)))),  # same size, other pixels
], ids=["position", "rescale", "pixel-length", "pixels"])
def test_two_files_of_one_instance_that_differ_are_refused_naming_both(make_series, differ, change):
    series = make_series(shape=(5, 16, 16))
    original = series.files[2]
    ds = pydicom.dcmread(original)
    change(ds)
    ds.save_as(series.path / "IM0003 (1).dcm")
    with pytest.raises(DenoiseKitError) as info:
        read_volume(series.path)
    message = str(info.value)
    assert "\n" not in message and str(original) in message and str(series.path / "IM0003 (1).dcm") in message
    assert f"are one instance (SOPInstanceUID {ds.SOPInstanceUID}) but differ in {differ}:" in message


def test_a_conflict_in_another_series_does_not_stop_the_one_chosen(make_series, tmp_path):
    shared = tmp_path / "mixed"
    first = make_series(shared, series_number=2, shape=(3, 16, 16))
    second = make_series(shared, series_number=5, shape=(3, 16, 16), seed=2)
    ds = pydicom.dcmread(second.files[1])
    ds.ImagePositionPatient = [0, 0, 99]
    ds.save_as(shared / "clash.dcm")
    _assert_matches(read_volume(shared, "2"), first)
    with pytest.raises(DenoiseKitError, match="one instance .* but differ in position"):
        read_volume(shared, "5")


def test_an_instance_uid_reused_in_another_series_is_each_series_own_slice(make_series, tmp_path):
    shared = tmp_path / "mixed"
    first = make_series(shared, series_number=2, shape=(3, 16, 16))
    second = make_series(shared, series_number=5, shape=(3, 16, 16), seed=2)
    ds = pydicom.dcmread(second.files[1])
    ds.SOPInstanceUID = pydicom.dcmread(first.files[1]).SOPInstanceUID  # an exporter's UID clash
    ds.save_as(second.files[1])
    _assert_matches(read_volume(shared, "2"), first)
    _assert_matches(read_volume(shared, "5"), second)


def test_a_losslessly_recompressed_copy_is_a_copy(real_ct, tmp_path):
    from pydicom.uid import RLELossless

    ds = pydicom.dcmread(real_ct("CT_small.dcm"))
    ds.save_as(tmp_path / "slice.dcm")
    ds.compress(RLELossless, generate_instance_uid=False)  # a PACS keeps the instance UID
    ds.save_as(tmp_path / "slice (rle).dcm")
    notes = []
    assert read_volume(tmp_path, note=notes.append).shape == (1, 128, 128)
    assert notes == ["skipped 1 duplicate file(s) of instances already read: slice (rle).dcm"]


def test_an_edited_copy_with_the_same_pixels_is_still_a_copy(make_series):
    series = make_series(shape=(4, 16, 16))
    ds = pydicom.dcmread(series.files[1])
    ds.InstitutionName = "another name"  # tags edited, pixels as they were
    ds.save_as(series.path / "IM0002 (1).dcm")
    notes = []
    _assert_matches(read_volume(series.path, note=notes.append), series)
    assert any("duplicate" in n for n in notes)


def test_missing_slice_refused_or_allowed(make_series):
    series = make_series(shape=(6, 16, 16), drop=(3,))
    with pytest.raises(DenoiseKitError, match="missing"):
        read_volume(series.path)
    volume = read_volume(series.path, allow_irregular=True)
    np.testing.assert_array_equal(volume.array, series.hu)
    assert volume.spacing[2] == pytest.approx(12.5 / 4)


def test_gantry_tilt_refused_or_allowed(make_series):
    series = make_series(tilt=0.5)
    with pytest.raises(DenoiseKitError, match="gantry tilt"):
        read_volume(series.path)
    volume = read_volume(series.path, allow_tilt=True)
    np.testing.assert_array_equal(volume.array, series.hu)


def test_corrupt_file_is_named(make_series):
    series = make_series()
    bad = series.files[2]
    bad.write_bytes(bad.read_bytes()[:132] + b"\xff" * 40)
    with pytest.raises(DenoiseKitError, match=f"{bad.name} looks like DICOM but cannot be read"):
        read_volume(series.path)


def test_truncated_pixel_data_is_named(make_series):
    series = make_series()
    bad = series.files[2]
    bad.write_bytes(bad.read_bytes()[:-100])
    with pytest.raises(DenoiseKitError, match=f"{bad.name}"):
        read_volume(series.path)


def _ct_small_changed(tmp_path, change):
    """A copy of pydicom's CT_small.dcm (128 x 128 x 16 bits: 32768 bytes of pixels), changed."""
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    change(ds)
    path = tmp_path / "changed.dcm"
    ds.save_as(path)
    return path


@pytest.mark.parametrize("change, held, expected", [
    (lambda ds: setattr(ds, "PixelData", ds.PixelData + bytes(256)), 33024, 32768),
    (lambda ds: setattr(ds, "Rows", 64), 32768, 16384),
    (lambda ds: setattr(ds, "PixelData", ds.PixelData[:-256]), 32512, 32768),
    (lambda ds: setattr(ds, "Rows", 256), 32768, 65536),
], ids=["bytes beyond", "rows too few", "bytes missing", "rows too many"])
def test_pixel_data_of_another_length_than_the_header_says_is_refused(tmp_path, change, held, expected):
    path = _ct_small_changed(tmp_path, change)
    with pytest.raises(DenoiseKitError) as caught:
        read_volume(path)  # not silently read with the excess dropped, nor failing on a reshape
    message = str(caught.value)
    assert "\n" not in message and message.startswith(f"{path}: PixelData holds {held} bytes")
    assert f"make {expected};" in message and "image size is wrong" in message


def test_a_few_trailing_bytes_after_the_image_are_noted_and_dropped(tmp_path):
    """Less than a row or a column: no wrong Rows or Columns makes that, some writers do."""
    path = _ct_small_changed(tmp_path, lambda ds: setattr(ds, "PixelData", ds.PixelData + bytes(10)))
    notes = []
    volume = read_volume(path, note=notes.append)
    from pydicom.data import get_testdata_file

    np.testing.assert_array_equal(volume.array, read_volume(get_testdata_file("CT_small.dcm")).array)
    assert notes == [f"{path}: 10 bytes after the image's 32768 in PixelData are ignored"]


def test_a_file_cut_inside_its_pixel_data_says_so(tmp_path):
    path = _ct_small_changed(tmp_path, lambda ds: None)
    path.write_bytes(path.read_bytes()[:-2000])  # CT_small ends with 138 bytes of trailing padding
    with pytest.raises(DenoiseKitError, match=f"{path.name}: PixelData holds 30906 bytes .* file is truncated"):
        read_volume(path)


def test_the_pad_byte_of_an_odd_length_is_not_excess(tmp_path):
    def odd(ds):  # 127 x 127 x 8 bits: 16129 bytes, written with the one pad byte DICOM asks for
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        ds.Rows = ds.Columns = 127
        ds.PixelData = bytes(range(127)) * 127

    path = _ct_small_changed(tmp_path, odd)
    assert len(pydicom.dcmread(path).PixelData) == 16130
    volume = read_volume(path)
    assert volume.shape == (1, 127, 127)
    np.testing.assert_array_equal(volume.array[0], _hu(path))


def test_missing_pixel_data_is_refused(make_series):
    series = make_series()
    ds = pydicom.dcmread(series.files[1])
    del ds.PixelData
    ds.save_as(series.files[1])
    with pytest.raises(DenoiseKitError, match="no pixel data"):
        read_volume(series.path)


def test_mixed_slice_sizes_are_refused(make_series, tmp_path):
    series = make_series(shape=(3, 16, 16))
    other = make_series(shape=(3, 16, 20))
    ds = pydicom.dcmread(other.files[0])
    ds.SeriesInstanceUID = pydicom.dcmread(series.files[0]).SeriesInstanceUID
    ds.ImagePositionPatient = [0, 0, 500]
    ds.save_as(series.path / "odd.dcm")
    # which file is the stray one, in a folder of hundreds (new-user pass)
    with pytest.raises(DenoiseKitError, match=r"different sizes \(rows x columns\): 3 are 16x16, 1 is 16x20 \(.*odd.dcm\)"):
        read_volume(series.path)
    ds = pydicom.dcmread(series.path / "odd.dcm")
    ds.Columns, ds.PixelData = 16, pydicom.dcmread(series.files[0]).PixelData
    ds.PixelSpacing = [0.9, 0.9]
    ds.save_as(series.path / "odd.dcm")
    with pytest.raises(DenoiseKitError, match=r"different PixelSpacing: 3 are 0.7\\0.8 mm, 1 is 0.9\\0.9 mm \(.*odd.dcm\)"):
        read_volume(series.path)
    ds.PixelSpacing = pydicom.dcmread(series.files[0]).PixelSpacing
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # a scout not flagged LOCALIZER
    ds.save_as(series.path / "odd.dcm")
    with pytest.raises(DenoiseKitError, match=r"different orientations .*: 3 are \(1, 0, 0, 0, 1, 0\), 1 is \(1, 0, 0, 0, 0, -1\) \(.*odd.dcm\)"):
        read_volume(series.path)


def test_localizer_in_the_series_is_skipped(make_series):
    series = make_series(shape=(4, 16, 16))
    ds = pydicom.dcmread(series.files[0])
    ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.save_as(series.path / "scout.dcm")
    notes = []
    _assert_matches(read_volume(series.path, note=notes.append), series)
    assert any("localizer" in n for n in notes)


def test_empty_directory_and_missing_path(tmp_path):
    with pytest.raises(DenoiseKitError, match="empty"):
        read_volume(tmp_path)
    with pytest.raises(DenoiseKitError, match="does not exist"):
        read_volume(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DenoiseKitError, match="no DICOM images found"):
        read_volume(tmp_path)
    with pytest.raises(DenoiseKitError, match="not a DICOM file"):
        read_volume(tmp_path / "notes.txt")


@pytest.mark.parametrize("syntax", ["RLELossless", "JPEG2000Lossless", "DeflatedExplicitVRLittleEndian"])
def test_compressed_transfer_syntaxes(make_series, syntax):
    import pydicom.uid

    uid = getattr(pydicom.uid, syntax)
    series = make_series(shape=(3, 32, 32))  # openjpeg needs at least 32x32
    for path in series.files:
        ds = pydicom.dcmread(path)
        if uid.is_compressed:
            ds.compress(uid)
        else:
            ds.file_meta.TransferSyntaxUID = uid
        ds.save_as(path, enforce_file_format=True)
        assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == uid
    _assert_matches(read_volume(series.path), series)


def test_unsupported_transfer_syntax_is_named(make_series):
    from pydicom.encaps import encapsulate
    from pydicom.uid import MPEG2MPML

    series = make_series(shape=(2, 16, 16))
    ds = pydicom.dcmread(series.files[0])
    ds.PixelData = encapsulate([b"\x00\x00\x01\xb3" + b"\x00" * 60])
    ds.file_meta.TransferSyntaxUID = MPEG2MPML
    ds.save_as(series.files[0], enforce_file_format=True)
    with pytest.raises(DenoiseKitError, match="MPEG2"):
        read_volume(series.path)


def _peak_bytes(path):
    tracemalloc.start()
    try:
        read_volume(path)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_grows_by_one_volume_not_more(make_series):
    # per-slice buffers are constant; what grows with the slice count is the volume itself
    small, large = make_series(shape=(4, 256, 256)), make_series(shape=(12, 256, 256))
    growth = _peak_bytes(large.path) - _peak_bytes(small.path)
    volume_growth = 8 * 256 * 256 * 4
    assert growth < 1.25 * volume_growth, growth / volume_growth


def test_input_files_are_not_modified(make_series):
    series = make_series()
    before = {p: p.read_bytes() for p in series.files}
    read_volume(series.path)
    assert {p: p.read_bytes() for p in series.files} == before


@pytest.mark.parametrize("spacing", [(0.0, 0.7, 2.5), (-0.5, 0.5, 2.5)])
def test_a_pixel_spacing_that_is_no_size_is_refused(make_series, spacing):
    series = make_series(spacing=spacing)
    with pytest.raises(DenoiseKitError, match=r"PixelSpacing \[.*\] is not a size in mm"):
        read_volume(series.path)


def test_a_zero_rescale_slope_is_refused(make_series):
    series = make_series()
    ds = pydicom.dcmread(series.files[2])
    ds.RescaleSlope = 0
    ds.save_as(series.files[2])
    with pytest.raises(DenoiseKitError, match="RescaleSlope 0 and RescaleIntercept"):
        read_volume(series.path)


def test_a_nan_orientation_is_named_in_plain_numbers(make_series):
    series = make_series(shape=(1, 16, 16))
    ds = pydicom.dcmread(series.files[0])
    ds.ImageOrientationPatient = ["NaN", 0, 0, 0, 1, 0]
    ds.save_as(series.files[0])
    with pytest.raises(DenoiseKitError, match=r"must hold 6 numbers, got \[nan, 0.0, 0.0, 0.0, 1.0, 0.0\]$"):
        read_volume(series.path)


def test_a_series_that_is_not_ct_is_refused():
    from pydicom.data import get_testdata_file

    with pytest.raises(DenoiseKitError, match=r"is MR \(Modality\), not CT: denoisekit reads CT only"):
        read_volume(get_testdata_file("MR_small_RLE.dcm"))


def test_a_ct_image_labelled_with_another_modality_is_still_read(make_series):
    series = make_series(shape=(2, 16, 16))
    for f in series.files:  # cone-beam CT from a C-arm: CT Image Storage, Modality XA
        ds = pydicom.dcmread(f)
        ds.Modality = "XA"
        ds.save_as(f)
    np.testing.assert_array_equal(read_volume(series.path).array, series.hu)
