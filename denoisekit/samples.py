"""Embedded sample data: real CT that pydicom and pydicom-data ship, and a procedural
chest phantom (a multi-slice 512x512 series to demo and train on without downloads).

Provenance and licences: docs/data.md.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from denoisekit.errors import DenoiseKitError
from denoisekit.volume import Volume

SAMPLES: dict[str, str] = {
    "chest-phantom": "procedural chest CT phantom, 512x512 x 24 slices, 0.70 x 0.70 x 2.5 mm, tissue HU",
    "head-phantom": "procedural head CT phantom in a head holder, 512x512 x 16 slices, 0.49 x 0.49 x 5 mm",
    "ct-small": "real CT slice, 128x128, pydicom's CT_small.dcm",
    "693": "real CT slice, 512x512, pydicom-data's 693_UNCR.dcm",
}

_REAL_FILES = {"ct-small": "CT_small.dcm", "693": "693_UNCR.dcm"}

# Hounsfield units of the phantom's tissues (typical unenhanced CT values).
HU = {
    "air": -1000.0, "lung": -850.0, "fat": -100.0, "mediastinum": -90.0, "muscle": 45.0,
    "myocardium": 40.0, "blood": 50.0, "cord": 35.0, "csf": 8.0, "disc": 85.0,
    "cancellous": 250.0, "cortical": 700.0, "rib_marrow": 200.0, "rib_cortex": 800.0,
    "sternum": 400.0, "vessel": 40.0, "nodule": 45.0, "ground_glass": -520.0, "calcified": 320.0,
}
FIELD_OF_VIEW = 360.0  # mm across the image
SLICE_SPACING = 2.5  # mm
SEED = 20240607


def load_sample(name: str = "chest-phantom", *, slices: int | None = None, size: int = 512) -> Volume:
    """A sample volume by name (see ``SAMPLES``). ``slices`` and ``size`` shape the phantoms
    (default: 24 chest, 16 head slices; the real samples are single slices and ignore them)."""
    if name in _REAL_FILES:
        from pydicom.data import get_testdata_file

        from denoisekit.io import read_volume

        path = get_testdata_file(_REAL_FILES[name])
        if path is None:
            raise DenoiseKitError(f"sample '{name}' needs {_REAL_FILES[name]} (pydicom / pydicom-data)")
        return read_volume(path)
    if name == "chest-phantom":
        return chest_phantom(slices=24 if slices is None else slices, size=size)
    if name == "head-phantom":
        from denoisekit.head_phantom import head_phantom

        return head_phantom(slices=16 if slices is None else slices, size=size)
    raise DenoiseKitError(f"no sample '{name}'; samples: {', '.join(SAMPLES)}")


def _phantom_uid(*parts: Any) -> str:
    from pydicom.uid import generate_uid

    return generate_uid(entropy_srcs=["denoisekit", "chest-phantom", *map(str, parts)])


def chest_phantom(slices: int = 24, size: int = 512) -> Volume:
    """A deterministic chest CT phantom in HU: body with fat and muscle layers, lungs with
    branching vessels and nodules, heart with blood pool, aorta, trachea, oesophagus,
    spine (vertebral bodies, discs, canal), ribs and sternum, air outside.

    Anatomy changes smoothly along z (superior slices have a smaller heart, the trachea and
    the aortic arch), so slices differ. Edges get a slight in-plane blur (partial volume)
    and tissues a faint texture (a few HU); no noise is added.
    """
    if slices < 1 or size < 32:
        raise DenoiseKitError("the phantom needs at least 1 slice and 32x32 pixels")
    spacing = FIELD_OF_VIEW / size
    coords = (np.arange(size) - (size - 1) / 2) * spacing  # mm, centred
    z0 = -(slices - 1) * SLICE_SPACING / 2
    zs = z0 + np.arange(slices) * SLICE_SPACING
    rng = np.random.default_rng(SEED)
    trees = _vessel_trees(rng)
    volume = np.empty((slices, size, size), dtype=np.float32)
    for k, z in enumerate(zs):
        volume[k] = _slice(coords, float(z), trees)

    # Faint tissue texture (smooth, a few HU; more in lung parenchyma), then partial volume.
    texture = _smooth_noise(rng, slices, size, cells=max(4, size // 16))
    scale = np.where(volume < -600, 12.0, np.where(volume > -950, 3.0, 0.0)).astype(np.float32)
    scale[volume <= -990] = 0.0
    volume += texture * scale
    volume = _blur_in_plane(volume)
    volume = np.clip(volume, -1024, 3071).astype(np.float32)

    origin = (float(coords[0]), float(coords[0]), float(zs[0]))
    tags = {
        "PatientName": "DENOISEKIT^PHANTOM",
        "PatientID": "DENOISEKIT-PHANTOM",
        "PatientBirthDate": "",
        "PatientSex": "O",
        "PatientPosition": "HFS",
        "StudyInstanceUID": _phantom_uid("study"),
        "StudyDate": "20240101",
        "StudyTime": "120000",
        "StudyID": "1",
        "StudyDescription": "denoisekit procedural chest phantom",
        "AccessionNumber": "",
        "ReferringPhysicianName": "",
        "SeriesInstanceUID": _phantom_uid("series", slices, size),
        "SeriesNumber": 1,
        "SeriesDescription": f"chest phantom {size}x{size}x{slices}",
        "Modality": "CT",
        "BodyPartExamined": "CHEST",
        "FrameOfReferenceUID": _phantom_uid("frame-of-reference"),
        "Manufacturer": "denoisekit",
        "KVP": 120,
        "SliceThickness": SLICE_SPACING,
        "WindowCenter": 40,
        "WindowWidth": 400,
    }
    return Volume(
        array=volume,
        spacing=(spacing, spacing, SLICE_SPACING),
        origin=origin,
        tags=tags,
        source="",
    )


def _smooth_noise(rng, slices: int, size: int, cells: int) -> np.ndarray:
    """Unit-variance-ish noise varying over ``size / cells`` pixels (bilinear upsampling)."""
    coarse = rng.standard_normal((slices, cells + 1, cells + 1)).astype(np.float32)
    pos = np.linspace(0, cells, size, dtype=np.float32)
    i0 = np.minimum(pos.astype(int), cells - 1)
    w = (pos - i0)[None, :]
    rows = coarse[:, i0, :] * (1 - w[..., None]) + coarse[:, i0 + 1, :] * w[..., None]
    return rows[:, :, i0] * (1 - w) + rows[:, :, i0 + 1] * w


def _blur_in_plane(volume: np.ndarray) -> np.ndarray:
    """A [1, 2, 1] / 4 blur along y and x (about 0.7 pixel sigma): partial-volume edges."""
    out = volume.copy()
    out[:, 1:-1, :] = 0.5 * volume[:, 1:-1, :] + 0.25 * (volume[:, :-2, :] + volume[:, 2:, :])
    res = out.copy()
    res[:, :, 1:-1] = 0.5 * out[:, :, 1:-1] + 0.25 * (out[:, :, :-2] + out[:, :, 2:])
    return res


# -- painting helpers (each touches only its bounding box) -------------------------------


def _box(coords: np.ndarray, lo: float, hi: float) -> slice:
    start = int(np.searchsorted(coords, lo, side="left"))
    stop = int(np.searchsorted(coords, hi, side="right"))
    return slice(start, stop)


def _ellipse(img, coords, cx, cy, ax, ay, value, angle=0.0, where=None) -> None:
    """Paint an ellipse (centre, semi-axes in mm, rotation in degrees) with ``value``."""
    r = max(ax, ay)
    sy, sx = _box(coords, cy - r, cy + r), _box(coords, cx - r, cx + r)
    if sy.start >= sy.stop or sx.start >= sx.stop:
        return
    x = coords[sx][None, :] - cx
    y = coords[sy][:, None] - cy
    c, s = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    u, v = c * x + s * y, -s * x + c * y
    mask = (u / ax) ** 2 + (v / ay) ** 2 <= 1.0
    if where is not None:
        mask &= where[sy, sx]
    img[sy, sx][mask] = value


def _vessel_trees(rng) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """Branching pulmonary vessels: from each hilum an upper, a middle and a lower lobe
    tree and three more,
    branching in 3-D; (start, end, radius) segments in mm."""
    segments = []
    for side in (-1.0, 1.0):
        hilum = np.array([side * 38.0, 12.0, 0.0])
        roots = ((side, -0.3, 1.1), (side, -1.0, 0.3), (side * 1.2, -0.2, 0.0), (side, 0.8, 0.2),
                 (side, 0.5, -1.1), (side, -0.6, -0.8))
        stack = [(hilum, np.array(h), 28.0, 4.0, 0) for h in roots]
        while stack:
            start, heading, length, radius, depth = stack.pop()
            heading = heading / np.linalg.norm(heading)
            end = start + heading * length
            segments.append((start, end, radius))
            if depth >= 6:
                continue
            for _ in range(2):
                new = heading + rng.normal(0.0, 0.55, 3) + np.array([side * 0.25, 0.0, 0.0])
                stack.append((end, new, length * rng.uniform(0.68, 0.82), radius * 0.8, depth + 1))
    return segments


def _vessels(img, coords, z, trees, lungs) -> None:
    for start, end, radius in trees:
        if min(start[2], end[2]) - radius > z or max(start[2], end[2]) + radius < z:
            continue
        sy = _box(coords, min(start[1], end[1]) - radius, max(start[1], end[1]) + radius)
        sx = _box(coords, min(start[0], end[0]) - radius, max(start[0], end[0]) + radius)
        if sy.start >= sy.stop or sx.start >= sx.stop:
            continue
        px = coords[sx][None, :] - start[0]
        py = coords[sy][:, None] - start[1]
        pz = z - start[2]
        d = end - start
        t = np.clip((px * d[0] + py * d[1] + pz * d[2]) / float(d @ d), 0.0, 1.0)
        dist2 = (px - t * d[0]) ** 2 + (py - t * d[1]) ** 2 + (pz - t * d[2]) ** 2
        mask = (dist2 <= radius * radius) & lungs[sy, sx]
        img[sy, sx][mask] = HU["vessel"]


def _slice(coords: np.ndarray, z: float, trees) -> np.ndarray:
    size = len(coords)
    img = np.full((size, size), HU["air"], dtype=np.float32)
    t = z / 60.0  # about -0.5 (inferior) .. 0.5 (superior) for the default 24 slices
    breath = 1.0 + 0.04 * math.cos(math.pi * t)
    bx, by, cy = 165.0 * breath, 118.0 * breath, 12.0
    _ellipse(img, coords, 0, cy, bx, by, HU["fat"])  # skin and subcutaneous fat
    _ellipse(img, coords, 0, cy, bx - 12, by - 10, HU["muscle"])  # chest wall muscles
    _ellipse(img, coords, 0, cy - 2, bx - 26, by - 22, HU["mediastinum"])  # thoracic cavity
    # Lungs: larger towards the base, a slight anterior-posterior density gradient.
    lung_w = 60.0 * (1.0 + 0.08 * math.sin(math.pi * (t + 0.5)))
    lungs = np.zeros_like(img, dtype=bool)
    for side in (-1.0, 1.0):
        _ellipse(lungs, coords, side * 72.0, cy - 2, lung_w, 88.0 * breath, True, angle=side * 8.0)
    img[lungs] = HU["lung"]
    gradient = (coords[:, None] * 0.25).astype(np.float32)  # denser posteriorly (dependent lung)
    img += np.where(lungs, gradient, 0.0).astype(np.float32)
    _vessels(img, coords, z, trees, lungs)
    # Nodules: (x, y, z, radius, kind).
    for nx, ny, nz, nr, kind in ((-88.0, -20.0, -8.0, 5.0, "nodule"), (95.0, 35.0, 12.0, 3.5, "nodule"),
                                 (-65.0, 55.0, 20.0, 7.0, "ground_glass"), (70.0, -35.0, -22.0, 3.0, "calcified")):
        if abs(z - nz) < nr:
            r = math.sqrt(nr * nr - (z - nz) ** 2)
            _ellipse(img, coords, nx, ny, r, r, HU[kind], where=lungs)
    # Heart (shrinking towards the top), blood pool inside; aorta; oesophagus; trachea.
    heart = max(0.0, 1.0 - max(0.0, t + 0.1) * 1.6)
    if heart > 0.05:
        hx, hy = 55.0 * math.sqrt(heart), 44.0 * math.sqrt(heart)
        _ellipse(img, coords, 22.0, -18.0, hx, hy, HU["myocardium"], angle=30.0)
        _ellipse(img, coords, 26.0, -20.0, hx * 0.62, hy * 0.58, HU["blood"], angle=30.0)
    _ellipse(img, coords, 24.0, 58.0, 12.0, 12.0, HU["blood"])  # descending aorta
    if t > 0.05:
        _ellipse(img, coords, -12.0, -12.0, 15.0, 15.0, HU["blood"])  # ascending aorta
    if t > 0.25:  # aortic arch joining both
        _ellipse(img, coords, 6.0, 22.0, 26.0, 10.0, HU["blood"], angle=65.0)
    _ellipse(img, coords, 6.0, 50.0, 7.0, 6.0, HU["muscle"])  # oesophagus
    if t > 0.1:
        _ellipse(img, coords, -4.0, 38.0, 10.0, 9.0, HU["muscle"])  # tracheal wall
        _ellipse(img, coords, -4.0, 38.0, 8.0, 7.0, HU["air"])
    # Spine: vertebral body (or disc), canal with cord, posterior elements, paraspinal muscles.
    for side in (-1.0, 1.0):
        _ellipse(img, coords, side * 30.0, 108.0, 20.0, 16.0, HU["muscle"])
    disc = (z + 1000.0) % 28.0 < 6.0
    if disc:
        _ellipse(img, coords, 0.0, 80.0, 18.0, 16.0, HU["disc"])
    else:
        _ellipse(img, coords, 0.0, 80.0, 18.0, 16.0, HU["cortical"])
        _ellipse(img, coords, 0.0, 80.0, 16.0, 14.0, HU["cancellous"])
    _ellipse(img, coords, 0.0, 106.0, 11.0, 9.0, HU["cortical"])
    _ellipse(img, coords, 0.0, 106.0, 8.5, 7.0, HU["csf"])
    _ellipse(img, coords, 0.0, 106.0, 5.0, 4.0, HU["cord"])
    _ellipse(img, coords, 0.0, 124.0, 4.0, 11.0, HU["cortical"])
    # Ribs cross the slices obliquely: each angle shows a rib only in part of the z range.
    for side in (-1.0, 1.0):
        for j, angle in enumerate(np.linspace(25.0, 150.0, 9)):
            phase = (z + 1000.0 + angle * 0.35 + side * 5.0) % 26.0
            if phase > 11.0:
                continue
            a = math.radians(angle)
            rx = side * (bx - 20.0) * math.sin(a)
            ry = cy + (by - 17.0) * math.cos(a)
            tilt = math.degrees(math.atan2(math.cos(a), side * math.sin(a)))
            _ellipse(img, coords, rx, ry, 8.0, 5.0, HU["rib_cortex"], angle=tilt + 90.0)
            _ellipse(img, coords, rx, ry, 6.5, 3.5, HU["rib_marrow"], angle=tilt + 90.0)
    if (z + 1000.0) % 20.0 < 14.0:
        _ellipse(img, coords, 0.0, cy - by + 18.0, 14.0, 6.0, HU["sternum"])
    return img
