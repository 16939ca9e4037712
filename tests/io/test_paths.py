"""Output formats and default output names."""

from pathlib import Path

import pytest

from denoisekit.errors import DenoiseKitError
from denoisekit.io import default_output, output_kind, sidecar_path
from denoisekit.io.paths import sidecar_owners


@pytest.mark.parametrize("name, kind", [("a.nii", "nifti"), ("a.NII.GZ", "nifti"), ("a.nrrd", "nrrd"),
                                        ("a.mha", "mha"), ("out_dir", "dicom"), ("scan.v2", "dicom")])
def test_output_kind(name, kind):
    assert output_kind(Path(name)) == kind


@pytest.mark.parametrize("name", ["x.dcm", "x.png", "x.mhd", "x.txt", "x.tar.gz"])
def test_unwritable_suffixes_are_refused(name):
    with pytest.raises(DenoiseKitError, match="use a directory"):
        output_kind(name)


def test_sidecar_path():
    assert sidecar_path("d/out.nii.gz") == Path("d/out.json")
    assert sidecar_path("d/out_dir") == Path("d/out_dir.json")
    assert sidecar_path("d/out.mha") == Path("d/out.json")


def test_sidecar_owners_are_the_other_outputs_sharing_the_sidecar(tmp_path):
    (tmp_path / "x").mkdir()
    assert sidecar_owners(tmp_path / "x.nii.gz") == []  # no sidecar yet: nothing to lose
    (tmp_path / "x.json").write_text("{}")
    for name in ("x.nrrd", "x.txt", ".partial-0a1b-x.mha", "xy.nii"):
        (tmp_path / name).write_bytes(b"")
    assert sidecar_owners(tmp_path / "x.nii.gz") == [tmp_path / "x", tmp_path / "x.nrrd"]
    assert sidecar_owners(tmp_path / "x") == [tmp_path / "x.nrrd"]
    assert sidecar_owners(tmp_path / "xy.nii") == []


def test_default_output(tmp_path):
    scan = tmp_path / "scan"
    scan.mkdir()
    (tmp_path / "x.dcm").write_bytes(b"")
    assert default_output(scan, "denoised-bm3d") == tmp_path / "scan_denoised-bm3d"
    assert default_output(tmp_path / "a.nii.gz", "noisy") == tmp_path / "a_noisy.nii.gz"
    assert default_output(tmp_path / "x.dcm", "t") == tmp_path / "x_t"
    assert default_output(tmp_path / "v.mhd", "t") == tmp_path / "v_t.mha"
