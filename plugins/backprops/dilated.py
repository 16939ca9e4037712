"""``dilated``: the articles' densely connected ("dilated") backward pass.

Not the true gradient: skip connections added to the *backward* pass only. With ``d_j`` the
gradient passed down by layer ``j`` (of ``L``), layer ``k`` receives

    d_{k+1} + p * (d_L + d_{L-1} + ... + d_{k+2})        (variant "sum")
    d_{k+1} + p * (d_L * d_{L-1} * ... * d_{k+2})        (variant "product")

where only the ``d_j`` with the shape of ``d_{k+1}`` take part, and ``p = p0 / (1 + decay * step)``.
With ``p0 = 0`` it is exactly ``manual``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from denoisekit.errors import UsageError
from denoisekit.plugin import Backprop
from denoisekit_plugins.backprops.manual import backward_chain


def _same_shape(a, b) -> bool:
    """Static shapes without the batch dimension (unknown sizes compare as equal)."""
    return a.shape.rank == b.shape.rank and a.shape[1:].as_list() == b.shape[1:].as_list()


class Dilated(Backprop):
    name = "dilated"
    description = "Densely connected backward pass: each layer also gets p x the gradients from all layers above."
    requires_manual_gradients = True
    # The articles used p0 = 800..1000 on raw intensities (decay 0.064..0.08 per step) and
    # p0 = 0.05 with decay 0.07 in an earlier numpy version. On scaled inputs the gradients
    # are O(1)-comparable across layers, so a small p0 keeps the extra term a nudge rather
    # than a replacement of the true gradient; decay 0.01 halves it after 100 steps, so
    # training ends on (nearly) the true gradient.
    options: ClassVar[dict[str, Any]] = {"p0": 0.1, "decay": 0.01, "variant": "sum"}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.config["variant"] not in ("sum", "product"):
            raise UsageError(f"backprop 'dilated': variant must be sum or product, got {self.config['variant']!r}")
        if float(self.config["decay"]) < 0:
            raise UsageError("backprop 'dilated': decay must be >= 0")

    def p(self, step):
        import tensorflow as tf

        step = tf.cast(step, tf.float32)
        return float(self.config["p0"]) / (1.0 + float(self.config["decay"]) * step)

    def gradients(self, model, x, target, step, weights=None):
        import tensorflow as tf

        p = self.p(step)
        product = self.config["variant"] == "product"

        def incoming(k, g, passed):
            # passed[-1] is d_{k+1} (already in g); passed[:-1] are d_L .. d_{k+2}.
            extra = [d for d in passed[:-1] if _same_shape(d, g)]
            if not extra:
                return g
            if product:
                combined = extra[0]
                for d in extra[1:]:
                    combined = combined * d
            else:
                combined = tf.add_n(extra)
            return g + p * combined

        return backward_chain(model, x, target, incoming, weights)
