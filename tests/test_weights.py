"""Weight files: round trip, refusal of anything but plain arrays, and run-dir lookup."""

import json
import os
import stat

import numpy as np
import pytest

from denoisekit.errors import DenoiseKitError
from denoisekit.plugins import get_model
from denoisekit.weights import HEADER, load_model, read_weights, save_weights


@pytest.fixture
def model():
    m = get_model("residual-mul")(kernels=(3, 1), channels=(2,), activations=("tanh", "sigmoid2"))
    m.build()
    return m


def test_round_trip_rebuilds_the_same_model(tmp_path, model):
    path = save_weights(tmp_path / "w.npz", model, note="x")
    header, arrays = read_weights(path)
    assert header["model"] == "residual-mul" and header["note"] == "x"
    assert header["options"]["kernels"] == [3, 1]
    again = load_model(path)
    assert again.config == model.config
    for a, b in zip(again.trainable_variables, model.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    x = np.random.default_rng(0).normal(0, 100, (1, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(again.denoise(x), model.denoise(x), rtol=1e-6)


def test_run_directory_resolves_to_its_best_weights(tmp_path, model):
    save_weights(tmp_path / "run" / "best.npz", model)
    assert load_model(tmp_path / "run").name == "residual-mul"
    with pytest.raises(DenoiseKitError, match="not a finished training run"):
        load_model(tmp_path)


def test_wrong_model_is_a_clear_error(tmp_path, model):
    path = save_weights(tmp_path / "w.npz", model)
    with pytest.raises(DenoiseKitError, match="weights for model 'residual-mul', not 'vanilla-ae'"):
        load_model(path, expect_model="vanilla-ae")


def test_bad_recorded_options_are_the_files_fault_not_the_command_lines(tmp_path, model):
    """A plugin refuses a bad option as a usage error (exit 2); read from a file, it is bad
    input naming the file (exit 1), not an option the user never gave."""
    from denoisekit.errors import UsageError

    path = save_weights(tmp_path / "w.npz", model)
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(str(arrays[HEADER]))
    header["options"]["activations"] = ["bogus", "sigmoid2"]
    arrays[HEADER] = np.array(json.dumps(header))
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DenoiseKitError, match="bad.npz: its recorded options are refused: unknown activation") as err:
        load_model(tmp_path / "bad.npz")
    assert not isinstance(err.value, UsageError)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, payload=np.array([{"a": 1}], dtype=object), __denoisekit__=np.array("{}"))
    with pytest.raises(DenoiseKitError, match="not a denoisekit weights file .it holds pickled objects"):
        read_weights(path)


def test_not_a_weights_file(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"not a zip")
    # NumPy's own message would be about pickles and allow_pickle, which mean nothing here
    with pytest.raises(DenoiseKitError, match=r"not a denoisekit weights file \(not a \.npz archive\)$"):
        read_weights(tmp_path / "x.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(2))
    with pytest.raises(DenoiseKitError, match="no header"):
        read_weights(tmp_path / "plain.npz")


def test_written_atomically_with_the_users_umask(tmp_path, model):
    old = os.umask(0o022)
    try:
        path = save_weights(tmp_path / "w.npz", model)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["w.npz"]  # no temporary left behind


def test_files_from_before_an_option_existed_keep_their_behaviour(tmp_path):
    """A residual net saved before ``offset`` existed was trained with air at 0: loading it
    must not apply today's default offset (which would shift every output by 1000 HU)."""
    old = get_model("residual-mul")(kernels=(3, 1), channels=(2,), activations=("tanh", "sigmoid2"), offset=0.0)
    old.build()
    path = save_weights(tmp_path / "w.npz", old)
    header, arrays = read_weights(path)
    del header["options"]["offset"]
    arrays[HEADER] = np.array(json.dumps(header))
    np.savez(tmp_path / "old.npz", **arrays)
    again = load_model(tmp_path / "old.npz")
    assert again.config["offset"] == 0.0
    x = np.random.default_rng(0).normal(0, 100, (1, 12, 12)).astype(np.float32)
    np.testing.assert_allclose(again.denoise(x), old.denoise(x), rtol=1e-6)


def test_weights_record_the_plugin_that_provides_their_model(tmp_path, model):
    import denoisekit

    header, _ = read_weights(save_weights(tmp_path / "w.npz", model))
    assert header["plugin"] == {"name": "denoisekit_plugins.models", "distribution": "denoisekit",
                                "version": denoisekit.__version__}


ACME_NET = """
from denoisekit.plugin import hookimpl
from denoisekit_plugins.models.residual import ResidualMul

class AcmeNet(ResidualMul):
    name = "acme-net"
    description = "A residual net from a third party"

@hookimpl
def register_models(register):
    register(AcmeNet)
"""


def test_weights_whose_plugin_is_missing_say_which_to_install(tmp_path, fake_dist, fresh_plugins, monkeypatch):
    fake_dist("acme-nets", "acme_nets", ACME_NET, version="0.3")
    net = get_model("acme-net")(kernels=(3, 1), channels=(2,), activations=("tanh", "sigmoid2"))
    net.build()
    save_weights(tmp_path / "run" / "best.npz", net)
    monkeypatch.setenv("DENOISEKIT_BLOCK_PLUGINS", "acme-nets")
    fresh_plugins.reset()
    with pytest.raises(DenoiseKitError) as err:
        load_model(tmp_path / "run")
    assert str(err.value).startswith(
        f"{tmp_path / 'run' / 'best.npz'} holds weights for model 'acme-net' from plugin acme_nets (acme-nets 0.3), "
        "which no loaded plugin provides: install or unblock acme-nets (models available: bm3d, ")
    assert str(err.value).endswith("; see 'denoisekit models')") and "\n" not in str(err.value)

    header, arrays = read_weights(tmp_path / "run" / "best.npz")  # a file from before plugins were recorded
    del header["plugin"]
    np.savez(tmp_path / "old.npz", **arrays, **{HEADER: np.array(json.dumps(header))})
    with pytest.raises(DenoiseKitError, match=r"old.npz holds weights for model 'acme-net', which no loaded plugin "
                                              r"provides: install the plugin that provides it \(models available: "):
        load_model(tmp_path / "old.npz")
