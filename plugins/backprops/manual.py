"""``manual``: chains the layers' hand-written backward steps, last layer first.

Exact backpropagation written out by hand (the articles' rule 1); it must equal
``autodiff`` to float32 tolerance, which ``denoisekit gradcheck`` checks.
"""

from __future__ import annotations

from denoisekit.errors import PluginError
from denoisekit.plugin import Backprop
from denoisekit_plugins.backprops.loss import mse, mse_grad


def backward_chain(model, x, target, incoming=None, weights=None):
    """Run the forward pass with caches, then each layer's backward step in reverse.

    ``incoming(k, g, passed)`` may change the gradient arriving at layer ``k`` (0-based)
    given the ordinary one ``g`` and ``passed``, the list of gradients already passed down
    by layers above (``passed[0]`` from the last layer); ``dilated`` uses it. ``weights``:
    the per-sample loss weights train may pass (see ``denoisekit.train.noise_weights``).
    Returns ``(loss, grads)`` aligned with ``model.trainable_variables``.
    """
    out, caches = model.forward_with_caches(x)
    loss = mse(out, target, weights)
    g = mse_grad(out, target, weights)
    passed: list = []
    per_layer: list = []
    for k in reversed(range(len(model.layers))):
        if incoming is not None:
            g = incoming(k, g, passed)
        g, grads = _checked(model, k, model.layers[k].backward(g, caches[k]))
        passed.append(g)
        per_layer.append(grads)
    # ``g`` now holds d loss / d x, which nobody needs: inside tf.function it is pruned.
    return loss, [grad for grads in reversed(per_layer) for grad in grads]


def _checked(model, k, returned):
    """Layer ``k``'s backward step as ``Layer`` says it returns: (gradient passed down, one
    gradient per variable). Checked when traced: a plugin layer that returned None failed
    here as a TypeError blamed on this file, and a short list left variables untrained."""
    layer = model.layers[k]
    owner = getattr(model, "plugin", None)  # set when registered
    shown = (f"layer {k} ('{getattr(layer, 'name', type(layer).__name__)}') of model '{model.name}'"
             + (f" (plugin '{owner}')" if owner else ""))
    if not (isinstance(returned, (tuple, list)) and len(returned) == 2):
        what = "None" if returned is None else f"a {type(returned).__name__}"
        raise PluginError(f"{shown}: backward() returned {what}; it must return (gradient passed down, "
                          "[a gradient for each of its variables])")
    g, grads = returned
    grads = list(grads) if isinstance(grads, (tuple, list)) else None
    if grads is None or len(grads) != len(layer.variables):
        raise PluginError(f"{shown}: backward() returned {'no list' if grads is None else len(grads)} "
                          f"gradient(s) for its {len(layer.variables)} variable(s)")
    return g, grads


class Manual(Backprop):
    name = "manual"
    description = "Hand-written backward pass, layer by layer; equals autodiff to float32 tolerance."
    requires_manual_gradients = True
    options: dict = {}

    def gradients(self, model, x, target, step, weights=None):
        return backward_chain(model, x, target, weights=weights)
