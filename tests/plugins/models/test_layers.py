"""Each hand-written op's backward step against TensorFlow's own gradient of its forward pass."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from denoisekit_plugins.models import layers as L  # noqa: E402


def _vjp_pair(op, h, x, g):
    """(manual, autodiff) gradients w.r.t. the op's input and its variables."""
    with tf.GradientTape() as tape:
        tape.watch(h)
        out, cache = op.forward(h, x)
        loss = tf.reduce_sum(out * g)
    auto = tape.gradient(loss, [h, *op.variables])
    dh, grads = op.backward(g, cache)
    return [dh, *grads], auto


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30)


def _ops():
    tf.random.set_seed(1)
    return {
        "conv": (L.Conv2D("c", 3, 2, 3, bias=True, std=0.3), (2, 8, 6, 2), (2, 8, 6, 3)),
        "conv-no-bias": (L.Conv2D("c", 5, 1, 2, bias=False, std=0.3), (1, 7, 9, 1), (1, 7, 9, 2)),
        "dense": (L.Dense("d", 12, 5, std=0.3), (3, 12), (3, 5)),
        "mean-pool": (L.MeanPool2(), (2, 8, 6, 3), (2, 4, 3, 3)),
        "pixel-repeat": (L.PixelRepeat2(), (2, 4, 3, 3), (2, 8, 6, 3)),
        "flatten": (L.Flatten(), (2, 4, 3, 3), (2, 36)),
        "unflatten": (L.Unflatten((4, 3, 3)), (2, 36), (2, 4, 3, 3)),
        "times-input": (L.TimesInput(), (2, 8, 6, 3), (2, 8, 6, 3)),
        "times-input-plus-input": (L.TimesInputPlusInput(), (2, 8, 6, 3), (2, 8, 6, 3)),
        **{f"act-{n}": (L.Activation(n), (2, 5, 5, 2), (2, 5, 5, 2)) for n in L.ACTIVATIONS},
    }


@pytest.mark.parametrize("key", sorted(_ops()))
def test_backward_matches_autodiff(key):
    op, in_shape, out_shape = _ops()[key]
    rng = np.random.default_rng(0)
    h = tf.constant(rng.normal(size=in_shape).astype(np.float32))
    x = tf.constant(rng.uniform(0.5, 1.5, size=(in_shape[0], in_shape[1], in_shape[2], 1) if len(in_shape) == 4 else in_shape).astype(np.float32))
    g = tf.constant(rng.normal(size=out_shape).astype(np.float32))
    manual, auto = _vjp_pair(op, h, x, g)
    assert len(manual) == len(auto) == 1 + len(op.variables)
    for m, a in zip(manual, auto):
        assert m.shape == a.shape
        assert _rel(m, a) < 1e-5


def test_pool_and_repeat_are_adjoint_up_to_the_pool_factor():
    """<pool(h), g> = <h, repeat(g)> / 4: the 1/4 the original backward pass forgot."""
    rng = np.random.default_rng(3)
    h = tf.constant(rng.normal(size=(1, 6, 4, 2)).astype(np.float32))
    g = tf.constant(rng.normal(size=(1, 3, 2, 2)).astype(np.float32))
    pooled, _ = L.MeanPool2().forward(h, None)
    repeated, _ = L.PixelRepeat2().forward(g, None)
    assert float(tf.reduce_sum(pooled * g)) == pytest.approx(float(tf.reduce_sum(h * repeated)) / 4, rel=1e-5)


def test_block_returns_gradients_in_variable_order():
    tf.random.set_seed(0)
    block = L.Block("b", [L.Conv2D("c1", 3, 1, 2, std=0.5), L.Activation("tanh"), L.Conv2D("c2", 1, 2, 1, bias=False, std=0.5)])
    h = tf.random.normal([1, 6, 6, 1])
    out, cache = block.forward(h, h)
    _, grads = block.backward(tf.ones_like(out), cache)
    assert [tuple(g.shape) for g in grads] == [tuple(v.shape) for v in block.variables] == [(3, 3, 1, 2), (2,), (1, 1, 2, 1)]


def test_unknown_activation_is_a_clear_error():
    from denoisekit.errors import DenoiseKitError

    with pytest.raises(DenoiseKitError, match="unknown activation 'softmax'"):
        L.Activation("softmax")
