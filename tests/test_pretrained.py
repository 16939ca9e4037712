import numpy as np
import pytest

from denoisekit.errors import DenoiseKitError
from denoisekit.plugins import get_model
from denoisekit.pretrained import load_pretrained
from denoisekit.weights import save_weights


def test_loads_shipped_layout_and_marks_source(tmp_path):
    model = get_model("residual-mul")()
    model.build(16)
    save_weights(tmp_path / "residual-mul.npz", model)
    loaded = load_pretrained("residual-mul", directory=tmp_path)
    assert loaded.name == "residual-mul" and loaded.weights_source == "pretrained"
    for name, value in model.get_weights().items():
        np.testing.assert_array_equal(loaded.get_weights()[name], value)


def test_missing_weights_name_the_fix(tmp_path):
    with pytest.raises(DenoiseKitError, match="model residual-mul ships no pretrained weights: infer runs it with --weights"):
        load_pretrained("residual-mul", directory=tmp_path)


def test_file_for_another_model_is_refused(tmp_path):
    model = get_model("residual-mul")()
    model.build(16)
    save_weights(tmp_path / "residual-mul-add.npz", model)
    with pytest.raises(DenoiseKitError, match="not 'residual-mul-add'"):
        load_pretrained("residual-mul-add", directory=tmp_path)



def test_coarse_pixels_get_a_note_only_with_shipped_weights():
    from denoisekit.pretrained import COARSEST_TRAINED_PIXEL_MM, coarse_pixel_note

    shipped = load_pretrained("residual-mul")
    note = coarse_pixel_note(shipped, (1.01, 1.01, 2.5))
    assert note is not None and "1.01 mm" in note and "nl-means" in note
    assert coarse_pixel_note(shipped, (0.5, COARSEST_TRAINED_PIXEL_MM + 0.05, 2.5)) is not None  # either axis
    assert coarse_pixel_note(shipped, (0.703, 0.703, 2.5)) is None
    own = get_model("residual-mul")()
    own.weights_source = "runs/mine/best.npz"  # the user's own training: their pixels, their call
    assert coarse_pixel_note(own, (1.01, 1.01, 2.5)) is None
    assert coarse_pixel_note(get_model("nl-means")(), (1.01, 1.01, 2.5)) is None


def test_a_plugin_package_ships_its_own_pretrained_weights(fake_dist, fresh_plugins):
    import json
    import sys
    from pathlib import Path

    from denoisekit.infer import load_model_for_inference
    from denoisekit.pretrained import coarse_pixel_note, training_data

    module = fake_dist("acme-nets", "acme_nets", """
from denoisekit.plugin import hookimpl
from denoisekit_plugins.models.residual import ResidualMul

class AcmeNet(ResidualMul):
    name = "acme-net"
    description = "a third party's residual net"

@hookimpl
def register_models(register):
    register(AcmeNet)
""", package=True)
    with pytest.raises(DenoiseKitError, match="model acme-net ships no pretrained weights"):
        load_model_for_inference("acme-net")
    model = fresh_plugins.get_model("acme-net")()
    model.build(16)
    weights = Path(sys.modules[module].__path__[0]) / "weights"  # inside the plugin's package
    weights.mkdir()
    save_weights(weights / "acme-net.npz", model)
    (weights / "acme-net.json").write_text(json.dumps({"data": ["acme scans"]}))
    loaded = load_model_for_inference("acme-net")  # no --weights: the package's own
    assert loaded.weights_source == "pretrained"
    for name, value in model.get_weights().items():
        np.testing.assert_array_equal(loaded.get_weights()[name], value)
    assert training_data("acme-net") == ["acme scans"]
    assert coarse_pixel_note(loaded, (1.5, 1.5, 2.5)) is None  # our weights' limits are not theirs
