"""A derived CT series: the source's patient, study and frame of reference, new series
and instance UIDs, DERIVED\\SECONDARY, per-slice geometry from the volume, signed 16-bit
pixels with RescaleSlope/Intercept, explicit VR little endian."""

from __future__ import annotations

import copy
import logging
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from denoisekit import __version__
from denoisekit.errors import DenoiseKitError
from denoisekit.io.dicom_tags import COPIED
from denoisekit.io.identity import volume_identity
from denoisekit.io.text import CONVERTED, SIMULATED_STEP, fit
from denoisekit.volume import Volume

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
Note = Callable[[str], None]
logger = logging.getLogger("denoisekit.io")  # read_volume's default for notes too
# Series and equipment attributes a derived series sets itself (SliceThickness per slice)
# or leaves out (the source's model name); everything else the reader kept is copied.
_WRITTEN_ANEW = {
    "SpecificCharacterSet", "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "Modality",
    "SOPClassUID", "Manufacturer", "ManufacturerModelName", "SliceThickness", "ImageType", "RescaleType",
    "DerivationDescription",
}
_COPY = tuple(k for k in COPIED if k not in _WRITTEN_ANEW)
_TYPE2_EMPTY = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "AccessionNumber", "ReferringPhysicianName",
    "PositionReferenceIndicator", "KVP", "AcquisitionNumber", "StudyDate", "StudyTime",
    "PatientPosition",
)


def storage_scale(array: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) so ``round((hu - intercept) / slope)`` fits int16: slope 1 when the
    rounded HU fit (exact to 0.5 HU), otherwise the range spread over all 65536 values."""
    if not np.all(np.isfinite(array)):
        raise DenoiseKitError("the volume holds NaN or infinite values; cannot store them in DICOM")
    lo, hi = float(array.min()), float(array.max())
    if round(lo) >= -32768 and round(hi) <= 32767:
        return 1.0, 0.0
    if hi == lo:  # a constant volume out of int16 range: store it as 0 + intercept
        return 1.0, lo
    slope = (hi - lo) / 65535.0
    return slope, lo + 32768.0 * slope


def padding_stored(padding: list[float] | None, slope: float, intercept: float) -> list[int] | None:
    """The source's padding (``PixelPaddingHU``: value, then range limit) as stored values
    of a series written with ``slope`` and ``intercept``, as its pixels are stored (from
    float32 HU), so the padding pixels hold exactly PixelPaddingValue. A range limit equal
    to the value is left out; None when there is no padding or no int16 value holds it."""
    if not padding:
        return None
    stored = [int(np.rint((float(np.float32(hu)) - intercept) / slope)) for hu in padding]
    if all(v < -32768 for v in stored) or all(v > 32767 for v in stored):
        return None  # no pixel can hold it: nothing to mark
    stored = [min(max(v, -32768), 32767) for v in stored]
    return stored[:1] if len(stored) > 1 and stored[1] == stored[0] else stored


def _kept_padding(volume: Volume, note: Note) -> list[float] | None:
    """The source's padding HU, where the voxels still hold it as padding: stages keep values
    below ``PADDING_BELOW`` as they were and change the rest, so a padding value above it
    (-1024, say) would then mark denoised air instead."""
    from denoisekit.volume import PADDING_BELOW

    padding = volume.tags.get("PixelPaddingHU")
    if not padding or not volume.history or max(padding) < PADDING_BELOW:
        return padding
    note(f"the source's pixel padding ({' to '.join(f'{v:g}' for v in padding)} HU) is not below "
         f"{PADDING_BELOW:g} HU, which denoisekit's stages keep as it was: the derived series declares none")
    return None


def _window_pair(header: dict[str, Any]) -> bool:
    """Whether the copied WindowCenter and WindowWidth form pairs: both there, as many of
    each (a centre copied without its width made the series invalid: code review)."""
    center, width = header.get("WindowCenter"), header.get("WindowWidth")
    if center is None or width is None:
        return False
    count = lambda v: len(v) if isinstance(v, list) else 1  # noqa: E731
    return count(center) == count(width)


def _series_number(source: Any, description: str) -> int:
    """The source's number plus a multiple of 1000 (1000..99000) picked by ``description``:
    derived series are often numbered source + 1000, but then every series derived from one
    source (noisy, denoised by each model) shared one number and a viewer listing by number
    could not tell them apart; now two share one about once in 99, and a rerun keeps its
    number. Kept within the signed 32-bit range of DICOM's IS; a source without one counts
    as 1."""
    import hashlib

    base = source if isinstance(source, int) else 1
    digest = hashlib.blake2b(description.encode("utf-8"), digest_size=4).digest()
    step = 1000 * (1 + int.from_bytes(digest, "big") % 99)
    return base + step if base + step <= 2**31 - 1 else base - step


def _source_uid(tags: dict[str, Any], keyword: str, note: Note, identity: str | None = None) -> str:
    """The source's study or frame-of-reference UID. An invalid one (strict archives reject
    it) is replaced by a UID derived from it, and a missing one by a UID derived from the
    source series: every slice and every re-run then stays in one study / frame, as the
    source's did, where a random UID would scatter them. A source with neither (not DICOM)
    gets one derived from its file's ``identity`` (``io.identity``), or without one a random
    one."""
    from pydicom.uid import generate_uid

    value = str(tags.get(keyword) or "").strip()
    if _valid_uid(value):
        return value
    series = str(tags.get("SeriesInstanceUID") or "")
    if not value and not series:  # not DICOM: one study and frame per source file (identity), else random
        return generate_uid(entropy_srcs=[keyword, "of file", identity]) if identity else generate_uid()
    # the patient too: anonymisers leave the same placeholder (e.g. 'REMOVED') for every patient
    patient = str(tags.get("PatientID") or "")
    uid = generate_uid(entropy_srcs=[keyword, value, patient] if value else [keyword, "of series", series])
    what = f"is not a valid UID ({value!r})" if value else "is missing"
    note(f"the source's {keyword} {what}: the derived series has {uid} instead, derived from "
         f"the source's {'value' if value else 'SeriesInstanceUID'} (the same on every run)")
    return uid


def _valid_uid(value: Any) -> bool:
    """pydicom's check (syntax, at most 64 characters), without the warning it also gives."""
    import warnings

    from pydicom.uid import UID

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return UID(str(value)).is_valid


def _identity_claim(header: dict[str, Any], note: Note) -> None:
    """Drop a PatientIdentityRemoved that is not NO, nor YES with the method the standard
    requires with it: denoisekit cannot vouch for a de-identification nobody recorded, and a
    derived series claiming one (or a made-up method) would overstate its privacy. Without
    the claim the series is treated as identifiable, which is the safe side."""
    claim = header.get("PatientIdentityRemoved")
    if claim is None or claim == "NO":
        return
    if claim == "YES" and (header.get("DeidentificationMethod") or header.get("DeidentificationMethodCodeSequence")):
        return
    del header["PatientIdentityRemoved"]
    why = "records no de-identification method" if claim == "YES" else f"is {claim!r}, neither YES nor NO"
    note(f"the source's PatientIdentityRemoved {why}: the derived series does not claim the "
         "patient's identity removed")


def series_header(volume: Volume, description: str, note: Note | None = None) -> dict[str, Any]:
    """The attributes shared by every slice of the new series; ``note`` hears of source
    values replaced or dropped because copying them would make the series invalid."""
    from pydicom.uid import generate_uid

    note = note or logger.warning
    tags = volume.tags
    now = datetime.now()
    header: dict[str, Any] = {k: tags[k] for k in _COPY if k in tags and tags[k] not in (None, "")}
    new_study = "StudyInstanceUID" not in tags and not tags.get("SeriesInstanceUID")
    identity = volume_identity(volume) if new_study else None  # read once, for study and frame
    header["StudyInstanceUID"] = _source_uid(tags, "StudyInstanceUID", note, identity)
    if new_study and "PatientName" not in tags and "PatientID" not in tags:
        # no DICOM source (NIfTI): a new patient, one per new study, so that a PACS never
        # files unrelated volumes under one patient (a DICOM source's empty name and ID stay
        # empty, type 2: the series is in the source's study)
        import hashlib

        patient = hashlib.sha256(header["StudyInstanceUID"].encode()).hexdigest()[:16].upper()
        header.update(PatientName="ANONYMOUS^", PatientID=f"DENOISEKIT-{patient}")  # a family name: "^", not the retired form
    if not _window_pair(header):  # both or neither (VOI LUT: WindowWidth is required with a centre)
        header.pop("WindowCenter", None)
        header.pop("WindowWidth", None)
    if "WindowCenter" not in header and tags.get("RescaleType", "HU") == "HU":
        # no window from the source: a soft-tissue one (W400 L40); some viewers show CT black without
        header.update(WindowCenter="40", WindowWidth="400")
    header["FrameOfReferenceUID"] = _source_uid(tags, "FrameOfReferenceUID", note, identity)
    _identity_claim(header, note)
    if new_study:
        # a new study (no DICOM source): date it now. A DICOM source without a study UID gets
        # one derived from its series, the same every run, so no "now" that changes per run.
        header.setdefault("StudyDate", now.strftime("%Y%m%d"))
        header.setdefault("StudyTime", now.strftime("%H%M%S"))
    for keyword in _TYPE2_EMPTY:
        header.setdefault(keyword, "")
    if "BodyPartExamined" not in header:  # type 2C: unknown body part, laterality unknown too
        header.setdefault("Laterality", "")
    source_number = tags.get("SeriesNumber")
    # what the source was beyond its first three values (e.g. a perfusion map's RCBF) stays said
    source_type = tags.get("ImageType")
    extra_type = list(source_type[3:]) if isinstance(source_type, list) else []
    header.update(
        SpecificCharacterSet="ISO_IR 192",  # UTF-8: copied names keep their characters
        SOPClassUID=CT_IMAGE_STORAGE,
        Modality="CT",
        SeriesInstanceUID=generate_uid(),
        SeriesNumber=_series_number(source_number, description),
        SeriesDescription=series_label(description, tags.get("DerivationDescription")),
        SeriesDate=now.strftime("%Y%m%d"),
        SeriesTime=now.strftime("%H%M%S"),
        ContentDate=now.strftime("%Y%m%d"),
        ContentTime=now.strftime("%H%M%S"),
        InstanceCreationDate=now.strftime("%Y%m%d"),
        InstanceCreationTime=now.strftime("%H%M%S"),
        ImageType=["DERIVED", "SECONDARY", "AXIAL", *extra_type],
        DerivationDescription=_derivation(tags.get("DerivationDescription"), description),
        Manufacturer="denoisekit",
        SoftwareVersions=f"denoisekit {__version__}",
        SamplesPerPixel=1,
        PhotometricInterpretation="MONOCHROME2",
        BitsAllocated=16,
        BitsStored=16,
        HighBit=15,
        PixelRepresentation=1,
        RescaleType=tags.get("RescaleType") or "HU",  # the reader keeps a source's other unit
    )
    return header


def write_series(
    volume: Volume,
    directory: Path,
    description: str,
    progress: Callable[[int, int], None] | None = None,
    note: Note | None = None,
) -> str:
    """Write one file per slice into the existing empty ``directory``; return the new
    SeriesInstanceUID. ``note`` (default: the ``denoisekit.io`` logger) hears of source
    values not copied as they were."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.sequence import Sequence
    from pydicom.uid import ExplicitVRLittleEndian, PYDICOM_IMPLEMENTATION_UID, generate_uid

    note = note or logger.warning
    header = series_header(volume, description, note)
    slope, intercept = storage_scale(volume.array)
    direction = np.asarray(volume.direction, dtype=float).reshape(3, 3)
    normal = np.cross(direction[:, 0], direction[:, 1])
    orientation = [_ds(v) for v in np.concatenate([direction[:, 0], direction[:, 1]])]
    thickness = volume.tags.get("SliceThickness") or volume.spacing[2]
    references = volume.tags.get("SourceImages")
    if references is not None and len(references) != volume.shape[0]:
        references = None
    if references is not None and not all(_valid_uid(r[0]) and _valid_uid(r[1]) for r in references):
        # a reference is optional; one no archive can resolve would only make the files invalid
        note("the source's SOP instance or class UIDs are not all valid: the derived series "
             "does not reference its source images")
        references = None
    # A source stack off the regular grid (read with --allow-irregular / --allow-tilt): each
    # slice goes where its source slice was, not onto the grid the volume approximates it by.
    positions = volume.tags.get("SlicePositions")
    if positions is not None and len(positions) != volume.shape[0]:
        positions = None
    exact = _source_positions(volume) if positions is None else positions
    n = volume.shape[0]
    numbers = volume.tags.get("InstanceNumbers")  # the source's, slice by slice, where it had them
    if numbers is not None and len(numbers) != n:
        numbers = None
    shared = _shared_dataset(header, note)
    padding = padding_stored(_kept_padding(volume, note), slope, intercept)
    if padding:  # signed as the pixels (PixelRepresentation 1); pydicom cannot tell US or SS itself
        for tag, value in zip((0x00280120, 0x00280121), padding):  # PixelPaddingValue, -RangeLimit
            shared.add_new(tag, "SS", value)
    for k in range(n):
        ds = copy.deepcopy(shared)  # each file its own elements and sequences, not validated again
        sop_uid = generate_uid()
        ds.SOPInstanceUID = sop_uid
        ds.InstanceNumber = numbers[k] if numbers else k + 1
        position = volume.slice_origin(k) if exact is None else np.asarray(exact[k], dtype=float)
        ds.ImagePositionPatient = [_ds(v) for v in position]
        ds.ImageOrientationPatient = orientation
        ds.PixelSpacing = [_ds(volume.spacing[1]), _ds(volume.spacing[0])]
        ds.SliceThickness = _ds(thickness)
        if positions is None:  # the grid's spacing: what a one-slice series has to say it with
            ds.SpacingBetweenSlices = _ds(volume.spacing[2])
        ds.SliceLocation = _ds(float(np.dot(position, normal)))
        ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
        ds.RescaleSlope = _ds(slope)
        ds.RescaleIntercept = _ds(intercept)
        if references is not None:
            ref = Dataset()
            ref.ReferencedSOPClassUID, ref.ReferencedSOPInstanceUID, frame = references[k]
            if frame is not None:
                ref.ReferencedFrameNumber = frame
            ds.SourceImageSequence = Sequence([ref])
        stored = np.rint((volume.array[k].astype(np.float64) - intercept) / slope)
        ds.PixelData = np.clip(stored, -32768, 32767).astype("<i2").tobytes()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        ds.preamble = b"\0" * 128
        ds.save_as(directory / f"IM{k + 1:05d}.dcm", enforce_file_format=True)
        if progress is not None:
            progress(k + 1, n)
    return header["SeriesInstanceUID"]


_ON_SIMULATED = " (on simulated noise)"


def series_label(description: str, source: Any = None) -> str:
    """The SeriesDescription, the label a PACS lists a series by: the latest step of several
    ("noise ...; denoised ..."), whole words in 64 bytes, and said as simulated where noise
    was simulated (in ``description`` or the source's DerivationDescription ``source``): the
    noise step itself "simulated noise lowdose ...", a later one "... (on simulated noise)".
    A denoised simulated low dose, filed beside the patient's scan, read as a real scan
    denoised, and "noise lowdose dose=0.25" as a real low-dose acquisition."""
    # LO separates values with '\\': a path in a description ('C:\\models\\x.pt') made three
    # values of the label, of which a PACS showed the first (code review)
    latest = description.rsplit("; ", 1)[-1].strip().replace("\\", "/")
    if SIMULATED_STEP.match(latest):
        return fit(f"simulated {latest}", 64, words=True)
    earlier = (source if isinstance(source, str) else "") + "; " + description
    if any(SIMULATED_STEP.match(step.strip()) for step in earlier.split("; ")[:-1]):
        return fit(latest, 64 - len(_ON_SIMULATED), words=True) + _ON_SIMULATED
    return fit(latest, 64, words=True)


#: How far (mm) a source slice's own position may lie from the volume's regular grid and still
#: be written as it was: a regular stack's slices lie within 1% of a gap of it (``geometry``);
#: a volume whose geometry a caller changed (positions then stale) lies farther.
SOURCE_POSITION_TOLERANCE = 0.05


def _source_positions(volume: Volume) -> list | None:
    """The source slices' own ImagePositionPatient (``SourcePositions``), where every one lies
    within ``SOURCE_POSITION_TOLERANCE`` of the volume's grid: a derived series then puts each
    slice exactly where its source slice was (the grid, from the first slice and the mean
    spacing, moved a jittered scan's slices by up to 0.025 mm), not where float arithmetic or
    a NIfTI's float32 put it. None otherwise: the grid's positions."""
    own = volume.tags.get("SourcePositions")
    if not isinstance(own, list) or len(own) != volume.shape[0]:
        return None
    try:
        own = np.asarray(own, dtype=float).reshape(volume.shape[0], 3)
    except (TypeError, ValueError):
        return None
    grid = np.asarray([volume.slice_origin(k) for k in range(volume.shape[0])])
    if not np.all(np.isfinite(own)) or np.abs(own - grid).max() > SOURCE_POSITION_TOLERANCE:
        return None
    return own.tolist()


def _shared_dataset(header: dict[str, Any], note: Note) -> Any:
    """The attributes every slice shares, set once, with one note per copied value pydicom
    finds invalid for its VR as it is set (a 40-character StudyID, a PatientAge of '22Y'),
    instead of a raw warning on every file. They are copied as they were: dropping a
    patient's or study's attribute would lose more than it mends."""
    from pydicom.dataset import Dataset

    shared = Dataset()
    for keyword, value in header.items():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            setattr(shared, keyword, _sequence(value) if _is_items(value) else value)
        problems = sorted({str(w.message).rstrip(".") for w in caught})
        if problems:
            note(f"the source's {keyword} is not valid DICOM ({'; '.join(problems)}): copied as it was")
    return shared


#: Bytes a simulation keeps at the front of a DerivationDescription cut to ST's 1024 (its kind,
#: seed and main settings; ``noise.describe`` puts them first).
SIMULATED_KEPT = 200


def _derivation(source: Any, description: str) -> str:
    """What was done, after what had been done to the source (a derived source's own
    DerivationDescription: a series denoised from a simulated low dose says it was simulated,
    where its SeriesDescription names only the denoising), within the 1024 bytes of ST: the
    oldest steps are the ones cut, a simulation last."""
    if not isinstance(source, str):
        return fit(description, 1024)
    # a conversion before this step is no step of its own (``text.chain``)
    source = "; ".join(s.strip() for s in source.split("; ") if s.strip() and not s.strip().startswith(CONVERTED))
    if not source:
        return fit(description, 1024)
    own = fit(description, 1024)
    room = 1024 - len(own.encode("utf-8")) - 2
    if room < 16:
        return own
    earlier = source.strip().encode("utf-8")
    if len(earlier) <= room:
        return f"{source.strip()}; {own}"
    # keep the latest of the earlier steps, and a simulation however old: every series derived
    # from it must still say it was simulated (``series_label``), as a NIfTI's record does
    simulated = next((s.strip() for s in source.split("; ") if SIMULATED_STEP.match(s.strip())), "")
    kept = b"..." + earlier[len(earlier) - room + 3:]
    if simulated and not any(SIMULATED_STEP.match(s) for s in kept.decode("utf-8", "ignore").split("; ")):
        head = (fit(simulated, SIMULATED_KEPT, words=True) + "; ...").encode("utf-8")
        if len(head) + 16 <= room:
            kept = head + earlier[len(earlier) - room + len(head):]
    return f"{kept.decode('utf-8', 'ignore')}; {own}"


def _is_items(value: Any) -> bool:
    """Whether ``value`` is a sequence as ``dicom_tags.plain`` keeps one (a list of dicts)."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _sequence(items: list[dict[str, Any]]) -> Any:
    """A pydicom Sequence from ``dicom_tags.plain``'s items."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    datasets = []
    for item in items:
        ds = Dataset()
        for keyword, value in item.items():
            if value is not None:
                setattr(ds, keyword, _sequence(value) if _is_items(value) else value)
        datasets.append(ds)
    return Sequence(datasets)


def _ds(value: float) -> str:
    """A decimal string (at most 16 characters) keeping as much precision as fits."""
    from pydicom.valuerep import format_number_as_ds

    return format_number_as_ds(float(value))
