from typer.testing import CliRunner

from denoisekit.cli import get_app


def test_reader_notes_are_whole_lines(make_series, tmp_path):
    # scripts grep these: a long file name must not wrap at the console's width
    series = make_series(shape=(3, 8, 8))
    junk = series.path / ("scanner export notes [v2] " + "x" * 80 + ".txt")
    junk.write_text("not DICOM")
    result = CliRunner().invoke(get_app(), ["export", str(series.path), "-o", str(tmp_path / "out.nii.gz")])
    assert result.exit_code == 0, result.output
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("note: ")]
    assert junk.name in line
