"""Shared fixtures: synthetic DICOM CT series written with pydicom, whose expected HU and
geometry are known exactly (``make_series``), and the real CT files pydicom ships."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@dataclass
class SyntheticSeries:
    """A series on disk and what a correct reader must return for it."""

    path: Path  # the directory holding the files
    files: list[Path]  # in acquisition order (InstanceNumber 1..n unless reversed)
    hu: np.ndarray  # (z, y, x) HU, slices ascending along the slice normal
    spacing: tuple[float, float, float]  # (x, y, z) mm
    origin: tuple[float, float, float]  # position of the first slice along the normal
    direction: tuple[float, ...]  # row-major, columns = row dir, column dir, normal
    series_uid: str
    study_uid: str
    frame_of_reference_uid: str


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=float)
    return v / np.linalg.norm(v)


def write_ct_slice(path: Path, *, hu: np.ndarray, position, orientation, pixel_spacing, instance: int,
                   series_uid: str, study_uid: str, frame_uid: str, series_number: int = 1,
                   description: str = "synthetic", unsigned: bool = False, intercept: float = -1024.0,
                   slope: float = 1.0, thickness: float | None = None, **extra) -> Path:
    """One classic CT Image Storage file holding ``hu`` (rounded to stored values)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    stored = np.rint((hu - intercept) / slope)
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = generate_uid()
    ds.Modality = "CT"
    ds.PatientName = "SYNTHETIC^SERIES"
    ds.PatientID = "SYN-001"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.SeriesNumber = series_number
    ds.SeriesDescription = description
    ds.InstanceNumber = instance
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.ImagePositionPatient = [f"{v:.6f}" for v in position]
    ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
    ds.PixelSpacing = [f"{v:g}" for v in pixel_spacing]
    if thickness is not None:
        ds.SliceThickness = f"{thickness:g}"
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0 if unsigned else 1
    ds.RescaleIntercept = f"{intercept:g}"
    ds.RescaleSlope = f"{slope:g}"
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    ds.PixelData = stored.astype("<u2" if unsigned else "<i2").tobytes()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.preamble = b"\0" * 128
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.fixture
def make_series(tmp_path):
    """Factory writing a synthetic CT series; returns a :class:`SyntheticSeries`.

    Options: ``shape`` (z, y, x); ``spacing`` (x, y, z) mm; ``origin``; ``orientation``
    (ImageOrientationPatient); ``descending`` (InstanceNumber 1 is the last slice along the
    normal); ``reverse_instance`` (InstanceNumber counts backwards against file order);
    ``shuffle_names`` (file names unrelated to position); ``unsigned`` with ``intercept``;
    ``drop`` (slice indices left out: a missing slice); ``gaps`` (explicit normal offsets);
    ``tilt`` (in-plane shift per slice, mm, along the column direction); ``directory``
    (several series may share one); ``series_number``, ``description``, ``study_uid``.
    """
    from pydicom.uid import generate_uid

    counter = iter(range(10**6))

    def make(directory: Path | str | None = None, *, shape=(5, 32, 32), spacing=(0.8, 0.7, 2.5),
             origin=(-12.0, -11.0, 40.0), orientation=(1, 0, 0, 0, 1, 0), descending=False,
             reverse_instance=False, shuffle_names=False, unsigned=False, intercept=-1024.0, slope=1.0,
             drop=(), offsets=None, tilt=0.0, series_number=1, description="synthetic",
             study_uid=None, seed=0, **extra) -> SyntheticSeries:
        directory = Path(directory) if directory is not None else tmp_path / f"series{next(counter)}"
        directory.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(seed)
        nz, ny, nx = shape
        lo = -1024 if unsigned else -2000
        hu = rng.integers(lo, 3000, size=shape).astype(np.float32) * np.float32(slope)
        row, col = _unit(orientation[:3]), _unit(orientation[3:])
        normal = np.cross(row, col)
        offsets = np.arange(nz) * spacing[2] if offsets is None else np.asarray(offsets, dtype=float)
        positions = [np.asarray(origin, float) + offsets[k] * normal + k * tilt * col for k in range(nz)]
        keep = [k for k in range(nz) if k not in set(drop)]
        acquisition = keep[::-1] if descending else keep
        series_uid, study = generate_uid(), study_uid or generate_uid()
        frame_uid = generate_uid()
        prefix = f"S{series_number}_" if any(directory.iterdir()) else ""  # several series, one directory
        names = [f"{prefix}IM{i + 1:04d}.dcm" for i in range(len(acquisition))]
        if shuffle_names:
            random.Random(seed).shuffle(names)
            names = [f"x{abs(hash(n)) % 99991:05d}_{n}" for n in names]
        files = []
        for i, k in enumerate(acquisition):
            instance = len(acquisition) - i if reverse_instance else i + 1
            files.append(write_ct_slice(
                directory / names[i], hu=hu[k], position=positions[k], orientation=orientation,
                pixel_spacing=(spacing[1], spacing[0]), instance=instance, series_uid=series_uid,
                study_uid=study, frame_uid=frame_uid, series_number=series_number,
                description=description, unsigned=unsigned, intercept=intercept, slope=slope,
                thickness=spacing[2], **extra,
            ))
        direction = tuple(float(v) for v in np.stack([row, col, normal], axis=1).ravel())
        return SyntheticSeries(
            path=directory, files=files, hu=hu[keep], spacing=tuple(map(float, spacing)),
            origin=tuple(float(v) for v in positions[keep[0]]), direction=direction,
            series_uid=series_uid, study_uid=study, frame_of_reference_uid=frame_uid,
        )

    return make


@pytest.fixture(scope="session")
def real_ct():
    """Path of a real CT file shipped by pydicom or pydicom-data (no download)."""
    from pydicom.data import get_testdata_file

    def get(name: str) -> Path:
        path = get_testdata_file(name)
        if path is None:
            pytest.skip(f"{name} is not installed")
        return Path(path)

    return get


@pytest.fixture
def article_depth():
    """vanilla-ae options for the article's three pooling stages (the default has one)."""
    return {"kernels": (7, 5, 3), "activations": ("tanh",) * 7 + ("sigmoid",)}


# --- plugin fixtures: fake installed distributions with denoisekit entry points ---

import textwrap as _textwrap

import pytest as _pytest


@_pytest.fixture
def fresh_plugins(monkeypatch):
    """Reload plugins from scratch for this test and again afterwards."""
    from denoisekit import plugins

    for var in ("DENOISEKIT_LOAD_PLUGINS", "DENOISEKIT_BLOCK_PLUGINS", "DENOISEKIT_TRACE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    plugins.reset()
    yield plugins
    plugins.reset()


@_pytest.fixture
def fake_dist(tmp_path, monkeypatch, fresh_plugins):
    """Install a distribution the way pip would leave it: a module plus a dist-info
    folder with entry points, on sys.path. Returns ``make(dist, module, source)``."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    made = []

    def make(dist: str, module: str, source: str, version: str = "1.0", ep_name: str | None = None,
             package: bool = False):
        if package:  # a package folder (it may ship data, e.g. weights/) instead of one module file
            (site / module).mkdir()
            (site / module / "__init__.py").write_text(_textwrap.dedent(source))
        else:
            (site / f"{module}.py").write_text(_textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[denoisekit]\n{ep_name or module} = {module}\n")
        made.append(module)
        fresh_plugins.reset()
        return module

    yield make
    import sys

    for module in made:
        sys.modules.pop(module, None)


FAKE_MANUAL = """
from denoisekit.plugin import TrainableModel, hookimpl


class ForwardOnly:
    name, variables = "l", []

    def forward(self, h, x):
        return h, None


class FakeManual(TrainableModel):
    name = "acme-fake-manual"
    description = "claims hand-written gradients; its layer has no backward()"
    manual_gradients = True

    def build(self, patch_size=None):
        self.layers = [ForwardOnly()]


@hookimpl
def register_models(register):
    register(FakeManual)
"""


@_pytest.fixture
def fake_manual(fake_dist):
    """A third party's model 'acme-fake-manual' that claims hand-written gradients while its
    layer lacks backward(), installed; returns the one line the CLI refuses it with."""
    fake_dist("acme-fake", "acme_fake", FAKE_MANUAL)
    return ("Error: model 'acme-fake-manual' (acme_fake) sets manual_gradients = True but its layer 'l' "
            "(ForwardOnly) lacks backward() (a Layer has name, variables, forward() and backward()): add it, "
            "or set manual_gradients = False\n")


@pytest.fixture(scope="session")
def quarter_dose_chest():
    """One 256x256 chest-phantom slice, clean and with simulated quarter-dose CT noise
    (correlated, as reconstructed noise is), and its soft-tissue mask."""
    from scipy import ndimage

    from denoisekit.noise import add_noise
    from denoisekit.samples import load_sample

    clean = load_sample("chest-phantom", slices=1, size=256)
    noisy, _ = add_noise(clean, "lowdose", 3, dose=0.25)
    c, n = clean.array[0], noisy.array[0]
    tissue = ndimage.binary_erosion((c > -300) & (c < 300), iterations=3)
    return c, n, tissue
