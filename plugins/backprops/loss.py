"""The training loss, defined once: mean squared error in model units, optionally with a
weight per sample (train's ``loss_weight``).

``manual`` and ``dilated`` start their backward pass from :func:`mse_grad`, the exact
derivative of :func:`mse`, so every rule optimises the same objective. (The articles'
``0.25 * sum(...)`` differs only by a constant factor, which Adam ignores.)
"""

from __future__ import annotations


def mse(out, target, weights=None):
    import tensorflow as tf

    sq = tf.square(out - target)
    return tf.reduce_mean(sq if weights is None else _per_sample(weights, sq) * sq)


def mse_grad(out, target, weights=None):
    """d mse / d out = 2 (out - target) / number of elements."""
    import tensorflow as tf

    n = tf.cast(tf.size(out), out.dtype)
    g = 2.0 * (out - target) / n
    return g if weights is None else _per_sample(weights, g) * g


def _per_sample(weights, like):
    """``weights`` (batch,) shaped to broadcast over the other axes of ``like``."""
    import tensorflow as tf

    return tf.reshape(tf.cast(weights, like.dtype), [-1] + [1] * (len(like.shape) - 1))
