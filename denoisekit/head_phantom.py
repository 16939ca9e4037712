"""A procedural head CT phantom: what the chest phantom lacks and every head scan has.

A thick, layered skull (cortical tables around diploe, air cells in the frontal sinus and
mastoid at the lower levels), brain with a grey-matter ribbon, sulci, falx and ventricles,
a thin scalp, and the head lying in a U-shaped head holder (a thin bright shell lined
with foam) on a curved table: thin faint and thin bright structures in air that a
denoiser must keep. Edges are blurred more than the chest phantom's (head protocols use
soft reconstruction kernels). No noise is added.
"""

from __future__ import annotations

import math

import numpy as np

from denoisekit.errors import DenoiseKitError
from denoisekit.volume import Volume

#: Typical unenhanced head CT values (HU); bone and plastics vary per slice around these.
HU = {
    "air": -1000.0, "skin": 45.0, "fat": -90.0, "muscle": 50.0, "cortical": 1350.0,
    "diploe": 650.0, "csf": 6.0, "grey": 40.0, "white": 27.0, "falx": 75.0, "plexus": 140.0,
    "shell": 600.0, "foam": -940.0, "foam_skin": -450.0, "table": 250.0, "table_core": -970.0,
}
FIELD_OF_VIEW = 250.0  # mm across the image
SLICE_SPACING = 5.0  # mm
SEED = 20261121


def head_phantom(slices: int = 16, size: int = 512) -> Volume:
    """Deterministic head phantom in HU, from the skull base's air cells (first slices) to the
    upper vault (last slices); the head's size, tilt and position in the holder vary along z."""
    from denoisekit.samples import _blur_in_plane, _phantom_uid, _smooth_noise

    if slices < 1 or size < 32:
        raise DenoiseKitError("the phantom needs at least 1 slice and 32x32 pixels")
    spacing = FIELD_OF_VIEW / size
    coords = (np.arange(size) - (size - 1) / 2) * spacing
    rng = np.random.default_rng(SEED)
    volume = np.empty((slices, size, size), dtype=np.float32)
    texture = _smooth_noise(rng, slices, size, cells=max(4, size // 12))
    for k in range(slices):
        t = (k + 0.5) / slices  # 0 at the skull base .. 1 at the vertex
        volume[k] = _slice(coords, t, np.random.default_rng([SEED, k]))
    brain = (volume > -20) & (volume < 100)
    volume += np.where(brain, 3.0 * texture, 0.0).astype(np.float32)
    volume = _blur_in_plane(_blur_in_plane(volume))  # soft head kernel: 2-3 pixel edges
    volume = np.clip(volume, -1024, 3071).astype(np.float32)
    z0 = -(slices - 1) * SLICE_SPACING / 2
    tags = {
        "PatientName": "DENOISEKIT^HEADPHANTOM",
        "PatientID": "DENOISEKIT-HEAD-PHANTOM",
        "PatientBirthDate": "",
        "PatientSex": "O",
        "PatientPosition": "HFS",
        "StudyInstanceUID": _phantom_uid("head", "study"),
        "StudyDate": "20240101",
        "StudyTime": "120000",
        "StudyID": "1",
        "StudyDescription": "denoisekit procedural head phantom",
        "AccessionNumber": "",
        "ReferringPhysicianName": "",
        "SeriesInstanceUID": _phantom_uid("head", "series", slices, size),
        "SeriesNumber": 1,
        "SeriesDescription": f"head phantom {size}x{size}x{slices}",
        "Modality": "CT",
        "BodyPartExamined": "HEAD",
        "FrameOfReferenceUID": _phantom_uid("head", "frame-of-reference"),
        "Manufacturer": "denoisekit",
        "KVP": 120,
        "SliceThickness": SLICE_SPACING,
        "WindowCenter": 40,
        "WindowWidth": 80,
    }
    return Volume(array=volume, spacing=(spacing, spacing, SLICE_SPACING),
                  origin=(float(coords[0]), float(coords[0]), z0), tags=tags, source="")


def _slice(coords: np.ndarray, t: float, rng: np.random.Generator) -> np.ndarray:
    x, y = np.meshgrid(coords, coords)  # x to the patient's left, y posterior (down the image)
    img = np.full(x.shape, HU["air"], dtype=np.float32)

    # Holder: a U (half circle below, straight walls up the sides), thin bright shell lined
    # with foam whose surface is a faint line; a curved table below it.
    r_holder = rng.uniform(98.0, 108.0)
    cy = rng.uniform(5.0, 20.0)
    rho = np.where(y > cy, np.hypot(x, y - cy), np.abs(x))
    walls = y > cy - rng.uniform(55.0, 80.0)
    shell = rng.uniform(1.2, 2.2)
    foam = rng.uniform(10.0, 18.0)
    img[walls & (rho >= r_holder - foam) & (rho < r_holder)] = HU["foam"] + rng.uniform(-20, 20)
    img[walls & (rho >= r_holder - foam - 0.8) & (rho < r_holder - foam)] = HU["foam_skin"] + rng.uniform(-150, 150)
    img[walls & (rho >= r_holder) & (rho < r_holder + shell)] = HU["shell"] + rng.uniform(-250, 350)
    table_y = cy + r_holder + shell + rng.uniform(2.0, 6.0)
    depth = y - table_y + x * x / 1400.0
    img[(depth >= 0) & (depth < 14) & (np.abs(x) < 118)] = HU["table_core"]
    for top in (0.0, 12.6):
        img[(depth >= top) & (depth < top + 1.4) & (np.abs(x) < 118)] = HU["table"] + rng.uniform(-80, 150)

    # Head: semi-axes shrink towards the base and the vertex; lies on the foam.
    size = math.sin(math.pi * (0.25 + 0.7 * t))
    ax = rng.uniform(66.0, 74.0) * (0.8 + 0.2 * size)
    ay = rng.uniform(84.0, 94.0) * (0.8 + 0.2 * size)
    angle = math.radians(rng.uniform(-8.0, 8.0))
    hy = cy + (r_holder - foam) - ay - rng.uniform(0.0, 2.0)  # back of the head on the foam
    hx = rng.uniform(-6.0, 6.0)
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * (x - hx) + s * (y - hy), -s * (x - hx) + c * (y - hy)  # head frame: v to the back

    def inside(da: float, db: float, front_extra: float = 0.0) -> np.ndarray:
        """Inside the head outline shrunk by ``da`` (sides) / ``db`` (front-back) mm; the
        frontal part (v < 0) shrinks ``front_extra`` more."""
        b = ay - db - np.where(v < 0, front_extra, 0.0)
        return (u / (ax - da)) ** 2 + (v / b) ** 2 <= 1.0

    scalp = rng.uniform(3.5, 6.0)
    img[inside(0, 0)] = HU["skin"]
    img[inside(1.2, 1.2)] = HU["fat"]
    img[inside(2.6, 2.6)] = HU["muscle"]
    if t < 0.45:  # temporalis muscles on the sides at the lower levels
        temporal = (np.abs(u) > 0.55 * ax) & inside(2.6, 2.6)
        img[temporal] = HU["muscle"]
        scalp += 4.0 * (0.45 - t) / 0.45 * (np.abs(u) / ax) ** 4
    # Skull: outer table, diploe, inner table; thicker at the front and back.
    thick = rng.uniform(5.0, 7.5)
    front = rng.uniform(1.0, 4.0) + (6.0 if t < 0.3 else 0.0)  # frontal bone (sinus levels)
    outer = inside(scalp, scalp)
    img[outer] = HU["cortical"] + rng.uniform(-250, 150)
    table = rng.uniform(1.3, 2.2)
    diploe = inside(scalp + table, scalp + table, front * 0.5)
    img[diploe] = HU["diploe"] + rng.uniform(-200, 200)
    inner = inside(scalp + thick - table, scalp + thick + 1.0, front)
    img[inner] = HU["cortical"] + rng.uniform(-250, 150)
    brain_edge = (scalp + thick, scalp + thick + 1.0, front)
    img[inside(*brain_edge)] = HU["csf"]
    if t < 0.3:  # frontal sinus: air cells with thin bone walls in the thick frontal bone
        for _ in range(rng.integers(2, 5)):
            sx, sy = rng.uniform(-22, 22), -ay + scalp + rng.uniform(3.0, 3.0 + front + 2.0)
            r1, r2 = rng.uniform(2.0, 6.0), rng.uniform(1.5, 3.5)
            m = ((u - sx) / r1) ** 2 + ((v - sy) / r2) ** 2
            img[(m <= 1.0) & outer & ~inside(*brain_edge)] = HU["air"]
    if t < 0.25:  # mastoid air cells, posterior-lateral
        for side in (-1.0, 1.0):
            for _ in range(rng.integers(4, 9)):
                mx, my = side * rng.uniform(0.55, 0.8) * ax, rng.uniform(0.2, 0.55) * ay
                r = rng.uniform(0.8, 2.5)
                cell = ((u - mx) ** 2 + (v - my) ** 2 <= r * r) & outer & ~inside(*brain_edge)
                img[cell] = HU["air"]
    # Brain: grey ribbon, white matter with a wavy border, sulci, falx, ventricles.
    img[inside(brain_edge[0] + 1.2, brain_edge[1] + 1.2, front)] = HU["grey"]
    wm = inside(brain_edge[0] + 5.0, brain_edge[1] + 5.0, front)
    wave = np.sin(np.arctan2(v, u) * rng.integers(9, 16) + rng.uniform(0, 6.3)) * 2.0
    wm &= inside(brain_edge[0] + 5.0 + wave, brain_edge[1] + 5.0 + wave, front)
    img[wm] = HU["white"] + rng.uniform(-3, 3)
    brain = inside(brain_edge[0] + 1.2, brain_edge[1] + 1.2, front)
    theta = np.arctan2(v, u)
    radial = np.hypot(u / ax, v / ay)
    for a0 in rng.uniform(-math.pi, math.pi, rng.integers(14, 24)):
        d = np.abs(np.sin(theta - a0)) * np.hypot(u, v)
        sulcus = brain & (d < rng.uniform(0.4, 0.8)) & (np.cos(theta - a0) > 0) & (radial > rng.uniform(0.6, 0.78))
        img[sulcus] = HU["csf"]
    fissure = brain & (np.abs(u) < 0.9) & ((v < -0.25 * ay) | (v > 0.35 * ay))
    img[fissure] = HU["csf"]
    img[brain & (np.abs(u) < 0.45) & ((v < -0.3 * ay) | (v > 0.4 * ay))] = HU["falx"]
    if 0.3 < t < 0.8:  # lateral ventricles, larger in the middle levels
        g = math.sin(math.pi * (t - 0.3) / 0.5)
        for side in (-1.0, 1.0):
            vx, vy = side * rng.uniform(5.0, 9.0), rng.uniform(-12.0, 0.0)
            va, vb = 4.0 + 5.0 * g, 18.0 + 14.0 * g
            tilt = side * rng.uniform(0.1, 0.35)
            cu, su = math.cos(tilt), math.sin(tilt)
            pu, pv = cu * (u - vx) + su * (v - vy), -su * (u - vx) + cu * (v - vy)
            img[(pu / va) ** 2 + (pv / vb) ** 2 <= 1.0] = HU["csf"]
            if g > 0.5:  # choroid plexus, faintly calcified
                img[(u - vx) ** 2 + (v - vy - 0.6 * vb) ** 2 <= 4.0] = HU["plexus"]
    return img
