"""Importing TensorFlow without its native start-up chatter.

TensorFlow's C++ layer prints CUDA probing messages ("Could not find cuda drivers",
"failed call to cuInit") straight to file descriptor 2 on CPU-only machines, whatever
TF_CPP_MIN_LOG_LEVEL says (tensorflow#100442). Commands that compute import TensorFlow
through here first, so users see only denoisekit's own output; ``--debug`` or
DENOISEKIT_TF_LOGS=1 keeps the messages.
"""

from __future__ import annotations

import os
import sys
from typing import Any


def import_tensorflow(quiet: bool = True) -> Any:
    """Import TensorFlow (and initialise its devices) with native stderr silenced.

    Also turns on TensorFlow's oneDNN CPU kernels unless the user chose otherwise: TF
    leaves them off on some CPUs (AMD EPYC here), where the models' small-channel
    convolutions then run several times slower (docs/benchmarks.md).
    """
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")
    if "tensorflow" in sys.modules or not quiet or os.environ.get("DENOISEKIT_TF_LOGS"):
        return _import_without_eager_keras()
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        tf = _import_without_eager_keras()
        tf.config.list_physical_devices()  # device probing logs happen here, not at import
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf


#: TensorFlow's ``__init__`` imports this eagerly, in a ``try`` that tolerates ImportError,
#: and with it all of Keras (which pulls in matplotlib.pyplot and IPython): about a quarter
#: of ``import tensorflow`` here, for nothing denoisekit uses. ``tf.keras`` stays available,
#: loaded on first use, for plugins that want it.
_EAGER_KERAS = "keras.src.optimizers"


def _import_without_eager_keras() -> Any:
    if "tensorflow" in sys.modules or _EAGER_KERAS in sys.modules:
        import tensorflow as tf

        return tf
    sys.modules[_EAGER_KERAS] = None  # type: ignore[assignment]  # makes that import fail
    try:
        import tensorflow as tf
    finally:
        if sys.modules.get(_EAGER_KERAS, "") is None:
            del sys.modules[_EAGER_KERAS]
    return tf
