"""``--force`` replaces only what denoisekit wrote: a JSON file at the sidecar path only if it
is one of our sidecars, and the refusals say that it is the output's sidecar."""

import pytest

from denoisekit.errors import DenoiseKitError
from denoisekit.io.atomic import is_our_sidecar, publish, refuse_existing


@pytest.mark.parametrize("text, ours", [
    ('{"sidecar_of": "x.nii.gz", "seed": 1}', True),
    ('{"kind": "poisson", "seed": 3, "denoisekit_version": "0.1.0"}', True),  # a noise record before sidecar_of
    ('{"kind": "poisson", "seed": 3}', False),  # any tool may use those words
    ('{"Modality": "CT"}', False),
    ('["sidecar_of"]', False),
    ("not json", False),
])
def test_our_sidecars_are_told_by_their_keys(tmp_path, text, ours):
    (tmp_path / "x.json").write_text(text)
    assert is_our_sidecar(tmp_path / "x.json") is ours


def test_refusals_name_the_output_the_sidecar_belongs_to(tmp_path):
    side, output = tmp_path / "study.json", tmp_path / "study.nii.gz"
    side.write_text('{"Modality": "CT"}')
    for force in (False, True):
        with pytest.raises(DenoiseKitError) as info:
            refuse_existing([side], force, output=output)
        assert str(info.value) == (f"{side} is not a denoisekit sidecar: not replaced (it would be the sidecar of "
                                   "study.nii.gz); choose another --output")
    side.write_text('{"sidecar_of": "study"}')
    refuse_existing([side], True, output=output)
    with pytest.raises(DenoiseKitError) as info:
        refuse_existing([side], False, output=output)
    assert str(info.value) == f"{side} (the sidecar of study.nii.gz) already exists; --force replaces it"


def test_publish_checks_a_sidecar_again(tmp_path):
    """It may have been replaced by someone's file while the volume was computed."""
    side, temp = tmp_path / "study.json", tmp_path / ".partial-study.json"
    side.write_text('{"Modality": "CT"}')
    temp.write_text('{"sidecar_of": "study.nii.gz"}')
    with pytest.raises(DenoiseKitError, match="not a denoisekit sidecar"):
        publish(temp, side, True, series=False, output=tmp_path / "study.nii.gz")
    assert side.read_text() == '{"Modality": "CT"}'



def test_a_sidecar_that_cannot_be_written_leaves_no_temporary_file(tmp_path, monkeypatch):
    """A full disk left a hidden '.partial-*.json' beside the output (new-user pass)."""
    import errno

    import numpy as np

    from denoisekit.io import write_volume
    from denoisekit.io import atomic
    from denoisekit.volume import Volume

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "fsync", full)
    with pytest.raises(DenoiseKitError, match=r"cannot write .*out.nii.gz: No space left on device"):
        write_volume(Volume(np.zeros((1, 4, 4), np.float32)), tmp_path / "out.nii.gz", sidecar={"kind": "gaussian"})
    assert list(tmp_path.iterdir()) == []
