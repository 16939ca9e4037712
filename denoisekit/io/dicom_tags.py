"""The source attributes a derived output copies (patient, study, frame of reference,
acquisition context), as plain JSON-able values."""

from __future__ import annotations

import math
from typing import Any

COPIED = (
    "SpecificCharacterSet",
    # patient
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "PatientAge", "PatientSize",
    "PatientWeight", "PatientIdentityRemoved", "DeidentificationMethod", "DeidentificationMethodCodeSequence",
    # study
    "StudyInstanceUID", "StudyDate", "StudyTime", "StudyID", "AccessionNumber",
    "ReferringPhysicianName", "StudyDescription",
    # series (the source's; a derived series gets new ones)
    "SeriesInstanceUID", "SeriesNumber", "SeriesDescription", "Modality", "BodyPartExamined", "Laterality",
    "PatientPosition", "SOPClassUID", "ImageType", "DerivationDescription",
    # frame of reference and acquisition
    "FrameOfReferenceUID", "PositionReferenceIndicator", "Manufacturer", "ManufacturerModelName",
    "InstitutionName", "KVP", "ConvolutionKernel", "SliceThickness", "AcquisitionDate",
    "AcquisitionTime", "ContrastBolusAgent", "WindowCenter", "WindowWidth",
    # what the pixels show beyond the anatomy, which denoising keeps (type 3: absent if unsaid)
    "BurnedInAnnotation", "RecognizableVisualFeatures",
    # what lossy compression the pixels went through, which no later step undoes (``lossy``)
    "LossyImageCompression", "LossyImageCompressionRatio", "LossyImageCompressionMethod",
)

#: The LossyImageCompressionMethod of a transfer syntax that may be lossy.
METHOD_OF_SYNTAX = {
    "1.2.840.10008.1.2.4.50": "ISO_10918_1",  # JPEG baseline
    "1.2.840.10008.1.2.4.51": "ISO_10918_1",  # JPEG extended
    "1.2.840.10008.1.2.4.81": "ISO_14495_1",  # JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.91": "ISO_15444_1",  # JPEG 2000, lossless or not: its files say which
    "1.2.840.10008.1.2.4.203": "ISO_15444_15",  # HTJ2K, the same
}
#: Of those, the ones always lossy, whatever the file says.
ALWAYS_LOSSY = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81")

#: What sets a slice's photons per mA (kV, rotation time, pitch, slice thickness) or its noise
#: per photon (kernel): per-slice tube currents give the slices' relative flux only where each
#: of these is one value (or absent) on every slice.
FLUX_ALIKE = ("KVP", "ExposureTime", "SpiralPitchFactor", "SliceThickness", "ConvolutionKernel")


def plain(value: Any) -> Any:
    """A pydicom value as str/int/float/list (PersonName, DS, IS, UID, MultiValue); a
    sequence as a list of {keyword: value} items (a code sequence's codes)."""
    from pydicom.multival import MultiValue
    from pydicom.sequence import Sequence
    from pydicom.valuerep import DSdecimal, DSfloat, IS, PersonName

    if isinstance(value, Sequence):
        return [{e.keyword: plain(e.value) for e in item if e.keyword} for item in value]
    if isinstance(value, (MultiValue, list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, IS):
        return int(value)
    if isinstance(value, (DSfloat, DSdecimal)):
        return float(value)
    if isinstance(value, PersonName):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return None
    if isinstance(value, (int, float)):
        return value
    return str(value)


def source_tags(ds: Any, frames: list) -> dict[str, Any]:
    """The attributes of ``COPIED`` present in ``ds``, plus the source image references
    (``SourceImages``: [SOPClassUID, SOPInstanceUID, frame number or None] per slice) and,
    where every slice has one, each slice's ``InstanceNumbers`` and ``TubeCurrents``.
    Values pydicom finds invalid (a malformed UID) are kept without its warning: a derived
    DICOM series replaces or drops them and says so in a note (``dicom_write``)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return _source_tags(ds, frames)


def _source_tags(ds: Any, frames: list) -> dict[str, Any]:
    tags: dict[str, Any] = {}
    for keyword in COPIED:
        value = ds.get(keyword)
        if value is None or value == "":
            continue
        value = plain(value)
        if value not in (None, []):  # an empty sequence or multi-value says nothing either
            tags[keyword] = value
    if "WindowCenter" not in tags and "WindowWidth" not in tags:
        tags.update(_frame_window(ds, frames))
    tags.update(lossy(ds, frames))
    if "SliceThickness" not in tags and frames and frames[0].thickness:
        tags["SliceThickness"] = frames[0].thickness
    refs = []
    for frame in frames:
        header = frame.header
        refs.append([
            str(header.get("SOPClassUID", "")),
            str(header.get("SOPInstanceUID", "")),
            None if frame.index is None else frame.index + 1,
        ])
    if refs and all(r[0] and r[1] for r in refs):
        tags["SourceImages"] = refs
    # Each slice's InstanceNumber, for a derived series to number its slices as the source
    # did (a viewer listing by number shows them in the order the reader knows).
    numbers = [frame.header.get("InstanceNumber") if frame.index is None else None for frame in frames]
    try:
        numbers = [int(n) for n in numbers]
    except (TypeError, ValueError):
        numbers = []
    if numbers and len(set(numbers)) == len(numbers) and all(0 < n < 2**31 for n in numbers):
        tags["InstanceNumbers"] = numbers
    # Each slice's tube current, for a relative low dose's fluxes (lowdose, scan_relative).
    currents = tube_currents(frames)
    if currents is not None:
        tags["TubeCurrents"] = currents
    padding = padding_hu(ds, frames)
    if padding is not None:
        tags["PixelPaddingHU"] = padding
    return tags


def _frame_window(ds: Any, frames: list) -> dict[str, Any]:
    """An Enhanced CT's window, which it keeps in the Frame VOI LUT functional group (shared,
    or the first frame's), not at the top level: a derived series lost it (code review)."""
    from denoisekit.io.dicom_scan import _group

    index = next((f.index for f in frames if f.index is not None), None)
    if index is None:
        return {}
    found = {}
    for keyword in ("WindowCenter", "WindowWidth"):
        value = _group(ds, index, "FrameVOILUTSequence", keyword)
        if value is not None and value != "":
            found[keyword] = plain(value)
    return found if len(found) == 2 else {}


def lossy(ds: Any, frames: list) -> dict[str, Any]:
    """LossyImageCompression "01", with the ratio and method where known, when any slice's
    pixels were compressed lossily (its file says so, or its transfer syntax is always lossy):
    PS3.3 C.7.6.1.1.5, once "01" an image and all derived from it stay "01". A derived series
    dropped it, and read as derived from lossless pixels (new-user pass). {} otherwise."""
    def syntax(header: Any) -> str:
        return str(getattr(getattr(header, "file_meta", None), "TransferSyntaxUID", ""))

    headers = [f.header for f in frames] or [ds]
    said = [h for h in headers if str(h.get("LossyImageCompression", "")).strip() == "01"]
    always = [h for h in headers if syntax(h) in ALWAYS_LOSSY]
    if not said and not always:
        return {}
    first = (said or always)[0]
    found: dict[str, Any] = {"LossyImageCompression": "01"}
    for keyword in ("LossyImageCompressionRatio", "LossyImageCompressionMethod"):
        value = first.get(keyword)
        value = None if value is None else plain(value)
        if value not in (None, "", []):
            found[keyword] = value if isinstance(value, list) else [value]
    ratios = found.get("LossyImageCompressionRatio", [])
    if "LossyImageCompressionMethod" not in found and len(ratios) <= 1 and syntax(first) in METHOD_OF_SYNTAX:
        found["LossyImageCompressionMethod"] = [METHOD_OF_SYNTAX[syntax(first)]]  # the one these pixels went through
    return found


def tube_currents(frames: list) -> list[float] | None:
    """Each slice's XRayTubeCurrent (mA) in ``frames``' order, where every slice has one above 0
    and the ``FLUX_ALIKE`` attributes do not vary: slice k's flux is then a scale that changes
    slowly along z (what kV and the rest give per mA, as the simulator reads it) times it.
    None otherwise, and for multi-frame files (their currents lie in functional groups)."""
    if not frames or any(frame.index is not None for frame in frames):
        return None
    currents = []
    for frame in frames:
        try:
            current = float(frame.header.get("XRayTubeCurrent"))
        except (TypeError, ValueError):  # absent, empty or not a number
            return None
        if not (math.isfinite(current) and current > 0):
            return None
        currents.append(current)
    for keyword in FLUX_ALIKE:
        if len({repr(plain(frame.header.get(keyword))) for frame in frames}) > 1:
            return None
    return currents


def padding_hu(ds: Any, frames: list) -> list[float] | None:
    """The source's PixelPaddingValue, then its PixelPaddingRangeLimit if any, in the volume's
    units (HU): they are stored values, and a derived series stores with its own rescale.
    None without one, or when the slices' rescales differ (no one value would say it)."""
    rescales = {(frame.slope, frame.intercept) for frame in frames}
    if "PixelPaddingValue" not in ds or len(rescales) != 1:
        return None
    (slope, intercept), = rescales
    signed = ds.get("PixelRepresentation") == 1
    ends = []
    for keyword in ("PixelPaddingValue", "PixelPaddingRangeLimit"):
        try:
            value = int(ds.get(keyword))
        except (TypeError, ValueError):  # absent, or not one number
            if keyword == "PixelPaddingValue":
                return None
            continue
        # a 16-bit US or SS whose VR a writer got wrong for the pixels' signedness
        if signed and value >= 2**15:
            value -= 2**16
        elif not signed and value < 0:
            value += 2**16
        ends.append(value * slope + intercept)
    return ends
