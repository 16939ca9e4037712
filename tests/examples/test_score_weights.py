"""examples/score_weights.py scores weights files with the benchmark's held-out images and noise."""

import pytest


def test_score_weights_ranks_trained_weights_above_untrained(example, tmp_path, capsys):
    pytest.importorskip("tensorflow")
    from denoisekit.plugins import get_model
    from denoisekit.weights import save_weights

    untrained = get_model("residual-mul")()
    untrained.build(64)
    save_weights(tmp_path / "untrained.npz", untrained)
    shipped = example("pretrain").WEIGHTS_DIR / "residual-mul.npz"  # the package's own
    score = example("score_weights")
    columns, table = score.score([shipped, tmp_path / "untrained.npz"], ["693_UNCR.dcm"], None)
    assert len(columns) == 3 and all(len(v) == 3 for v in table.values())
    noisy, trained, random = table["noisy input"], table[str(shipped)], table[str(tmp_path / "untrained.npz")]
    assert all(t > n + 2 for t, n in zip(trained, noisy))  # at least the benchmark's 2 dB goal
    assert all(t > r for t, r in zip(trained, random))
    assert score.main([str(shipped), "tv", "--images", "693_UNCR.dcm"]) == 0  # a file, a model's name
    out = capsys.readouterr().out
    assert out.count("\n") == 5 and "| tv |" in out  # header, rule, noisy input, the two


def test_score_weights_reads_other_volumes_by_path_with_padding_as_air(example, tmp_path):
    import dataclasses

    from denoisekit.io import write_volume

    score = example("score_weights")
    ct = example("benchmark").read_held_out("CT_small.dcm", None)
    array = ct.array.copy()
    array[:, :8, :8] = -2048.0  # outside the field of view, as LIDC's scanner writes it
    path = write_volume(dataclasses.replace(ct, array=array), tmp_path / "other.nii.gz")
    other = score.read_image(str(path), None)
    assert (other.array[:, :8, :8] == -1024.0).all()  # air to the noise simulation, as in the benchmark
    assert (other.array[:, 8:, 8:] == array[:, 8:, 8:]).all()
