"""Pretrained weights shipped inside the package that registers the model, as
``<package>/weights/<model>.npz`` (the built-ins': ``denoisekit_plugins/weights/``; a third
party's plugin package ships its own the same way), so ``denoisekit infer`` works without
training first. Read with importlib.resources, which also works from a zip or wheel."""

from __future__ import annotations

from importlib import resources
from typing import Any

from denoisekit.errors import DenoiseKitError

PACKAGE = "denoisekit_plugins"

#: The coarsest in-plane pixel (mm) in the shipped weights' training data (examples/pretrain.py:
#: the chest phantom's 0.70 mm, pydicom's real slices 0.29-0.86 mm). On coarser pixels the
#: same anatomy is sharper per pixel and the weights smooth it away (docs/models.md).
COARSEST_TRAINED_PIXEL_MM = 0.86


def weights_dir(model_name: str | None = None):
    """The folder of shipped weights (a Traversable that may not exist, or None for a plugin
    that is a single module): the ``weights`` folder of the top-level package whose plugin
    registered ``model_name`` (the built-ins' when None)."""
    package = PACKAGE
    if model_name is not None:
        from denoisekit.plugins import get_models

        cls = get_models().get(model_name)
        package = cls.__module__.split(".")[0] if cls is not None else PACKAGE
    import importlib.util

    spec = importlib.util.find_spec(package)
    if spec is None or spec.submodule_search_locations is None:
        return None  # a plugin that is a single module, not a package, ships no weights
    return resources.files(package) / "weights"


def _shipped(model_name: str, directory: Any, suffix: str) -> Any:
    """``<model_name><suffix>`` in ``directory`` or the model's weights folder, if it is there."""
    folder = directory or weights_dir(model_name)
    ref = None if folder is None else folder / f"{model_name}{suffix}"
    return ref if ref is not None and ref.is_file() else None


def has_pretrained(model_name: str, directory: Any = None) -> bool:
    return _shipped(model_name, directory, ".npz") is not None


def load_pretrained(model_name: str, directory: Any = None) -> Any:
    """The model ``model_name`` with its shipped weights; ``directory`` overrides where
    to look (a path or Traversable holding ``<model-name>.npz``)."""
    from pathlib import Path

    from denoisekit.weights import load_model

    directory = Path(directory) if isinstance(directory, str) else directory
    ref = _shipped(model_name, directory, ".npz")
    if ref is None:
        raise DenoiseKitError(f"model {model_name} ships no pretrained weights: infer runs it with --weights "
                              "(a training run or .npz file)")
    with resources.as_file(ref) as path:
        model = load_model(path, expect_model=model_name)
    model.weights_source = "pretrained"
    return model


def training_data(model_name: str, directory: Any = None) -> list[str]:
    """What the shipped weights were trained on, from the record beside them
    (``<model>.json``, written by examples/pretrain.py); empty when there is none."""
    import json

    ref = _shipped(model_name, directory, ".json")
    if ref is None:
        return []
    return [str(d) for d in json.loads(ref.read_text()).get("data", [])]


def plane_note(model: Any, volume: Any) -> str | None:
    """A warning when a learned model meets slices that are not axial: every built-in's
    weights, and most plugins', were trained on axial slices."""
    plane = volume.plane()
    if plane == "axial" or not getattr(model, "trainable", False):
        return None
    return (f"note: the slices are {plane}, not axial: {model.name} learned CT noise as it lies in axial slices, "
            "where a reconstruction puts it; denoising the axial series (or its reformat) suits it better")


def coarse_pixel_note(model: Any, spacing: tuple[float, ...]) -> str | None:
    """A warning when the built-ins' shipped weights meet pixels coarser than they were
    trained on (a plugin's weights were trained on data we do not know)."""
    pixel = max(float(spacing[0]), float(spacing[1]))
    if getattr(model, "weights_source", None) != "pretrained" or pixel <= COARSEST_TRAINED_PIXEL_MM:
        return None
    if type(model).__module__.split(".")[0] != PACKAGE:
        return None
    return (f"note: {pixel:.2f} mm pixels are coarser than any the pretrained {model.name} weights were trained on "
            f"(up to {COARSEST_TRAINED_PIXEL_MM} mm): they may take detail away with the noise, which --strength auto "
            "(the default) limits by removing less noise. Compare with --model nl-means "
            "(docs/models.md: where the pretrained weights fail).")
