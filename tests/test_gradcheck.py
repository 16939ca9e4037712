"""gradcheck(): per-variable agreement for the built-ins, and it catches a broken backward step."""

import pytest

from denoisekit.errors import DenoiseKitError
from denoisekit.gradcheck import gradcheck
from denoisekit.plugins import get_model

tf = pytest.importorskip("tensorflow")


@pytest.mark.parametrize("name,options,size", [
    ("vanilla-ae", {"channels": 2, "latent": 16}, 32),
    ("vanilla-ae", {"channels": 2, "latent": 16, "kernels": (7, 5, 3), "activations": ("arctan", "relu", "tanh", "sigmoid", "arctan", "tanh", "relu", "sigmoid")}, 16),
    # fewer pooling stages (depth = number of encoder kernels)
    ("vanilla-ae", {"channels": 3, "latent": 12, "kernels": (5,), "activations": ("tanh", "arctan", "tanh", "linear")}, 8),
    ("vanilla-ae", {"channels": 2, "latent": 16, "kernels": (5, 3), "activations": ("tanh",) * 5 + ("sigmoid",)}, 12),
    ("residual-mul", {}, 24),
    ("residual-mul-add", {"activations": ("relu", "arctan", "sigmoid", "tanh", "sigmoid2", "tanh")}, 20),
])
def test_builtin_models_pass(name, options, size):
    model = get_model(name)(**options)
    results = gradcheck(model, size=size, seed=1)
    assert [r.variable for r in results] == model.weight_names()
    assert all(r.ok and r.rel_error < 1e-4 and r.norm > 0 for r in results)
    assert {r.layer for r in results} == {layer.name for layer in model.layers}


def test_a_pool_backward_missing_its_quarter_is_caught(article_depth):
    """The original article's bug: mean-pool backward without the 1/4 factor."""
    from denoisekit_plugins.models import layers as L

    class ForgetfulPool(L.MeanPool2):
        def backward(self, g, cache):
            dh, grads = super().backward(g, cache)
            return dh * 4.0, grads

    model = get_model("vanilla-ae")(channels=2, latent=16, **article_depth)
    model.build(16)
    model.layers[1].ops[1] = ForgetfulPool()  # enc2's pool
    results = {r.variable: r for r in gradcheck(model, seed=0)}
    # enc2 is conv -> pool -> act: its conv and everything below get 4x the true gradient
    for name in ("enc1.0", "enc1.1", "enc2.0", "enc2.1"):
        assert results[name].rel_error == pytest.approx(3.0, rel=1e-3)
    assert all(results[n].ok for n in ("enc3.0", "latent.0", "dec3.0"))  # above it: still right


def test_an_upsample_that_subsamples_is_caught(article_depth):
    """The article's other bug: pixel-repeat backward taking one pixel per block instead of the sum."""
    from denoisekit_plugins.models import layers as L

    class Subsampling(L.PixelRepeat2):
        def backward(self, g, cache):
            return g[:, ::2, ::2, :], []

    model = get_model("vanilla-ae")(channels=2, latent=16, **article_depth)
    model.build(16)
    model.layers[-1].ops[0] = Subsampling()
    failed = {r.layer for r in gradcheck(model, seed=0) if not r.ok}
    assert failed == {"enc1", "enc2", "enc3", "latent", "expand", "dec1", "dec2"}


def test_models_without_manual_gradients_are_refused():
    with pytest.raises(DenoiseKitError, match="no hand-written gradients"):
        gradcheck(get_model("nl-means")())


def test_fixed_size_model_rejects_another_size():
    model = get_model("vanilla-ae")(channels=2, latent=8)
    model.build(16)
    with pytest.raises(DenoiseKitError, match="built for 16x16"):
        gradcheck(model, size=32)


def test_a_built_model_whose_layers_lack_backward_is_named():
    """build_model checks the layers; a model given built is checked here, not left to an
    AttributeError from the manual rule."""
    from denoisekit.errors import PluginError

    class ForwardOnly:
        def __init__(self, layer):
            self.name, self.variables, self.forward = layer.name, layer.variables, layer.forward

    model = get_model("residual-mul")()
    model.build(16)
    model.layers[0] = ForwardOnly(model.layers[0])
    with pytest.raises(PluginError, match="model 'residual-mul' .* its layer 'layer1' .* lacks backward\\(\\)"):
        gradcheck(model, size=16)
