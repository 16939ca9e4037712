"""The public API for plugin authors: ``hookimpl`` and the interfaces plugins implement.

A plugin registers *classes*; the core instantiates them with user options. Nothing
here imports TensorFlow, so listing plugins stays instant; TensorFlow-based plugins
import it inside their methods.
"""

from __future__ import annotations

import math

from typing import Any, ClassVar, Protocol, runtime_checkable

from denoisekit.errors import DenoiseKitError, PluginError, UsageError
from denoisekit.hookspecs import hookimpl

__all__ = [
    "hookimpl",
    "Plugin",
    "Model",
    "TrainableModel",
    "Layer",
    "Backprop",
    "NoiseKind",
    "parse_option_value",
]


def parse_option_value(text: str, default: Any) -> Any:
    """Parse a ``--option key=value`` string into the type of the option's default."""
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"expected true/false, got {text!r}")
    if isinstance(default, (tuple, list)):
        parts = [p.strip() for p in text.split(",") if p.strip()]
        sample = default[0] if default else ""
        return tuple(parse_option_value(p, sample) for p in parts)
    if default is None:
        return text
    try:
        value = type(default)(text)
    except ValueError:
        raise ValueError(f"expected {'an integer' if isinstance(default, int) else 'a number'}, got {text!r}") from None
    if isinstance(value, float) and not math.isfinite(value):  # 'inf' failed late, blamed on the plugin
        raise ValueError(f"expected a finite number, got {text!r}")
    return value


class Plugin:
    """What every registered thing has: a kebab-case name, a one-line description and
    options (name -> default) that users set with ``--option key=value``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[dict[str, Any]] = {}
    kind: ClassVar[str] = "plugin"

    def __init__(self, **options: Any) -> None:
        unknown = sorted(set(options) - set(self.options))
        if unknown:
            known = ", ".join(sorted(self.options)) or "none"
            raise DenoiseKitError(
                f"{self.kind} '{self.name}' has no option {', '.join(unknown)} (options: {known})"
            )
        self.config: dict[str, Any] = {**self.options, **options}

    @classmethod
    def from_strings(cls, pairs: list[str] | None = None, **extra: Any):
        """Build from CLI ``key=value`` strings, typed by each option's default."""
        options = dict(extra)
        for pair in pairs or []:
            key, sep, value = pair.partition("=")
            key = key.strip().replace("-", "_")
            if not sep:
                raise UsageError(f"option {pair!r} is not of the form key=value")
            if key not in cls.options:
                known = ", ".join(sorted(cls.options)) or "none"
                raise UsageError(
                    f"{cls.kind} '{cls.name}' has no option {key!r} (options: {known})"
                )
            try:
                options[key] = parse_option_value(value, cls.options[key])
            except ValueError as exc:
                raise UsageError(f"{cls.kind} '{cls.name}' option {key}: {exc}") from None
        return cls(**options)

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        """What this plugin needs or supports, shown by the listing commands."""
        return {}


class Model(Plugin):
    """A denoiser. Non-trainable filters implement ``denoise`` only."""

    kind = "model"
    #: False for fixed filters (nl-means, tv); ``train`` refuses them.
    trainable: ClassVar[bool] = False
    #: True when every layer provides a hand-written backward step (``layers``).
    manual_gradients: ClassVar[bool] = False
    #: True when the model only accepts square patches of ``patch_size`` (tiled at inference).
    fixed_size: ClassVar[bool] = False

    def denoise(self, slices: Any) -> Any:
        """Denoise a float32 array of slices (n, y, x) in HU; returns the same shape in HU."""
        raise _missing(self, "denoise")

    def take_notes(self) -> list[str]:
        """What the user should hear about the slices denoised since the last call (e.g. some
        were left as they were), once per volume; ``infer`` prints them and records them."""
        return []

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        return {
            "trainable": cls.trainable,
            "manual_gradients": cls.manual_gradients,
            "fixed_size": cls.fixed_size,
            "options": {k: _jsonable(v) for k, v in cls.options.items()},
        }


@runtime_checkable
class Layer(Protocol):
    """One step of a model with a hand-written backward pass.

    ``forward(h, x)`` takes the previous layer's output ``h`` and the model's scaled
    input ``x`` (residual models use it) and returns ``(output, cache)``.
    ``backward(g, cache)`` takes the gradient of the loss with respect to the output and
    returns ``(gradient w.r.t. h, [gradients w.r.t. each of self.variables])``.
    """

    name: str
    variables: list

    def forward(self, h: Any, x: Any) -> tuple[Any, Any]: ...

    def backward(self, g: Any, cache: Any) -> tuple[Any, list]: ...


def _missing(plugin: Any, method: str) -> PluginError:
    """What a base class's stub raises: which class lacks which method (a bare
    NotImplementedError says nothing). A PluginError, which tf.function passes on as it is."""
    base = next(b.__name__ for b in type(plugin).__mro__ if b.__module__ == __name__)
    return PluginError(f"{plugin.kind} '{plugin.name}' ({type(plugin).__module__}) does not implement "
                       f"{method}(), which a {base} must (see docs/writing-plugins.md)")


def build_model(model: Any, size: Any) -> None:
    """``model.build(size)``, marked built (a plugin's build may not say so, and denoise would
    build again, losing weights set since), with an error inside it naming the model and the
    module that defines it rather than a bare ValueError from deep in Keras."""
    try:
        model.build(size)
    except DenoiseKitError:
        raise
    except Exception as exc:  # noqa: BLE001 - a plugin's own code
        first = (str(exc).strip().splitlines() or [""])[0]
        raise PluginError(f"model '{model.name}' ({type(model).__module__}) failed in build(): "
                          f"{type(exc).__name__}: {first}") from exc
    model.built = True


def check_layers(model: Any) -> None:
    """A model with ``manual_gradients`` must have layers, each a :class:`Layer`: else the
    ``manual`` rule or gradcheck fails mid-run on an AttributeError that names no model.
    Checked by those two only, on the built model: inference and autodiff never use them."""
    if not getattr(model, "manual_gradients", False):
        return
    where = f"model '{model.name}' ({type(model).__module__}) sets manual_gradients = True"
    layers = list(getattr(model, "layers", None) or [])
    if not layers:
        raise PluginError(f"{where} but has no layers after build(): give it a list of Layer objects, "
                          "or set manual_gradients = False")
    for k, layer in enumerate(layers):
        lacks = _lacks(layer)
        if lacks:
            label = f"'{layer.name}'" if isinstance(getattr(layer, "name", None), str) else f"number {k + 1}"
            raise PluginError(f"{where} but its layer {label} ({type(layer).__name__}) lacks {', '.join(lacks)} "
                              "(a Layer has name, variables, forward() and backward()): add it, or set "
                              "manual_gradients = False")


def _lacks(layer: Any) -> list[str]:
    """What of the :class:`Layer` protocol ``layer`` lacks: isinstance would say only that
    something is missing (and takes ``backward = None`` for a method)."""
    lacks = [m for m in ("name", "variables") if not hasattr(layer, m)]
    return lacks + [f"{m}()" for m in ("forward", "backward") if not callable(getattr(layer, m, None))]


def check_output_shape(model: Any, output: Any, expected: tuple) -> None:
    """A trainable model's ``call`` must give one channel in its input's shape: broadcasting
    would otherwise train a wrong shape against the target, or quietly use one channel."""
    shape = tuple(output.shape)
    if shape != tuple(expected):
        raise PluginError(f"model '{model.name}' call() returned shape {shape} for input {tuple(expected)} "
                          "(it must return (batch, y, x, 1), as its input)")


class TrainableModel(Model):
    """A TensorFlow model trained by a backprop rule.

    Subclasses implement ``build`` and either ``call`` (autodiff only) or ``layers``
    (a list of :class:`Layer`, which gives ``manual`` and ``dilated`` what they need).
    Inputs and outputs of ``call`` are in the model's scaled units; ``scale`` and
    ``unscale`` map HU to those units and back.
    """

    trainable = True
    #: the patch side ``train`` cuts when not told otherwise (a fixed-size model's dense
    #: layers grow with the patch's area, so it may want less)
    default_patch_size: ClassVar[int] = 64

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.layers: list[Layer] = []
        self.patch_size: int | None = None
        self.built = False

    def build(self, patch_size: int | None = None) -> None:
        """Create the variables (``patch_size`` matters only to fixed-size models)."""
        raise _missing(self, "build")

    def scale(self, hu):
        """HU -> model units (a TensorFlow or NumPy array)."""
        return (hu + 1024.0) / 1000.0

    def unscale(self, y):
        """Model units -> HU."""
        return y * 1000.0 - 1024.0

    @property
    def trainable_variables(self) -> list:
        """Variables in a fixed order; gradients from every rule follow this order."""
        return [v for layer in self.layers for v in layer.variables]

    def call(self, x):
        """Forward pass in model units (x: (n, y, x, 1) float32 tensor)."""
        h = x
        for layer in self.layers:
            h, _ = layer.forward(h, x)
        return h

    def forward_with_caches(self, x):
        """Forward pass that keeps what each layer's backward step needs."""
        h, caches = x, []
        for layer in self.layers:
            h, cache = layer.forward(h, x)
            caches.append(cache)
        return h, caches

    def denoise(self, slices: Any) -> Any:
        """Denoise (n, y, x) HU slices in one batch; ``denoisekit.infer`` does batching
        and tiling (fixed-size models get ``patch_size`` tiles)."""
        import numpy as np
        import tensorflow as tf

        if not self.built:
            build_model(self, self.patch_size or slices.shape[-1])
        from denoisekit.volume import padding_as_air

        def run(hu):
            x = tf.constant(self.scale(hu)[..., None])
            y = np.asarray(self.call(x))
            check_output_shape(self, y, tuple(x.shape))
            return self.unscale(y[..., 0]).astype(np.float32)

        # Padding outside the field of view goes in as air (as in training) and comes back
        # as the scanner wrote it; noisy air below -1024 HU is denoised like any pixel.
        return padding_as_air(np.asarray(slices, dtype=np.float32), run)

    def weight_names(self) -> list[str]:
        """Stable names for ``trainable_variables`` in weight files: ``layer.index`` for
        layered models, ``var.index`` for models that override ``trainable_variables``."""
        if self.layers:
            return [f"{layer.name}.{j}" for layer in self.layers for j in range(len(layer.variables))]
        return [f"var.{i}" for i in range(len(self.trainable_variables))]

    def get_weights(self) -> dict[str, Any]:
        """Variable values by stable name, for saving (NumPy arrays, no pickle)."""
        return {n: v.numpy() for n, v in zip(self.weight_names(), self.trainable_variables)}

    def set_weights(self, weights: dict[str, Any]) -> None:
        names = self.weight_names()
        if sorted(names) != sorted(weights):
            raise DenoiseKitError(
                f"weights do not fit model '{self.name}': it expects {len(names)} arrays "
                f"({', '.join(names[:3])}, ...), the file has {len(weights)} "
                f"({', '.join(sorted(weights)[:3])}, ...)"
            )
        for n, v in zip(names, self.trainable_variables):
            value = weights[n]
            if tuple(value.shape) != tuple(v.shape):
                raise DenoiseKitError(
                    f"weights do not fit model '{self.name}': {n} has shape "
                    f"{tuple(value.shape)} in the file, {tuple(v.shape)} in the model"
                )
            v.assign(value)


class Backprop(Plugin):
    """A training rule: computes the gradients that an Adam step then applies."""

    kind = "backprop"
    #: True when the rule chains the model's hand-written backward steps.
    requires_manual_gradients: ClassVar[bool] = False

    def gradients(self, model: TrainableModel, x, target, step, weights=None):
        """Return ``(loss, grads)`` for a batch; ``grads`` follow
        ``model.trainable_variables``. Runs inside ``tf.function``.

        ``weights`` (one per sample, mean 1) weight each sample's squared error; train
        passes them unless run with ``loss_weight="none"``. A rule written without this
        parameter still works, with ``loss_weight="none"`` only."""
        raise _missing(self, "gradients")

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        return {
            "requires_manual_gradients": cls.requires_manual_gradients,
            "options": {k: _jsonable(v) for k, v in cls.options.items()},
        }


class NoiseKind(Plugin):
    """A noise model, split TorchIO-style into sampling and deterministic application.

    ``sample`` draws every random choice (including a seed for the noise field) into a
    JSON-able dict; ``apply`` uses only that dict, so recorded parameters reproduce
    the output exactly.
    """

    kind = "noise"

    def sample(self, rng: Any, shape: tuple[int, ...]) -> dict[str, Any]:
        """Draw parameters for a volume of ``shape`` (z, y, x) from a NumPy Generator."""
        return {"kind": self.name, "seed": int(rng.integers(0, 2**63 - 1)), **self.config}

    def apply(self, hu: Any, params: dict[str, Any], spacing: tuple[float, ...] = (1.0, 1.0, 1.0)) -> Any:
        """Return noisy HU (z, y, x) float32 for clean HU; deterministic given params.

        A kind whose work is slow may also accept ``progress: Callable[[int], None]`` and
        call it with the number of slices finished; the noise stage passes it when the
        signature has it (the built-in ``lowdose`` does)."""
        raise _missing(self, "apply")

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        return {"options": {k: _jsonable(v) for k, v in cls.options.items()}}


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value
