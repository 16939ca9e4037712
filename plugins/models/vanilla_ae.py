"""The article's vanilla convolutional autoencoder (Part 1).

Encoder: three times ``conv -> 2x2 mean pool -> activation``, then flatten -> fully connected
latent -> activation. Decoder, mirrored: fully connected -> activation -> reshape, then three
times ``repeat each pixel 2x2 -> conv -> activation``; the last activation is a sigmoid. The
fully connected layers fix the input size: the model works on square patches of
``patch_size`` (divisible by 8), and inference tiles whole slices.
"""

from __future__ import annotations

from typing import Any, ClassVar

from denoisekit.errors import DenoiseKitError
from denoisekit.plugin import TrainableModel

DEFAULT_PATCH = 64
#: HU mapped linearly onto [0, 1] for the sigmoid output: the 12-bit CT range -1024..3071.
HU_LOW, HU_RANGE = -1024.0, 4096.0


def _clip01(a):
    if type(a).__module__.startswith("numpy") or isinstance(a, (int, float)):
        import numpy as np

        return np.clip(a, 0.0, 1.0)
    import tensorflow as tf

    return tf.clip_by_value(a, 0.0, 1.0)


class VanillaAE(TrainableModel):
    name = "vanilla-ae"
    description = "Convolutional autoencoder: 3 x (conv, mean pool), dense latent, mirrored decoder (article Part 1)."
    manual_gradients = True
    fixed_size = True
    # The article: channels=1, latent=1000, bias=false, init=normal (unit variance).
    # Defaults that train: 8 channels (one channel through three 2x pools loses too much),
    # a 256 latent for 64x64 patches, biases, He/Glorot init.
    options: ClassVar[dict[str, Any]] = {
        "channels": 8,
        "latent": 256,
        "kernels": (7, 5, 3),
        "activations": ("tanh", "tanh", "tanh", "tanh", "tanh", "tanh", "tanh", "sigmoid"),
        "bias": True,
        "init": "auto",
    }

    def scale(self, hu):
        """HU -> [0, 1] over -1024..3071 HU (what the sigmoid output can reach)."""
        return _clip01((hu - HU_LOW) / HU_RANGE)

    def unscale(self, y):
        return y * HU_RANGE + HU_LOW

    def build(self, patch_size: int | None = None) -> None:
        from denoisekit_plugins.models import layers as L

        s = int(patch_size or DEFAULT_PATCH)
        c = self.config
        if s < 8 or s % 8:
            raise DenoiseKitError(f"model '{self.name}' needs a patch size divisible by 8, got {s}")
        if len(c["kernels"]) != 3:
            raise DenoiseKitError(f"model '{self.name}': kernels lists the 3 encoder sizes, got {len(c['kernels'])}")
        if len(c["activations"]) != 8:
            raise DenoiseKitError(
                f"model '{self.name}': activations needs 8 names (3 encoder convs, latent, "
                f"decoder dense, 3 decoder convs), got {len(c['activations'])}"
            )
        if c["channels"] < 1 or c["latent"] < 1:
            raise DenoiseKitError(f"model '{self.name}': channels and latent must be >= 1")
        ch, acts, bias, init = c["channels"], c["activations"], c["bias"], c["init"]
        small = s // 8
        flat = small * small * ch

        def conv(name, k, cin, cout, act):
            std = L.init_std(init, k * k * cin, k * k * cout, act)
            return L.Conv2D(name, k, cin, cout, bias=bias, std=std)

        def dense(name, fin, fout, act):
            return L.Dense(name, fin, fout, bias=bias, std=L.init_std(init, fin, fout, act))

        layers = []
        cin = 1
        for i, k in enumerate(c["kernels"]):
            ops = [conv("conv", k, cin, ch, acts[i]), L.MeanPool2(), L.Activation(acts[i])]
            layers.append(L.Block(f"enc{i + 1}", ops))
            cin = ch
        layers.append(L.Block("latent", [L.Flatten(), dense("fc", flat, c["latent"], acts[3]), L.Activation(acts[3])]))
        layers.append(
            L.Block("expand", [dense("fc", c["latent"], flat, acts[4]), L.Activation(acts[4]), L.Unflatten((small, small, ch))])
        )
        for i, k in enumerate(reversed(c["kernels"])):
            cout = 1 if i == 2 else ch
            ops = [L.PixelRepeat2(), conv("conv", k, ch, cout, acts[5 + i]), L.Activation(acts[5 + i])]
            layers.append(L.Block(f"dec{i + 1}", ops))
        self.layers = layers
        self.patch_size = s
        self.built = True
