"""The plugin-author API: option parsing and the base classes' contracts."""

import pytest

from denoisekit.errors import DenoiseKitError, PluginError
from denoisekit.plugin import Model, NoiseKind, TrainableModel, build_model, check_layers, parse_option_value


class Thing(Model):
    name = "thing"
    description = "test"
    options = {"depth": 6, "rate": 0.5, "kernels": (13, 7, 3), "acts": ("tanh",), "bias": True}


@pytest.mark.parametrize(
    "text, default, expected",
    [("3", 6, 3), ("0.25", 0.5, 0.25), ("5,3,1", (13, 7), (5, 3, 1)), ("relu, tanh", ("x",), ("relu", "tanh")),
     ("false", True, False), ("YES", False, True)],
)
def test_option_values_take_the_type_of_the_default(text, default, expected):
    value = parse_option_value(text, default)
    assert value == expected and type(value) is type(expected)


def test_from_strings_builds_a_typed_config():
    thing = Thing.from_strings(["depth=4", "kernels=3,3", "bias=no"])
    assert thing.config == {"depth": 4, "rate": 0.5, "kernels": (3, 3), "acts": ("tanh",), "bias": False}


@pytest.mark.parametrize(
    "pairs, message",
    [(["colour=red"], "no option 'colour'"), (["depth"], "not of the form key=value"),
     (["depth=deep"], "model 'thing' option depth: expected an integer, got 'deep'"), (["rate=fast"], "expected a number"),
     (["bias=maybe"], "true/false")],
)
def test_bad_options_are_clear_errors(pairs, message):
    with pytest.raises(DenoiseKitError, match=message):
        Thing.from_strings(pairs)


def test_unknown_keyword_option_is_refused():
    with pytest.raises(DenoiseKitError, match="model 'thing' has no option colour"):
        Thing(colour="red")


def test_noise_sample_records_seed_and_config():
    import numpy as np

    class N(NoiseKind):
        name, description, options = "n", "test", {"sigma": 10.0}

    a = N(sigma=3.0).sample(np.random.default_rng(1), (2, 4, 4))
    b = N(sigma=3.0).sample(np.random.default_rng(1), (2, 4, 4))
    assert a == b and a["sigma"] == 3.0 and a["kind"] == "n"
    assert a["seed"] != N().sample(np.random.default_rng(2), (2, 4, 4))["seed"]


def test_trainable_denoise_keeps_padding_outside_the_field_of_view():
    import numpy as np

    from denoisekit.plugins import get_model

    model = get_model("residual-mul")(kernels=(3, 1), channels=(2,), activations=("tanh", "sigmoid2"))
    model.build()
    slices = np.full((1, 16, 16), 40.0, dtype=np.float32)
    slices[:, :, :3] = -3024.0  # scanner padding, clipped away by the model's scaling
    out = model.denoise(slices)
    assert (out[:, :, :3] == -3024.0).all()
    assert np.abs(out[:, :, 6:] - 40.0).max() < 100.0  # near-identity start elsewhere
    # the net sees the padding as air: its neighbours come out as they would next to air
    air = slices.copy()
    air[:, :, :3] = -1024.0
    np.testing.assert_array_equal(out[:, :, 3:], model.denoise(air)[:, :, 3:])


def test_trainable_denoise_denoises_noisy_air_below_minus_1024():
    import numpy as np

    from denoisekit.plugins import get_model

    model = get_model("residual-mul")(kernels=(3, 1), channels=(2,), activations=("tanh", "sigmoid2"))
    model.build()
    rng = np.random.default_rng(0)
    slices = (-1000.0 + 30.0 * rng.standard_normal((1, 16, 16))).astype(np.float32)  # noisy air
    low = slices < -1024.0
    assert low.any()
    out = model.denoise(slices)
    expected = model.unscale(np.asarray(model.call(model.scale(slices)[..., None]))[..., 0])
    np.testing.assert_allclose(out, expected, atol=1e-3)  # the model's output, not the input, below -1024


class _NoBackward:
    name, variables = "conv", []

    def forward(self, h, x):
        return h, None


def _claims(*layers):
    """A model claiming hand-written gradients, whose build() makes ``layers``."""
    class Claims(TrainableModel):
        name, description, manual_gradients = "claims", "test", True

        def build(self, patch_size=None):
            self.layers = list(layers)

    return Claims()


@pytest.mark.parametrize("layers, message", [
    ((_NoBackward(),), "but its layer 'conv' \\(_NoBackward\\) lacks backward\\(\\) \\(a Layer has name, variables, forward"),
    ((object(),), "but its layer number 1 \\(object\\) lacks name, variables, forward\\(\\), backward\\(\\)"),
    ((), "but has no layers after build\\(\\)"),
])
def test_a_model_claiming_manual_gradients_is_held_to_its_layers(layers, message):
    """Before any work: else train and gradcheck stop mid-run on an AttributeError naming no
    model. Building alone does not check (inference and autodiff never run the layers)."""
    model = _claims(*layers)
    build_model(model, 16)
    with pytest.raises(PluginError, match=f"^model 'claims' \\({__name__}\\) sets manual_gradients = True {message}"):
        check_layers(model)


def test_a_method_left_out_says_which_not_a_bare_not_implemented_error():
    class NoBuild(TrainableModel):
        name, description = "no-build", "test"

    with pytest.raises(PluginError, match=f"^model 'no-build' \\({__name__}\\) does not implement build\\(\\), "
                                          "which a TrainableModel must"):
        build_model(NoBuild(), 16)
    with pytest.raises(PluginError, match="noise 'n' .* does not implement apply\\(\\), which a NoiseKind must"):
        type("N", (NoiseKind,), {"name": "n"})().apply(None, {})
