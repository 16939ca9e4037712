"""Training pairs (noisy, clean), made on the fly with ``tf.data``.

Noise comes from the noise plugins exactly as in the noise stage: a NumPy generator seeded
from ``--seed`` draws the parameters (``NoiseKind.sample``), which are then applied to whole
slices (``NoiseKind.apply``: projection-domain noise such as ``lowdose`` needs the whole slice).
Because that is the expensive part, each training slice gets a few noisy realisations once,
at the start (``realisations``); every step then crops random patches (position, realisation
and flip drawn afresh). The draws of epoch ``e`` depend only on ``(seed, e)``, so a resumed run
sees exactly the batches an uninterrupted one would.

Validation uses the last slices of each volume (``val_fraction``, at least one slice overall),
with its own fixed noise, cut into a fixed grid of patch-size tiles.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from denoisekit.errors import DenoiseKitError
from denoisekit.noise import checked
from denoisekit.volume import fill_padding

TRAIN_STREAM, VAL_STREAM = 0, 1


@dataclass
class Part:
    """Clean slices of one volume (a view, not a copy) and their noisy realisations."""

    clean: np.ndarray  # (z, y, x) HU
    noisy: np.ndarray  # (realisations, z, y, x) HU
    spacing: tuple[float, float, float]


class Slices(NamedTuple):
    """Clean slices cut from one of the training volumes (``volume``: its index)."""

    clean: np.ndarray  # (z, y, x) HU
    spacing: tuple
    volume: int


def split_volumes(volumes: Sequence[Any], val_fraction: float = 0.15) -> tuple[list[Slices], list[Slices]]:
    """Hold out the last ``val_fraction`` of each volume's slices (at least one overall)."""
    if not volumes:
        raise DenoiseKitError("no training data")
    total = sum(v.shape[0] for v in volumes)
    if total < 2:
        raise DenoiseKitError("training needs at least 2 slices (one is held out for validation)")
    cuts = [int(round(val_fraction * v.shape[0])) if v.shape[0] > 1 else 0 for v in volumes]
    if sum(cuts) == 0:  # keep at least one validation slice: the last one we can spare
        last = max(i for i, v in enumerate(volumes) if v.shape[0] > 1 or len(volumes) > 1)
        cuts[last] = 1
    train, val = [], []
    for index, (v, cut) in enumerate(zip(volumes, cuts)):
        # padding outside the field of view is air to the noise and the model, as in infer
        arr = fill_padding(np.asarray(v.array, dtype=np.float32))
        n = arr.shape[0]
        if n - cut > 0:
            train.append(Slices(arr[: n - cut], tuple(v.spacing), index))
        if cut > 0:
            val.append(Slices(arr[n - cut :], tuple(v.spacing), index))
    if not train:
        raise DenoiseKitError("no slices left for training after holding out validation slices")
    return train, val


def add_noise(
    parts: Sequence[Slices], noise: Any, seed: int, stream: int, realisations: int,
    shard: int | None = None,
) -> list[Part]:
    """Noisy realisations of each part, seeded by ``(seed, stream, part, realisation)``;
    a worker holding its own volumes (``shard``, its index) adds it to the seed, so no two
    workers give their volumes the same noise. ``noise`` is one noise kind for all, or a
    list with one per volume (indexed by ``Slices.volume``)."""
    key = [seed, stream] if shard is None else [seed, stream + 10, shard]
    out = []
    for i, (clean, spacing, volume) in enumerate(parts):
        kind = noise[volume] if isinstance(noise, (list, tuple)) else noise
        noisy = np.empty((realisations,) + clean.shape, dtype=np.float32)
        for r in range(realisations):
            rng = np.random.default_rng([*key, i, r])
            params = kind.sample(rng, clean.shape)
            noisy[r] = checked(kind, kind.apply(clean, params, spacing), clean.shape)
        out.append(Part(clean, noisy, spacing))
    return out


def check_patch_size(parts: Sequence[Part], patch_size: int) -> None:
    for p in parts:
        if patch_size > min(p.clean.shape[1:]):
            y, x = p.clean.shape[1:]
            raise DenoiseKitError(f"--patch-size {patch_size} is larger than the {y}x{x} slices")


class PatchPairs:
    """Random (noisy, clean) patch batches from training parts, in model units.

    ``shard`` (a worker's index, when each worker holds its own volumes) joins the seed, so
    workers draw different patches; without it every holder of the same parts draws the same.
    """

    def __init__(
        self,
        parts: Sequence[Part],
        patch_size: int,
        batch_size: int,
        scale: Callable[[np.ndarray], np.ndarray],
        seed: int,
        shard: int | None = None,
    ) -> None:
        check_patch_size(parts, patch_size)
        self.parts = list(parts)
        self.patch_size, self.batch_size = int(patch_size), int(batch_size)
        self.scale, self.seed = scale, int(seed)
        self.key = [self.seed, 2] if shard is None else [self.seed, 3, int(shard)]
        # (part, slice) of every training slice, so each slice is equally likely
        self.slices = np.array([(i, z) for i, p in enumerate(self.parts) for z in range(p.clean.shape[0])])

    def plan(self, epoch: int, steps: int) -> np.ndarray:
        """The draws of one epoch: (steps * batch, 6) rows of part, slice, realisation,
        top, left, flip. A function of ``(seed, epoch)`` only."""
        rng = np.random.default_rng([*self.key, epoch])
        n = steps * self.batch_size
        which = self.slices[rng.integers(0, len(self.slices), n)]
        rows = np.zeros((n, 6), dtype=np.int64)
        rows[:, :2] = which
        for k, (i, _) in enumerate(which):
            part = self.parts[i]
            _, h, w = part.clean.shape
            rows[k, 2] = rng.integers(0, part.noisy.shape[0])
            rows[k, 3] = rng.integers(0, h - self.patch_size + 1)
            rows[k, 4] = rng.integers(0, w - self.patch_size + 1)
            rows[k, 5] = rng.integers(0, 4)
        return rows

    def crop(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cut the patches a batch of plan rows names; returns (noisy, clean) (b, p, p, 1)."""
        p = self.patch_size
        x = np.empty((len(rows), p, p), dtype=np.float32)
        y = np.empty_like(x)
        for b, (i, z, r, top, left, flip) in enumerate(rows):
            part = self.parts[i]
            cn = part.noisy[r, z, top : top + p, left : left + p]
            cc = part.clean[z, top : top + p, left : left + p]
            if flip & 1:
                cn, cc = cn[:, ::-1], cc[:, ::-1]
            if flip & 2:
                cn, cc = cn[::-1], cc[::-1]
            x[b], y[b] = cn, cc
        return (
            np.asarray(self.scale(x), dtype=np.float32)[..., None],
            np.asarray(self.scale(y), dtype=np.float32)[..., None],
        )

    def dataset(self, epoch: int, steps: int):
        """A prefetching ``tf.data.Dataset`` of ``steps`` batches for ``epoch``."""
        import tensorflow as tf

        p, b = self.patch_size, self.batch_size
        shape = (b, p, p, 1)

        def load(rows):
            x, y = tf.numpy_function(self.crop, [rows], (tf.float32, tf.float32), stateful=False)
            return tf.ensure_shape(x, shape), tf.ensure_shape(y, shape)

        ds = tf.data.Dataset.from_tensor_slices(self.plan(epoch, steps)).batch(b, drop_remainder=True)
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)

    def replica_dataset(self, epoch: int, steps: int, first: int, rows: int, replicas: int):
        """This worker's part of each step's batch for ``tf.distribute``: per step,
        ``replicas`` elements of ``rows`` patches, cut from rows ``first, first + 1, ...``
        of the step's plan (replica ``r`` gets the ``r``-th element)."""
        import tensorflow as tf

        plan = self.plan(epoch, steps).reshape(steps, self.batch_size, 6)
        mine = plan[:, first : first + rows * replicas].reshape(steps * replicas, rows, 6)
        shape = (rows, self.patch_size, self.patch_size, 1)

        def load(r):
            x, y = tf.numpy_function(self.crop, [r], (tf.float32, tf.float32), stateful=False)
            return tf.ensure_shape(x, shape), tf.ensure_shape(y, shape)

        ds = tf.data.Dataset.from_tensor_slices(mine)
        ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        return ds.prefetch(tf.data.AUTOTUNE)


#: A validation tile counts as inside the body when at least this share of it is above -900 HU.
BODY_HU, BODY_SHARE = -900.0, 0.5


def validation_tiles(parts: Sequence[Part], patch_size: int, max_tiles: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """A fixed grid of (noisy, clean) HU tiles from the held-out slices, shape (n, p, p):
    at most ``max_tiles``, evenly chosen among those inside the body (air around the patient
    would make every model look good), or among all tiles if none is."""
    check_patch_size(parts, patch_size)
    p = patch_size
    noisy, clean = [], []
    for part in parts:
        _, h, w = part.clean.shape
        for z in range(part.clean.shape[0]):
            for top in range(0, h - p + 1, p):
                for left in range(0, w - p + 1, p):
                    clean.append(part.clean[z, top : top + p, left : left + p])
                    noisy.append(part.noisy[0, z, top : top + p, left : left + p])
    body = [k for k, c in enumerate(clean) if np.mean(c > BODY_HU) >= BODY_SHARE] or list(range(len(clean)))
    pick = np.unique(np.linspace(0, len(body) - 1, min(max_tiles, len(body))).round().astype(int))
    keep = [body[k] for k in pick]
    return np.stack([noisy[k] for k in keep]), np.stack([clean[k] for k in keep])
