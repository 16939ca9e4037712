"""``io.like``: a NIfTI volume put back onto the DICOM series it was made from, exactly or not
at all. Reoriented files are made with SimpleITK, as the tools users run would make them."""

from dataclasses import replace

import numpy as np
import pytest

from denoisekit.errors import DenoiseKitError
from denoisekit.io import read_volume, write_volume
from denoisekit.io.like import as_series

OBLIQUE = (0.9848078, 0.1736482, 0.0, -0.1736482, 0.9848078, 0.0)  # rotated 10 degrees in-plane


def _reoriented(path, out, how):
    """The NIfTI at ``path`` as another tool writes it: the same voxels in another axis order."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    if how.startswith("orient:"):  # what nibabel's as_closest_canonical or fslreorient2std do
        image = sitk.DICOMOrient(image, how.split(":")[1])
    elif how.startswith("permute:"):
        image = sitk.PermuteAxes(image, [int(c) for c in how.split(":")[1]])
    elif how.startswith("flip:"):
        image = sitk.Flip(image, [c == "1" for c in how.split(":")[1]])
    sitk.WriteImage(image, str(out))
    return out


@pytest.mark.parametrize("orientation", [(1, 0, 0, 0, 1, 0), OBLIQUE])
@pytest.mark.parametrize("how", ["none", "orient:RAS", "orient:LPI", "permute:102", "permute:210", "flip:111"])
def test_the_same_voxels_in_any_axis_order_come_back_exactly(make_series, tmp_path, orientation, how):
    series = make_series(shape=(4, 6, 5), spacing=(0.8, 0.7, 2.5), orientation=orientation)
    write_volume(read_volume(series.path), tmp_path / "v.nii.gz")
    other = read_volume(_reoriented(tmp_path / "v.nii.gz", tmp_path / "o.nii.gz", how))
    reference = read_volume(series.path, pixels=False)
    moved, note = as_series(replace(other, history=("denoised by x",)), reference)
    np.testing.assert_array_equal(moved.array, series.hu)
    assert (moved.spacing, moved.origin, moved.direction) == (reference.spacing, reference.origin, reference.direction)
    assert moved.tags == reference.tags and moved.tags["StudyInstanceUID"] == series.study_uid  # none derived
    assert moved.history == ("denoised by x",) and moved.source == other.source
    assert (note is None) == (how == "none")


def test_the_note_says_which_axes_moved(make_series, tmp_path):
    series = make_series(shape=(3, 6, 5))
    write_volume(read_volume(series.path), tmp_path / "v.nii.gz")
    swapped = read_volume(_reoriented(tmp_path / "v.nii.gz", tmp_path / "s.nii.gz", "permute:102"))
    flipped = read_volume(_reoriented(tmp_path / "v.nii.gz", tmp_path / "f.nii.gz", "flip:010"))
    reference = read_volume(series.path, pixels=False)
    assert "x from its y, y from its x" in as_series(swapped, reference)[1]
    assert "(y reversed)" in as_series(flipped, reference)[1]


def test_another_grid_is_refused_naming_what_differs(make_series, tmp_path):
    series = make_series(shape=(4, 6, 5), spacing=(0.8, 0.7, 2.5))
    volume = read_volume(series.path)
    reference = read_volume(series.path, pixels=False)
    half_voxel = replace(volume, origin=(volume.origin[0] + 0.4, *volume.origin[1:]))
    with pytest.raises(DenoiseKitError, match=r"up to 0\.4 mm .*first voxel at \(-11\.6, -11, 40\) vs \(-12, -11, 40\)"):
        as_series(half_voxel, reference)
    # said in the series' axis order, whatever the input's (it showed each file's own order)
    write_volume(half_voxel, tmp_path / "h.nii.gz")
    swapped = read_volume(_reoriented(tmp_path / "h.nii.gz", tmp_path / "hs.nii.gz", "permute:210"))
    with pytest.raises(DenoiseKitError, match=r"\(-11\.6, -11, 40\) vs .* spacing \(0\.8, 0\.7, 2\.5\) vs \(0\.8, 0\.7, 2\.5\)"):
        as_series(swapped, reference)
    drifting = replace(volume, spacing=(0.8, 0.7, 2.51))  # right at the first slice, 0.03 mm off at the last
    with pytest.raises(DenoiseKitError, match=r"up to 0\.03 mm .*spacing"):
        as_series(drifting, reference)
    float32 = replace(volume, origin=tuple(float(np.float32(v + 1e-4)) for v in volume.origin))
    assert as_series(float32, reference)[0].origin == reference.origin
    cropped = replace(volume, array=volume.array[:, 1:])
    with pytest.raises(DenoiseKitError, match="5x5x4 voxels .* 5x6x4"):
        as_series(cropped, reference)
    turn = np.radians(10)
    rotated = (np.cos(turn), -np.sin(turn), 0.0, np.sin(turn), np.cos(turn), 0.0, 0.0, 0.0, 1.0)
    with pytest.raises(DenoiseKitError, match="not the --like series' axes"):
        as_series(replace(volume, direction=rotated), reference)


def test_one_slice_has_no_spacing_between_slices_to_compare(real_ct, tmp_path):
    """A 2-D NIfTI says 1 mm, the series its slice thickness: the same one slice."""
    reference = read_volume(real_ct("CT_small.dcm"), pixels=False)
    volume = read_volume(real_ct("CT_small.dcm"))
    moved, _ = as_series(replace(volume, spacing=(*volume.spacing[:2], 1.0)), reference)
    np.testing.assert_array_equal(moved.array, volume.array)


def test_a_reference_is_read_without_its_pixels(make_series, tmp_path):
    series = make_series(shape=(3, 8, 8))
    whole = read_volume(series.path)
    header = read_volume(series.path, pixels=False)
    assert header.shape == whole.shape and header.array.strides == (0, 0, 0) and not header.array.any()
    assert (header.spacing, header.origin, header.direction, header.tags) == (
        whole.spacing, whole.origin, whole.direction, whole.tags)
    data = series.files[0].read_bytes()
    series.files[0].write_bytes(data[:-20])  # its pixels truncated: unreadable as an image, not as a grid
    with pytest.raises(DenoiseKitError, match="truncated"):
        read_volume(series.path)
    assert read_volume(series.path, pixels=False).shape == whole.shape
    write_volume(whole, tmp_path / "v.nii.gz")
    with pytest.raises(DenoiseKitError, match="not a DICOM series"):
        read_volume(tmp_path / "v.nii.gz", pixels=False)


def test_the_series_derivation_is_not_the_volume_s(make_series, tmp_path):
    """A grid says where voxels are, not what was done to them: a NIfTI of the original scan
    put like a simulated low-dose series of it claimed the simulation (code review)."""
    series = make_series(shape=(2, 6, 5))
    reference = read_volume(series.path, pixels=False)
    low = replace(reference, tags={**reference.tags, "DerivationDescription": "noise lowdose seed=0 dose=0.25"})
    moved, _ = as_series(replace(read_volume(series.path), history=("denoised tv",)), low)
    assert "DerivationDescription" not in moved.tags and moved.history == ("denoised tv",)
    assert {k: v for k, v in moved.tags.items()} == reference.tags
