"""Writing is atomic, never overwrites without force, never touches the input."""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from denoisekit.errors import DenoiseKitError
from denoisekit.io import read_volume, write_volume
from denoisekit.volume import Volume


def _volume(**kw):
    return Volume(np.full((2, 8, 8), 40.0, dtype=np.float32), **kw)


@pytest.mark.parametrize("name", ["out.nii.gz", "out"])
def test_existing_output_needs_force(tmp_path, name):
    path = write_volume(_volume(), tmp_path / name)
    with pytest.raises(DenoiseKitError, match="already exists.*--force"):
        write_volume(_volume(), path)
    brighter = Volume(np.full((2, 8, 8), 100.0, dtype=np.float32))
    write_volume(brighter, path, force=True)
    assert read_volume(path).array.max() == pytest.approx(100.0)
    assert sorted(os.listdir(tmp_path)) == [name]  # no temporaries or backups left


def test_sidecar_written_next_to_output(tmp_path):
    write_volume(_volume(), tmp_path / "noisy.nii.gz", sidecar={"dose": 0.25})
    assert json.loads((tmp_path / "noisy.json").read_text()) == {"dose": 0.25, "sidecar_of": "noisy.nii.gz"}
    write_volume(_volume(), tmp_path / "series", sidecar={"seed": 1})
    assert json.loads((tmp_path / "series.json").read_text()) == {"seed": 1, "sidecar_of": "series"}


def test_existing_sidecar_refused_and_nothing_written(tmp_path):
    (tmp_path / "noisy.json").write_text('{"sidecar_of": "noisy.nii.gz"}')
    with pytest.raises(DenoiseKitError, match=r"noisy.json \(the sidecar of .*\) already exists; --force replaces it"):
        write_volume(_volume(), tmp_path / "noisy.nii.gz", sidecar={"a": 1})
    assert sorted(os.listdir(tmp_path)) == ["noisy.json"]


@pytest.mark.parametrize("force", [False, True])
def test_a_json_file_that_is_no_sidecar_of_ours_is_never_replaced(tmp_path, force):
    """dcm2niix writes study.json beside study.nii.gz: --force replaced it, as it parsed as JSON."""
    theirs = '{"Modality": "CT", "SeriesDescription": "HEAD"}'
    (tmp_path / "study.json").write_text(theirs)
    with pytest.raises(DenoiseKitError, match=r"study\.json is not a denoisekit sidecar: not replaced \(it would be "
                                              r"the sidecar of .*\); choose another --output"):
        write_volume(_volume(), tmp_path / "study.nii.gz", force=force, sidecar={"seed": 1})
    assert (tmp_path / "study.json").read_text() == theirs and os.listdir(tmp_path) == ["study.json"]


def test_force_replaces_a_noise_record_written_before_sidecar_of(tmp_path):
    (tmp_path / "noisy.json").write_text('{"kind": "gaussian", "seed": 0, "denoisekit_version": "0.1.0"}')
    write_volume(_volume(), tmp_path / "noisy.nii.gz", force=True, sidecar={"seed": 1})
    assert json.loads((tmp_path / "noisy.json").read_text()) == {"seed": 1, "sidecar_of": "noisy.nii.gz"}


def test_failure_midway_leaves_nothing(tmp_path):
    bad = Volume(np.array([[[np.nan, 0.0]]], dtype=np.float32))
    with pytest.raises(DenoiseKitError, match="NaN"):
        write_volume(bad, tmp_path / "out")
    assert os.listdir(tmp_path) == []


def test_input_is_never_overwritten(make_series, tmp_path):
    series = make_series()
    volume = read_volume(series.path)
    before = sorted(p.name for p in series.path.iterdir())
    for target in (series.path, series.path / "inside", series.path.parent):
        with pytest.raises(DenoiseKitError, match="input"):
            write_volume(volume, target, force=True)
    assert sorted(p.name for p in series.path.iterdir()) == before


def _format_of(path):
    head = path.read_bytes()[:352]
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[344:348] == b"n+1\0":
        return "nifti"
    if head.startswith(b"NRRD"):
        return "nrrd"
    if head.startswith(b"ObjectType = Image"):
        return "mha"
    return "?"


@pytest.mark.parametrize("name, fmt", [("A.NII.GZ", "gzip"), ("A.NII", "nifti"), ("A.Nii.Gz", "gzip"),
                                       ("A.MHA", "mha"), ("A.NRRD", "nrrd")])
def test_suffix_in_any_case_is_written_in_its_format(tmp_path, name, fmt):
    written = write_volume(_volume(), tmp_path / name, sidecar={"seed": 1})
    assert sorted(os.listdir(tmp_path)) == sorted([name, "A.json"])  # no .mhd/.zraw, no temporaries
    assert _format_of(written) == fmt
    assert read_volume(written).array.max() == pytest.approx(40.0)


def test_failed_write_names_the_output_and_why_and_leaves_nothing(tmp_path):
    wide = Volume(np.zeros((1, 1, 32768), dtype=np.float32))  # NIfTI-1 holds at most 32767 per axis
    write_volume(_volume(), tmp_path / "wide.NII")  # an earlier output, which --force may replace
    kept = (tmp_path / "wide.NII").read_bytes()
    with pytest.raises(DenoiseKitError, match=r"cannot write .*wide\.NII: .*32767") as err:
        write_volume(wide, tmp_path / "wide.NII", force=True)
    assert ".partial" not in str(err.value)
    assert os.listdir(tmp_path) == ["wide.NII"] and (tmp_path / "wide.NII").read_bytes() == kept


def _dicom_file(path):
    import shutil

    import pydicom.data

    shutil.copyfile(pydicom.data.get_testdata_file("CT_small.dcm"), path)


@pytest.mark.parametrize("others, shown", [
    ({"notes.txt": "precious", "sub/data.csv": "1,2"}, "notes.txt, sub/"),
    ({"IM00001.dcm": "not DICOM"}, "IM00001.dcm"),  # our name, not our content
    ({"CT_small.dcm": None}, "CT_small.dcm"),  # someone's DICOM, not a series we wrote
    ({"IM00001.dcm": None}, "IM00001.dcm"),  # someone's DICOM with our file name
])
def test_force_never_replaces_a_directory_of_other_files(tmp_path, others, shown):
    from denoisekit.io import check_output, check_writable

    target = tmp_path / "important"
    for name, text in others.items():
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        if text is None:
            _dicom_file(target / name)
        else:
            (target / name).write_text(text)
    before = {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()}
    message = f"important holds other files \\({shown}\\): not replaced"
    with pytest.raises(DenoiseKitError, match=message):
        check_output(target, force=True)  # what commands call before any work
    with pytest.raises(DenoiseKitError, match=message):
        write_volume(_volume(), target, force=True)
    assert {p.relative_to(target): p.read_bytes() for p in target.rglob("*") if p.is_file()} == before
    assert sorted(os.listdir(tmp_path)) == ["important"]


def test_force_replaces_an_empty_directory_and_our_series(tmp_path):
    (tmp_path / "empty").mkdir()
    write_volume(_volume(), tmp_path / "empty", force=True)
    (tmp_path / "empty" / ".DS_Store").write_bytes(b"\0")  # a desktop looked at it
    write_volume(Volume(np.full((3, 8, 8), 90.0, dtype=np.float32)), tmp_path / "empty", force=True)
    assert read_volume(tmp_path / "empty").shape == (3, 8, 8)


@pytest.mark.parametrize("output, existing", [("series", "file"), ("out.nii.gz", "directory"),
                                              ("out.nii.gz", "sidecar directory")])
def test_force_never_swaps_a_file_and_a_directory(tmp_path, output, existing):
    blocker = tmp_path / ("out.json" if existing == "sidecar directory" else output)
    if existing == "file":
        blocker.write_text("precious")
    else:
        blocker.mkdir()
    with pytest.raises(DenoiseKitError, match="not replaced"):
        write_volume(_volume(), tmp_path / output, force=True, sidecar={"a": 1})
    assert sorted(os.listdir(tmp_path)) == [blocker.name]


def test_publish_checks_again_what_it_replaces(tmp_path):
    # an unrelated directory appearing while the series was being written survives
    from denoisekit.io.atomic import publish

    done, final = tmp_path / ".partial-series", tmp_path / "series"
    write_volume(_volume(), done)
    final.mkdir()
    (final / "notes.txt").write_text("precious")
    with pytest.raises(DenoiseKitError, match="holds other files"):
        publish(done, final, True, series=True)
    assert (final / "notes.txt").read_text() == "precious" and done.is_dir()


def test_sidecar_never_overwrites_the_input(tmp_path):
    # a DICOM file named noisy.json is the input; -o noisy would put the sidecar on it
    _dicom_file(tmp_path / "noisy.json")
    before = (tmp_path / "noisy.json").read_bytes()
    volume = read_volume(tmp_path / "noisy.json")
    with pytest.raises(DenoiseKitError, match="sidecar .*noisy.json would overwrite the input"):
        write_volume(volume, tmp_path / "noisy", force=True, sidecar={"seed": 1})
    assert (tmp_path / "noisy.json").read_bytes() == before and os.listdir(tmp_path) == ["noisy.json"]


@pytest.mark.parametrize("name", ["out.nii.gz", "out.nii", "out.nrrd", "out.mha"])
def test_force_replaces_a_file_only_of_the_format_it_writes(tmp_path, name):
    target = tmp_path / name
    target.write_text("my notes, saved under the wrong name")
    with pytest.raises(DenoiseKitError, match=f"{name} is not a .* file: not replaced"):
        write_volume(_volume(), target, force=True)
    assert target.read_text() == "my notes, saved under the wrong name"
    target.unlink()
    write_volume(_volume(), target)  # an earlier output of that format is replaced
    write_volume(Volume(np.full((3, 8, 8), 90.0, dtype=np.float32)), target, force=True)
    assert read_volume(target).shape == (3, 8, 8)


def test_force_replaces_a_sidecar_only_if_it_is_json(tmp_path):
    (tmp_path / "out.json").write_text("not json")
    with pytest.raises(DenoiseKitError, match="out.json is not a JSON file"):
        write_volume(_volume(), tmp_path / "out.nii.gz", force=True, sidecar={"a": 1})
    assert (tmp_path / "out.json").read_text() == "not json" and not (tmp_path / "out.nii.gz").exists()


@pytest.mark.parametrize("first, second", [("x", "x.nii.gz"), ("x.nrrd", "x")])
def test_force_never_replaces_the_sidecar_of_another_output(tmp_path, first, second):
    write_volume(_volume(), tmp_path / first, sidecar={"seed": 1})  # x/, x.nii.gz and x.nrrd all write x.json
    for force in (False, True):  # "use --force" would not help: it is not the answer
        with pytest.raises(DenoiseKitError, match=rf"x\.json, which may be the sidecar of {tmp_path / first}: "
                                                  "choose another --output"):
            write_volume(_volume(), tmp_path / second, force=force, sidecar={"seed": 2})
    assert json.loads((tmp_path / "x.json").read_text()) == {"seed": 1, "sidecar_of": first}
    assert sorted(os.listdir(tmp_path)) == sorted([first, "x.json"])
    write_volume(_volume(), tmp_path / first, force=True, sidecar={"seed": 3})  # its own output may replace it
    assert json.loads((tmp_path / "x.json").read_text()) == {"seed": 3, "sidecar_of": first}


def test_an_output_no_file_can_be_made_in_is_refused_before_any_work(tmp_path):
    """infer denoised a whole volume before finding its output's folder read-only, then named
    its hidden temporary file (new-user pass)."""
    import shutil
    import subprocess
    import sys

    from denoisekit.io import check_output, check_writable

    blocker = tmp_path / "notes.txt"
    blocker.write_text("a file where a folder would go")
    with pytest.raises(DenoiseKitError, match=f"cannot write {blocker}/x.nii.gz: {blocker} is a file, not a folder"):
        check_output(blocker / "x.nii.gz")
    check_output(tmp_path / "new" / "deeper" / "x.nii.gz")  # folders write_volume makes are fine
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # the probe file is gone
    if Path("/proc").is_dir():  # permissions say yes, yet no file can be made there
        with pytest.raises(DenoiseKitError, match="cannot write /proc/x.nii.gz: /proc: "):
            check_writable(Path("/proc/x.nii.gz"))
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        return  # a read-only mount needs root; permissions root ignores
    frozen = tmp_path / "frozen"
    frozen.mkdir()
    series = write_volume(_volume(), tmp_path / "in.nii.gz")
    script = (f"mount -t tmpfs -o ro none {frozen} && "
              f"{sys.executable} -m denoisekit infer {series} -o {frozen}/sub/out.nii.gz --model tv")
    done = subprocess.run(["unshare", "-m", "sh", "-c", script], capture_output=True, text=True)
    if "mount" in done.stderr and done.returncode != 1:
        pytest.skip(f"cannot mount here: {done.stderr.strip()}")
    assert done.returncode == 1
    assert done.stderr.strip() == f"Error: cannot write {frozen}/sub/out.nii.gz: {frozen}: Read-only file system"


def test_force_removes_the_sidecar_of_the_output_it_replaces_when_the_new_one_has_none(tmp_path):
    """export --force over a noise output left its sidecar, which went on describing noise the
    new voxels do not have (new-user pass); someone else's JSON there stays."""
    path = write_volume(_volume(), tmp_path / "out.nii.gz", sidecar={"kind": "lowdose", "seed": 7})
    side = tmp_path / "out.json"
    assert json.loads(side.read_text())["sidecar_of"] == "out.nii.gz"
    said = []
    write_volume(_volume(), path, force=True, note=said.append)
    assert not side.exists() and said == ["removed out.json, the sidecar of the output this one replaced"]
    side.write_text('{"Modality": "CT"}')  # dcm2niix's, say
    write_volume(_volume(), path, force=True)
    assert side.read_text() == '{"Modality": "CT"}'
