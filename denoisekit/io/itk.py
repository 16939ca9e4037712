"""NIfTI, NRRD and MHA through SimpleITK, which owns their geometry conventions
(LPS in memory, RAS on disk for NIfTI), so our affine is SimpleITK's.

SimpleITK would pick the reader and writer by the file's exact suffix (``A.MHA`` is then
unreadable, and written as ``A.mhd`` + ``A.zraw``); we pick them by our case-blind suffix."""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import threading
import zlib
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from denoisekit.errors import DenoiseKitError
from denoisekit.io.identity import DIGITS as IDENTITY_DIGITS, volume_identity
from denoisekit.io.paths import ITK_SUFFIXES, itk_suffix
from denoisekit.io.text import fit_steps
from denoisekit.volume import AIR, Volume

logger = logging.getLogger("denoisekit.io")  # read_volume's default for notes too

#: SimpleITK's ImageIO for each suffix we read (``paths.itk_suffix``, lower case).
IMAGE_IO = {
    ".nii.gz": "NiftiImageIO",
    ".nii": "NiftiImageIO",
    ".nrrd": "NrrdImageIO",
    ".nhdr": "NrrdImageIO",
    ".mha": "MetaImageIO",
    ".mhd": "MetaImageIO",
}


def read_itk(path: Path, note: Callable[[str], None] | None = None, *, labels: bool = False) -> Volume:
    import SimpleITK as sitk

    path = Path(path)
    nifti = itk_suffix(path) in (".nii", ".nii.gz")
    reader = sitk.ImageFileReader()
    reader.SetImageIO(IMAGE_IO[itk_suffix(path)])
    # SimpleITK's NIfTI reader gives 0 (water) for the voxels a cut-short or broken file lacks,
    # and for NaN: the file itself is measured, on another core while SimpleITK reads it (both
    # release the GIL). NRRD and MetaImage readers refuse short data themselves.
    stop = threading.Event()  # an interrupted read (Ctrl-C) need not wait for the whole check
    with ThreadPoolExecutor(1) as pool, _readable(path) as name:
        measured = pool.submit(nifti_voxels, path, stop=stop) if nifti else None
        reader.SetFileName(str(name))
        try:
            try:
                with _held_stderr() as held:
                    image = reader.Execute()
            except RuntimeError as exc:  # the reason is in the exception; what was printed goes
                _measured(path, measured)  # a cut-short NIfTI file says so, whatever SimpleITK made of it
                short = _cut_short(path, str(exc) + "".join(held))
                raise DenoiseKitError(short or f"cannot read {path}: {_itk_reason(exc, name, path)}") from exc
        except BaseException:
            stop.set()
            raise
        voxels = _measured(path, measured)
        for warning in _itk_warnings("".join(held), name, path):
            (note or logger.warning)(f"{path.name}: {warning}")  # e.g. a geometry SimpleITK doubts
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
    if nifti:
        bad = voxels.non_finite if voxels is not None else 0
    else:
        bad = int(np.count_nonzero(~np.isfinite(array)))
    if bad:
        raise DenoiseKitError(f"{path.name} holds {bad} NaN or infinite voxel(s); CT values must be finite HU")
    array = np.ascontiguousarray(array, dtype=np.float32)
    # Unlike DICOM (RescaleType), these formats do not say their unit: a label map, an MR
    # volume or CT without its rescale is read as HU, which every stage assumes. Said, not
    # refused: CT cropped inside the skull holds no air either.
    unlike = None if labels else not_hu(array)  # a label volume asked for as one is no CT
    if unlike:
        (note or logger.warning)(f"{path.name}: {unlike}")
    spacing, origin, direction = (tuple(float(v) for v in x) for x in (spacing, origin, direction))
    history, tags = _own_record(image, array, lambda message: (note or logger.warning)(f"{path.name}: {message}"))
    return Volume(
        array=array,
        spacing=spacing,
        origin=origin,
        direction=direction,
        history=history,
        tags=tags,
        source=str(path),
    )


#: What ``write_itk`` puts in the ``aux_file`` field (NIfTI's 24 bytes; NRRD and MetaImage keep
#: it as a key): ``MARK``, a digest of the description and identity, one of the voxels
#: (``_digests``), then the source file's identity where it has one (``io.identity``). Files
#: written before the digests say ``LEGACY_MARK`` and the identity; their description is taken
#: only in a form denoisekit writes.
MARK = "dk"
LEGACY_MARK = "denoisekit"
_MARKED = re.compile(rf"{MARK}([0-9a-f]{{4}})([0-9a-f]{{4}})([0-9a-f]{{{IDENTITY_DIGITS}}})?")
_LEGACY = re.compile(rf"{LEGACY_MARK}([0-9a-f]{{{IDENTITY_DIGITS}}})?")


def _digests(array: np.ndarray, description: str, identity: str) -> tuple[str, str]:
    """4 hex digits of BLAKE2b over the description and identity, and 4 over the voxels (float32,
    as read back) and their shape: another tool that copies the header (nibabel does by default)
    but rewrites the description (a patient's name, say) or changes the voxels no longer matches,
    and the two say which. The description counts by its ASCII letters, stripped: SimpleITK's
    MetaImage reader drops a description's trailing non-ASCII characters."""
    import hashlib

    said = hashlib.blake2b(f"{identity}|{description.encode('ascii', 'ignore').decode().strip()}".encode(),
                           digest_size=2)
    voxels = hashlib.blake2b(str(array.shape).encode(), digest_size=2)
    voxels.update(memoryview(np.ascontiguousarray(array, dtype=np.float32)).cast("B"))
    return said.hexdigest(), voxels.hexdigest()


def _own_record(image, array: np.ndarray, note: Callable[[str], None]) -> tuple[tuple[str, ...], dict[str, str]]:
    """What a file denoisekit wrote says was done to it (``write_itk``'s description, in NIfTI's
    descrip), so a DICOM series exported from a denoised NIfTI describes the denoising, not a
    conversion, and the identity of the file it was made from (as the volume's tag: its DICOM
    export then files into that file's study). Other writers' descrip (a converter's, a
    scanner protocol's) is neither, nor is one rewritten since denoisekit wrote it (its digest
    no longer matches). A file whose voxels changed since keeps its account, followed by
    ``text.CHANGED`` (with a note), and loses its identity: it may have moved to another space,
    which the source's frame of reference would misplace."""
    from denoisekit.io.identity import TAG
    from denoisekit.io.text import CHANGED

    keys = set(image.GetMetaDataKeys())
    aux = image.GetMetaData("aux_file").strip() if "aux_file" in keys else ""
    text = image.GetMetaData("ITK_FileNotes").strip() if "ITK_FileNotes" in keys else ""
    mark = _MARKED.fullmatch(aux)
    if mark:
        identity = mark.group(3) or ""
        said, voxels = _digests(array, text, identity)
        if said != mark.group(1):
            return (), {}
        if voxels != mark.group(2):
            note("its voxels changed after denoisekit wrote it (another tool kept its header): what denoisekit "
                 f"did is followed by '{CHANGED}'; say what it did with export --description")
            return ((text, CHANGED) if text else (CHANGED,)), {}
        return ((text,) if text else ()), ({TAG: identity} if identity else {})
    legacy = _LEGACY.fullmatch(aux)
    # and only in a form denoisekit writes: a script that edits a file keeps its aux_file, and a
    # descrip it rewrote (a patient's name, say) would go into a series filed as ANONYMOUS; such
    # a file may also have moved to another space, which the source's frame would misplace
    if not legacy or not _OWN_DESCRIPTION.match(text):
        return (), {}
    return (text,), ({TAG: legacy.group(1)} if legacy.group(1) else {})


#: What denoisekit's stages describe (``noise.describe``, ``infer.series_description``, a
#: volume's history, ``export``).
_OWN_DESCRIPTION = re.compile(r"(noise [a-z0-9-]+ seed=\d+|denoised |converted by denoisekit )")


#: CT in HU holds air (about -1000: around the body, in the lungs, bowel gas, sinuses, and
#: partial-volume voxels at every edge of it) while fat, the lowest tissue, stays above about
#: -150 even with noise: a scan with any air has voxels below -200. A label map, MR or CT
#: stored without its rescale (air near 0) has none. Values below -1500 are padding (the models
#: take them so too), not air: CT stored without its rescale may pad with -2000.
AIR_BELOW = -200.0
PADDING_BELOW = -1500.0
#: Voxels looked at (strided, every axis) before the whole volume is: about 1M.
_SAMPLE = 1 << 20
#: No air, background 0 and at most this many distinct whole values to 255 (in the sample):
#: a label map, said as such (CT cropped to soft tissue has noise and negative values; a
#: whole-body segmentation such as TotalSegmentator's has 117 labels).
_FEW_LABELS = 128


def not_hu(array: np.ndarray) -> str | None:
    """Why the (finite) values of ``array`` do not look like CT in HU, or None: no voxel below
    ``AIR_BELOW`` but padding. Real CT is judged by the minimum (one pass), or where padding
    makes that say nothing, by a strided sample; only when the sample shows no air is the whole
    volume looked at again, slice by slice. No copy of the volume is made.

    Padding is what lies below ``PADDING_BELOW``, or one value from there to -1024 that is the
    minimum while everything else is >= 0 and reaches 1000: CT stored without its rescale
    (air near 0) whose field of view was filled with -1024, which a minimum in the air range
    would otherwise pass as HU. A CT in HU keeps fat, lung or its noise below 0, and air
    clipped at -1000 (a noise-free phantom's) is no fill."""
    if array.size == 0:
        return None
    low = float(array.min())
    step = max(1, math.ceil((array.size / _SAMPLE) ** (1 / array.ndim)))
    sample = array[(slice(None, None, step),) * array.ndim]
    if PADDING_BELOW <= low < AIR_BELOW:
        rest = sample[sample != low]
        if not (low <= AIR and rest.size and float(rest.min()) >= 0 and float(array.max()) >= 1000):
            return None  # air, lung or gas: CT in HU

        def padding(values):
            return values == low
    else:
        def padding(values):
            return values < PADDING_BELOW
    lowest = low
    if low < AIR_BELOW:
        kept = sample[~padding(sample)]
        if np.any((kept >= PADDING_BELOW) & (kept < AIR_BELOW)):
            return None
        lowest = np.inf  # of the values that are no padding: exact, a slice's copy at a time
        for plane in array.reshape(-1, *array.shape[-2:]):
            lowest = min(lowest, float(plane[~padding(plane)].min(initial=np.inf)))
            if lowest < (AIR_BELOW if low < PADDING_BELOW else 0):
                return None
        if lowest == np.inf:
            return None  # padding only: nothing to judge
        sample = kept
    high = float(array.max())
    span = f"{_value(lowest)} to {_value(high)}" if lowest < high else f"all {_value(high)}"
    if low < AIR_BELOW:
        span += f" besides padding ({_value(low)})"
    values = np.unique(sample)  # labels: background 0 and a few small whole numbers
    if low == 0 and high <= 255 and 1 < values.size <= _FEW_LABELS and np.array_equal(values, np.rint(values)):
        seen, meaning = f"few distinct whole values, {span}", "this looks like a label map (segmentation), not CT"
    else:
        seen = f"values {span}"
        # raw stored CT values start near 0 (air); CT in HU cropped to the body, or reconstructed
        # over a small field of view, has no air either
        # stored values put soft tissue near 1064: a volume that never reaches 1000 is not one
        raw = ", CT stored without its rescale (HU = value - 1024)" if lowest >= 0 and high >= 1000 else ""
        meaning = f"this may be a label map, MR{raw}, or CT with no air in its field of view (a crop)"
    return f"{seen}, none below {AIR_BELOW:g}: CT in HU has air near -1000; {meaning}; denoisekit treats values as HU"


def _value(v: float) -> str:
    """``v`` to a tenth, as a note shows it: ``3998``, ``0.8``, ``-2000``."""
    text = f"{v:.1f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


#: NIfTI datatype codes of floating-point voxels: float32, float64.
_NIFTI_FLOATS = {16: "f4", 64: "f8"}
#: Bytes a voxel of each NIfTI datatype takes, as niftilib sizes them (it ignores ``bitpix``).
_NIFTI_SIZES = {2: 1, 4: 2, 8: 4, 16: 4, 32: 8, 64: 8, 128: 3, 256: 1, 512: 2, 768: 4, 1024: 8,
                1280: 8, 1536: 16, 1792: 16, 2048: 32, 2304: 4}
_GZIP = b"\x1f\x8b"


def _nifti_order(head: bytes) -> tuple[str, int] | None:
    """``(byte order, header size)`` of the NIfTI-1/-2 header ``head`` starts with, or None."""
    if len(head) >= 348:
        for endian in "<>":
            size = int(np.frombuffer(head[:4], f"{endian}i4")[0])
            if size in (348, 540):
                return endian, size
    return None


@contextmanager
def open_nifti(path: Path) -> Iterator[tuple | None]:
    """``(file, header bytes, byte order, header size)`` of a NIfTI-1/-2 file, gzipped or not
    (by content, not name: SimpleITK reads a plain ``.nii.gz`` too), the file positioned after
    the first 540 bytes; None when ``path`` holds no NIfTI header."""
    import gzip

    with open(path, "rb") as fh:
        zipped = fh.read(2) == _GZIP
    with (gzip.open if zipped else open)(path, "rb") as fh:
        head = fh.read(540)
        found = _nifti_order(head)
        yield None if found is None else (fh, head, *found)


class NiftiVoxels(NamedTuple):
    expected: int  # bytes of voxel data the header promises
    found: int  # bytes of it the file holds
    non_finite: int  # NaN or infinite voxels among them
    gzip_fault: str = ""  # "cut short", or zlib's complaint where the gzip stream breaks


def nifti_voxels(path: Path, chunk: int = 1 << 24, stop: threading.Event | None = None) -> NiftiVoxels | None:
    """What a NIfTI-1/-2 file's voxel data should and does hold, measured in the file itself:
    SimpleITK's reader turns missing voxels (a file cut short), undecodable ones and NaN into
    0, water. None for no NIfTI header, or one SimpleITK refuses or reads by rules of its own.

    One pass over a gzipped file (decompressed and checked to its end: a download that left
    zeros behind decodes as garbage, which only the checksum catches) or over an uncompressed
    one of floats; the file's size suffices for uncompressed integers. ``stop`` set: None,
    at the next block."""
    with open(path, "rb") as fh:
        zipped = fh.read(2) == _GZIP
        fh.seek(0)
        fault = ""
        if zipped:
            blocks = _gunzip(fh, chunk)
            head = b""
            try:
                for block in blocks:
                    head += block
                    if len(head) >= 540:
                        break
            except (EOFError, zlib.error) as exc:
                fault = _gzip_fault(exc)
        else:
            head = fh.read(540)
            blocks = iter(lambda: fh.read(chunk), b"")
        order = _nifti_order(head)
        if order is None:
            return None
        endian, size = order
        if size == 348:
            dim = [int(v) for v in np.frombuffer(head[40:56], f"{endian}i2")]
            datatype = int(np.frombuffer(head[70:72], f"{endian}i2")[0])
            offset = float(np.frombuffer(head[108:112], f"{endian}f4")[0])
        else:
            dim = [int(v) for v in np.frombuffer(head[16:80], f"{endian}i8")]
            datatype = int(np.frombuffer(head[12:14], f"{endian}i2")[0])
            offset = float(np.frombuffer(head[168:176], f"{endian}i8")[0])
        single = head[344:348] == b"n+1\0" if size == 348 else head[4:8] == b"n+2\0"  # else voxels in a .img
        if not single or not 1 <= dim[0] <= 7 or min(dim[1: dim[0] + 1]) < 1 or datatype not in _NIFTI_SIZES \
                or not 0 <= offset < 2**62:  # negative (NaN): data at the end of the file, by niftilib's rules
            return None
        start = max(int(offset), size)  # where niftilib starts reading voxels
        expected = math.prod(dim[1: dim[0] + 1]) * _NIFTI_SIZES[datatype]
        floats = datatype in _NIFTI_FLOATS
        if not floats and not zipped:
            return NiftiVoxels(expected, min(max(os.fstat(fh.fileno()).st_size - start, 0), expected), 0)
        dtype = np.dtype(f"{endian}{_NIFTI_FLOATS.get(datatype, 'u1')}")
        position = count = bad = 0  # ``position``: bytes of the (gunzipped) file before ``block``
        rest = b""
        try:
            for block in itertools.chain([head], blocks):
                if stop is not None and stop.is_set():  # the read failed or was interrupted
                    return None
                piece = memoryview(block)[max(start - position, 0): max(start + expected - position, 0)]
                position += len(block)
                count += len(piece)
                if floats and piece:
                    data = rest + piece if rest else piece
                    whole = len(data) // dtype.itemsize * dtype.itemsize
                    bad += int(np.count_nonzero(~np.isfinite(np.frombuffer(data[:whole], dtype))))
                    rest = bytes(data[whole:])
                if count >= expected and not zipped:
                    break
        except (EOFError, zlib.error) as exc:
            fault = _gzip_fault(exc)
    return NiftiVoxels(expected, count, bad, fault)


def _gunzip(fh, chunk: int) -> Iterator[bytes]:
    """The gunzipped bytes of ``fh`` in blocks of at most ``chunk``, member after member as
    zlib's gzread (SimpleITK's NIfTI reader) takes them, each checked against its CRC-32 and
    length, which that reader never gets to. A stream cut short raises EOFError, one that
    breaks zlib.error, after every byte they held."""
    inflate = zlib.decompressobj(31)
    while data := fh.read(1 << 16):
        while data:
            if inflate.eof:  # gzread reads on into another gzip member (bgzip), and ignores anything else
                data += fh.read(max(0, 2 - len(data)))
                if not data.startswith(_GZIP):
                    return
                inflate = zlib.decompressobj(31)
            before = inflate.copy()
            try:
                block = inflate.decompress(data, chunk)
            except zlib.error:  # what the failing call decoded is dropped: again, byte by byte
                for i in range(len(data)):
                    yield before.decompress(data[i: i + 1])
                raise
            yield block
            data = inflate.unused_data if inflate.eof else inflate.unconsumed_tail
    if not inflate.eof:
        yield inflate.flush()  # what zlib held back for want of room
        raise EOFError("cut short")


def _gzip_fault(exc: Exception) -> str:
    if isinstance(exc, EOFError):
        return "cut short"
    return re.sub(r"^Error -?\d+ while \w+ data: ", "", str(exc))


def _measured(path: Path, measuring: Future | None) -> NiftiVoxels | None:
    """``nifti_voxels(path)`` once done, or the one-line refusal of a file SimpleITK misreads."""
    try:
        voxels = measuring.result() if measuring is not None else None
    except OSError as exc:
        raise DenoiseKitError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if voxels is None:
        return None
    counts = f"expected {voxels.expected} bytes of voxel data, found {voxels.found}"
    if voxels.gzip_fault == "cut short":
        whole = voxels.found >= voxels.expected  # cut in the trailer: the checksum is lost
        raise DenoiseKitError(f"{path} is truncated: "
                              + (f"its gzip stream stops before its checksum ({counts})" if whole else counts))
    if voxels.gzip_fault:
        raise DenoiseKitError(f"{path} is corrupt: its gzip stream fails ({voxels.gzip_fault}); {counts}")
    if voxels.found < voxels.expected:
        raise DenoiseKitError(f"{path} is truncated: {counts}")
    return voxels


_SHORT = (  # how SimpleITK's MetaImage and NRRD readers report a data file cut short
    (r"data not read completely\s+ideal = (\d+) : actual = (\d+)", lambda e, f: (int(e), int(f))),
    (r"fread got only (\d+) (\d+)-sized things, not (\d+)", lambda f, s, e: (int(e) * int(s), int(f) * int(s))),
    (r"_nrrdEncodingGzip_read: expected (\d+) bytes but received (\d+)", lambda e, f: (int(e), int(f))),
)


def _cut_short(path: Path, reported: str) -> str | None:
    """The one-line refusal of a MetaImage or NRRD file whose data SimpleITK found cut short
    (it says 'No such file or directory' or any stale errno for a MetaImage file), from its
    message or what it printed; None for other failures."""
    for pattern, sizes in _SHORT:
        if match := re.search(pattern, reported):
            expected, found = sizes(*match.groups())
            break
    else:
        return None
    try:
        with open(path, "rb") as fh:
            header = fh.read(1 << 16).decode("latin-1")
    except OSError:
        header = ""
    kind = "compressed " if re.search(r"^CompressedData\s*=\s*True\s*$", header, re.M | re.I) else ""
    data = re.search(r"^(?:ElementDataFile\s*=|data ?file:)[ \t]*(\S+)[ \t]*$", header, re.M)
    where = f" in {data.group(1)}" if data and data.group(1) not in ("LOCAL", "LIST") else ""
    return f"{path} is truncated: expected {expected} bytes of {kind}voxel data{where}, found {found}"


@contextmanager
def _readable(path: Path) -> Iterator[Path]:
    """A name SimpleITK reads ``path`` by: ``path`` itself, or a link to it alone in a fresh
    directory when its NIfTI reader would misread it. That reader takes the voxels of
    ``scan.nii.gz`` from a ``scan.nii`` beside it (the header stays the .nii.gz's; zeros if
    ``scan.nii`` is a directory), refuses a mixed-case suffix (``.Nii.gz``) and takes a
    gzipped ``.nii`` for no NIfTI at all. No other sibling or format is affected (NRRD and
    MetaImage headers name their data file)."""
    suffix = itk_suffix(path)
    if suffix not in (".nii", ".nii.gz"):
        yield path
        return
    ending = path.name[-len(suffix):]  # as the user wrote it
    clash = path.with_name(path.name[: -len(suffix)] + ending[:4]) if suffix == ".nii.gz" else None
    if clash is not None and not clash.exists():  # what the reader's fopen would find
        clash = None
    # The reader decompresses by name only: a gzipped ``x.nii`` is read as ``.nii.gz``.
    read_as = ".nii.gz" if suffix == ".nii" and _gzipped(path) else suffix
    if clash is None and read_as == suffix and ending in (suffix, suffix.upper()):
        yield path
        return
    alone = None
    try:
        alone = Path(tempfile.mkdtemp(prefix="denoisekit-read-"))
        link = alone / f"volume{read_as}"
        link.symlink_to(path.resolve())
    except OSError as exc:
        if alone is not None:
            shutil.rmtree(alone, ignore_errors=True)
        if read_as != suffix:
            raise DenoiseKitError(f"{path} is gzip-compressed; name it {path.name[: -len(suffix)]}.nii.gz "
                                  f"(no link to read it as one can be made: {exc.strerror})") from exc
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


def _gzipped(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(2) == _GZIP


#: One redirection of the process's stderr at a time: two overlapping ones (two threads
#: reading) would restore each other's sink and leave stderr pointing at a deleted file.
_STDERR_LOCK = threading.Lock()


@contextmanager
def _held_stderr(passed: Callable[[str], str] | None = None) -> Iterator[list[str]]:
    """Hold back what SimpleITK's C++ code prints on the process's stderr while it runs (ITK
    warnings, niftilib's '** ERROR: ... bad dim[0]'): its errors come back as exceptions we
    put on one line, its warnings as notes (``_itk_warnings``). The text is in the list once
    the block ends. Whatever else reached stderr meanwhile (another thread's output, text that
    is no ITK warning, or what ``passed`` returns of the text) goes out once the block ends,
    unless the block raised (then the exception says what went wrong)."""
    held: list[str] = []
    if sys.stderr is not None:
        sys.stderr.flush()  # what Python wrote before goes out before, not into the sink
    with _STDERR_LOCK:
        try:
            sink = tempfile.TemporaryFile()
        except OSError:  # nowhere to hold it: SimpleITK prints as it would
            yield held
            return
        with sink:
            try:
                saved = os.dup(2)
            except OSError:  # no stderr to redirect
                yield held
                return
            os.dup2(sink.fileno(), 2)
            failed = True
            try:
                yield held
                failed = False
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                sink.seek(0)
                text = sink.read().decode("utf-8", "replace")
                held.append(text)
                rest = (passed or _not_warnings)(text)
                if rest and not failed and sys.stderr is not None:
                    sys.stderr.write(rest)
                    sys.stderr.flush()


def _not_warnings(text: str) -> str:
    """``text`` without the ITK warnings ``_itk_warnings`` turns into notes."""
    return re.sub(r"^WARNING: In [^\n]*\n(?:\w+ \(0x[0-9a-fA-F]+\): )?[^\n]*\n?(?:\n)?", "", text, flags=re.M)


def _not_errors(text: str) -> str:
    """``text`` without ITK warnings and niftilib's '** ERROR' lines, for a block that turns
    both into what it says itself (``write_itk``)."""
    return re.sub(r"^\*\* ERROR[^\n]*\n?", "", _not_warnings(text), flags=re.M)


def _itk_warnings(text: str, used: Path, shown: Path) -> list[str]:
    """The messages of the ITK warnings in ``text`` (``WARNING: In file.cxx, line N`` then
    ``Class (0x...): message``), once each, the temporary name ``used`` replaced by ``shown``."""
    found = re.findall(r"^WARNING: In [^\n]*\n(?:\w+ \(0x[0-9a-fA-F]+\): )?([^\n]+)", text, re.M)
    return list(dict.fromkeys(m.strip().replace(str(used), str(shown)) for m in found))


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


def _check_complete(path: Path, shown: Path, data_bytes: int) -> None:
    """Refuse a NIfTI file shorter than its header says: the header's voxel offset plus
    ``data_bytes``, the size of the file (``.nii``) or, for ``.nii.gz``, of the stream its gzip
    trailer records (mod 2^32; a truncated stream ends in other bytes)."""
    import gzip
    import struct

    try:
        if path.name.endswith(".gz"):
            with open(path, "rb") as fh:
                fh.seek(-4, os.SEEK_END)
                (size,) = struct.unpack("<I", fh.read(4))
            with gzip.open(path, "rb") as fh:
                header = fh.read(540)
        else:
            size = path.stat().st_size
            with open(path, "rb") as fh:
                header = fh.read(540)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise DenoiseKitError(f"cannot write {shown}: the file written is unreadable ({exc})") from exc
    offset = None
    for order in "<>":
        if len(header) >= 348 and struct.unpack(f"{order}i", header[:4])[0] == 348:  # NIfTI-1
            offset = int(struct.unpack(f"{order}f", header[108:112])[0])
        elif len(header) >= 540 and struct.unpack(f"{order}i", header[:4])[0] == 540:  # NIfTI-2
            offset = struct.unpack(f"{order}q", header[168:176])[0]
    if offset is None:
        raise DenoiseKitError(f"cannot write {shown}: the file written has no NIfTI header (is the disk full?)")
    expected = offset + data_bytes
    if size != (expected % 2**32 if path.name.endswith(".gz") else expected):
        raise DenoiseKitError(f"cannot write {shown}: the file written is incomplete (is the disk full?)")


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


def write_itk(volume: Volume, path: Path, description: str = "", *, shown: Path | None = None,
              note: Callable[[str], None] | None = None) -> None:
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
    # of several steps, the latest first, the earlier ones by what they were
    text = fit_steps(description, DESCRIPTION_BYTES).strip() if description else ""
    if text:
        image.SetMetaData("ITK_FileNotes", text)
    identity = volume_identity(volume) or ""  # the source file's, for a DICOM export of this one
    if text or identity:  # 23 characters: NIfTI's field holds 24 bytes
        image.SetMetaData("aux_file", MARK + "".join(_digests(volume.array, text, identity)) + identity)
    try:
        with _held_stderr(_not_errors) as held:
            sitk.WriteImage(image, str(path), useCompression=suffix != ".nii")
    except RuntimeError as exc:
        raise DenoiseKitError(f"cannot write {shown or path}: {_itk_reason(exc, path, shown)}") from exc
    # niftilib says a failed write on stderr and returns as if it had written (a full disk gave
    # a truncated file, "wrote" and exit 0: new-user pass); checked by size as well
    failed = re.search(r"^\*\* ERROR: (?:\w+: )?([^\n]+)", "".join(held), re.M)
    if failed:
        raise DenoiseKitError(f"cannot write {shown or path}: {failed.group(1).strip()} (is the disk full?)")
    if suffix in (".nii", ".nii.gz"):
        _check_complete(path, shown or path, volume.array.size * 4)
    for warning in _itk_warnings("".join(held), path, shown or path):
        (note or logger.warning)(f"{(shown or path).name}: {warning}")
