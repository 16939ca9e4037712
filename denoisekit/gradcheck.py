"""Check a model's hand-written backward pass against automatic differentiation.

The check a plugin author runs on their own layers: on a random noisy/clean pair, the
``manual`` rule's gradient of every variable is compared with ``autodiff``'s by relative
error ``||g_manual - g_autodiff|| / max(||g_autodiff||, tiny)``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from denoisekit.errors import DenoiseKitError, UsageError

TINY = 1e-30


@dataclass
class GradResult:
    layer: str
    variable: str
    shape: tuple[int, ...]
    norm: float
    rel_error: float
    ok: bool

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shape": list(self.shape)}


def default_size(model: Any) -> int:
    """Fixed-size models use their patch size option default; others a small 32x32."""
    return 64 if model.fixed_size else 32


def gradcheck(model: Any, size: int | None = None, seed: int = 0, batch: int = 2,
              tolerance: float = 1e-4) -> list[GradResult]:
    """Return one result per trainable variable, in ``model.trainable_variables`` order.

    Builds ``model`` if needed (weights drawn under ``seed``). The input is random HU
    (a smooth-ish clean slice plus Gaussian noise) mapped through ``model.scale``, so the
    check exercises the ranges training sees.
    """
    if not getattr(model, "trainable", False) or not getattr(model, "manual_gradients", False):
        raise UsageError(  # the model asked for, whatever else
            f"model '{model.name}' provides no hand-written gradients (manual_gradients is "
            "false): there is nothing to check"
        )
    import numpy as np
    import tensorflow as tf

    from denoisekit.plugin import build_model, check_layers
    from denoisekit_plugins.backprops.autodiff import Autodiff
    from denoisekit_plugins.backprops.manual import Manual

    tf.random.set_seed(seed)
    if not model.built:
        build_model(model, size or (default_size(model) if model.fixed_size else None))
    check_layers(model)  # before comparing what they compute
    if model.fixed_size:
        if size is not None and size != model.patch_size:
            raise DenoiseKitError(f"model '{model.name}' is built for {model.patch_size}x{model.patch_size} patches, not {size}")
        size = model.patch_size
    size = size or default_size(model)

    rng = np.random.default_rng(seed)
    clean = rng.uniform(-1000.0, 1500.0, size=(batch, size, size)).astype(np.float32)
    noisy = clean + rng.normal(0.0, 100.0, size=clean.shape).astype(np.float32)
    x = tf.constant(np.asarray(model.scale(noisy), np.float32)[..., None])
    target = tf.constant(np.asarray(model.scale(clean), np.float32)[..., None])
    step = tf.constant(0, tf.int64)

    _, g_auto = Autodiff().gradients(model, x, target, step)
    _, g_man = Manual().gradients(model, x, target, step)
    variables = model.trainable_variables
    if len(g_man) != len(variables):
        raise DenoiseKitError(
            f"model '{model.name}': the backward steps return {len(g_man)} gradients for "
            f"{len(variables)} variables"
        )
    names = model.weight_names()
    owners = [layer.name for layer in model.layers for _ in layer.variables]
    results = []
    for name, owner, v, ga, gm in zip(names, owners, variables, g_auto, g_man):
        ga = np.asarray(ga, np.float64)
        gm = np.asarray(gm, np.float64)
        if gm.shape != ga.shape:
            rel = float("inf")
        else:
            norm = float(np.linalg.norm(ga))
            rel = float(np.linalg.norm(gm - ga) / max(norm, TINY))
        results.append(GradResult(owner, name, tuple(v.shape), float(np.linalg.norm(ga)), rel,
                                  bool(rel <= tolerance)))
    return results
