"""`denoisekit gradcheck`: table, --json, exit codes."""

import json

from typer.testing import CliRunner

from denoisekit.cli import get_app

runner = CliRunner()


def test_passing_model_prints_a_table_and_exits_0():
    result = runner.invoke(get_app(), ["gradcheck", "--model", "residual-mul-add", "--size", "16"])
    assert result.exit_code == 0, result.output
    assert "layer6.1" in result.stdout and "FAIL" not in result.stdout


def test_json_lists_every_variable():
    result = runner.invoke(get_app(), ["gradcheck", "--model", "vanilla-ae", "--size", "16", "--json",
                                       "--option", "channels=2", "--option", "latent=8", "--seed", "3"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["size"] == 16 and data["options"]["channels"] == 2
    assert [v["variable"] for v in data["variables"]][:2] == ["enc1.0", "enc1.1"]
    # one pooling stage: enc1, latent, expand, dec1, each a kernel and a bias
    assert len(data["variables"]) == 8
    assert all(v["rel_error"] < 1e-4 for v in data["variables"])


def test_exceeding_the_tolerance_exits_1():
    # float32 order-of-operation differences are ~1e-7, never exactly 0 for every variable
    result = runner.invoke(get_app(), ["gradcheck", "--model", "residual-mul", "--size", "16",
                                       "--tolerance", "0", "--json"])
    assert result.exit_code == 1
    data = json.loads(result.stdout)
    assert data["ok"] is False
    assert "differ from autodiff by more than 0" in result.stderr


def test_model_without_manual_gradients_is_a_clear_error():
    result = runner.invoke(get_app(), ["gradcheck", "--model", "nl-means"])
    assert result.exit_code == 2
    assert "Error: model 'nl-means' provides no hand-written gradients" in result.stderr


def test_unknown_model_and_option():
    result = runner.invoke(get_app(), ["gradcheck", "--model", "nope"])
    assert result.exit_code == 1 and "no model named 'nope'" in result.stderr
    result = runner.invoke(get_app(), ["gradcheck", "--model", "residual-mul", "--option", "width=3"])
    assert result.exit_code == 2 and "has no option 'width'" in result.stderr


def test_a_model_whose_layers_lack_backward_is_named(fake_manual):
    result = runner.invoke(get_app(), ["gradcheck", "--model", "acme-fake-manual"])
    assert result.exit_code == 1 and result.stderr == fake_manual, result.stderr
