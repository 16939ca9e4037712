"""``--force`` replaces an earlier output of denoisekit, never someone else's folder, and every
command says so before it reads or computes anything."""

import json

import pytest
from typer.testing import CliRunner

from denoisekit.cli import get_app

runner = CliRunner()


@pytest.mark.parametrize("command", [["export"], ["noise", "--kind", "gaussian"], ["infer", "--model", "tv"]])
def test_force_onto_a_foreign_folder_is_refused_before_any_work(make_series, tmp_path, command):
    series = make_series(shape=(2, 16, 16))
    series.files[0].write_bytes(series.files[0].read_bytes()[:140])  # reading it would fail: it is never read
    foreign = tmp_path / "important"
    (foreign / "sub").mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    result = runner.invoke(get_app(), [command[0], str(series.path), *command[1:], "-o", str(foreign), "--force"])
    assert result.exit_code == 1 and "holds other files (notes.txt, sub/)" in result.stderr, result.output
    assert (foreign / "notes.txt").read_text() == "mine" and (foreign / "sub").is_dir()


def test_force_never_replaces_the_sidecar_of_another_output(tmp_path):
    import numpy as np

    from denoisekit.io import write_volume
    from denoisekit.volume import Volume

    scan = write_volume(Volume(np.full((2, 16, 16), 40.0, np.float32)), tmp_path / "scan.nii.gz")
    noise = ["noise", str(scan), "--kind", "gaussian", "--quiet"]
    first = runner.invoke(get_app(), [*noise, "-o", str(tmp_path / "x")])
    assert first.exit_code == 0, first.output
    sidecar = (tmp_path / "x.json").read_text()
    second = runner.invoke(get_app(), [*noise, "--seed", "1", "-o", str(tmp_path / "x.nii.gz"), "--force"])
    assert second.exit_code == 1
    assert second.stderr.strip() == (f"Error: {tmp_path / 'x.nii.gz'} would replace {tmp_path / 'x.json'}, which may "
                                     f"be the sidecar of {tmp_path / 'x'}: choose another --output")
    assert (tmp_path / "x.json").read_text() == sidecar and not (tmp_path / "x.nii.gz").exists()


def test_force_replaces_an_outputs_own_sidecar_whatever_shares_its_name(tmp_path):
    """The sidecar names its output: a folder of the same name (here the input itself) does
    not make it another's."""
    import numpy as np

    from denoisekit.io import write_volume
    from denoisekit.volume import Volume

    folder = write_volume(Volume(np.full((2, 16, 16), 40.0, np.float32)), tmp_path / "ct")  # a DICOM series
    noise = ["noise", str(folder), "--kind", "gaussian", "--quiet", "-o", str(tmp_path / "ct.nii.gz")]
    assert runner.invoke(get_app(), noise).exit_code == 0
    again = runner.invoke(get_app(), [*noise, "--seed", "1", "--force"])
    assert again.exit_code == 0, again.output  # ct/ is the input, not the owner of ct.json
    assert json.loads((tmp_path / "ct.json").read_text())["seed"] == 1


def test_force_never_replaces_another_tools_json_at_the_sidecar_path(tmp_path):
    """dcm2niix leaves study.json beside study.nii.gz; --force replaced it as the sidecar."""
    import numpy as np

    from denoisekit.io import write_volume
    from denoisekit.volume import Volume

    scan = write_volume(Volume(np.full((2, 16, 16), 40.0, np.float32)), tmp_path / "scan.nii.gz")
    theirs = json.dumps({"Modality": "CT", "ConversionSoftware": "dcm2niix"})
    (tmp_path / "study.json").write_text(theirs)
    noise = ["noise", str(scan), "--kind", "gaussian", "--quiet", "-o", str(tmp_path / "study.nii.gz")]
    for force in ([], ["--force"]):
        result = runner.invoke(get_app(), [*noise, *force])
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(f"Error: {tmp_path / 'study.json'} is not a denoisekit sidecar: not replaced "
                                        "(it would be the sidecar of "), result.stderr
        assert result.stderr.strip().endswith("); choose another --output") and result.stderr.count("\n") == 1
    assert (tmp_path / "study.json").read_text() == theirs and not (tmp_path / "study.nii.gz").exists()


def test_without_force_an_existing_sidecar_is_named_as_one(tmp_path):
    import numpy as np

    from denoisekit.io import write_volume
    from denoisekit.volume import Volume

    scan = write_volume(Volume(np.full((2, 16, 16), 40.0, np.float32)), tmp_path / "scan.nii.gz")
    noise = ["noise", str(scan), "--kind", "gaussian", "--quiet", "-o", str(tmp_path / "x.nii.gz")]
    assert runner.invoke(get_app(), noise).exit_code == 0
    (tmp_path / "x.nii.gz").unlink()  # the sidecar stays: a rerun must not take it for a free name
    again = runner.invoke(get_app(), noise)
    assert again.exit_code == 1
    assert again.stderr.startswith(f"Error: {tmp_path / 'x.json'} (the sidecar of "), again.stderr
    assert again.stderr.strip().endswith(") already exists; --force replaces it")
    assert runner.invoke(get_app(), [*noise, "--force"]).exit_code == 0
