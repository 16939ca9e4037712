"""``autodiff``: TensorFlow's own gradients of the loss (``tf.GradientTape``)."""

from __future__ import annotations

from denoisekit.plugin import Backprop
from denoisekit_plugins.backprops.loss import mse


class Autodiff(Backprop):
    name = "autodiff"
    description = "Automatic differentiation with tf.GradientTape; works with any trainable model."
    options: dict = {}

    def gradients(self, model, x, target, step, weights=None):
        import tensorflow as tf

        variables = model.trainable_variables
        with tf.GradientTape() as tape:
            loss = mse(model.call(x), target, weights)
        grads = tape.gradient(loss, variables)
        # A variable the output does not depend on gets zeros, not None, so Adam can apply.
        return loss, [tf.zeros_like(v) if g is None else g for g, v in zip(grads, variables)]
