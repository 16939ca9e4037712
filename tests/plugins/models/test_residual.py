"""residual-mul and residual-mul-add: the article's layer equations, any slice size, options."""

import numpy as np
import pytest

from denoisekit.errors import DenoiseKitError
from denoisekit_plugins.models.residual import ResidualMul, ResidualMulAdd

tf = pytest.importorskip("tensorflow")


@pytest.mark.parametrize("cls,add", [(ResidualMul, False), (ResidualMulAdd, True)])
def test_each_layer_is_act_of_conv_times_input(cls, add):
    """Recompute h_k = act(conv(h_{k-1})) * x (+ x) with plain TF ops from the weights."""
    tf.random.set_seed(0)
    model = cls(kernels=(5, 3, 1), channels=(2, 4), activations=("sigmoid", "arctan", "tanh"))
    model.build()
    x = tf.random.uniform([2, 11, 17, 1], 0.0, 2.0)
    acts = {"sigmoid": tf.sigmoid, "arctan": tf.atan, "tanh": tf.tanh}
    h = x
    for k, name in enumerate(("sigmoid", "arctan", "tanh")):
        w, b = model.layers[k].variables
        a = acts[name](tf.nn.conv2d(h, w, 1, "SAME") + b)
        h = a * x + x if add else a * x
    np.testing.assert_allclose(model.call(x).numpy(), h.numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [ResidualMul, ResidualMulAdd])
def test_defaults_work_on_any_size_and_start_near_the_identity(cls):
    tf.random.set_seed(0)
    model = cls()
    model.build()
    assert len(model.layers) == 6
    assert [v.shape[0] for v in model.trainable_variables[0::2]] == [13, 7, 3, 5, 3, 1]
    for shape in ((1, 24, 24, 1), (2, 19, 40, 1)):
        x = tf.random.uniform(shape, 0.0, 2.0)
        y = model.call(x).numpy()
        assert y.shape == shape
        # the last layer starts small: the untrained output is within ~5% of x
        assert np.median(np.abs(y / x.numpy() - 1.0)) < 0.05


def test_last_activation_lets_the_output_go_below_and_above_the_input():
    x = tf.fill([1, 4, 4, 1], 1.5)
    for cls in (ResidualMul, ResidualMulAdd):
        model = cls(kernels=(1,), channels=(), activations=(cls.options["activations"][-1],), bias=True)
        model.build()
        w, b = model.trainable_variables
        for bias, below in ((-20.0, True), (20.0, False)):
            b.assign([bias])
            y = float(tf.reduce_mean(model.call(x)))
            assert (y < 0.1 * 1.5) if below else (y > 1.9 * 1.5)


def test_articles_channels_are_reachable():
    model = ResidualMul.from_strings(["channels=5,7,9,9,3", "bias=false", "init=normal"])
    model.build()
    assert [tuple(v.shape) for v in model.trainable_variables] == [
        (13, 13, 1, 5), (7, 7, 5, 7), (3, 3, 7, 9), (5, 5, 9, 9), (3, 3, 9, 3), (1, 1, 3, 1)
    ]


@pytest.mark.parametrize("options,match", [
    ({"channels": (3, 3)}, "channels lists the 5 hidden"),
    ({"activations": ("tanh",)}, "one name per layer"),
    ({"activations": ("tanh",) * 5 + ("swish",)}, "unknown activation"),
    ({"init": "zeros"}, "unknown init"),
])
def test_bad_options_are_clear_errors(options, match):
    with pytest.raises(DenoiseKitError, match=match):
        ResidualMul(**options).build()


def test_scale_floors_below_air_and_round_trips_above():
    model = ResidualMul(offset=0.0)  # the article's range: air 0, water ~1
    hu = np.array([-3000.0, -1024.0, 0.0, 1500.0], np.float32)
    np.testing.assert_allclose(model.scale(hu), [0.0, 0.0, 1.024, 2.524], rtol=1e-6)
    np.testing.assert_allclose(model.unscale(model.scale(hu[1:])), hu[1:], atol=1e-3)
    np.testing.assert_allclose(model.scale(tf.constant(hu)).numpy(), model.scale(hu))


def test_default_offset_keeps_air_away_from_zero():
    # air at 1 rather than 0: the factor that cleans a noisy air pixel stays near 1 instead
    # of swinging with the noise's sign, and the floor only clips padding below -2024 HU
    model = ResidualMulAdd()
    hu = np.array([-3024.0, -2024.0, -1000.0, 0.0, 1500.0], np.float32)
    np.testing.assert_allclose(model.scale(hu), [0.0, 0.0, 1.024, 2.024, 3.524], rtol=1e-6)
    np.testing.assert_allclose(model.unscale(model.scale(hu[1:])), hu[1:], atol=1e-3)
