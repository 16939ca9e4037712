"""The article's vanilla convolutional autoencoder (Part 1).

Encoder: ``len(kernels)`` times ``conv -> 2x2 mean pool -> activation`` (the article: three),
then flatten -> fully connected latent -> activation. Decoder, mirrored: fully connected ->
activation -> reshape, then as many times ``repeat each pixel 2x2 -> conv -> activation``.
The fully connected layers fix the input size: the model works on square patches of
``patch_size`` (divisible by 2 ** depth), and inference tiles whole slices.
"""

from __future__ import annotations

from typing import Any, ClassVar

from denoisekit.errors import UsageError
from denoisekit.plugin import TrainableModel

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
    description = "Convolutional autoencoder: (conv, mean pool) stages, dense latent, mirrored decoder (article Part 1)."
    manual_gradients = True
    fixed_size = True
    # The article: kernels=(7, 5, 3) (three pooling stages), channels=1, latent=1000,
    # bias=false, init=normal, a sigmoid output. Defaults that beat the noisy input
    # (docs/models.md): one pooling stage on 16x16 patches, 32 channels, a 128 latent (half
    # the patch's pixels), a linear output. Three stages train to ~60 HU error and stall.
    options: ClassVar[dict[str, Any]] = {
        "channels": 32,
        "latent": 128,
        "kernels": (7,),
        "activations": ("tanh", "tanh", "tanh", "linear"),
        "bias": True,
        "init": "auto",
    }
    default_patch_size: ClassVar[int] = 16

    def scale(self, hu):
        """HU -> [0, 1] over -1024..3071 HU (what the article's sigmoid output can reach)."""
        return _clip01((hu - HU_LOW) / HU_RANGE)

    def unscale(self, y):
        return y * HU_RANGE + HU_LOW

    def build(self, patch_size: int | None = None) -> None:
        from denoisekit_plugins.models import layers as L

        s = int(patch_size or self.default_patch_size)
        c = self.config
        depth = len(c["kernels"])
        if depth < 1:
            raise UsageError(f"model '{self.name}': kernels must list at least one encoder size")
        if s < 2**depth or s % 2**depth:
            raise UsageError(
                f"model '{self.name}' with {depth} pooling stages needs a patch size divisible by {2**depth}, got {s}"
            )
        if len(c["activations"]) != 2 * depth + 2:
            raise UsageError(
                f"model '{self.name}': activations needs {2 * depth + 2} names ({depth} encoder convs, latent, "
                f"decoder dense, {depth} decoder convs), got {len(c['activations'])}"
            )
        if c["channels"] < 1 or c["latent"] < 1:
            raise UsageError(f"model '{self.name}': channels and latent must be >= 1")
        ch, acts, bias, init = c["channels"], c["activations"], c["bias"], c["init"]
        small = s // 2**depth
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
        layers.append(
            L.Block("latent", [L.Flatten(), dense("fc", flat, c["latent"], acts[depth]), L.Activation(acts[depth])])
        )
        layers.append(
            L.Block("expand", [dense("fc", c["latent"], flat, acts[depth + 1]), L.Activation(acts[depth + 1]),
                               L.Unflatten((small, small, ch))])
        )
        for i, k in enumerate(reversed(c["kernels"])):
            cout = 1 if i == depth - 1 else ch
            act = acts[depth + 2 + i]
            ops = [L.PixelRepeat2(), conv("conv", k, ch, cout, act), L.Activation(act)]
            layers.append(L.Block(f"dec{i + 1}", ops))
        self.layers = layers
        self.patch_size = s
        self.built = True
