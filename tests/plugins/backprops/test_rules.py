"""autodiff, manual and dilated: agreement, the dilated equations, tf.function, capabilities."""

import numpy as np
import pytest

from denoisekit.errors import UsageError
from denoisekit.plugin import TrainableModel
from denoisekit.plugins import check_trainable, get_backprop, get_model

tf = pytest.importorskip("tensorflow")

MODELS = {  # name -> (options, size): small but the real structure
    "vanilla-ae": ({"channels": 3, "latent": 24}, 32),
    "residual-mul": ({}, 24),
    "residual-mul-add": ({}, 24),
}


def _problem(name, seed=0):
    options, size = MODELS[name]
    tf.random.set_seed(seed)
    model = get_model(name)(**options)
    model.build(size)
    rng = np.random.default_rng(seed)
    clean = rng.uniform(-1000, 1000, (2, size, size)).astype(np.float32)
    noisy = clean + rng.normal(0, 100, clean.shape).astype(np.float32)
    x = tf.constant(np.asarray(model.scale(noisy))[..., None])
    t = tf.constant(np.asarray(model.scale(clean))[..., None])
    return model, x, t


def _grads(rule, model, x, t, step=0, weights=None, **options):
    kw = {} if weights is None else {"weights": tf.constant(weights, tf.float32)}
    return get_backprop(rule)(**options).gradients(model, x, t, tf.constant(step, tf.int64), **kw)


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_manual_equals_autodiff(name):
    model, x, t = _problem(name)
    loss_a, auto = _grads("autodiff", model, x, t)
    loss_m, manual = _grads("manual", model, x, t)
    assert float(loss_a) == pytest.approx(float(loss_m), rel=1e-6)
    assert len(manual) == len(auto) == len(model.trainable_variables)
    for m, a, v in zip(manual, auto, model.trainable_variables):
        assert m.shape == v.shape
        assert np.linalg.norm(a) > 0
        assert _rel(m, a) < 1e-4


@pytest.mark.parametrize("name", sorted(MODELS))
def test_per_sample_weights_weight_each_sample_in_every_rule(name):
    model, x, t = _problem(name)
    w = np.array([1.7, 0.3], np.float32)
    loss_a, auto = _grads("autodiff", model, x, t, weights=w)
    loss_m, manual = _grads("manual", model, x, t, weights=w)
    _, zero = _grads("dilated", model, x, t, weights=w, p0=0.0)
    # the weighted loss is the weighted mean of the samples' own losses
    per_sample = [float(_grads("autodiff", model, x[i:i + 1], t[i:i + 1])[0]) for i in range(2)]
    assert float(loss_a) == pytest.approx(float(np.dot(w, per_sample) / 2), rel=1e-5)
    assert float(loss_m) == pytest.approx(float(loss_a), rel=1e-6)
    _, plain = _grads("autodiff", model, x, t)
    for m, a, z, p in zip(manual, auto, zero, plain):
        assert _rel(m, a) < 1e-4 and np.array_equal(m, z)
    assert max(_rel(a, p) for a, p in zip(auto, plain)) > 1e-2  # the weights change the gradients


@pytest.mark.parametrize("name", sorted(MODELS))
def test_dilated_with_p0_zero_is_exactly_manual_and_differs_otherwise(name):
    model, x, t = _problem(name)
    _, manual = _grads("manual", model, x, t)
    _, zero = _grads("dilated", model, x, t, p0=0.0)
    assert all(np.array_equal(m, z) for m, z in zip(manual, zero))
    for variant in ("sum", "product"):
        _, dilated = _grads("dilated", model, x, t, p0=0.5, variant=variant)
        assert all(np.isfinite(d).all() for d in dilated)
        differ = [_rel(d, m) > 1e-3 for d, m in zip(dilated, manual)]
        # the last two layers get no extra term; some layer below them does
        assert any(differ) and not any(differ[-4:])


def test_dilated_follows_the_seed_notes_equations():
    """d_4 = b_4(dL), d_3 = b_3(d_4), d_2 = b_2(d_3 + p d_4), d_1 = b_1(d_2 + p (d_4 + d_3))."""
    tf.random.set_seed(3)
    model = get_model("residual-mul")(kernels=(3, 3, 3, 3), channels=(2, 2, 2), activations=("tanh",) * 3 + ("sigmoid2",))
    model.build()
    x = tf.random.uniform([2, 10, 10, 1], 0.2, 2.0)
    t = tf.random.uniform([2, 10, 10, 1], 0.2, 2.0)
    p0, decay, step = 0.3, 0.5, 4
    p = p0 / (1 + decay * step)
    out, caches = model.forward_with_caches(x)
    b = [lambda g, k=k: model.layers[k].backward(g, caches[k]) for k in range(4)]
    d4, g4 = b[3](2.0 * (out - t) / tf.cast(tf.size(out), tf.float32))
    d3, g3 = b[2](d4)
    d2, g2 = b[1](d3 + p * d4)
    _, g1 = b[0](d2 + p * (d4 + d3))
    expected = [*g1, *g2, *g3, *g4]
    _, got = _grads("dilated", model, x, t, step=step, p0=p0, decay=decay)
    for e, g in zip(expected, got):
        np.testing.assert_allclose(g.numpy(), e.numpy(), rtol=1e-5, atol=1e-9)
    # the product variant multiplies the gradients from further up instead
    _, g1p = b[0](d2 + p * (d4 * d3))
    _, got = _grads("dilated", model, x, t, step=step, p0=p0, decay=decay, variant="product")
    np.testing.assert_allclose(got[0].numpy(), g1p[0].numpy(), rtol=1e-5, atol=1e-9)


def test_rules_run_inside_tf_function_with_a_step_tensor():
    model, x, t = _problem("residual-mul")
    rule = get_backprop("dilated")(p0=1.0, decay=1.0)
    fn = tf.function(lambda step: rule.gradients(model, x, t, step)[1][0])
    early = fn(tf.constant(0, tf.int64)).numpy()
    late = fn(tf.constant(10**7, tf.int64)).numpy()  # p ~ 1e-7: the true gradient
    _, manual = _grads("manual", model, x, t)
    assert _rel(early, manual[0]) > 1e-2
    assert _rel(late, manual[0]) < 1e-4


def test_bad_dilated_variant_is_a_clear_error():
    from denoisekit.errors import DenoiseKitError

    with pytest.raises(DenoiseKitError, match="variant must be sum or product"):
        get_backprop("dilated")(variant="mean")


class KerasOnly(TrainableModel):
    """A third party's model with no hand-written backward steps: autodiff only."""

    name = "keras-only"
    description = "plain Keras"

    def build(self, patch_size=None):
        self.net = tf.keras.Sequential([tf.keras.Input((None, None, 1)), tf.keras.layers.Conv2D(1, 3, padding="same")])
        self.built = True

    @property
    def trainable_variables(self):
        return self.net.trainable_variables

    def call(self, x):
        return self.net(x)


def test_model_without_manual_gradients_trains_with_autodiff_only():
    check_trainable(KerasOnly, get_backprop("autodiff"))
    for rule in ("manual", "dilated"):
        with pytest.raises(UsageError, match=f"backprop '{rule}' needs hand-written gradients.*--backprop autodiff"):
            check_trainable(KerasOnly, get_backprop(rule))
    model = KerasOnly()
    model.build()
    loss, grads = _grads("autodiff", model, tf.ones([1, 8, 8, 1]), tf.zeros([1, 8, 8, 1]))
    assert len(grads) == 2 and float(loss) >= 0
