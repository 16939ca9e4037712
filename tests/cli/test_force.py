"""``--force`` replaces an earlier output of denoisekit, never someone else's folder, and every
command says so before it reads or computes anything."""

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
