"""Adam: bias-corrected updates equal a NumPy transcription of Kingma & Ba, and the saved
state restores so that continuing gives the same numbers as never stopping."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from denoisekit.errors import DenoiseKitError
from denoisekit.optim import Adam


def _numpy_adam(w, grads, lr=0.01, b1=0.9, b2=0.999, eps=1e-8):
    m = np.zeros_like(w)
    v = np.zeros_like(w)
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        w = w - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return w


def test_matches_the_textbook_update():
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4)).astype(np.float32)
    grads = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(5)]
    w = tf.Variable(w0)
    opt = Adam([w], lr=0.01)
    step = tf.function(lambda g: opt.apply([g]))
    for g in grads:
        step(tf.constant(g))
    assert int(opt.iterations.numpy()) == 5
    np.testing.assert_allclose(w.numpy(), _numpy_adam(w0.astype(np.float64), grads), rtol=1e-5, atol=1e-6)


def test_first_step_moves_each_weight_by_lr():
    # With bias correction the first update is lr * sign(g); without it, it would be ~lr * 0.1/0.03.
    w = tf.Variable([1.0, -2.0, 3.0])
    opt = Adam([w], lr=0.1)
    opt.apply([tf.constant([5.0, -0.001, 0.3])])
    np.testing.assert_allclose(w.numpy(), [0.9, -1.9, 2.9], rtol=1e-5)


def test_saved_state_resumes_exactly(tmp_path):
    rng = np.random.default_rng(3)
    grads = [rng.normal(size=(2, 2)).astype(np.float32) for _ in range(6)]
    a = tf.Variable(np.ones((2, 2), np.float32))
    opt_a = Adam([a], lr=0.05, names=["w"])
    for g in grads:
        opt_a.apply([g])

    b = tf.Variable(np.ones((2, 2), np.float32))
    opt_b = Adam([b], lr=0.05, names=["w"])
    for g in grads[:3]:
        opt_b.apply([g])
    path = opt_b.save(tmp_path / "adam.npz")
    saved_w = b.numpy()

    c = tf.Variable(saved_w)
    opt_c = Adam([c], lr=0.05, names=["w"])
    opt_c.load(path)
    assert int(opt_c.iterations.numpy()) == 3
    for g in grads[3:]:
        opt_c.apply([g])
    np.testing.assert_array_equal(c.numpy(), a.numpy())
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert set(data.files) == {"t", "hyper", "m|w", "v|w"}


def test_state_of_another_shape_is_refused(tmp_path):
    opt = Adam([tf.Variable(np.zeros((2, 2), np.float32))], names=["w"])
    path = opt.save(tmp_path / "adam.npz")
    other = Adam([tf.Variable(np.zeros((3, 2), np.float32))], names=["w"])
    with pytest.raises(DenoiseKitError, match="shape"):
        other.load(path)
    renamed = Adam([tf.Variable(np.zeros((2, 2), np.float32))], names=["k"])
    with pytest.raises(DenoiseKitError, match="does not fit"):
        renamed.load(path)


def test_cosine_decay_follows_the_schedule_and_stops_at_its_end():
    w = tf.Variable([0.0])
    opt = Adam([w], lr=0.1, decay_steps=4)
    rates = []
    for _ in range(6):
        rates.append(float(opt.rate().numpy()))
        opt.apply([tf.constant([1.0])])  # constant gradient: each step moves w by the rate
    np.testing.assert_allclose(rates, [0.1, 0.1 * (1 + np.cos(np.pi / 4)) / 2, 0.05,
                                       0.1 * (1 + np.cos(3 * np.pi / 4)) / 2, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(w.numpy(), [-sum(rates)], rtol=1e-5)
    assert Adam([w], lr=0.1).rate().numpy() == pytest.approx(0.1)


def test_decay_steps_must_be_positive():
    with pytest.raises(ValueError, match="decay_steps"):
        Adam([tf.Variable([0.0])], decay_steps=0)


def _run(grads, **kw):
    w = tf.Variable(np.zeros(3, np.float32))
    opt = Adam([w], lr=0.01, **kw)
    for g in grads:
        opt.apply([tf.constant(g, tf.float32)])
    return w.numpy()


def test_unit_gradients_equal_the_textbook_update_of_normalised_gradients():
    rng = np.random.default_rng(1)
    grads = [rng.normal(size=3) * s for s in (1.0, 50.0, 0.02, 3.0)]
    unit = [g / np.linalg.norm(g) for g in grads]
    np.testing.assert_allclose(_run(grads, unit_gradients=True), _numpy_adam(np.zeros(3), unit), rtol=1e-5, atol=1e-7)


def test_one_huge_gradient_stalls_raw_adam_but_not_unit_gradients():
    # The failure unit gradients exist for: one spike fills v, and the steps after it shrink.
    g = np.array([1.0, -2.0, 0.5])
    after_spike = [1000.0 * g] + [g] * 50
    steady = [g] * 51
    raw_moved = np.abs(_run(after_spike) - _run(after_spike[:1])).sum()
    raw_steady = np.abs(_run(steady) - _run(steady[:1])).sum()
    assert raw_moved < 0.2 * raw_steady
    np.testing.assert_allclose(_run(after_spike, unit_gradients=True), _run(steady, unit_gradients=True), rtol=1e-6)
