"""Adam with the bias correction of Kingma & Ba (2015), in TensorFlow variables whose state
saves to and restores from plain arrays, so ``train --resume`` continues exactly.

The articles' hand-written Adam skipped the bias correction; here every rule updates
through this one optimiser. ``apply`` runs inside the training step's ``tf.function``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np


class Adam:
    """``m = b1 m + (1-b1) g``; ``v = b2 v + (1-b2) g^2``;
    ``w -= lr_t * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)``.

    ``lr_t = lr``, or with ``decay_steps = T`` the cosine schedule
    ``lr_t = lr * (1 + cos(pi * min(t - 1, T) / T)) / 2``: full rate at the first step, zero at
    step T + 1 and after. A fixed budget ends on small steps that settle the weights instead of
    leaving them wherever the last full-rate step threw them. ``lr_t`` depends on the step
    count alone, so a resumed run follows the same schedule.

    ``unit_gradients``: each step's gradients are first divided by their global norm. In the
    multiplicative nets an early layer's gradient scales with the input to the fifth power
    (bone at ~4 model units, air at 1), so rare bone-heavy batches can give gradients orders
    of magnitude above the usual; one such spike fills ``v`` for about ``1 / (1 - b2)`` steps
    and shrinks every later step, and training can stall at the identity (seen on the
    pretraining data without its one non-CT map). Unit gradients keep the direction and drop
    the spikes' size.
    """

    def __init__(
        self,
        variables: Sequence[Any],
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        names: Sequence[str] | None = None,
        decay_steps: int | None = None,
        unit_gradients: bool = False,
    ) -> None:
        import tensorflow as tf

        self.variables = list(variables)
        self.names = list(names) if names is not None else [str(i) for i in range(len(self.variables))]
        if len(self.names) != len(self.variables):
            raise ValueError("one name per variable")
        self.lr, self.beta1, self.beta2, self.eps = float(lr), float(beta1), float(beta2), float(eps)
        if decay_steps is not None and decay_steps < 1:
            raise ValueError("decay_steps must be at least 1")
        self.decay_steps = None if decay_steps is None else int(decay_steps)
        self.unit_gradients = bool(unit_gradients)
        self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="adam_t")
        self.m = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]
        self.v = [tf.Variable(tf.zeros_like(v), trainable=False) for v in self.variables]

    @property
    def config(self) -> dict[str, float]:
        return {"lr": self.lr, "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps,
                "decay_steps": self.decay_steps, "unit_gradients": self.unit_gradients}

    def rate(self):
        """The learning rate of the next update (a float32 tensor)."""
        import math

        import tensorflow as tf

        if self.decay_steps is None:
            return tf.constant(self.lr, tf.float32)
        done = tf.minimum(tf.cast(self.iterations, tf.float32), float(self.decay_steps))
        return self.lr * 0.5 * (1.0 + tf.cos(math.pi * done / self.decay_steps))

    def apply(self, grads: Sequence[Any]) -> None:
        """One update of every variable (graph-friendly: no Python branching on values)."""
        import tensorflow as tf

        t = tf.cast(self.iterations + 1, tf.float32)
        c1 = 1.0 - tf.pow(self.beta1, t)
        c2 = 1.0 - tf.pow(self.beta2, t)
        lr = self.rate()
        grads = [tf.convert_to_tensor(g, dtype=w.dtype) for w, g in zip(self.variables, grads)]
        if self.unit_gradients:
            norm = tf.linalg.global_norm(grads)
            grads = [g / (norm + 1e-30) for g in grads]
        for w, m, v, g in zip(self.variables, self.m, self.v, grads):
            m.assign(self.beta1 * m + (1.0 - self.beta1) * g)
            v.assign(self.beta2 * v + (1.0 - self.beta2) * tf.square(g))
            w.assign_sub(lr * (m / c1) / (tf.sqrt(v / c2) + self.eps))
        self.iterations.assign_add(1)

    def get_state(self) -> dict[str, np.ndarray]:
        """Moments and step count as named arrays (with the hyper-parameters, for checks)."""
        state = {"t": np.asarray(self.iterations.numpy(), dtype=np.int64)}
        for name, m, v in zip(self.names, self.m, self.v):
            state[f"m/{name}"] = m.numpy()
            state[f"v/{name}"] = v.numpy()
        state["hyper"] = np.asarray([self.lr, self.beta1, self.beta2, self.eps], dtype=np.float64)
        return state

    def set_state(self, state: dict[str, np.ndarray]) -> None:
        from denoisekit.errors import DenoiseKitError

        expected = {"t", "hyper"} | {f"{k}/{n}" for n in self.names for k in "mv"}
        if set(state) != expected:
            raise DenoiseKitError("optimizer state does not fit this model's variables")
        for name, m, v in zip(self.names, self.m, self.v):
            for slot, key in ((m, f"m/{name}"), (v, f"v/{name}")):
                if tuple(state[key].shape) != tuple(slot.shape):
                    raise DenoiseKitError(f"optimizer state {key} has shape {state[key].shape}, expected {tuple(slot.shape)}")
                slot.assign(state[key])
        self.iterations.assign(int(state["t"]))

    def save(self, path: str | Path) -> Path:
        """Write the state atomically as a plain ``.npz`` (no pickle)."""
        from denoisekit.io.atomic import replacing

        path = Path(path)
        with replacing(path) as temp:
            np.savez(temp, **{k.replace("/", "|"): v for k, v in self.get_state().items()})
        return path

    def load(self, path: str | Path) -> None:
        from denoisekit.errors import DenoiseKitError

        try:
            with np.load(path, allow_pickle=False) as data:
                state = {k.replace("|", "/"): data[k] for k in data.files}
        except Exception as exc:
            raise DenoiseKitError(f"cannot read optimizer state {path} ({exc})") from None
        self.set_state(state)
