"""The training loss, defined once: mean squared error in model units.

``manual`` and ``dilated`` start their backward pass from :func:`mse_grad`, the exact
derivative of :func:`mse`, so every rule optimises the same objective. (The articles'
``0.25 * sum(...)`` differs only by a constant factor, which Adam ignores.)
"""

from __future__ import annotations


def mse(out, target):
    import tensorflow as tf

    return tf.reduce_mean(tf.square(out - target))


def mse_grad(out, target):
    """d mse / d out = 2 (out - target) / number of elements."""
    import tensorflow as tf

    n = tf.cast(tf.size(out), out.dtype)
    return 2.0 * (out - target) / n
