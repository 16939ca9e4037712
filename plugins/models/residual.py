"""The article's convolutional residual networks (Part 3): six convolutions, each output
multiplied by the network's original input.

- ``residual-mul``:     ``h_k = act_k(conv_k(h_{k-1})) * x``
- ``residual-mul-add``: ``h_k = act_k(conv_k(h_{k-1})) * x + x``

with ``h_0 = x`` and output ``h_L``. Depth is ``len(kernels)``. TensorFlow is imported in
``build`` only, so listing models stays instant.
"""

from __future__ import annotations

from typing import Any, ClassVar

from denoisekit.errors import UsageError
from denoisekit.plugin import TrainableModel

HIDDEN_ACTIVATIONS = ("sigmoid", "tanh", "arctan", "relu", "tanh")


def _options(last_activation: str) -> dict[str, Any]:
    """The defaults both nets share; they differ only in the last activation."""
    return {
        "kernels": (13, 7, 3, 5, 3, 1),
        "channels": (8, 8, 8, 8, 8),
        "activations": (*HIDDEN_ACTIVATIONS, last_activation),
        "bias": True,
        "init": "auto",
        "offset": 1.0,
    }


def _maximum(a, floor: float):
    """``max(a, floor)`` for NumPy arrays and TensorFlow tensors alike."""
    if type(a).__module__.startswith("numpy") or isinstance(a, (int, float)):
        import numpy as np

        return np.maximum(a, floor)
    import tensorflow as tf

    return tf.maximum(a, floor)


class _Residual(TrainableModel):
    manual_gradients = True
    fixed_size = False
    #: the last layer's initial weights are this fraction of Glorot, so the untrained
    #: network starts close to the identity (output ~= x) and training only improves on it.
    last_gain: ClassVar[float] = 0.01
    combine: ClassVar[str] = ""
    #: weights files written before ``offset`` existed were trained without one
    legacy_options: ClassVar[dict[str, Any]] = {"offset": 0.0}

    def scale(self, hu):
        """HU -> (HU + 1024) / 1000 + offset, floored at 0. The products with x need x >= 0
        so that a positive factor shrinks toward the clean value. With the article's range
        (offset 0) air sits at ~0, where the factor that cleans a pixel is clean / noisy:
        huge or tiny with the noise's sign, so the nets left air noisy. The default offset 1
        puts air at ~1 and water at ~2, where that factor stays near 1 everywhere."""
        return _maximum((hu + 1024.0) / 1000.0 + self.config["offset"], 0.0)

    def unscale(self, y):
        return (y - self.config["offset"]) * 1000.0 - 1024.0

    def _check(self) -> None:
        c = self.config
        depth = len(c["kernels"])
        if depth < 1:
            raise UsageError(f"model '{self.name}': kernels must list at least one size")
        if len(c["channels"]) != depth - 1:
            raise UsageError(
                f"model '{self.name}': channels lists the {depth - 1} hidden layers' widths "
                f"(one fewer than kernels), got {len(c['channels'])}"
            )
        if len(c["activations"]) != depth:
            raise UsageError(
                f"model '{self.name}': activations needs one name per layer ({depth}), "
                f"got {len(c['activations'])}"
            )
        if any(k < 1 for k in c["kernels"]) or any(ch < 1 for ch in c["channels"]):
            raise UsageError(f"model '{self.name}': kernel sizes and channels must be >= 1")

    def build(self, patch_size: int | None = None) -> None:
        """Any slice size works (stride 1, SAME padding); ``patch_size`` is only recorded."""
        from denoisekit_plugins.models import layers as L

        self._check()
        c = self.config
        widths = [1, *c["channels"], 1]
        combine = L.TimesInput if self.combine == "mul" else L.TimesInputPlusInput
        self.layers = []
        for k, (kernel, act) in enumerate(zip(c["kernels"], c["activations"])):
            cin, cout = widths[k], widths[k + 1]
            std = L.init_std(c["init"], kernel * kernel * cin, kernel * kernel * cout, act)
            if k == len(c["kernels"]) - 1:
                std *= self.last_gain
            conv = L.Conv2D(f"conv{k + 1}", kernel, cin, cout, bias=c["bias"], std=std)
            self.layers.append(L.Block(f"layer{k + 1}", [conv, L.Activation(act), combine()]))
        self.patch_size = patch_size
        self.built = True


class ResidualMul(_Residual):
    name = "residual-mul"
    description = "Six-layer residual CNN, h_k = act(conv(h_{k-1})) * x (article Part 3)."
    combine = "mul"
    # Last activation 2*sigmoid: the factor on x spans (0, 2), so the output can go below
    # as well as above the input, and equals x when the last convolution outputs 0.
    options: ClassVar[dict[str, Any]] = _options("sigmoid2")


class ResidualMulAdd(_Residual):
    name = "residual-mul-add"
    description = "Six-layer residual CNN, h_k = act(conv(h_{k-1})) * x + x (article Part 3)."
    combine = "mul-add"
    # Last activation tanh: the output x * (1 + tanh) spans (0, 2x), identity at 0.
    options: ClassVar[dict[str, Any]] = _options("tanh")
