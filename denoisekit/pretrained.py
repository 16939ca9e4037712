"""Pretrained weights shipped inside the package (``denoisekit_plugins/weights/<model>.npz``),
so ``denoisekit infer`` works without training first. Read with importlib.resources,
which also works from a zip or wheel."""

from __future__ import annotations

from importlib import resources
from typing import Any

from denoisekit.errors import DenoiseKitError

PACKAGE = "denoisekit_plugins"


def weights_dir():
    """The folder of shipped weights (a Traversable; may not exist before any ship)."""
    return resources.files(PACKAGE) / "weights"


def has_pretrained(model_name: str, directory: Any = None) -> bool:
    return ((directory or weights_dir()) / f"{model_name}.npz").is_file()


def load_pretrained(model_name: str, directory: Any = None) -> Any:
    """The model ``model_name`` with its shipped weights; ``directory`` overrides where
    to look (a path or Traversable holding ``<model-name>.npz``)."""
    from pathlib import Path

    from denoisekit.weights import load_model

    directory = Path(directory) if isinstance(directory, str) else directory
    ref = (directory or weights_dir()) / f"{model_name}.npz"
    if not ref.is_file():
        raise DenoiseKitError(f"model {model_name} has no pretrained weights; pass --weights")
    with resources.as_file(ref) as path:
        model = load_model(path, expect_model=model_name)
    model.weights_source = "pretrained"
    return model


def training_data(model_name: str, directory: Any = None) -> list[str]:
    """What the shipped weights were trained on, from the record beside them
    (``<model>.json``, written by examples/pretrain.py); empty when there is none."""
    import json

    ref = (directory or weights_dir()) / f"{model_name}.json"
    if not ref.is_file():
        return []
    return [str(d) for d in json.loads(ref.read_text()).get("data", [])]
