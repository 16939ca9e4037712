"""The header pass over DICOM files: which files are images, which series they belong
to, and where each frame sits. Pixels are not read here: reading stops at the pixel data
element, whose length is kept (``Frame.pixel_bytes``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from denoisekit.errors import DenoiseKitError

# Objects that carry no CT pixels (structured reports, RT structures, presentation
# states, key objects, segmentations, registrations, plans, DICOMDIRs) are skipped.
NON_IMAGE_MODALITIES = {"SR", "RTSTRUCT", "RTPLAN", "RTRECORD", "PR", "KO", "SEG", "REG", "DOC", "RTDOSE"}
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
#: The groups a dataset without the File Format's preamble may start with: the file meta, or
#: (ACR-NEMA, PACS exports) the identifying group that opens every image's dataset.
DATASET_START_GROUPS = (0x0002, 0x0008)
PIXEL_DATA_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}  # Pixel Data, Float and Double Float Pixel Data
UNDEFINED_LENGTH = 0xFFFFFFFF  # encapsulated pixel data: fragments up to a delimiter


@dataclass
class Frame:
    """One 2-D image: a single-frame file, or one frame of a multi-frame file."""

    path: Path
    index: int | None  # frame number (0-based) in a multi-frame file, None otherwise
    position: tuple[float, float, float]
    orientation: tuple[float, ...]
    pixel_spacing: tuple[float, float]  # (row spacing = y, column spacing = x), mm
    rows: int
    columns: int
    slope: float
    intercept: float
    thickness: float | None
    localizer: bool = False
    #: SpacingBetweenSlices, the z spacing of a single slice (positions give it otherwise)
    spacing_between: float | None = None
    header: Any = field(default=None, repr=False, compare=False)  # the file's header dataset
    #: Bytes of pixel data the file holds (all its frames), from the element's length and the
    #: file's size; None without a pixel data element or for encapsulated (compressed) data.
    pixel_bytes: int | None = None


@dataclass
class Series:
    uid: str
    number: str
    description: str
    modality: str
    frames: list[Frame] = field(default_factory=list)
    transfer_syntaxes: set[str] = field(default_factory=set)
    #: why the series cannot be read as it is (two differing files of one instance), said
    #: once it is chosen: a conflict in another series must not stop this one
    conflicts: list[str] = field(default_factory=list)

    def label(self) -> str:
        n = len(self.frames)
        return f"{self.uid} (number {self.number or '-'}, '{self.description}', {n} slice{'' if n == 1 else 's'})"


def is_dicom(path: Path) -> bool:
    """True for a DICOM file: the 128-byte preamble and 'DICM', or a dataset from byte 0 as
    ACR-NEMA and some PACS exports write it (GDCM and ``dcmread(force=True)`` read those)."""
    import os

    try:
        with open(path, "rb") as fh:
            if fh.read(132)[128:] == b"DICM":
                return True
            fh.seek(0)
            return _starts_with_dataset(fh, os.fstat(fh.fileno()).st_size)
    except OSError:
        return False


def _starts_with_dataset(fh: Any, size: int) -> bool:
    """Whether ``fh`` opens with a DICOM element of group 0002 (file meta) or 0008 followed
    by a later tag, in an encoding pydicom guesses without file meta: little endian implicit
    or explicit VR, or big endian explicit VR. Requiring two elements in order is what keeps
    a text, PNG, NIfTI or gzip file (or chance bytes 08 00) out."""
    import struct

    from pydicom.valuerep import EXPLICIT_VR_LENGTH_32, STANDARD_VR

    head = fh.read(12)
    if len(head) < 12:
        return False
    for endian in "<>":
        group, element = struct.unpack(endian + "HH", head[:4])
        if group not in DATASET_START_GROUPS:
            continue
        vr = head[4:6].decode("latin-1")
        if vr in STANDARD_VR:
            long = vr in EXPLICIT_VR_LENGTH_32
            length = struct.unpack(endian + ("I" if long else "H"), head[8:12] if long else head[6:8])[0]
            start = 12 if long else 8
        elif endian == "<":  # implicit VR is little endian only
            length, start = struct.unpack("<I", head[4:8])[0], 8
        else:
            continue
        if length == UNDEFINED_LENGTH:  # a sequence: its first item tag must follow
            fh.seek(start)
            return fh.read(4) == struct.pack(endian + "HH", 0xFFFE, 0xE000)
        if start + length + 4 > size:
            return False
        fh.seek(start + length)
        following = struct.unpack(endian + "HH", fh.read(4))
        return following > (group, element)
    return False


def read_header(path: Path) -> tuple[Any, int | None]:
    """Parse a file ``is_dicom`` accepts up to its pixel data; a corrupt one is an error
    naming it. Also return ``Frame.pixel_bytes``: the pixel data element's length is known
    from its header, so the check that it fits Rows x Columns needs no pixel read. A dataset
    without file meta gets the transfer syntax pydicom read it by, for the pixel pass."""
    import os
    import warnings

    from pydicom.filereader import read_partial
    from pydicom.uid import (
        DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian,
    )

    found: list[tuple[int, int]] = []  # (length, offset of the value in the file)
    try:
        with open(path, "rb") as fh, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")

            def at_pixels(tag: int, vr: str | None, length: int) -> bool:
                if tag not in PIXEL_DATA_TAGS:
                    return False
                found.append((length, fh.tell()))
                return True

            ds = read_partial(fh, stop_when=at_pixels, force=True)  # no preamble: is_dicom said
            size = os.fstat(fh.fileno()).st_size
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for broken files
        raise DenoiseKitError(f"{path} looks like DICOM but cannot be read: {exc}") from exc
    truncated = [w for w in caught if "end of file" in str(w.message).lower()]
    if truncated:
        raise DenoiseKitError(f"{path} looks like DICOM but cannot be read: {truncated[0].message}")
    if "SOPClassUID" not in ds and "MediaStorageSOPClassUID" not in getattr(ds, "file_meta", {}):
        raise DenoiseKitError(f"{path} looks like DICOM but cannot be read: no SOP Class in its header")
    if "TransferSyntaxUID" not in ds.file_meta:
        if found and found[0][0] == UNDEFINED_LENGTH:
            raise DenoiseKitError(f"{path} holds compressed pixel data but no file meta naming its transfer syntax")
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    pixel_bytes = None
    if found and found[0][0] != UNDEFINED_LENGTH:
        length, offset = found[0]
        deflated = ds.file_meta.get("TransferSyntaxUID") == DeflatedExplicitVRLittleEndian
        # a deflated dataset is read from an inflated copy: the offset is not one in the file
        pixel_bytes = length if deflated else max(0, min(length, size - offset))
    return ds, pixel_bytes


def _number(value: Any, what: str, path: Path, default: float | None = None) -> float:
    if value is None or value == "":
        if default is None:
            raise DenoiseKitError(f"{path} has no {what}")
        return default
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise DenoiseKitError(f"{path}: {what} is not a number ({value!r})") from exc


def _size(value: Any) -> float | None:
    """A positive length in mm, or None when absent or not one (optional attributes only)."""
    try:
        size = float(value)
    except (TypeError, ValueError):
        return None
    return size if math.isfinite(size) and size > 0 else None


def _numbers(value: Any, count: int, what: str, path: Path) -> tuple[float, ...]:
    if value is None or value == "":
        raise DenoiseKitError(f"{path} has no {what}")
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise DenoiseKitError(f"{path}: {what} is not numeric ({value!r})") from exc
    if len(values) != count:
        raise DenoiseKitError(f"{path}: {what} must hold {count} numbers, got {len(values)}")
    return values


def _group(ds: Any, index: int, sequence: str, keyword: str) -> Any:
    """``keyword`` from the per-frame functional group of frame ``index`` or the shared one."""
    for groups, i in (("PerFrameFunctionalGroupsSequence", index), ("SharedFunctionalGroupsSequence", 0)):
        items = ds.get(groups)
        if items is None or len(items) <= i:
            continue
        seq = items[i].get(sequence)
        if seq and keyword in seq[0]:
            return seq[0].get(keyword)
    return None


def frames_of(ds: Any, path: Path) -> list[Frame]:
    """Geometry and rescale of every frame in one header (classic or Enhanced/multi-frame)."""
    rows, columns = ds.get("Rows"), ds.get("Columns")
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise DenoiseKitError(f"{path} is a colour image ({ds.get('PhotometricInterpretation')}), not CT")
    n_frames = int(ds.get("NumberOfFrames", 1) or 1)
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    localizer = "LOCALIZER" in image_type
    if "PerFrameFunctionalGroupsSequence" in ds:
        frames = []
        for i in range(n_frames):
            spacing = _group(ds, i, "PixelMeasuresSequence", "PixelSpacing")
            frames.append(Frame(
                path=path,
                index=i,
                position=_numbers(_group(ds, i, "PlanePositionSequence", "ImagePositionPatient"), 3,
                                  f"ImagePositionPatient for frame {i + 1}", path),
                orientation=_numbers(_group(ds, i, "PlaneOrientationSequence", "ImageOrientationPatient"), 6,
                                     f"ImageOrientationPatient for frame {i + 1}", path),
                pixel_spacing=_numbers(spacing, 2, f"PixelSpacing for frame {i + 1}", path),  # type: ignore[arg-type]
                rows=int(rows),
                columns=int(columns),
                slope=_number(_group(ds, i, "PixelValueTransformationSequence", "RescaleSlope"), "RescaleSlope", path, 1.0),
                intercept=_number(_group(ds, i, "PixelValueTransformationSequence", "RescaleIntercept"),
                                  "RescaleIntercept", path, 0.0),
                thickness=_number(_group(ds, i, "PixelMeasuresSequence", "SliceThickness"), "SliceThickness", path, 0.0) or None,
                localizer=localizer,
                spacing_between=_size(_group(ds, i, "PixelMeasuresSequence", "SpacingBetweenSlices")),
            ))
        return frames
    if n_frames > 1:
        raise DenoiseKitError(f"{path} holds {n_frames} frames without per-frame positions; it is not a CT volume")
    return [Frame(
        path=path,
        index=None,
        position=_numbers(ds.get("ImagePositionPatient"), 3, "ImagePositionPatient", path),  # type: ignore[arg-type]
        orientation=_numbers(ds.get("ImageOrientationPatient"), 6, "ImageOrientationPatient", path),
        pixel_spacing=_numbers(ds.get("PixelSpacing"), 2, "PixelSpacing", path),  # type: ignore[arg-type]
        rows=int(rows),
        columns=int(columns),
        slope=_number(ds.get("RescaleSlope"), "RescaleSlope", path, 1.0),
        intercept=_number(ds.get("RescaleIntercept"), "RescaleIntercept", path, 0.0),
        thickness=_number(ds.get("SliceThickness"), "SliceThickness", path, 0.0) or None,
        localizer=localizer,
        spacing_between=_size(ds.get("SpacingBetweenSlices")),
    )]


def not_hu(ds: Any) -> str | None:
    """Why the pixel values of ``ds`` are not Hounsfield units, or None when nothing says so.

    CT images may omit RescaleType (HU is then implied); derived maps such as perfusion
    (cerebral blood flow) keep the CT modality but say 'US' (unspecified) or another unit.
    """
    kind = rescale_type(ds)
    if kind.upper() in ("", "HU"):
        return None
    image_type = "\\".join(str(v) for v in (ds.get("ImageType") or []))
    return f"RescaleType {kind!r}" + (f", ImageType {image_type}" if image_type else "")


def without_rescale(frame: Frame) -> bool:
    """Whether ``frame``'s header gives no RescaleIntercept (type 1 in CT images, classic or
    Enhanced): its stored values are then read as HU as they are."""
    if frame.index is not None:
        return _group(frame.header, frame.index, "PixelValueTransformationSequence", "RescaleIntercept") is None
    return frame.header.get("RescaleIntercept") is None


def rescale_type(ds: Any) -> str:
    """The unit of the rescaled values (RescaleType, classic or Enhanced), '' if not given."""
    kind = _group(ds, 0, "PixelValueTransformationSequence", "RescaleType") or ds.get("RescaleType")
    return "" if kind is None else str(kind).strip()


def non_image_kind(ds: Any) -> str | None:
    """Why a header is not an image we read (e.g. 'SR', 'DICOMDIR'), or None for an image."""
    media_class = getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", None)
    if media_class == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds:
        return "DICOMDIR"
    modality = str(ds.get("Modality", "") or "").upper()
    if modality in NON_IMAGE_MODALITIES:
        return modality
    if "Rows" not in ds or "Columns" not in ds:
        return modality or "no image"
    return None


def candidate_files(root: Path) -> list[Path]:
    """Every regular file under ``root``, sorted (recursion follows the directory tree)."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".partial-"))


def scan(files: Iterable[Path], note: Callable[[str], None]) -> dict[str, Series]:
    """Group the image frames of ``files`` by SeriesInstanceUID, skipping non-DICOM files,
    non-image objects and second copies of one instance with a note."""
    skipped_files: list[str] = []
    skipped_objects: dict[str, int] = {}
    images: list[_Image] = []
    for path in files:
        if not is_dicom(path):
            skipped_files.append(path.name)
            continue
        ds, pixel_bytes = read_header(path)
        kind = non_image_kind(ds)
        if kind is not None:
            skipped_objects[kind] = skipped_objects.get(kind, 0) + 1
            continue
        frames = frames_of(ds, path)
        for frame in frames:
            frame.header = ds
            frame.pixel_bytes = pixel_bytes
        images.append(_Image(path, ds, frames))
    images, copies, conflicts = _one_file_per_instance(images)
    series: dict[str, Series] = {}
    for image in images:
        ds = image.header
        uid = str(ds.get("SeriesInstanceUID", "") or "")
        entry = series.get(uid)
        if entry is None:
            number = ds.get("SeriesNumber")
            entry = series[uid] = Series(
                uid=uid,
                number="" if number in (None, "") else str(number),
                description=str(ds.get("SeriesDescription", "") or ""),
                modality=str(ds.get("Modality", "") or ""),
            )
        entry.frames.extend(image.frames)
        entry.transfer_syntaxes.add(str(ds.file_meta.get("TransferSyntaxUID", "")))
    for uid, message in conflicts:
        if uid in series:
            series[uid].conflicts.append(message)
    if skipped_files:
        note(f"skipped {len(skipped_files)} file(s) that are not DICOM: {_shown(skipped_files)}")
    if skipped_objects:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(skipped_objects.items()))
        note(f"skipped non-image DICOM objects: {kinds}")
    if copies:
        note(f"skipped {len(copies)} duplicate file(s) of instances already read: {_shown(copies)}")
    return series


def _shown(names: list[str]) -> str:
    return ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")


@dataclass
class _Image:
    """One image file's header and frames, before its copies are set aside."""

    path: Path
    header: Any
    frames: list[Frame]

    def content(self) -> dict[str, Any]:
        """What two files of one instance must agree on to be copies of each other."""
        return {
            "SeriesInstanceUID": str(self.header.get("SeriesInstanceUID", "") or ""),
            "pixel data length": self.frames[0].pixel_bytes if self.frames else None,
            "size": [(f.rows, f.columns) for f in self.frames],
            "position": [f.position for f in self.frames],
            "orientation": [f.orientation for f in self.frames],
            "rescale": [(f.slope, f.intercept) for f in self.frames],
        }


def _one_file_per_instance(images: list[_Image]) -> tuple[list[_Image], list[str], list[tuple[str, str]]]:
    """Keep one file per SOPInstanceUID: a file manager's copy (``slice_03 (1).dcm`` beside
    ``slice_03.dcm``) is the same slice, and read twice it sits at its own position and stops
    the stack. The shortest path is kept (the copy's name is the longer), ties by name; the
    others are returned by name. Files that agree on where and what the slice is, and hold the
    same pixel data, are copies; any other pair of one instance in one series is a conflict,
    returned as (series UID, why): which file is right is a guess."""
    import warnings

    by_uid: dict[tuple[str, str], list[_Image]] = {}
    with warnings.catch_warnings():  # a malformed UID is still a key; writing a series says so once
        warnings.simplefilter("ignore", UserWarning)
        for image in images:
            uid = str(image.header.get("SOPInstanceUID", "") or "")
            if uid:  # within a series: a UID reused in another series is that series' own slice
                by_uid.setdefault((str(image.header.get("SeriesInstanceUID", "") or ""), uid), []).append(image)
    dropped: set[int] = set()
    clashing: set[int] = set()  # dropped too, but no copy: their series says why when chosen
    conflicts: list[tuple[str, str]] = []
    for (_, uid), same in by_uid.items():
        if len(same) < 2:
            continue
        kept = min(same, key=lambda image: (len(str(image.path)), str(image.path)))
        expected = kept.content()
        for other in same:
            if other is kept:
                continue
            found = other.content()
            recoded = _syntax(kept) != _syntax(other)  # a lossless recompression: other bytes, same pixels
            differ = [what for what, value in expected.items()
                      if found[what] != value and not (recoded and what == "pixel data length")]
            if not differ and not _same_pixels(kept.path, other.path, decode=recoded):
                differ = ["pixel data"]
            if differ:
                why = (f"{kept.path} and {other.path} are one instance (SOPInstanceUID {uid}) but differ in "
                       f"{', '.join(differ)}: which is right is a guess; remove the wrong one")
                conflicts.append((expected["SeriesInstanceUID"], why))
                clashing.add(id(other))
            dropped.add(id(other))
    return ([image for image in images if id(image) not in dropped],
            [image.path.name for image in images if id(image) in dropped - clashing],
            conflicts)


def _syntax(image: _Image) -> str:
    return str(getattr(image.header, "file_meta", {}).get("TransferSyntaxUID", ""))


def _same_pixels(a: Path, b: Path, decode: bool = False) -> bool:
    """Whether two files of one instance hold the same pixel data: byte-identical files do;
    otherwise (a copy whose other tags were edited) their PixelData elements are compared,
    or with ``decode`` (different transfer syntaxes) the decoded pixels."""
    import filecmp

    import numpy as np
    import pydicom

    if filecmp.cmp(a, b, shallow=False):
        return True
    try:
        datasets = [pydicom.dcmread(p, force=True) for p in (a, b)]
        if decode:
            return bool(np.array_equal(datasets[0].pixel_array, datasets[1].pixel_array))
        pixels = [ds.get("PixelData") for ds in datasets]
    except Exception:  # noqa: BLE001 - unreadable or undecodable here: not shown to be the same
        return False
    return pixels[0] is not None and pixels[0] == pixels[1]


def select_series(found: dict[str, Series], wanted: str | None, where: Path) -> Series:
    """The one series to read: the only one, or the one ``wanted`` names by UID or number."""
    if not found:
        raise DenoiseKitError(f"no DICOM images found in {where}")
    listing = "; ".join(s.label() for s in found.values())
    if wanted is None:
        if len(found) == 1:
            return _readable(next(iter(found.values())))
        raise DenoiseKitError(f"{where} holds {len(found)} series; pick one with --series UID-or-number: {listing}")
    wanted = wanted.strip()
    matches = [s for s in found.values() if wanted == s.uid]
    if not matches:
        matches = [s for s in found.values() if s.number and _same_number(wanted, s.number)]
    if len(matches) == 1:
        return _readable(matches[0])
    if not matches:
        raise DenoiseKitError(f"no series '{wanted}' in {where}; found: {listing}")
    raise DenoiseKitError(f"series number {wanted} is ambiguous in {where}; use the UID: {listing}")


def _readable(series: Series) -> Series:
    """The chosen series, unless two differing files claim one of its instances."""
    if series.conflicts:
        raise DenoiseKitError(series.conflicts[0])
    return series


def _same_number(a: str, b: str) -> bool:
    try:
        return int(a) == int(b)
    except ValueError:
        return a == b
