"""Writing is atomic, never overwrites without force, never touches the input."""

import json
import os

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
    assert json.loads((tmp_path / "noisy.json").read_text()) == {"dose": 0.25}
    write_volume(_volume(), tmp_path / "series", sidecar={"seed": 1})
    assert json.loads((tmp_path / "series.json").read_text()) == {"seed": 1}


def test_existing_sidecar_refused_and_nothing_written(tmp_path):
    (tmp_path / "noisy.json").write_text("{}")
    with pytest.raises(DenoiseKitError, match="noisy.json already exists"):
        write_volume(_volume(), tmp_path / "noisy.nii.gz", sidecar={"a": 1})
    assert sorted(os.listdir(tmp_path)) == ["noisy.json"]


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
