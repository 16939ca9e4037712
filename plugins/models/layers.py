"""Hand-written layers: each op's forward pass and its exact backward step (vector-Jacobian
product) in TensorFlow ops, so ``manual`` and ``dilated`` can train the built-in models.

Every op and every :class:`Block` follows the :class:`denoisekit.plugin.Layer` protocol:
``forward(h, x) -> (out, cache)`` and ``backward(g, cache) -> (dh, [d variables])``. A model's
``layers`` are Blocks (one per layer of the article's diagram) made of these ops. Shapes are
NHWC and read with ``tf.shape`` so everything works inside ``tf.function`` on any batch size.

This module imports TensorFlow: models import it from ``build()`` only.
"""

from __future__ import annotations

import math

import tensorflow as tf

from denoisekit.errors import UsageError

_STRIDES = [1, 1, 1, 1]


# ---------------------------------------------------------------- activations
# name -> (f(z), f'(z, a)) with a = f(z); the derivative reuses the output where it can.
ACTIVATIONS = {
    "linear": (lambda z: z, lambda z, a: tf.ones_like(z)),
    "relu": (tf.nn.relu, lambda z, a: tf.cast(z > 0, z.dtype)),
    "sigmoid": (tf.sigmoid, lambda z, a: a * (1.0 - a)),
    # 2 * sigmoid: range (0, 2), exactly 1 at z = 0, so ``act * x`` can shrink or grow x.
    "sigmoid2": (lambda z: 2.0 * tf.sigmoid(z), lambda z, a: a * (1.0 - 0.5 * a)),
    "tanh": (tf.tanh, lambda z, a: 1.0 - a * a),
    "arctan": (tf.atan, lambda z, a: 1.0 / (1.0 + z * z)),
}


def check_activation(name: str) -> str:
    if name not in ACTIVATIONS:
        raise UsageError(f"unknown activation {name!r} (choose from {', '.join(ACTIVATIONS)})")
    return name


class Activation:
    """Elementwise ``f(h)``."""

    variables: list = []

    def __init__(self, name: str):
        self.name = check_activation(name)
        self.f, self.df = ACTIVATIONS[name]

    def forward(self, h, x):
        a = self.f(h)
        return a, (h, a)

    def backward(self, g, cache):
        z, a = cache
        return g * self.df(z, a), []


# ---------------------------------------------------------------- initialisation
def init_std(init: str, fan_in: int, fan_out: int, activation: str) -> float:
    """Standard deviation of a normal initialiser: He before ReLU, Glorot otherwise
    (``auto``); ``normal`` is the articles' unit variance, kept reachable."""
    if init == "auto":
        init = "he" if activation == "relu" else "glorot"
    if init == "he":
        return math.sqrt(2.0 / fan_in)
    if init == "glorot":
        return math.sqrt(2.0 / (fan_in + fan_out))
    if init == "normal":
        return 1.0
    raise UsageError(f"unknown init {init!r} (choose from auto, he, glorot, normal)")


def _variable(shape, std: float, name: str):
    return tf.Variable(tf.random.normal(shape, stddev=std, dtype=tf.float32), name=name, trainable=True)


def _zeros(shape, name: str):
    return tf.Variable(tf.zeros(shape, tf.float32), name=name, trainable=True)


# ---------------------------------------------------------------- ops with variables
class Conv2D:
    """Stride-1 SAME convolution, optional bias. Backward: the transposed convolution
    (``Conv2DBackpropInput``) and the filter gradient (``Conv2DBackpropFilter``)."""

    def __init__(self, name: str, kernel: int, cin: int, cout: int, bias: bool = True, std: float = 0.1):
        self.name = name
        self.w = _variable([kernel, kernel, cin, cout], std, f"{name}/w")
        self.b = _zeros([cout], f"{name}/b") if bias else None
        self.variables = [self.w] + ([self.b] if bias else [])

    def forward(self, h, x):
        z = tf.nn.conv2d(h, self.w, strides=1, padding="SAME")
        if self.b is not None:
            z = z + self.b
        return z, h

    def backward(self, g, cache):
        h = cache
        dw = tf.raw_ops.Conv2DBackpropFilter(
            input=h, filter_sizes=tf.shape(self.w), out_backprop=g, strides=_STRIDES, padding="SAME"
        )
        dh = tf.raw_ops.Conv2DBackpropInput(
            input_sizes=tf.shape(h), filter=self.w, out_backprop=g, strides=_STRIDES, padding="SAME"
        )
        grads = [dw] + ([tf.reduce_sum(g, axis=[0, 1, 2])] if self.b is not None else [])
        return dh, grads


class Dense:
    """Fully connected ``h @ W + b`` on (n, features)."""

    def __init__(self, name: str, fan_in: int, fan_out: int, bias: bool = True, std: float = 0.1):
        self.name = name
        self.w = _variable([fan_in, fan_out], std, f"{name}/w")
        self.b = _zeros([fan_out], f"{name}/b") if bias else None
        self.variables = [self.w] + ([self.b] if bias else [])

    def forward(self, h, x):
        z = tf.matmul(h, self.w)
        if self.b is not None:
            z = z + self.b
        return z, h

    def backward(self, g, cache):
        h = cache
        grads = [tf.matmul(h, g, transpose_a=True)]
        if self.b is not None:
            grads.append(tf.reduce_sum(g, axis=0))
        return tf.matmul(g, self.w, transpose_b=True), grads


# ---------------------------------------------------------------- reshaping ops
def _repeat2x2(h):
    """Repeat every pixel into a 2x2 block: (n, y, x, c) -> (n, 2y, 2x, c)."""
    s = tf.shape(h)
    n, y, x, c = s[0], s[1], s[2], s[3]
    h = tf.reshape(h, [n, y, 1, x, 1, c])
    h = tf.broadcast_to(h, [n, y, 2, x, 2, c])
    return tf.reshape(h, [n, 2 * y, 2 * x, c])


class MeanPool2:
    """2x2 mean pool, stride 2. Backward: each gradient spread over its block, times 1/4
    (the factor the original forgot)."""

    variables: list = []
    name = "mean-pool"

    def forward(self, h, x):
        return tf.nn.avg_pool2d(h, ksize=2, strides=2, padding="VALID"), None

    def backward(self, g, cache):
        return _repeat2x2(g) * 0.25, []


class PixelRepeat2:
    """Upsample by repeating each pixel 2x2. Backward: the sum over each 2x2 block (the
    original sub-sampled instead)."""

    variables: list = []
    name = "pixel-repeat"

    def forward(self, h, x):
        return _repeat2x2(h), None

    def backward(self, g, cache):
        return tf.nn.avg_pool2d(g, ksize=2, strides=2, padding="VALID") * 4.0, []


class Flatten:
    """(n, y, x, c) -> (n, y*x*c)."""

    variables: list = []
    name = "flatten"

    def forward(self, h, x):
        shape = tf.shape(h)
        return tf.reshape(h, [shape[0], -1]), shape

    def backward(self, g, cache):
        return tf.reshape(g, cache), []


class Unflatten:
    """(n, y*x*c) -> (n, y, x, c) for a fixed (y, x, c)."""

    variables: list = []
    name = "unflatten"

    def __init__(self, shape: tuple[int, int, int]):
        self.shape = list(shape)

    def forward(self, h, x):
        return tf.reshape(h, [tf.shape(h)[0], *self.shape]), None

    def backward(self, g, cache):
        return tf.reshape(g, [tf.shape(g)[0], -1]), []


# ---------------------------------------------------------------- residual combinations
class TimesInput:
    """``h * x``: the product with the model's input, broadcast over channels."""

    variables: list = []
    name = "times-input"

    def forward(self, h, x):
        return h * x, x

    def backward(self, g, cache):
        return g * cache, []


class TimesInputPlusInput:
    """``h * x + x``; the ``+ x`` term has no parameters, so the backward step is ``g * x``."""

    variables: list = []
    name = "times-input-plus-input"

    def forward(self, h, x):
        return h * x + x, x

    def backward(self, g, cache):
        return g * cache, []


# ---------------------------------------------------------------- a layer of a model
class Block:
    """One model layer: ops applied in order; backward runs them in reverse and returns
    the gradients of all the ops' variables in the order of ``variables``."""

    def __init__(self, name: str, ops: list):
        self.name = name
        self.ops = list(ops)

    @property
    def variables(self) -> list:
        return [v for op in self.ops for v in op.variables]

    def forward(self, h, x):
        caches = []
        for op in self.ops:
            h, cache = op.forward(h, x)
            caches.append(cache)
        return h, caches

    def backward(self, g, cache):
        grads: list = []
        for op, c in zip(reversed(self.ops), reversed(cache)):
            g, op_grads = op.backward(g, c)
            grads = list(op_grads) + grads
        return g, grads
