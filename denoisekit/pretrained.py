"""Pretrained weights shipped inside the package (``denoisekit_plugins/weights/<model>.npz``),
so ``denoisekit infer`` works without training first. Read with importlib.resources,
which also works from a zip or wheel."""

from __future__ import annotations

from importlib import resources
from typing import Any

from denoisekit.errors import DenoiseKitError

PACKAGE = "denoisekit_plugins"

#: The coarsest in-plane pixel (mm) in the shipped weights' training data (examples/pretrain.py:
#: the chest phantom's 0.70 mm, pydicom's real slices 0.29-0.86 mm). On coarser pixels the
#: same anatomy is sharper per pixel and the weights smooth it away (docs/models.md).
COARSEST_TRAINED_PIXEL_MM = 0.86


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


def coarse_pixel_note(model: Any, spacing: tuple[float, ...]) -> str | None:
    """A warning when shipped weights meet pixels coarser than they were trained on."""
    pixel = max(float(spacing[0]), float(spacing[1]))
    if getattr(model, "weights_source", None) != "pretrained" or pixel <= COARSEST_TRAINED_PIXEL_MM:
        return None
    return (f"note: {pixel:.2f} mm pixels are coarser than any the pretrained {model.name} weights were trained on "
            f"(up to {COARSEST_TRAINED_PIXEL_MM} mm): they may take detail away with the noise, which --strength auto "
            "(the default) limits by removing less noise. Compare with --model nl-means "
            "(docs/models.md: where the pretrained weights fail).")
