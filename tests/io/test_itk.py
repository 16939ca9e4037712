"""NIfTI/NRRD/MHA: our output equals SimpleITK's own conversion of the same series, and
dcm2niix's where installed."""

import re
import shutil
import subprocess

import numpy as np
import pytest
import SimpleITK as sitk

from denoisekit.io import read_volume, write_volume
from denoisekit.volume import Volume


def _itk_series(directory):
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(directory)))
    return reader.Execute()


@pytest.fixture
def oblique(make_series):
    c, s = np.cos(np.radians(12)), np.sin(np.radians(12))
    return make_series(orientation=(c, 0, -s, 0, 1, 0), shape=(6, 24, 32), descending=True, shuffle_names=True)


def test_nifti_equals_simpleitk_conversion(oblique, tmp_path):
    ours = write_volume(read_volume(oblique.path), tmp_path / "ours.nii.gz")
    theirs = tmp_path / "theirs.nii.gz"
    sitk.WriteImage(_itk_series(oblique.path), str(theirs))
    a, b = sitk.ReadImage(str(ours)), sitk.ReadImage(str(theirs))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(a), sitk.GetArrayFromImage(b).astype(np.float32))
    assert a.GetOrigin() == pytest.approx(b.GetOrigin(), abs=1e-4)
    assert a.GetSpacing() == pytest.approx(b.GetSpacing(), abs=1e-5)
    assert a.GetDirection() == pytest.approx(b.GetDirection(), abs=1e-5)


@pytest.mark.parametrize("source", ["oblique", "CT_small.dcm", "693_J2KR.dcm"])
def test_nifti_matches_dcm2niix(oblique, real_ct, tmp_path, source):
    if shutil.which("dcm2niix") is None:
        pytest.skip("dcm2niix is not installed")
    if source == "oblique":
        folder = oblique.path
    else:  # real CT (a JPEG 2000 one among them): dcm2niix converts a folder
        folder = tmp_path / "series"
        folder.mkdir()
        shutil.copy(real_ct(source), folder)
    out = tmp_path / "dcm2niix"
    out.mkdir()
    subprocess.run(["dcm2niix", "-z", "y", "-f", "conv", "-o", str(out), str(folder)],
                   check=True, capture_output=True)
    theirs = sitk.ReadImage(str(out / "conv.nii.gz"))
    ours = sitk.ReadImage(str(write_volume(read_volume(folder), tmp_path / "ours.nii.gz")))
    # dcm2niix may store the voxels in another order; compare in physical space
    resampled = sitk.Resample(theirs, ours, sitk.Transform(), sitk.sitkNearestNeighbor, -5000.0, sitk.sitkFloat32)
    np.testing.assert_allclose(sitk.GetArrayFromImage(resampled), sitk.GetArrayFromImage(ours), atol=0.5)
    corner = theirs.TransformIndexToPhysicalPoint((0, 0, 0))
    index = ours.TransformPhysicalPointToContinuousIndex(corner)
    assert all(abs(i - round(i)) < 1e-3 for i in index)


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".mha"])
def test_round_trip_keeps_geometry_and_values(tmp_path, suffix):
    rng = np.random.default_rng(0)
    c, s = np.cos(0.3), np.sin(0.3)
    volume = Volume(rng.normal(0, 500, (4, 8, 10)).astype(np.float32), spacing=(0.7, 0.8, 2.0),
                    origin=(1.0, -2.0, 3.0), direction=(c, -s, 0, s, c, 0, 0, 0, 1))
    back = read_volume(write_volume(volume, tmp_path / f"v{suffix}"))
    np.testing.assert_array_equal(back.array, volume.array)
    assert back.spacing == pytest.approx(volume.spacing)
    assert back.origin == pytest.approx(volume.origin, abs=1e-5)
    assert back.direction == pytest.approx(volume.direction, abs=1e-6)
    assert back.tags == {}


def test_two_dimensional_image_becomes_one_slice(tmp_path):
    image = sitk.GetImageFromArray(np.arange(12, dtype=np.int16).reshape(3, 4))
    image.SetSpacing((0.5, 0.25))
    sitk.WriteImage(image, str(tmp_path / "flat.nrrd"))
    volume = read_volume(tmp_path / "flat.nrrd")
    assert volume.shape == (1, 3, 4) and volume.spacing[:2] == (0.5, 0.25)


@pytest.mark.parametrize("suffix", [".mha", ".nrrd", ".nii", ".nii.gz"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_voxels_are_refused(tmp_path, bad, dtype, suffix):
    from denoisekit.errors import DenoiseKitError

    array = np.zeros((3, 8, 8), dtype=dtype)
    array[1, 2, 3] = bad
    array[2, 7, 7] = -bad
    sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / f"bad{suffix}"))
    # SimpleITK reads NIfTI's NaN and inf as 0 (water): the file itself is checked
    with pytest.raises(DenoiseKitError, match=f"bad{suffix} holds 2 NaN or infinite voxel"):
        read_volume(tmp_path / f"bad{suffix}")


def test_finite_and_integer_nifti_read(tmp_path):
    from denoisekit.io.itk import nifti_voxels

    for dtype in (np.int16, np.float32):
        array = np.arange(3 * 8 * 8).reshape(3, 8, 8).astype(dtype) - 500
        sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / "ok.nii.gz"))
        assert nifti_voxels(tmp_path / "ok.nii.gz") == (array.nbytes, array.nbytes, 0, "")
        np.testing.assert_array_equal(read_volume(tmp_path / "ok.nii.gz").array, array)
        (tmp_path / "ok.nii.gz").unlink()


@pytest.mark.parametrize("suffix", [".nii.gz", ".nrrd"])
def test_description_goes_into_the_header(tmp_path, suffix):
    volume = Volume(np.zeros((2, 4, 4), dtype=np.float32))
    path = write_volume(volume, tmp_path / f"d{suffix}", description="denoised tv strength auto 0.84 " + "x" * 80)
    notes = sitk.ReadImage(str(path)).GetMetaData("ITK_FileNotes")
    assert notes.startswith("denoised tv strength auto 0.84 xxx") and len(notes) == 79  # one long word: cut
    said = "noise lowdose seed=0 dose=0.25 scan_relative=True i0=200000.0 electronic_noise=8.0 views=720"
    path = write_volume(volume, tmp_path / f"n{suffix}", description=said)
    notes = sitk.ReadImage(str(path)).GetMetaData("ITK_FileNotes")
    assert notes == "noise lowdose seed=0 dose=0.25 scan_relative=True i0=200000.0"  # not "electronic_noise="


def test_description_in_any_script_is_cut_by_bytes(tmp_path):
    volume = Volume(np.zeros((1, 4, 4), dtype=np.float32))
    name = "Компьютерная_томография_головы" * 2  # 2 bytes a letter: 60 characters, 114 bytes
    path = write_volume(volume, tmp_path / "d.nii.gz", description=f"converted {name}")
    notes = sitk.ReadImage(str(path)).GetMetaData("ITK_FileNotes")
    assert notes.startswith("converted Компьютерная") and len(notes.encode()) <= 79


def _constant(value, slices, z_spacing):
    image = sitk.GetImageFromArray(np.full((slices, 8, 8), value, dtype=np.float32))
    image.SetSpacing((1.0, 1.0, z_spacing))
    return image


@pytest.mark.parametrize("kind", ["file", "directory"])
@pytest.mark.parametrize("name, sibling", [("scan.nii.gz", "scan.nii"), ("SCAN.NII.GZ", "SCAN.NII")])
def test_nifti_is_read_alone_beside_a_same_named_nii(tmp_path, name, sibling, kind):
    # SimpleITK's NIfTI reader takes scan.nii.gz's voxels from scan.nii (zeros from a directory)
    sitk.WriteImage(_constant(100.0, 3, 3.0), str(tmp_path / "w.nii.gz"))
    (tmp_path / "w.nii.gz").rename(tmp_path / name)
    if kind == "file":
        sitk.WriteImage(_constant(-500.0, 4, 1.0), str(tmp_path / "other.nii"))
        (tmp_path / "other.nii").rename(tmp_path / sibling)
    else:
        (tmp_path / sibling).mkdir()
    volume = read_volume(tmp_path / name)
    assert volume.shape == (3, 8, 8) and volume.spacing[2] == 3.0
    assert np.all(volume.array == 100.0)
    assert volume.source == str(tmp_path / name)


def test_a_clashing_sibling_is_refused_when_no_link_can_be_made(tmp_path, monkeypatch):
    import tempfile

    from denoisekit.errors import DenoiseKitError

    sitk.WriteImage(_constant(100.0, 3, 3.0), str(tmp_path / "scan.nii.gz"))
    (tmp_path / "scan.nii").mkdir()
    not_a_directory = tmp_path / "tmp-is-a-file"
    not_a_directory.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_directory))  # no private directory for a link
    with pytest.raises(DenoiseKitError, match=r"scan.nii.gz: SimpleITK would take its voxels from scan.nii beside"):
        read_volume(tmp_path / "scan.nii.gz")


@pytest.mark.parametrize("name, written", [("a.MHA", "w.mha"), ("a.Mhd", "w.mhd"), ("a.NRRD", "w.nrrd"),
                                           ("a.NII", "w.nii"), ("a.Nii.Gz", "w.nii.gz")])
def test_suffix_in_any_case_is_read(tmp_path, name, written):
    sitk.WriteImage(_constant(70.0, 2, 2.5), str(tmp_path / written))  # .mhd: its header names w.zraw
    (tmp_path / written).rename(tmp_path / name)
    volume = read_volume(tmp_path / name)
    assert volume.shape == (2, 8, 8) and volume.spacing[2] == 2.5 and np.all(volume.array == 70.0)


def test_read_error_gives_the_reason_on_one_line(tmp_path):
    from denoisekit.errors import DenoiseKitError

    (tmp_path / "odd.mha").write_text("NDims = 3\nDimSize = 4 4 4\nElementType = MET_ODD\nElementDataFile = LOCAL\n"
                                      + "x" * 256)
    with pytest.raises(DenoiseKitError) as err:
        read_volume(tmp_path / "odd.mha")
    message = str(err.value)
    assert message.startswith(f"cannot read {tmp_path / 'odd.mha'}: ") and "\n" not in message
    assert "Exception thrown" not in message and ".cxx" not in message and "0x" not in message


def test_an_uncompressed_nifti_named_nii_gz_still_reads(tmp_path):
    array = np.arange(2 * 4 * 4, dtype=np.float32).reshape(2, 4, 4) - 100
    sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / "plain.nii"))
    (tmp_path / "plain.nii").rename(tmp_path / "misnamed.nii.gz")  # SimpleITK reads it; so must we
    np.testing.assert_array_equal(read_volume(tmp_path / "misnamed.nii.gz").array, array)


def _gzipped_as_nii(tmp_path, name="scan.nii"):
    import gzip

    array = np.arange(30 * 64 * 64, dtype=np.int16).reshape(30, 64, 64) % 3000 - 1000
    sitk.WriteImage(sitk.GetImageFromArray(array), str(tmp_path / "plain.nii"))
    # these bytes make SimpleITK's NIfTI reader print '** ERROR: ... bad dim[0]' when it fails
    (tmp_path / name).write_bytes(gzip.compress((tmp_path / "plain.nii").read_bytes(), mtime=0))
    (tmp_path / "plain.nii").unlink()
    return tmp_path / name, array


@pytest.mark.parametrize("name", ["scan.nii", "SCAN.NII"])
def test_a_gzipped_nifti_named_nii_is_read_without_raw_itk_output(tmp_path, capfd, name):
    path, array = _gzipped_as_nii(tmp_path, name)
    np.testing.assert_array_equal(read_volume(path).array, array)
    assert capfd.readouterr().err == ""


def test_a_gzipped_nii_is_refused_in_one_line_when_no_link_can_be_made(tmp_path, monkeypatch):
    import tempfile

    from denoisekit.errors import DenoiseKitError

    path, _ = _gzipped_as_nii(tmp_path)
    not_a_directory = tmp_path / "tmp-is-a-file"
    not_a_directory.write_text("")
    monkeypatch.setattr(tempfile, "tempdir", str(not_a_directory))  # no private directory for a link
    with pytest.raises(DenoiseKitError, match=r"scan.nii is gzip-compressed; name it scan.nii.gz"):
        read_volume(path)


def test_a_file_that_is_no_nifti_gives_one_line_and_no_raw_itk_output(tmp_path, capfd):
    from denoisekit.errors import DenoiseKitError

    (tmp_path / "notes.nii").write_text("hello world\n" * 50)
    with pytest.raises(DenoiseKitError, match=r"^cannot read .*notes.nii: .*not recognized as a NIFTI file$"):
        read_volume(tmp_path / "notes.nii")
    assert capfd.readouterr().err == ""


def test_itk_warnings_become_one_note_each_for_the_caller(tmp_path, capfd, caplog):
    import struct

    image = _constant(40.0, 2, 2.0)
    image[0, 0, 0] = -1000.0  # air: CT in HU, whose values get no note
    sitk.WriteImage(image, str(tmp_path / "w.nii"))
    header = bytearray((tmp_path / "w.nii").read_bytes())
    header[280:328] = struct.pack("<12f", 1, 0.5, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0)  # a sheared sform: ITK uses the qform
    (tmp_path / "w.nii").write_bytes(bytes(header))
    notes = []
    volume = read_volume(tmp_path / "w.nii", note=notes.append)  # the caller's notes: --json, --quiet
    assert volume.array[0, 0, 0] == -1000.0 and np.count_nonzero(volume.array == 40.0) == volume.array.size - 1
    assert capfd.readouterr().err == ""
    assert notes == [f"w.nii: {tmp_path / 'w.nii'} has unexpected scales in sform"]
    with caplog.at_level("WARNING", logger="denoisekit.io"):  # no note callback: the logger
        read_volume(tmp_path / "w.nii")
    assert [r.getMessage() for r in caplog.records] == notes


def _ct(dtype=np.int16, shape=(6, 32, 32)):
    rng = np.random.default_rng(3)
    return (rng.normal(40, 300, shape) - 200).astype(dtype)


def _written(tmp_path, suffix, array, compress=True):
    """``array`` written by SimpleITK as ``v{suffix}``, and the file holding its voxels."""
    path = tmp_path / f"v{suffix}"
    sitk.WriteImage(sitk.GetImageFromArray(array), str(path), useCompression=compress)
    data = [f for f in tmp_path.iterdir() if f.name != path.name and f.name.startswith("v.")]
    return path, data[0] if data else path


def _cut(path, keep):
    path.write_bytes(path.read_bytes()[:keep])


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz"])
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_a_truncated_nifti_is_refused_in_one_line(tmp_path, suffix, dtype):
    from denoisekit.errors import DenoiseKitError

    array = _ct(dtype)
    path, _ = _written(tmp_path, suffix, array)
    _cut(path, path.stat().st_size // 2)  # SimpleITK reads it, the lost half as 0 HU
    with pytest.raises(DenoiseKitError) as err:
        read_volume(path)
    expected = f"{path} is truncated: expected {array.nbytes} bytes of voxel data, found "
    assert str(err.value).startswith(expected) and "\n" not in str(err.value)
    assert 0 < int(str(err.value)[len(expected):]) < array.nbytes / 2 + 1000


def test_a_truncated_nifti_stops_the_command(tmp_path):
    from typer.testing import CliRunner

    from denoisekit.cli import get_app

    path, _ = _written(tmp_path, ".nii.gz", _ct())
    _cut(path, path.stat().st_size - 100)
    result = CliRunner().invoke(get_app(), ["export", str(path), "-o", str(tmp_path / "out.nii.gz")])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {path} is truncated: expected 12288 bytes of voxel data, found ")
    assert result.stderr.count("\n") == 1 and not (tmp_path / "out.nii.gz").exists()


@pytest.mark.parametrize("damage, says", [
    ("trailer", r"is truncated: its gzip stream stops before its checksum \(expected 12288 bytes of voxel data, "
                r"found 12288\)$"),
    ("zeros", r"is (truncated|corrupt): "),  # which depends on how the zeros decode
    ("flipped", r"is corrupt: its gzip stream fails \(.+\); expected 12288 bytes of voxel data, found \d+$"),
])
def test_a_damaged_gzip_nifti_is_refused(tmp_path, damage, says):
    from denoisekit.errors import DenoiseKitError

    path, _ = _written(tmp_path, ".nii.gz", _ct())
    data = bytearray(path.read_bytes())
    if damage == "trailer":
        data = data[:-3]  # the voxels are whole (SimpleITK reads them), their checksum is not
    elif damage == "zeros":  # an interrupted download into a preallocated file: SimpleITK reads garbage
        data[len(data) // 2:] = bytes(len(data) - len(data) // 2)
    else:
        data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))
    with pytest.raises(DenoiseKitError, match=f"^{re.escape(str(path))} {says}"):
        read_volume(path)


@pytest.mark.parametrize("suffix, compress, data_file", [
    (".mha", False, ""), (".mhd", False, " in v.raw"), (".nrrd", False, ""), (".nhdr", False, " in v.raw"),
    (".mha", True, ""), (".mhd", True, " in v.zraw"), (".nrrd", True, ""), (".nhdr", True, " in v.raw.gz"),
])
def test_truncated_metaimage_and_nrrd_say_so(tmp_path, suffix, compress, data_file):
    # SimpleITK refuses them, but for MetaImage with a stale errno ('No such file or directory')
    from denoisekit.errors import DenoiseKitError

    array = _ct()
    path, data = _written(tmp_path, suffix, array, compress)
    _cut(data, data.stat().st_size - 100)
    with pytest.raises(DenoiseKitError) as err:
        read_volume(path)
    message = str(err.value)
    expected, kind = array.nbytes, ""
    if compress and suffix in (".mha", ".mhd"):  # MetaImage counts the compressed bytes
        expected, kind = int(re.search(r"CompressedDataSize = (\d+)", path.read_text("latin-1"))[1]), "compressed "
    prefix = f"{path} is truncated: expected {expected} bytes of {kind}voxel data{data_file}, found "
    assert message.startswith(prefix) and "\n" not in message
    assert 0 < int(message[len(prefix):]) < expected


@pytest.mark.parametrize("suffix", [".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd"])
@pytest.mark.parametrize("dtype", [np.int16, np.float32])
@pytest.mark.parametrize("compress", [False, True])
def test_whole_files_read_as_simpleitk_reads_them(tmp_path, suffix, dtype, compress):
    array = _ct(dtype)
    path, _ = _written(tmp_path, suffix, array, compress)
    np.testing.assert_array_equal(read_volume(path).array, array.astype(np.float32))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(sitk.ReadImage(str(path))), array)


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_unusual_whole_niftis_are_read(tmp_path, dtype):
    import gzip
    import struct

    array = _ct(dtype)
    path, _ = _written(tmp_path, ".nii", array)
    plain = path.read_bytes()
    # several gzip members (as bgzip writes), then bytes gzip tools ignore: SimpleITK reads it
    members = b"".join(gzip.compress(plain[i: i + 5000]) for i in range(0, len(plain), 5000))
    (tmp_path / "members.nii.gz").write_bytes(members + b"\0" * 64)
    # voxels past a 352-byte header (extensions), uncompressed and gzipped
    header = bytearray(plain[:352])
    struct.pack_into("<f", header, 108, 416.0)
    (tmp_path / "later.nii").write_bytes(bytes(header) + bytes(64) + plain[352:])
    (tmp_path / "later.nii.gz").write_bytes(gzip.compress((tmp_path / "later.nii").read_bytes()))
    for name in ("members.nii.gz", "later.nii", "later.nii.gz"):
        np.testing.assert_array_equal(read_volume(tmp_path / name).array, array.astype(np.float32))


def test_held_stderr_passes_on_what_is_no_itk_warning_and_keeps_the_warnings(capfd):
    import os

    from denoisekit.io.itk import _held_stderr

    with _held_stderr() as held:
        os.write(2, b"WARNING: In /src/itkNiftiImageIO.cxx, line 1\nNiftiImageIO (0x1): unexpected scales in sform\n\n")
        os.write(2, b"another thread's line\n")
    assert "unexpected scales" in held[0]
    err = capfd.readouterr().err
    assert err == "another thread's line\n"


def test_the_nifti_check_stops_when_asked(tmp_path):
    """An interrupted read (Ctrl-C) sets it: the check must not gunzip the rest first."""
    import threading

    from denoisekit.io.itk import nifti_voxels

    path = tmp_path / "v.nii.gz"
    sitk.WriteImage(_constant(40.0, 4, 1.0), str(path))
    stop = threading.Event()
    assert nifti_voxels(path, stop=stop) is not None
    stop.set()
    assert nifti_voxels(path, stop=stop) is None


def _body(shape=(3, 40, 40), outside=-1000.0, tight=False, seed=0):
    """CT in HU as a scanner gives it (int16, noise): a water body with bone in air, and
    ``outside`` the round field of view (air, or padding); ``tight``: cropped inside the body,
    no air around it but a lung."""
    y, x = np.mgrid[: shape[1], : shape[2]] - np.array(shape[1:])[:, None, None] / 2
    slice_ = np.where((x / 17) ** 2 + (y / 13) ** 2 < 1, 40.0, -1000.0)
    slice_[(x - 6) ** 2 + y**2 < 9] = 1100.0
    if tight:
        slice_ = np.where((x + 6) ** 2 + y**2 < 25, -850.0, 40.0)
    else:
        slice_[x**2 + y**2 > (shape[1] / 2) ** 2] = outside
    noise = np.random.default_rng(seed).normal(0, 15, shape) * (slice_ > -1500)
    return np.rint(slice_ + noise).astype(np.int16)


def _read_notes(path):
    notes = []
    read_volume(path, note=notes.append)
    return notes


@pytest.mark.parametrize("outside, tight", [(-1000.0, False), (-1024.0, False), (-2048.0, False), (-3024.0, False),
                                            (None, True)], ids=["air", "air-1024", "pad-2048", "pad-3024", "tight"])
@pytest.mark.parametrize("suffix", [".nii.gz", ".mha"])
def test_ct_in_hu_gets_no_note_and_the_same_scan_without_its_rescale_gets_one(tmp_path, outside, tight, suffix):
    hu = _body(outside=outside, tight=tight)
    sitk.WriteImage(sitk.GetImageFromArray(hu), str(tmp_path / f"ct{suffix}"))
    assert _read_notes(tmp_path / f"ct{suffix}") == []
    raw = np.where(hu > -1500, np.clip(hu + 1024, 0, None), -2000).astype(np.int16)  # stored values, padding -2000
    sitk.WriteImage(sitk.GetImageFromArray(raw), str(tmp_path / f"raw{suffix}"))
    [note] = _read_notes(tmp_path / f"raw{suffix}")
    assert note.startswith(f"raw{suffix}: values ") and "none below -200: CT in HU has air near -1000" in note
    assert ("MR, CT stored without its rescale (HU = value - 1024), or CT with no air in its field of view (a crop); "
            "denoisekit treats values as HU") in note
    assert ("besides padding (-2000)" in note) == (not tight and outside < -1500)


def test_ct_cropped_to_soft_tissue_is_not_told_to_shift_by_1024(tmp_path):
    """HU of a crop inside the body (-100..80, padded -3024): no air, but negative values, so
    not raw stored values: the note must not suggest HU = value - 1024."""
    rng = np.random.default_rng(4)
    crop = np.clip(rng.normal(40, 30, (2, 24, 24)), -100, 80)
    crop[:, :3] = -3024.0
    sitk.WriteImage(sitk.GetImageFromArray(crop.astype(np.int16)), str(tmp_path / "liver.nii.gz"))
    [note] = _read_notes(tmp_path / "liver.nii.gz")
    assert "1024" not in note and "CT with no air in its field of view (a crop)" in note


def test_a_label_map_gets_a_note_saying_so(tmp_path):
    labels = np.zeros((3, 16, 16), np.uint8)
    labels[:, 2:14, 2:14] = 1
    labels[:, 4:8, 4:8] = 5
    labels[1, 9:12, 9:12] = 3
    sitk.WriteImage(sitk.GetImageFromArray(labels), str(tmp_path / "seg.nii.gz"))
    assert _read_notes(tmp_path / "seg.nii.gz") == [
        "seg.nii.gz: few distinct whole values, 0 to 5, none below -200: CT in HU has air near -1000; "
        "this looks like a label map (segmentation), not CT; denoisekit treats values as HU"]


def test_an_mr_volume_gets_a_note(tmp_path, caplog):
    rng = np.random.default_rng(1)
    mr = np.abs(rng.normal(0, 20, (3, 24, 24)))  # magnitude: background noise above 0
    mr[:, 4:20, 4:20] += rng.normal(2500, 400, (3, 16, 16))
    sitk.WriteImage(sitk.GetImageFromArray(mr.astype(np.uint16)), str(tmp_path / "t1.nrrd"))
    with caplog.at_level("WARNING", logger="denoisekit.io"):  # no note callback: the logger
        read_volume(tmp_path / "t1.nrrd")
    [note] = [r.getMessage() for r in caplog.records]
    assert re.fullmatch(r"t1\.nrrd: values 0 to \d{4}, none below -200: CT in HU has air near -1000; this may be "
                        r"a label map, MR, CT stored without its rescale \(HU = value - 1024\), or CT with no air "
                        r"in its field of view \(a crop\); denoisekit treats values as HU", note)


def test_air_in_one_voxel_of_a_large_padded_volume_is_found():
    from denoisekit.io.itk import not_hu

    volume = np.full((8, 512, 512), -3024.0, np.float32)  # more voxels than the sample takes: strided
    volume[:, 100:400, 100:400] = 40.0
    assert "besides padding (-3024), none below -200" in not_hu(volume)
    volume[5, 201, 203] = -700.0  # between the voxels sampled
    assert not_hu(volume) is None


def test_a_whole_body_segmentation_is_a_label_map_and_a_low_range_volume_gets_no_1024_hint():
    from denoisekit.io.itk import not_hu

    rng = np.random.default_rng(5)
    segmentation = rng.integers(0, 118, (4, 64, 64)).astype(np.float32)  # TotalSegmentator: 117 labels
    assert "this looks like a label map" in not_hu(segmentation)
    pet = np.abs(rng.normal(1.0, 3.0, (4, 64, 64))).astype(np.float32)  # SUV 0..13: never soft tissue's 1064
    assert "1024" not in not_hu(pet) and "label map, MR" in not_hu(pet)


def _stored_ct(rng):
    """A CT slice stack as stored, unsigned (HU + 1024, from 0): air near 0, fat near 930."""
    y, x = np.mgrid[:64, :64]
    body = ((y - 32) / 26) ** 2 + ((x - 32) / 22) ** 2 < 1
    hu = np.where(body, 40.0, -1000.0) + rng.normal(0, 15, (3, 64, 64))
    hu[:, 28:34, 20:26] = -90.0  # fat
    hu[:, 30:33, 40:44] = 1200.0  # bone
    return np.maximum(hu + 1024.0, 0.0)


def test_ct_stored_without_its_rescale_and_padded_with_minus_1024_gets_the_hint():
    """-1024 outside the field of view put the minimum in the air range: such a volume passed as HU
    (new-user pass), though everything else in it is >= 0 as stored values are."""
    from denoisekit.io.itk import not_hu

    rng = np.random.default_rng(2)
    stored = _stored_ct(rng)
    stored[:, :, :6] = -1024.0  # outside the reconstructed field of view
    note = not_hu(stored.astype(np.float32))
    assert note is not None and "besides padding (-1024)" in note and "HU = value - 1024" in note
    # CT in HU clipped at -1000 (air all one value) keeps fat below 0: no note
    hu = np.maximum(_stored_ct(rng) - 1024.0, -1000.0)
    assert (hu == -1000.0).sum() > 1000 and not_hu(hu.astype(np.float32)) is None
    # a noise-free phantom in HU: air all -1000, tissue 40, bone 1100 (nothing below 0 but air)
    phantom = np.where(stored > 500, 40.0, -1000.0)
    phantom[:, 30:33, 40:44] = 1100.0
    assert not_hu(phantom.astype(np.float32)) is None
    # one stray negative value among the stored ones: it is no padding scheme we know, no note
    stored[1, 40, 40] = -5.0
    assert not_hu(stored.astype(np.float32)) is None


_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG), as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (60_000, 60_000))
from denoisekit.cli import main
sys.argv = ["denoisekit", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("name", ["old.nii.gz", "old.nii"])
def test_a_nifti_that_cannot_be_written_whole_is_an_error_and_keeps_the_old_file(tmp_path, name):
    """niftilib says a failed write on stderr only: on a full disk export said 'wrote', exited 0
    and --force replaced a good file with a truncated one (new-user pass)."""
    resource = pytest.importorskip("resource")
    if not hasattr(resource, "RLIMIT_FSIZE"):
        pytest.skip("no file size limit to write against")
    import sys

    rng = np.random.default_rng(0)
    big = write_volume(Volume(rng.normal(0, 300, (4, 96, 96)).astype(np.float32)), tmp_path / "big.nrrd")
    old = write_volume(Volume(np.full((1, 8, 8), -1000.0, np.float32)), tmp_path / name)
    before = old.read_bytes()
    script = tmp_path / "limited.py"
    script.write_text(_LIMITED)
    done = subprocess.run([sys.executable, str(script), "export", str(big), "-o", str(old), "--force"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: cannot write {old}") and "disk full" in lines[0]
    assert old.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["big.nrrd", name, "limited.py"])  # no temp left


def test_a_nifti_shorter_than_its_header_says_is_refused(tmp_path):
    import gzip

    from denoisekit.errors import DenoiseKitError
    from denoisekit.io.itk import _check_complete

    volume = Volume(np.random.default_rng(0).normal(0, 300, (2, 16, 16)).astype(np.float32))
    raw = write_volume(volume, tmp_path / "whole.nii")
    packed = write_volume(volume, tmp_path / "whole.nii.gz")
    _check_complete(raw, raw, volume.array.size * 4)
    _check_complete(packed, packed, volume.array.size * 4)
    short = tmp_path / "short.nii"
    short.write_bytes(raw.read_bytes()[:-100])
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(packed.read_bytes()[: packed.stat().st_size // 2])
    unended = tmp_path / "unended.nii.gz"  # a whole gzip member of fewer bytes than the header says
    unended.write_bytes(gzip.compress(raw.read_bytes()[:-100]))
    for path in (short, cut, unended):
        with pytest.raises(DenoiseKitError, match=f"cannot write {path}: .*(incomplete|unreadable)"):
            _check_complete(path, path, volume.array.size * 4)
