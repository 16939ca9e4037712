"""NIfTI, NRRD and MHA through SimpleITK, which owns their geometry conventions
(LPS in memory, RAS on disk for NIfTI), so our affine is SimpleITK's.

SimpleITK would pick the reader and writer by the file's exact suffix (``A.MHA`` is then
unreadable, and written as ``A.mhd`` + ``A.zraw``); we pick them by our case-blind suffix."""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from denoisekit.errors import DenoiseKitError
from denoisekit.io.paths import ITK_SUFFIXES, itk_suffix
from denoisekit.volume import Volume

#: SimpleITK's ImageIO for each suffix we read (``paths.itk_suffix``, lower case).
IMAGE_IO = {
    ".nii.gz": "NiftiImageIO",
    ".nii": "NiftiImageIO",
    ".nrrd": "NrrdImageIO",
    ".nhdr": "NrrdImageIO",
    ".mha": "MetaImageIO",
    ".mhd": "MetaImageIO",
}


def read_itk(path: Path) -> Volume:
    import SimpleITK as sitk

    path = Path(path)
    reader = sitk.ImageFileReader()
    reader.SetImageIO(IMAGE_IO[itk_suffix(path)])
    with _readable(path) as name:
        reader.SetFileName(str(name))
        try:
            image = reader.Execute()
        except RuntimeError as exc:
            raise DenoiseKitError(f"cannot read {path}: {_itk_reason(exc, name, path)}") from exc
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise DenoiseKitError(f"{path} has {image.GetNumberOfComponentsPerPixel()} values per voxel; CT has one")
    dim = image.GetDimension()
    if dim == 2:
        spacing = image.GetSpacing() + (1.0,)
        origin = image.GetOrigin() + (0.0,)
        d2 = image.GetDirection()
        direction = (d2[0], d2[1], 0.0, d2[2], d2[3], 0.0, 0.0, 0.0, 1.0)
        array = sitk.GetArrayFromImage(image)[None]
    elif dim == 3:
        spacing, origin, direction = image.GetSpacing(), image.GetOrigin(), image.GetDirection()
        array = sitk.GetArrayFromImage(image)
    else:
        raise DenoiseKitError(f"{path} is {dim}-D; denoisekit reads 2-D and 3-D images")
    # NaN or infinite voxels are not HU, and every stage would spread them (a whole slice's
    # denoising, a volume's noise estimate). SimpleITK hands NIfTI's over as 0 (water), so
    # those are counted in the file itself.
    nifti = itk_suffix(path) in (".nii", ".nii.gz")
    bad = nifti_non_finite(path) if nifti else int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise DenoiseKitError(f"{path.name} holds {bad} NaN or infinite voxel(s); CT values must be finite HU")
    return Volume(
        array=np.ascontiguousarray(array, dtype=np.float32),
        spacing=tuple(float(v) for v in spacing),
        origin=tuple(float(v) for v in origin),
        direction=tuple(float(v) for v in direction),
        source=str(path),
    )


#: NIfTI datatype codes of floating-point voxels: float32, float64.
_NIFTI_FLOATS = {16: "f4", 64: "f8"}


@contextmanager
def open_nifti(path: Path) -> Iterator[tuple | None]:
    """``(file, header bytes, byte order, header size)`` of a NIfTI-1/-2 file, gzipped or not
    (by content, not name: SimpleITK reads a plain ``.nii.gz`` too), the file positioned after
    the first 540 bytes; None when ``path`` holds no NIfTI header."""
    import gzip

    with open(path, "rb") as fh:
        zipped = fh.read(2) == b"\x1f\x8b"
    with (gzip.open if zipped else open)(path, "rb") as fh:
        head = fh.read(540)
        found = None
        if len(head) >= 348:
            for endian in "<>":
                size = int(np.frombuffer(head[:4], f"{endian}i4")[0])
                if size in (348, 540):
                    found = (fh, head, endian, size)
                    break
        yield found


def nifti_non_finite(path: Path, chunk: int = 1 << 24) -> int:
    """How many voxels of a NIfTI-1/-2 file are NaN or infinite, counted in the file itself:
    SimpleITK's reader turns them into 0. Integer voxels have none."""
    with open_nifti(path) as found:
        if found is None:
            return 0
        fh, head, endian, size = found
        if size == 348:
            datatype = int(np.frombuffer(head[70:72], f"{endian}i2")[0])
            offset = int(np.frombuffer(head[108:112], f"{endian}f4")[0])
        else:
            datatype = int(np.frombuffer(head[12:14], f"{endian}i2")[0])
            offset = int(np.frombuffer(head[168:176], f"{endian}i8")[0])
        if datatype not in _NIFTI_FLOATS:
            return 0
        dtype = np.dtype(f"{endian}{_NIFTI_FLOATS[datatype]}")
        fh.seek(max(offset, size))
        bad, rest = 0, b""
        while block := fh.read(chunk):
            block = rest + block
            whole = len(block) // dtype.itemsize * dtype.itemsize
            bad += int(np.count_nonzero(~np.isfinite(np.frombuffer(block[:whole], dtype))))
            rest = block[whole:]
    return bad


@contextmanager
def _readable(path: Path) -> Iterator[Path]:
    """A name SimpleITK reads ``path`` by: ``path`` itself, or a link to it alone in a fresh
    directory when its NIfTI reader would misread it. That reader takes the voxels of
    ``scan.nii.gz`` from a ``scan.nii`` beside it (the header stays the .nii.gz's; zeros if
    ``scan.nii`` is a directory), and refuses a mixed-case suffix (``.Nii.gz``). No other
    sibling or format is affected (NRRD and MetaImage headers name their data file)."""
    suffix = itk_suffix(path)
    if suffix not in (".nii", ".nii.gz"):
        yield path
        return
    ending = path.name[-len(suffix):]  # as the user wrote it
    clash = path.with_name(path.name[: -len(suffix)] + ending[:4]) if suffix == ".nii.gz" else None
    if clash is not None and not clash.exists():  # what the reader's fopen would find
        clash = None
    if clash is None and ending in (suffix, suffix.upper()):
        yield path
        return
    alone = None
    try:
        alone = Path(tempfile.mkdtemp(prefix="denoisekit-read-"))
        link = alone / f"volume{suffix}"
        link.symlink_to(path.resolve())
    except OSError as exc:
        if alone is not None:
            shutil.rmtree(alone, ignore_errors=True)
        if clash is not None:
            raise DenoiseKitError(
                f"cannot read {path}: SimpleITK would take its voxels from {clash.name} beside it "
                f"and no link to read it alone can be made ({exc.strerror}); move or rename one of them"
            ) from exc
        raise DenoiseKitError(f"cannot read {path}: SimpleITK reads {suffix} in lower or upper case only; "
                              f"rename it") from exc
    try:
        yield link
    finally:
        shutil.rmtree(alone, ignore_errors=True)


def _itk_reason(exc: RuntimeError, used: Path | None = None, shown: Path | None = None) -> str:
    """The reason in a SimpleITK error, on one line: without its C++ source location and
    ``ITK ERROR: Class(0x...):`` prefixes, the temporary name ``used`` replaced by ``shown``."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Exception thrown in SimpleITK"):
        lines = lines[1:]
    text = re.sub(r"(ITK ERROR: \w+\(0x[0-9a-fA-F]+\): |sitk::ERROR: )", "", " ".join(lines)) or str(exc)
    if used is not None and shown is not None:
        text = text.replace(str(used), str(shown))
    return text


def to_itk(volume: Volume):
    """The volume as a float32 SimpleITK image with its geometry."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.asarray(volume.array, dtype=np.float32))
    image.SetSpacing([float(v) for v in volume.spacing])
    image.SetOrigin([float(v) for v in volume.origin])
    image.SetDirection([float(v) for v in volume.direction])
    return image


#: NIfTI's ``descrip`` header field holds 80 bytes, the last a NUL.
DESCRIPTION_BYTES = 79


def write_itk(volume: Volume, path: Path, description: str = "", *, shown: Path | None = None) -> None:
    """Write ``volume`` to ``path`` (its suffix picks the format), compressed where the format
    allows; ``description`` (what was done) goes to NIfTI's ``descrip`` / NRRD's content notes,
    where viewers and ``fslhd`` show it, cut to ``DESCRIPTION_BYTES`` of UTF-8 (a file name in
    it may be in any script).

    The suffix must be lower case: SimpleITK's NIfTI writer refuses ``.NII.GZ`` and its
    MetaImage writer turns ``A.MHA`` into ``A.mhd`` + ``A.zraw``; ``write_volume`` writes a
    lower-case temporary name and publishes it under the user's (errors name ``shown``)."""
    import SimpleITK as sitk

    path = Path(path)
    suffix = itk_suffix(path)
    if suffix not in ITK_SUFFIXES or not path.name.endswith(suffix):
        raise ValueError(f"write_itk needs a lower-case .nii/.nii.gz/.nrrd/.mha name, not {path.name}")
    image = to_itk(volume)
    if description:
        text = description.encode("utf-8")[:DESCRIPTION_BYTES].decode("utf-8", "ignore")  # no half character
        image.SetMetaData("ITK_FileNotes", text)
    try:
        sitk.WriteImage(image, str(path), useCompression=suffix != ".nii")
    except RuntimeError as exc:
        raise DenoiseKitError(f"cannot write {shown or path}: {_itk_reason(exc, path, shown)}") from exc
