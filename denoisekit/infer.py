"""The infer stage: run a model over a Volume in batches of slices.

Memory stays at the input plus one preallocated output: slices go through the model
``batch_size`` at a time and only that batch's intermediates live at once. Fixed-size
models, and slices larger than ``MAX_TILE``, are cut into overlapping square tiles that
are blended back with a smooth (raised-cosine) weight normalised by the summed weights,
so tile borders leave no seams.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from denoisekit.errors import DenoiseKitError, UsageError

if TYPE_CHECKING:  # NumPy is imported by the functions, so the CLI can read DEFAULT_MODEL cheaply
    import numpy as np

    from denoisekit.volume import Volume

#: The model ``denoisekit infer`` uses without ``--model``.
DEFAULT_MODEL = "residual-mul"
#: Slices with a side longer than this are tiled even for models that take any size.
MAX_TILE = 1024


def load_model_for_inference(
    name: str | None = None, weights: str | Path | None = None, options: list[str] | None = None
) -> Any:
    """The model ``infer`` runs: from a weights file or run directory when given (the
    file says which model; ``name`` must then agree), else the shipped pretrained
    weights for trainable models, else the filter itself with its ``--option`` values."""
    from denoisekit.plugins import get_model
    from denoisekit.tfenv import import_tensorflow

    if weights is not None or get_model(name or DEFAULT_MODEL).trainable:
        import_tensorflow()
    if weights is not None:
        if options:
            raise UsageError(
                "--option cannot be combined with --weights: a trained model's options come from its weights file"
            )
        from denoisekit.weights import load_model

        return load_model(weights, expect_model=name)
    name = name or DEFAULT_MODEL
    cls = get_model(name)
    if cls.trainable:
        if options:
            raise UsageError(f"model '{name}' is trained: its options come from its weights, not --option")
        from denoisekit.pretrained import load_pretrained

        return load_pretrained(name)
    return cls.from_strings(options)


def weights_label(model: Any) -> str | None:
    """What the weights were, for histories and series descriptions (None for filters)."""
    if not getattr(model, "trainable", False):
        return None
    return str(getattr(model, "weights_source", None) or "untrained")


def series_description(model: Any, strength: str | float = 1.0) -> str:
    """What was done, naming model, strength (unless 1; e.g. ``auto 0.84``, what auto kept)
    and weights, for the output's description: a DICOM series' SeriesDescription keeps its
    first 64 bytes (whole words: the strength comes before the weights' path, which may not
    fit), its DerivationDescription all of it."""
    label = weights_label(model)
    if label is not None and label not in ("pretrained", "untrained"):
        label = "/".join(Path(label).parts[-2:])  # run_dir/best.npz, not a long absolute path
    if not isinstance(strength, str):
        strength = "" if strength == 1.0 else f"{strength:g}"
    text = f"denoised {model.name}" + (f" strength {strength}" if strength else "")
    return text + ("" if label is None else f" weights {label}")


def describe(model: Any) -> str:
    """A short line naming model and weights, e.g. ``residual-mul (weights: pretrained)``."""
    label = weights_label(model)
    return model.name if label is None else f"{model.name} (weights: {label})"


def denoise_volume(
    volume: Volume,
    model: Any,
    *,
    batch_size: int = 8,
    tile: int | None = None,
    overlap: int | None = None,
    progress: Callable[[int], None] | None = None,
    inplace: bool = False,
    strength: str | float = "auto",
    strengths: list[float] | None = None,
) -> Volume:
    """Denoise every slice of ``volume`` with ``model``; ``progress(n)`` is called after
    each batch with the number of slices it finished.

    ``tile`` forces tiling with that square size (fixed-size models always use their
    ``patch_size``); ``overlap`` defaults to a quarter of the tile. ``strength``: the
    fraction of the model's correction kept, or ``auto`` to choose it per slice
    (``denoisekit.strength``); the fractions used are appended to ``strengths``.
    """
    from concurrent.futures import ThreadPoolExecutor
    from contextlib import ExitStack

    import numpy as np

    from denoisekit import strength as S
    from denoisekit.cpu import usable_cores

    strength = S.parse_strength(strength)

    if batch_size < 1:
        raise DenoiseKitError(f"batch size must be at least 1, got {batch_size}")
    nz, ny, nx = volume.shape
    if getattr(model, "fixed_size", False):
        patch = getattr(model, "patch_size", None)
        if not patch:
            raise DenoiseKitError(
                f"model '{model.name}' takes fixed-size patches but has no patch size (are its weights loaded?)"
            )
        if tile is not None and tile != patch:
            raise DenoiseKitError(f"model '{model.name}' only takes {patch}x{patch} tiles, not {tile}")
        tile = int(patch)
    probe_tile = tile  # the probe's small crops need tiles only where the model or caller does
    if tile is None and max(ny, nx) > MAX_TILE:
        tile = MAX_TILE
    if tile is not None:
        overlap = tile // 4 if overlap is None else overlap
        if not 0 <= overlap < tile:
            raise DenoiseKitError(f"tile overlap must be in [0, {tile}), got {overlap}")

    # inplace: results overwrite the input slices they came from, so memory stays at one
    # volume (for callers, like the infer command, that no longer need the input).
    reuse = inplace and volume.array.dtype == np.float32 and volume.array.flags.writeable
    out = volume.array if reuse else np.empty(volume.shape, dtype=np.float32)

    def runner(shape: tuple[int, int], tile: int | None = tile) -> Callable[[np.ndarray], np.ndarray]:
        tiler = None if tile is None else _Tiler(shape, tile, overlap)

        def run(batch: np.ndarray) -> np.ndarray:
            if tiler is None:
                return _run(model, batch)
            result = np.empty_like(batch)
            tiler.denoise(model, batch, result, batch_size)
            return result

        return run

    run = runner((ny, nx))
    if strength == S.AUTO:  # before the loop: with inplace, the input is overwritten as it goes
        probe = S.probe_slices(volume.array)
        div = S.divergence(runner(probe.shape[1:], probe_tile), probe, spectrum=S.probe_spectrum(probe))
        getattr(model, "take_notes", list)()  # about the probe's crops, not the volume's slices
    used: list[float] = []
    with ExitStack() as stack:
        # The per-slice noise estimates run in threads: SciPy's filters release the GIL.
        pool = stack.enter_context(ThreadPoolExecutor(usable_cores())) if strength == S.AUTO else None
        for start in range(0, nz, batch_size):
            # A copy of the batch: with inplace, results written back must not be read again.
            batch = np.array(volume.array[start : start + batch_size], dtype=np.float32)
            result = out[start : start + len(batch)]
            result[...] = run(batch)
            if pool is not None:
                kept = list(pool.map(lambda k: S.sure_strength(batch[k], result[k], div), range(len(batch))))
            else:
                kept = [float(strength)] * len(batch)
            for k, a in enumerate(kept):
                if a != 1.0:
                    result[k] = batch[k] - np.float32(a) * (batch[k] - result[k])
            used.extend(kept)
            if progress is not None:
                progress(len(batch))
    if strengths is not None:
        strengths.extend(used)
    # as infer writes it (the demo's outputs said "denoised by ... (weights: ...), strength auto"
    # and lost the weights to the 64-byte SeriesDescription)
    import statistics

    kept = f"auto {statistics.median(used):.2f}" if strength == S.AUTO and used else strength
    return volume.derive(out, series_description(model, kept))


def _run(model: Any, batch: np.ndarray) -> np.ndarray:
    import numpy as np

    result = np.asarray(model.denoise(batch), dtype=np.float32)
    if result.shape != batch.shape:
        raise DenoiseKitError(f"model '{model.name}' returned shape {result.shape} for input {batch.shape}")
    if not np.isfinite(result).all():  # made by the model, where its input slice was all finite
        made = ~np.isfinite(result).all(axis=(1, 2)) & np.isfinite(batch).all(axis=(1, 2))
        if made.any():
            raise DenoiseKitError(f"model '{model.name}' returned NaN or infinite values; nothing was written")
    return result


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    """Tile starts covering ``length``; the last tile is flush with the end."""
    if length <= tile:
        return [0]
    stride = tile - overlap
    starts = list(range(0, length - tile, stride))
    starts.append(length - tile)
    return starts


def _ramp(tile: int, overlap: int) -> np.ndarray:
    """1-D weight: a raised-cosine rise and fall over ``overlap`` pixels, flat between.
    Never zero, so pixels at the image border (covered by one tile) stay defined."""
    import numpy as np

    w = np.ones(tile, dtype=np.float64)
    if overlap > 0:
        rise = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2
        w[:overlap] = rise
        w[tile - overlap :] = np.minimum(w[tile - overlap :], rise[::-1])
    return w


class _Tiler:
    """Cuts slices of one shape into overlapping tiles and blends results back."""

    def __init__(self, shape: tuple[int, int], tile: int, overlap: int) -> None:
        import numpy as np

        self.shape = shape
        self.tile = tile
        # Slices smaller than a tile are padded up to it (fixed-size models need full tiles).
        self.padded = (max(shape[0], tile), max(shape[1], tile))
        ys, xs = _starts(self.padded[0], tile, overlap), _starts(self.padded[1], tile, overlap)
        self.origins = [(y, x) for y in ys for x in xs]
        ramp = _ramp(tile, overlap)
        self.window = np.outer(ramp, ramp).astype(np.float32)
        total = np.zeros(self.padded, dtype=np.float32)
        for y, x in self.origins:
            total[y : y + tile, x : x + tile] += self.window
        self.inverse_total = (1.0 / total).astype(np.float32)

    def _tiles(self, batch: np.ndarray, per_call: int) -> Iterator[tuple[np.ndarray, list[tuple[int, int, int]]]]:
        import numpy as np

        t = self.tile
        keys = [(k, y, x) for k in range(len(batch)) for (y, x) in self.origins]
        for i in range(0, len(keys), per_call):
            chunk = keys[i : i + per_call]
            yield np.stack([batch[k, y : y + t, x : x + t] for k, y, x in chunk]), chunk

    def denoise(self, model: Any, batch: np.ndarray, out: np.ndarray, batch_size: int) -> None:
        import numpy as np

        ny, nx = self.shape
        py, px = self.padded
        if (py, px) != (ny, nx):
            batch = np.pad(batch, ((0, 0), (0, py - ny), (0, px - nx)), mode="symmetric")
        acc = np.zeros(batch.shape, dtype=np.float32)
        t = self.tile
        # About as many pixels per model call as ``batch_size`` whole slices.
        per_call = max(batch_size, batch_size * py * px // (t * t))
        for tiles, keys in self._tiles(batch, per_call):
            result = _run(model, tiles)
            for r, (k, y, x) in zip(result, keys):
                acc[k, y : y + t, x : x + t] += r * self.window
        acc *= self.inverse_total
        out[...] = acc[:, :ny, :nx]
