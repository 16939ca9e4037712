"""Model weight files: ``.npz`` of named arrays plus a JSON header, loaded without
executing code (``allow_pickle=False``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from denoisekit.errors import DenoiseKitError, UsageError
from denoisekit.io.atomic import replacing

HEADER = "__denoisekit__"
FORMAT = 1


def save_weights(path: str | Path, model: Any, **extra: Any) -> Path:
    """Write ``model``'s weights and what rebuilds it (name, options, patch size, and the
    plugin that provides the model, to name when it is missing), atomically."""
    from denoisekit.plugins import provider

    path = Path(path)
    header = {
        "format": FORMAT,
        "model": model.name,
        "plugin": provider(type(model)),
        "options": {k: list(v) if isinstance(v, tuple) else v for k, v in model.config.items()},
        "patch_size": model.patch_size,
        **extra,
    }
    arrays = {k: np.asarray(v) for k, v in model.get_weights().items()}
    arrays[HEADER] = np.array(json.dumps(header, default=str))
    with replacing(path) as temp:
        np.savez(temp, **arrays)
    return path


def read_weights(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Return ``(header, arrays)`` from a weights file, refusing anything but plain arrays."""
    path = Path(path)
    if not path.is_file():
        raise DenoiseKitError(f"weights file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # corrupt zip, pickled objects, not an npz
        # NumPy reads any non-zip file as a pickle, which it refuses: say what it is not, not that
        import zipfile

        if not zipfile.is_zipfile(path):
            why = "not a .npz archive"
        elif "pickle" in str(exc):
            why = "it holds pickled objects, which are never loaded"
        else:
            why = str(exc).strip().splitlines()[0]
        raise DenoiseKitError(f"{path} is not a denoisekit weights file ({why})") from None
    if HEADER not in arrays:
        raise DenoiseKitError(f"{path} is not a denoisekit weights file (no header)")
    header = json.loads(str(arrays.pop(HEADER)))
    return header, arrays


def resolve_weights_path(path: str | Path) -> Path:
    """A weights file, or a run directory (its best weights)."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.npz", "weights/best.npz", "last.npz"):
            if (path / name).is_file():
                return path / name
        raise DenoiseKitError(f"{path} holds no best.npz: not a finished training run")
    return path


def load_model(path: str | Path, expect_model: str | None = None) -> Any:
    """Rebuild the model a weights file (or run directory) was saved from."""
    from denoisekit.plugins import get_model

    path = resolve_weights_path(path)
    header, arrays = read_weights(path)
    name = header.get("model")
    if expect_model is not None and name != expect_model:
        raise DenoiseKitError(f"{path} holds weights for model '{name}', not '{expect_model}'")
    from denoisekit.plugin import build_model
    from denoisekit.plugins import get_models

    try:
        cls = get_model(name)
    except DenoiseKitError:
        if name in get_models():  # another reason than a missing plugin
            raise
        raise DenoiseKitError(_missing_model(path, name, header.get("plugin"))) from None
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in header.get("options", {}).items()}
    # An option added after the file was written takes the value that reproduces the old
    # behaviour (the model's ``legacy_options``), not today's default.
    options = {**getattr(cls, "legacy_options", {}), **options}
    try:
        model = cls(**{k: v for k, v in options.items() if k in cls.options})
        build_model(model, header.get("patch_size"))
    except UsageError as exc:  # the file's options, not the command line's: bad input, named
        raise DenoiseKitError(f"{path}: its recorded options are refused: {exc}") from None
    model.set_weights(arrays)
    model.weights_source = str(path)
    return model


def _missing_model(path: Path, name: str, plugin: dict[str, Any] | None) -> str:
    """What to install when no loaded plugin provides the model weights were trained with."""
    from denoisekit.plugins import get_models

    made = f"'{name}'"
    if plugin:  # files written before the plugin was recorded do not say
        made += f" from plugin {plugin.get('name')} ({plugin.get('distribution')} {plugin.get('version')})"
    fix = f"install or unblock {plugin.get('distribution')}" if plugin else "install the plugin that provides it"
    return (f"{path} holds weights for model {made}, which no loaded plugin provides: {fix} "
            f"(models available: {', '.join(sorted(get_models())) or 'none'}; see 'denoisekit models')")
