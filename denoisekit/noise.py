"""The noise stage: add a registered noise kind to a volume, reproducibly.

Randomness flows one way: ``np.random.default_rng(seed)`` -> ``kind.sample`` (every random
choice, including the noise field's own seed, lands in a JSON-able dict) -> ``kind.apply``
(deterministic). The returned record holds everything needed to redo the output exactly
with :func:`apply_recorded`; the CLI writes it to the JSON sidecar.

A kind that needs something the source recorded (lowdose's relative dose: each slice's tube
current) names those ``Volume.tags`` keys in a ``volume_tags`` attribute; the stage copies the
ones the volume has into ``params``, so ``apply`` still sees params only and the record keeps
them. A kind may also have ``take_notes()`` (as models do): what its ``apply`` did that the
user should hear, kept in the record's ``notes``.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

import numpy as np

from denoisekit import __version__
from denoisekit.errors import DenoiseKitError
from denoisekit.volume import PADDING_BELOW, Volume

__all__ = ["add_noise", "apply_recorded", "noise_slices", "make_noise", "describe"]


def make_noise(kind: Any, **options: Any) -> Any:
    """A NoiseKind instance from a registered name (or pass an instance through)."""
    if isinstance(kind, str):
        from denoisekit.plugins import get_noise

        return get_noise(kind)(**options)
    if options:
        raise DenoiseKitError("options go to the noise kind's constructor, not with an instance")
    return kind


def add_noise(
    volume: Volume,
    kind: Any,
    seed: int = 0,
    progress: Optional[Callable[[int], None]] = None,
    **options: Any,
) -> tuple[Volume, dict[str, Any]]:
    """Noisy copy of ``volume`` and the record that reproduces it.

    ``kind`` is a registered name (``options`` are its options) or an instance.
    ``progress(n)`` is called as slices finish, by kinds whose ``apply`` accepts it.
    """
    noise = make_noise(kind, **options)
    rng = np.random.default_rng(int(seed))
    params = noise.sample(rng, volume.shape)
    params.update(_from_volume(noise, volume))
    record = {
        "kind": noise.name,
        "options": dict(noise.config),
        "seed": int(seed),
        "params": params,
        "spacing": [float(s) for s in volume.spacing],
        "denoisekit_version": __version__,
    }
    noisy, floored = _apply(noise, volume.array, params, volume.spacing, progress)
    notes = list(getattr(noise, "take_notes", list)())
    if floored:
        notes.append(f"{floored} voxel{'' if floored == 1 else 's'} fell below {PADDING_BELOW:g} HU (streaks where rays "
                     f"through bone or metal got few photons) and {'was' if floored == 1 else 'were'} set to "
                     f"{PADDING_BELOW:g}: every stage reads values below it as padding outside the field of view")
    if notes:
        record["notes"] = notes
    return volume.derive(noisy, describe(record)), record


def _from_volume(noise: Any, volume: Volume) -> dict[str, Any]:
    """The tags of ``volume`` the kind names in ``volume_tags``, for its ``params``."""
    return {key: volume.tags[key] for key in getattr(noise, "volume_tags", ()) if key in volume.tags}


def apply_recorded(volume: Volume, record: dict[str, Any], progress: Optional[Callable[[int], None]] = None) -> Volume:
    """Redo a recorded noise run on the same clean volume: the same voxels, bit for bit."""
    try:
        noise = make_noise(record["kind"], **record["options"])
        params = record["params"]
    except KeyError as exc:
        raise DenoiseKitError(f"noise record lacks {exc.args[0]!r}; is it a denoisekit noise sidecar?") from None
    spacing = tuple(record.get("spacing", volume.spacing))
    noisy, _ = _apply(noise, volume.array, params, spacing, progress)
    return volume.derive(noisy, describe(record))


def noise_slices(hu_slices: Any, noise: Any, rng: np.random.Generator, spacing: tuple[float, ...] = (1.0, 1.0, 1.0)) -> np.ndarray:
    """Fresh noise for a batch of slices during training.

    ``hu_slices`` is float (n, y, x) in HU, ``noise`` a NoiseKind instance (see
    :func:`make_noise`), ``rng`` the trainer's Generator (each call advances it, so a
    seeded trainer gets reproducible noise), ``spacing`` the (x, y, z) voxel size in mm.
    Returns noisy float32 (n, y, x). For ``lowdose`` pass whole slices and crop patches
    afterwards: its noise depends on the path lengths through the whole body.
    """
    hu_slices = np.asarray(hu_slices, dtype=np.float32)
    if hu_slices.ndim == 2:
        hu_slices = hu_slices[None]
    params = noise.sample(rng, hu_slices.shape)
    return np.asarray(noise.apply(hu_slices, params, spacing), dtype=np.float32)


def describe(record: dict[str, Any]) -> str:
    """One line for the DICOM derivation description, e.g. ``noise lowdose seed=7 dose=0.25
    i0=200000.0 ...``: seed first, then the options in the order the kind declares them, its
    main ones first, since SeriesDescription keeps only 64 characters. (Sidecars store keys
    sorted, so the record's own order cannot be trusted.)"""
    from denoisekit.plugins import get_noise

    options = record.get("options", {})
    try:
        declared = list(get_noise(record["kind"]).options)
    except DenoiseKitError:  # a kind whose plugin is not installed: its recorded order
        declared = list(options)
    rank = {k: i for i, k in enumerate(declared)}
    opts = " ".join(f"{k}={options[k]}" for k in sorted(options, key=lambda k: (rank.get(k, len(rank)), k)))
    return " ".join(p for p in ("noise", record["kind"], f"seed={record['seed']}", opts) if p)


def _apply(noise: Any, array: np.ndarray, params: dict, spacing: tuple,
           progress: Optional[Callable[[int], None]]) -> tuple[np.ndarray, int]:
    """``noise`` on ``array``, with padding outside the field of view (-3024 HU and the like)
    seen as air and given back as the scanner wrote it, as training and the models do: noise
    on the padding is noise on no anatomy, and a kind need not know the scanner's padding value.
    Noise never makes padding: a voxel it takes below ``PADDING_BELOW`` is set to it (a
    scanner clips at its own floor), and their count is returned."""
    from denoisekit.volume import padding_as_air, padding_mask

    kwargs = {}
    if progress is not None and "progress" in inspect.signature(noise.apply).parameters:
        kwargs["progress"] = progress
    noisy = padding_as_air(array, lambda hu: checked(noise, noise.apply(hu, params, tuple(spacing), **kwargs), hu.shape))
    if progress is not None and "progress" not in kwargs:
        progress(array.shape[0])
    made = padding_mask(noisy) & ~padding_mask(array)
    floored = int(np.count_nonzero(made))
    if floored:
        noisy = np.where(made, np.float32(PADDING_BELOW), noisy)
    return noisy, floored


def checked(noise: Any, noisy: Any, shape: tuple) -> np.ndarray:
    """A noise kind's output as float32, refused (naming the kind) when its shape is not the
    input's or a value is NaN or infinite: training would learn nothing from it, silently."""
    noisy = np.asarray(noisy, dtype=np.float32)
    if noisy.shape != tuple(shape):
        raise DenoiseKitError(f"noise '{noise.name}' returned shape {noisy.shape} for {tuple(shape)}")
    if not np.isfinite(noisy).all():
        raise DenoiseKitError(f"noise '{noise.name}' returned NaN or infinite values")
    return noisy
