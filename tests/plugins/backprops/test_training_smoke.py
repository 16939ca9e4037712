"""A few Adam steps with every built-in model and rule lower the loss on a tiny denoising set."""

import numpy as np
import pytest

from denoisekit.plugins import get_backprop, get_model

tf = pytest.importorskip("tensorflow")

MODELS = {"vanilla-ae": ({"channels": 4, "latent": 32}, 16), "vanilla-ae-3": ({"channels": 4, "latent": 32, "kernels": (7, 5, 3), "activations": ("tanh",) * 7 + ("sigmoid",)}, 16), "residual-mul": ({}, 16), "residual-mul-add": ({}, 16)}


def _discs(n, s, seed=0):
    """Discs of tissue in air, with 150 HU Gaussian noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:s, :s]
    clean = np.full((n, s, s), -1000.0, np.float32)
    for i in range(n):
        for _ in range(2):
            cy, cx = rng.uniform(3, s - 3, 2)
            clean[i][(yy - cy) ** 2 + (xx - cx) ** 2 < rng.uniform(3, s / 2.5) ** 2] = rng.uniform(-100, 300)
    return clean, clean + rng.normal(0, 150, clean.shape).astype(np.float32)


@pytest.mark.parametrize("rule", ["autodiff", "manual", "dilated"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_adam_steps_lower_the_loss(name, rule):
    options, size = MODELS[name]
    tf.random.set_seed(0)
    model = get_model(name.removesuffix("-3"))(**options)
    model.build(size)
    clean, noisy = _discs(8, size)
    x = tf.constant(np.asarray(model.scale(noisy))[..., None])
    t = tf.constant(np.asarray(model.scale(clean))[..., None])
    backprop = get_backprop(rule)()
    # 3e-3: at 1e-2 the dilated rule's extra term overshoots on the residual nets' default scale
    opt = tf.keras.optimizers.Adam(3e-3)

    @tf.function
    def step(i):
        loss, grads = backprop.gradients(model, x, t, i)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    losses = [float(step(tf.constant(i, tf.int64))) for i in range(40)]
    assert np.isfinite(losses).all()
    assert min(losses[-3:]) < 0.9 * losses[0]
