"""Evaluation of a denoised volume against a clean reference: PSNR, SSIM and RMSE, per
slice and overall, all in one HU window (PSNR on CT means nothing without the window it
was computed in), plus a figure to look at in the display windows a reader needs.

Every metric clips both volumes to the window first; see ``denoisekit.metrics``.
Overall PSNR and RMSE pool every voxel; overall SSIM is the mean of the slices' SSIM.
A mask (a label volume, or ``body_mask`` of the reference) limits all three to its voxels:
overall SSIM is then the mean of the SSIM map over them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from denoisekit.errors import DenoiseKitError, UsageError
from denoisekit.metrics import DEFAULT_WINDOW, NoSSIMThere, psnr, rmse, ssim
from denoisekit.volume import padding_mask

LUNG_WINDOW = (-1350.0, 150.0)
SOFT_TISSUE_WINDOW = (-160.0, 240.0)
METRICS = ("psnr", "ssim", "rmse")

#: Display windows a figure row can use, by name (W/L as readers know them, as LO..HI in HU).
FIGURE_WINDOWS = {
    "lung": LUNG_WINDOW,  # W1500 L-600
    "soft-tissue": SOFT_TISSUE_WINDOW,  # W400 L40
    "mediastinum": SOFT_TISSUE_WINDOW,
    "brain": (0.0, 80.0),  # W80 L40
    "bone": (-500.0, 1300.0),  # W1800 L400
}
#: A figure's rows unless asked otherwise: a chest reader's two windows.
DEFAULT_FIGURE_WINDOWS = (("lung", LUNG_WINDOW), ("soft tissue", SOFT_TISSUE_WINDOW))
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def parse_window(text: str) -> tuple[float, float]:
    """``"LO,HI"`` in HU -> (lo, hi), refusing empty or reversed windows."""
    parts = text.split(",")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise UsageError(f"window must be LO,HI in HU (e.g. -1000,1000), got {text!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise UsageError(f"window {text!r} must be finite HU values")
    if not hi > lo:
        raise UsageError(f"window {text!r} is empty: HI must be above LO")
    return lo, hi


def figure_window(text: str) -> tuple[str, tuple[float, float]]:
    """A figure row's window from a name in ``FIGURE_WINDOWS`` or ``"LO,HI"`` in HU ->
    (label, (lo, hi)); the label (the name, empty for LO,HI) heads the row next to its HU."""
    names = ", ".join(FIGURE_WINDOWS)
    key = "-".join(text.strip().lower().replace("_", " ").split())
    if key in FIGURE_WINDOWS:
        return key.replace("-", " "), FIGURE_WINDOWS[key]
    try:
        lo, hi = (float(p) for p in text.split(","))
    except ValueError:
        raise UsageError(f"unknown figure window {text!r}: use one of {names}, or LO,HI in HU") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
        raise UsageError(f"figure window {text!r} must have finite HI above LO (or use one of {names})")
    return "", (lo, hi)


def check_figure_path(path: str | Path, force: bool) -> None:
    """Refuse, before any work, a figure path that does not end in .png, or that exists and is
    not ours to replace: without ``force``, or when it is not a PNG (``--force`` replaces an
    earlier figure, never someone's file; a symbolic link is replaced as a link)."""
    from denoisekit.io import check_writable
    from denoisekit.io.atomic import refuse_foreign

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise UsageError(f"figure {path} must end in .png: the figure is written as PNG")
    if not (path.exists() or path.is_symlink()):
        check_writable(path)
        return
    refuse_foreign(path, series=False)  # a directory or a device is never replaced
    if not path.is_symlink() and not _our_png(path):
        raise DenoiseKitError(f"{path} is not a figure denoisekit wrote: not replaced; choose another figure path")
    if not force:
        raise DenoiseKitError(f"figure {path} already exists (use --force to overwrite it)")


#: The PNG text chunk that marks a figure as denoisekit's, so --force replaces only its own.
SOFTWARE = b"Software\x00denoisekit"


def _our_png(path: Path) -> bool:
    """Whether ``path`` is a PNG that denoisekit wrote: its Software text chunk (before the
    image data, where matplotlib puts it) says so. Any other PNG is someone's picture."""
    import struct

    try:
        with open(path, "rb") as fh:
            if fh.read(len(PNG_MAGIC)) != PNG_MAGIC:
                return False
            while True:
                head = fh.read(8)
                if len(head) < 8:
                    return False
                length, kind = struct.unpack(">I4s", head)
                if kind in (b"IDAT", b"IEND") or length > 1 << 20:
                    return False
                data = fh.read(length)
                fh.seek(4, 1)  # the chunk's CRC
                if kind == b"tEXt" and data.startswith(SOFTWARE):
                    return True
    except OSError:
        return False


def _array(volume: Any) -> np.ndarray:
    array = np.asarray(getattr(volume, "array", volume), dtype=np.float32)
    if array.ndim == 2:
        array = array[None]
    if array.ndim != 3:
        raise DenoiseKitError(f"expected a (z, y, x) volume, got shape {array.shape}")
    return array


def check_same_grid(test: Any, reference: Any, names: tuple[str, str] = ("denoised", "reference")) -> None:
    """Refuse volumes that are not voxel-for-voxel comparable (shape, then geometry)."""
    a, b = _array(test), _array(reference)
    if a.shape != b.shape:
        raise DenoiseKitError(f"{names[0]} and {names[1]} differ in shape (z, y, x): {a.shape} vs {b.shape}")
    for attr, tol in (("spacing", 1e-3), ("origin", 1e-2), ("direction", 1e-4)):
        va, vb = getattr(test, attr, None), getattr(reference, attr, None)
        if va is None or vb is None:
            continue
        if attr == "spacing" and a.shape[0] == 1:  # one slice has no spacing between slices (a 2-D file says 1)
            va, vb = va[:2], vb[:2]
        if not np.allclose(va, vb, atol=tol, rtol=1e-5):
            fmt = lambda v: "(" + ", ".join(f"{x:g}" for x in v) + ")"  # noqa: E731
            raise DenoiseKitError(f"{names[0]} and {names[1]} differ in {attr}: {fmt(va)} vs {fmt(vb)}")


def scores(reference: np.ndarray, test: np.ndarray, window: tuple[float, float],
           mask: np.ndarray | None = None) -> dict[str, Any]:
    """Overall and per-slice PSNR, SSIM and RMSE of ``test`` against ``reference``; with a
    ``mask``, of its voxels only (a slice it leaves empty scores None)."""
    masks = [None] * len(reference) if mask is None else list(mask)
    per_slice = [
        dict.fromkeys(METRICS) if m is not None and not m.any()
        else {"psnr": psnr(r, t, window, m), "ssim": _ssim_or_none(r, t, window, m), "rmse": rmse(r, t, window, m)}
        for r, t, m in zip(reference, test, masks)
    ]
    overall = {
        "psnr": psnr(reference, test, window, mask),
        # every slice weighs the same without a mask (the slices' mean, already computed);
        # with one, every voxel it marks does (the SSIM map's mean over them)
        "ssim": _mean_or_none([s["ssim"] for s in per_slice]) if mask is None
        else _ssim_or_none(reference, test, window, mask),
        "rmse": rmse(reference, test, window, mask),
    }
    return {"overall": overall, "per_slice": per_slice}


def _mean_or_none(values: list[float | None]) -> float | None:
    """The slices' mean SSIM, or None where slices have none (under 3 pixels on a side)."""
    return None if any(v is None for v in values) else float(np.mean(values))


def _ssim_or_none(reference: np.ndarray, test: np.ndarray, window: tuple[float, float], mask: Any) -> float | None:
    """SSIM, or None where it is not read: slices under 3 pixels on a side, or a mask that
    marks only the slices' border band."""
    try:
        return ssim(reference, test, window, mask)
    except NoSSIMThere:
        return None


#: HU above which a voxel may be the patient (fat is about -100; lung, inside, is filled in).
BODY_HU = -500.0
#: Pieces at least this fraction of the largest one are the patient too (legs, arms apart
#: from the torso); smaller ones are taken for table parts, tubes and noise.
BODY_PIECE = 0.05
#: ... unless longer than this many times their width: a table or a pad under the patient
#: is a band, a limb's cross-section is not.
BODY_ELONGATION = 4.0


def body_mask(reference: Any) -> np.ndarray:
    """The patient in each slice of ``reference``: voxels above ``BODY_HU``, opened to drop
    thin lines (table edges, noise) and holes filled (lungs, bowel gas): the largest piece, and
    those at least ``BODY_PIECE`` of it that are no band (``BODY_ELONGATION``: a thick table).
    What ``evaluate --mask body`` scores, so the air around the body does not count."""
    from scipy import ndimage

    ref = _array(reference)
    mask = np.zeros(ref.shape, dtype=bool)
    for k, image in enumerate(ref):
        inside = ndimage.binary_opening(image > BODY_HU, iterations=2)
        inside = ndimage.binary_fill_holes(inside)
        labels, n = ndimage.label(inside)
        if n:
            sizes = np.bincount(labels.ravel())[1:]
            largest = 1 + int(np.argmax(sizes))
            keep = [piece for piece in 1 + np.flatnonzero(sizes >= BODY_PIECE * sizes.max())  # two legs, an arm apart
                    if piece == largest or _elongation(labels == piece) <= BODY_ELONGATION]
            mask[k] = np.isin(labels, keep)
    return mask


def _elongation(piece: np.ndarray) -> float:
    """How many times longer than wide a 2-D piece is (its coordinates' principal axes)."""
    coords = np.argwhere(piece).astype(np.float64)
    if len(coords) < 3:
        return 1.0
    small, large = np.linalg.eigvalsh(np.cov(coords.T))
    return float(np.sqrt(large / max(small, 1e-12)))


def _as_mask(mask: Any, reference: Any) -> np.ndarray:
    """A boolean mask from a label Volume or array on the reference's grid (nonzero: in)."""
    check_same_grid(mask, reference, ("mask", "reference"))
    m = np.asarray(getattr(mask, "array", mask))
    if m.dtype != bool:  # a boolean mask (evaluate's CLI resolves one first) is taken as it is
        m = _array(mask)
        if not np.isfinite(m).all():
            raise DenoiseKitError("the mask has NaN or infinite voxels")
        m = m != 0
    m = m[None] if m.ndim == 2 else m  # as _array makes a slice (z, y, x)
    if not m.any():
        raise DenoiseKitError("the mask marks no voxel (every voxel is 0)")
    return m


def resolve_mask(mask: Any, reference: Any) -> np.ndarray | None:
    """What ``mask`` marks, as booleans on the reference's voxels: ``"body"`` (``body_mask``),
    a label volume or array on the reference's grid (nonzero: in), or None (every voxel)."""
    if mask is None:
        return None
    if isinstance(mask, str):
        if mask != "body":
            raise DenoiseKitError(f"unknown mask {mask!r}: 'body', or a label volume")
        m = body_mask(reference)
        if not m.any():
            raise DenoiseKitError(f"no body in the reference: no voxel above {BODY_HU:g} HU")
        return m
    return _as_mask(mask, reference)


def _gain(denoised: dict[str, float], noisy: dict[str, float]) -> dict[str, float]:
    """Improvement over the noisy input: positive is better for all three (None where a
    score is: SSIM in a mask that marks only a slice's border)."""
    def less(a: float | None, b: float | None) -> float | None:
        if a is None or b is None:
            return None
        return 0.0 if a == b else a - b  # both perfect (inf PSNR): no gain, not inf - inf

    return {
        "psnr": less(denoised["psnr"], noisy["psnr"]),
        "ssim": less(denoised["ssim"], noisy["ssim"]),
        "rmse": less(noisy["rmse"], denoised["rmse"]),
    }


def evaluate(
    denoised: Any, reference: Any, noisy: Any = None, window: tuple[float, float] = DEFAULT_WINDOW,
    mask: Any = None,
) -> dict[str, Any]:
    """Scores of ``denoised`` (and ``noisy``, with the gain over it) against ``reference``.

    Takes Volumes or arrays. ``mask``: a label volume or array on the reference's grid
    (nonzero voxels are scored), or ``"body"`` (``body_mask`` of the reference). Returns
    ``{"window", "mask", "overall", "per_slice"}``; with a noisy volume, ``overall`` and
    each slice also hold ``noisy`` scores and the ``gain``. A slice's ``location_mm`` is
    its ImagePositionPatient coordinate on the axis the slices are stacked along (z for
    axial) for Volumes, else None.
    """
    lo, hi = window
    if not hi > lo:
        raise DenoiseKitError(f"window ({lo:g}, {hi:g}) is empty")
    check_same_grid(denoised, reference)
    ref, den = _array(reference), _array(denoised)
    m = resolve_mask(mask, reference)
    result = scores(ref, den, window, m)
    if noisy is not None:
        check_same_grid(noisy, reference, ("noisy", "reference"))
        base = scores(ref, _array(noisy), window, m)
        result["overall"]["noisy"] = base["overall"]
        result["overall"]["gain"] = _gain(result["overall"], base["overall"])
        for s, b in zip(result["per_slice"], base["per_slice"]):
            s["noisy"] = b
            s["gain"] = None if s["psnr"] is None else _gain(s, b)
    locations = _locations(reference, len(ref))
    result["per_slice"] = [
        {"slice": k, "location_mm": locations[k], **({} if m is None else {"voxels": int(m[k].sum())}), **s}
        for k, s in enumerate(result["per_slice"])
    ]
    masked = None if m is None else {
        "what": mask if isinstance(mask, str) else "label volume", "voxels": int(m.sum()),
        "fraction": float(m.mean()),
    }
    return {"window": [float(lo), float(hi)], "mask": masked, **result}


def _locations(volume: Any, n: int) -> list[float | None]:
    """Each slice's position in mm as a reader finds it: its ImagePositionPatient coordinate
    on the patient axis the slices are stacked along (z for axial slices, whichever way the
    stack runs). SliceLocation would be another choice, but vendors measure it from where
    they like."""
    if not hasattr(volume, "slice_origin"):
        return [None] * n
    axis = volume.stack_axis()
    return [round(float(volume.slice_origin(k)[axis]), 3) for k in range(n)]


def representative_slice(reference: Any, denoised: Any, window: tuple[float, float] = DEFAULT_WINDOW,
                         mask: Any = None) -> int:
    """The slice whose error is the median one, neither the best nor the worst case, read as
    the scores are: in ``window`` and, with a boolean ``mask``, in its voxels (a slice it leaves
    empty is never the one shown: the figure showed voxels no score had read)."""
    ref, den = _array(reference), _array(denoised)
    marks = None if mask is None else np.asarray(mask, dtype=bool).reshape(ref.shape)
    slices, errors = [], []
    for k in range(len(ref)):
        difference = np.clip(ref[k], *window).astype(np.float64) - np.clip(den[k], *window)
        if marks is not None:
            if not marks[k].any():
                continue
            difference = difference[marks[k]]
        slices.append(k)
        errors.append(float(np.sqrt(np.mean(difference**2))))
    if not slices:
        raise DenoiseKitError("the mask marks no voxel: no slice to show")
    order = np.argsort(errors, kind="stable")
    return slices[int(order[len(order) // 2])]


def difference_span(reference: np.ndarray, noisy: np.ndarray) -> float:
    """The difference panels' scale (+- HU): the 99th percentile of the noise, |noisy -
    reference| outside padding, rounded up to 1, 2 or 5 x 10^n (at least 1). On the noise's
    scale a denoiser's leftover noise and the edges it blurred both show; a quarter of the
    display window (+-375 HU in the lung row) left 20 HU of noise invisible."""
    spread = np.abs(noisy.astype(np.float64) - reference)[~padding_mask(reference)]
    top = float(np.percentile(spread, 99)) if spread.size else 0.0
    if not top > 1.0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(top))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= top)


def _slice_title(volume: Any, k: int, n: int) -> str:
    """'slice 12 of 0..39, at 35.0 mm': as the per-slice table numbers it (``slice``, ``at mm``),
    so the figure's slice is found there and in a viewer."""
    at = _locations(volume, n)[k]
    return (f"slice {k} of 0..{n - 1}" if n > 1 else "the one slice") + ("" if at is None else f", at {at:.1f} mm")


#: Which way a shown image's columns (rightward) and rows (downward) run on each patient axis
#: (LPS x, y, z), as CT viewers show it: the patient's left on the right, posterior at the
#: bottom, inferior at the bottom.
SHOWN_LPS = (1.0, 1.0, -1.0)


def as_shown(volume: Any) -> Callable[[np.ndarray], np.ndarray]:
    """A slice of ``volume`` (stored rows and columns) as a viewer shows it (``SHOWN_LPS``):
    a NIfTI from dcm2niix stores an axial scan's rows posterior first, and its figure was
    upside down. Flips and a transpose only, by the patient axes the rows and columns run
    nearest to (an oblique plane by its nearest); the identity for arrays."""
    direction = getattr(volume, "direction", None)
    if direction is None:
        return lambda image: image
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    across, down = int(np.argmax(np.abs(d[:, 0]))), int(np.argmax(np.abs(d[:, 1])))
    if across == down:
        return lambda image: image
    flip_rows = d[down, 1] * SHOWN_LPS[down] < 0
    flip_columns = d[across, 0] * SHOWN_LPS[across] < 0
    transpose = across > down  # columns run along the earlier patient axis (x before y before z)

    def shown(image: np.ndarray) -> np.ndarray:
        image = image[::-1] if flip_rows else image
        image = image[:, ::-1] if flip_columns else image
        return image.T if transpose else image

    return shown


def draw_figure(reference: Any, noisy: Any, denoised: Any, slice_index: int | None = None,
                label: str = "denoised", windows: Any = None, *, window: tuple[float, float] = DEFAULT_WINDOW,
                mask: Any = None):
    """The figure ``figure`` saves, as a matplotlib Figure (no file, no pyplot state)."""
    from matplotlib.figure import Figure  # Agg canvas, no pyplot global state

    rows = tuple(DEFAULT_FIGURE_WINDOWS if windows is None else windows)
    if not rows:
        raise DenoiseKitError("a figure needs at least one display window")
    for name, (lo, hi) in rows:
        if not hi > lo:
            raise DenoiseKitError(f"figure window {name} [{lo:g},{hi:g}] is empty: HI must be above LO")
    check_same_grid(denoised, reference)
    if noisy is not None:
        check_same_grid(noisy, reference, ("noisy", "reference"))
    k = representative_slice(reference, denoised, window, mask) if slice_index is None else slice_index
    ref = _array(reference)
    if not 0 <= k < len(ref):
        raise DenoiseKitError(f"slice {k} is outside the volume's {len(ref)} slices")
    shown = as_shown(reference)
    panels = [("reference", shown(ref[k]))]
    if noisy is not None:
        panels.append(("noisy", shown(_array(noisy)[k])))
    den = shown(_array(denoised)[k])
    panels.append((label, den))
    span = difference_span(panels[0][1], panels[1][1] if noisy is not None else den)

    aspect = den.shape[0] / den.shape[1]
    # the difference needs no window: the second row shows the noise that was added instead, on
    # the same scale, where the first shows what the denoiser left (both rows showed the same);
    # a figure of one row shows both side by side (it showed only what the denoiser left)
    differences = [("denoised - reference", den - panels[0][1])]
    if noisy is not None:
        differences.append(("noisy - reference", panels[1][1] - panels[0][1]))
    per_row = -(-len(differences) // len(rows))
    cols = len(panels) + per_row
    fig = Figure(figsize=(3.0 * cols, (3.0 * aspect + 0.35) * len(rows) + 0.5))  # room for two-line titles
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for i, (row, (name, (lo, hi))) in enumerate(zip(axes, rows)):
        hu = f"{name} [{lo:g},{hi:g}] HU" if name else f"[{lo:g},{hi:g}] HU"
        for ax, (title, image) in zip(row, panels):
            ax.imshow(image, cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
            ax.set_title(f"{title}\n{hu}", fontsize=8)
        for j, ax in enumerate(row[len(panels):]):
            what, shown = differences[(i * per_row + j) % len(differences)]
            im = ax.imshow(shown, cmap="RdBu_r", vmin=-span, vmax=span, interpolation="nearest")
            ax.set_title(f"{what}\n±{span:g} HU", fontsize=8)
            fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
        for ax in row:
            ax.set_axis_off()
    fig.suptitle(_slice_title(reference, k, len(ref)), fontsize=9)
    fig.tight_layout()
    return fig


def figure(reference: Any, noisy: Any, denoised: Any, path: str | Path, slice_index: int | None = None,
           label: str = "denoised", *, windows: Any = None, window: tuple[float, float] = DEFAULT_WINDOW,
           mask: Any = None, force: bool = False) -> Path:
    """Save reference / noisy / denoised / difference (denoised - reference) for one slice as
    a PNG, a row per display window: ``windows`` is (label, (lo, hi)) pairs (``figure_window``),
    by default lung then soft tissue. The slice is the one of median error in the scores'
    ``window`` and boolean ``mask`` unless ``slice_index`` is given. ``noisy`` may be None. An
    existing ``path`` is replaced only with ``force`` and only if it is a PNG
    (``check_figure_path``). Returns the path."""
    from denoisekit.io.atomic import publish, remove, temp_sibling

    path = Path(path)
    check_figure_path(path, force)
    fig = draw_figure(reference, noisy, denoised, slice_index, label, windows, window=window, mask=mask)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_sibling(path)
    try:  # never a half-written PNG, and checked again: the path may have changed meanwhile
        from denoisekit import __version__

        fig.savefig(temp, dpi=100, format="png", metadata={"Software": f"denoisekit {__version__}"})
        check_figure_path(path, force)
        publish(temp, path, force)
    except BaseException:
        remove(temp)
        raise
    return path
