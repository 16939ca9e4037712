"""DICOM in: a directory (searched recursively) or a single file, classic or
multi-frame (Enhanced CT), into a Volume in Hounsfield units.

Two passes: headers only (order, checks, refusals), then pixels slice by slice into one
preallocated float32 array, so peak memory stays close to the volume's own size.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from denoisekit.errors import DenoiseKitError
from denoisekit.io.dicom_scan import (
    Frame, Series, candidate_files, is_dicom, not_hu, rescale_type, scan, select_series, without_rescale,
)
from denoisekit.io.dicom_tags import source_tags
from denoisekit.io.geometry import ORIENTATION_TOLERANCE, order_stack
from denoisekit.volume import Volume

#: Modalities read as CT: CT itself, and "other" or none, which CT-derived images may carry.
CT_MODALITIES = ("CT", "OT", "")
#: CT Image, Enhanced CT and Legacy Converted Enhanced CT storage: read whatever the Modality
#: (cone-beam CT from C-arm or dental systems may say XA or IO).
CT_STORAGE = ("1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.2.2")

Note = Callable[[str], None]
Progress = Callable[[int, int], None]


def find_series(path: Path, series: str | None, note: Note) -> Series:
    """The series to read from a directory or a single DICOM file."""
    if path.is_dir():
        files = candidate_files(path)
        if not files:
            raise DenoiseKitError(f"{path} is empty: no files to read")
        return select_series(scan(files, note), series, path)
    if not is_dicom(path):
        raise DenoiseKitError(
            f"{path} is not a DICOM file (no 'DICM' preamble nor a dataset at its start) "
            "nor a .nii/.nii.gz/.nrrd/.mha/.mhd file"
        )
    found = scan([path], note)
    if not found:
        raise DenoiseKitError(f"{path} holds no image (it is a non-image DICOM object)")
    return select_series(found, series, path)


def check_decoders(transfer_syntaxes: set[str]) -> None:
    """Refuse before reading any pixels when a transfer syntax cannot be decoded."""
    from pydicom.pixels import get_decoder
    from pydicom.uid import UID

    for value in sorted(transfer_syntaxes):
        uid = UID(value)
        if not uid.is_transfer_syntax:
            raise DenoiseKitError(f"unknown transfer syntax {value}")
        if not uid.is_compressed:
            continue
        try:
            decoder = get_decoder(uid)
        except NotImplementedError:
            raise DenoiseKitError(f"transfer syntax '{uid.name}' ({uid}) is not supported: no decoder exists for it") from None
        if not decoder.is_available:
            missing = "; ".join(f"{k}: {', '.join(v)}" for k, v in decoder.missing_dependencies.items()) if hasattr(decoder, "missing_dependencies") else ""
            raise DenoiseKitError(
                f"transfer syntax '{uid.name}' ({uid}) needs a decoder that is not installed"
                + (f" ({missing})" if missing else "")
            )


def _differ(frames: list[Frame], values: list[str], what: str) -> DenoiseKitError:
    """The refusal of slices that differ in ``what``: how many have each value, most first, and
    where the others are ('5 are 128x128, 1 is 64x128 (IM0003.dcm)'), so the stray file of a
    300-file folder can be found."""
    groups: dict[str, list[Frame]] = {}
    for frame, value in zip(frames, values):
        groups.setdefault(value, []).append(frame)
    ranked = sorted(groups.items(), key=lambda item: -len(item[1]))
    parts = []
    for i, (value, group) in enumerate(ranked[:3]):
        first = group[0]
        where = str(first.path) + ("" if first.index is None else f" frame {first.index + 1}")
        where = "" if i == 0 else f" ({where}" + (f" and {len(group) - 1} more)" if len(group) > 1 else ")")
        parts.append(f"{len(group)} {'is' if len(group) == 1 else 'are'} {value}{where}")
    if len(ranked) > 3:
        parts.append(f"{sum(len(g) for _, g in ranked[3:])} have {len(ranked) - 3} other values")
    return DenoiseKitError(f"the slices have different {what}: {', '.join(parts)}; they do not form one volume")


def _check_uniform(frames: list[Frame]) -> None:
    sizes = [f"{f.rows}x{f.columns}" for f in frames]
    if len(set(sizes)) > 1:
        raise _differ(frames, sizes, "sizes (rows x columns)")
    orientations = np.array([f.orientation for f in frames], dtype=float)
    if np.all(np.isfinite(orientations)) and np.abs(orientations - orientations[0]).max() > ORIENTATION_TOLERANCE:
        shown = ["(" + ", ".join(f"{v:.3g}" for v in np.round(o, 3) + 0.0) + ")" for o in orientations]
        raise _differ(frames, shown, "orientations (ImageOrientationPatient)")
    spacings = np.array([f.pixel_spacing for f in frames])
    if not np.all(np.isfinite(spacings)) or (spacings <= 0).any():
        bad = next(f for f in frames if not all(np.isfinite(f.pixel_spacing)) or min(f.pixel_spacing) <= 0)
        raise DenoiseKitError(f"{bad.path}: PixelSpacing {[float(v) for v in bad.pixel_spacing]} is not a size in mm; "
                              "the geometry cannot be trusted")
    for f in frames:
        if not (np.isfinite(f.slope) and f.slope != 0 and np.isfinite(f.intercept)):
            raise DenoiseKitError(f"{f.path}: RescaleSlope {f.slope:g} and RescaleIntercept {f.intercept:g} "
                                  "cannot give the stored values' real units")
    if np.abs(spacings - spacings[0]).max() > 1e-4 * max(1.0, float(spacings[0].max())):
        raise _differ(frames, [f"{s[0]:.4g}\\{s[1]:.4g} mm" for s in spacings], "PixelSpacing")


def _check_pixel_bytes(frames: list[Frame], note: Callable[[str], None]) -> None:
    """Refuse native pixel data shorter than Rows x Columns x frames x BitsAllocated, or longer
    by a row or a column or more: the header's image size is wrong, and pydicom would read it
    with a wrong geometry (dropping the excess) or fail obscurely. A smaller excess (trailing
    bytes some writers leave) is noted and dropped. Encapsulated data is not checked."""
    from pydicom.uid import UID

    seen: set[Path] = set()
    for f in frames:
        if f.path in seen or f.pixel_bytes is None:
            continue
        seen.add(f.path)
        header = f.header
        if UID(str(header.file_meta.get("TransferSyntaxUID", ""))).is_encapsulated:
            continue
        try:
            bits = int(header.get("BitsAllocated"))
            n_frames = int(header.get("NumberOfFrames", 1) or 1)
        except (TypeError, ValueError):
            continue  # the decoder names what is missing
        expected = -(-f.rows * f.columns * n_frames * bits // 8)
        if f.pixel_bytes in (expected, expected + expected % 2):
            continue
        line = -(-min(f.rows, f.columns) * bits // 8)  # the least a wrong Rows or Columns adds
        if expected < f.pixel_bytes < expected + line:
            note(f"{f.path}: {f.pixel_bytes - expected} bytes after the image's {expected} in PixelData "
                 "are ignored")
            continue
        why = "the file is truncated or its" if f.pixel_bytes < expected else "its"
        raise DenoiseKitError(
            f"{f.path}: PixelData holds {f.pixel_bytes} bytes but the header's Rows x Columns x frames x BitsAllocated "
            f"({f.rows} x {f.columns} x {n_frames} x {bits} bits) make {expected}; {why} image size is wrong"
        )


def read_dicom(
    path: Path,
    series: str | None = None,
    *,
    allow_irregular: bool = False,
    allow_tilt: bool = False,
    note: Note = lambda message: None,
    progress: Progress | None = None,
    pixels: bool = True,
) -> Volume:
    """``pixels=False``: the headers only (geometry and tags); the array is a read-only view
    of one zero, no memory and no decoder needed."""
    chosen = find_series(path, series, note)
    modality = chosen.modality.strip().upper()
    sop_class = str(chosen.frames[0].header.get("SOPClassUID", "")) if chosen.frames else ""
    if modality not in CT_MODALITIES and sop_class not in CT_STORAGE:
        # An MR or PET series would come out as a CT series claiming Hounsfield units.
        raise DenoiseKitError(f"series {chosen.uid} is {modality} (Modality), not CT: denoisekit reads CT only")
    frames = chosen.frames
    localizers = [f for f in frames if f.localizer]
    if localizers and len(localizers) < len(frames):
        frames = [f for f in frames if not f.localizer]
        note(f"skipped {len(localizers)} localizer image(s) in series {chosen.uid}")
    _check_uniform(frames)
    why = not_hu(frames[0].header)
    if why is not None:
        note(f"series {chosen.uid}: the pixel values are not Hounsfield units ({why}); "
             "denoisekit's noise and models assume HU")
    if pixels:
        check_decoders(chosen.transfer_syntaxes)
        _check_pixel_bytes(frames, note)
    first = frames[0]
    stack = order_stack(
        [f.position for f in frames],
        [f.orientation for f in frames],
        single_slice_spacing=first.spacing_between or first.thickness or 1.0,
        allow_irregular=allow_irregular,
        allow_tilt=allow_tilt,
    )
    for message in stack.notes:
        note(message)
    ordered = [frames[i] for i in stack.order]
    shape = (len(ordered), first.rows, first.columns)
    if pixels:
        array = np.empty(shape, dtype=np.float32)
        _fill(array, ordered, progress)
        _say_missing_rescale(chosen.uid, ordered, array, note)
    else:
        array = np.broadcast_to(np.float32(0), shape)
    tags = source_tags(ordered[0].header, ordered)
    if why is not None:  # a derived series must not claim HU for, say, a perfusion map
        tags["RescaleType"] = rescale_type(ordered[0].header)
    if stack.positions is not None:
        tags["SlicePositions"] = stack.positions
    else:  # each slice's own position, as the scan wrote it: a derived series writes it again
        tags["SourcePositions"] = [[float(v) for v in f.position] for f in ordered]
    return Volume(
        array=array,
        spacing=(float(first.pixel_spacing[1]), float(first.pixel_spacing[0]), stack.spacing_z),
        origin=stack.origin,
        direction=stack.direction,
        tags=tags,
        source=str(path),
    )


def _say_missing_rescale(uid: str, ordered: list[Frame], array: np.ndarray, note: Note) -> None:
    """A note where slices have no RescaleIntercept, and what their values look like: stored
    values read as HU put air near 0 and shift every value by 1024 HU, and nothing said so (a
    NIfTI of the same values did: new-user pass)."""
    missing = sum(without_rescale(f) for f in ordered)
    if not missing:
        return
    from denoisekit.io.itk import not_hu as values_not_hu

    seen = values_not_hu(array)
    note(f"series {uid}: {missing} of {len(ordered)} slice(s) have no RescaleIntercept (CT images must): "
         + (seen or "their stored values are taken as HU"))


def _fill(array: np.ndarray, ordered: list[Frame], progress: Progress | None) -> None:
    """Decode each file once, rescale each frame to HU into its slot of ``array``."""
    slots: dict[Path, list[tuple[int, Frame]]] = {}
    for k, frame in enumerate(ordered):
        slots.setdefault(frame.path, []).append((k, frame))
    done = 0
    for file_path, items in slots.items():
        for k, frame, pixels in _decode(file_path, items):
            if pixels.shape != array.shape[1:]:
                raise DenoiseKitError(f"{file_path}: pixel data has shape {pixels.shape}, header says {array.shape[1:]}")
            if float(frame.slope).is_integer() and float(frame.intercept).is_integer():
                array[k] = pixels  # integer rescale is exact in float32: no temporaries
                array[k] *= frame.slope
                array[k] += frame.intercept
            else:
                array[k] = pixels.astype(np.float64) * frame.slope + frame.intercept
            done += 1
            if progress is not None:
                progress(done, len(ordered))


def _decode(file_path: Path, items: list[tuple[int, Frame]]):
    import pydicom
    from pydicom.pixels import iter_pixels, pixel_array
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    header = items[0][1].header
    # Decoding from the path reads only the pixel data; a deflated file must be inflated whole.
    # The transfer syntax is the header's: a file without file meta has it from read_header.
    source = file_path
    syntax = header.file_meta.get("TransferSyntaxUID")
    options = {"transfer_syntax_uid": syntax}
    if syntax == DeflatedExplicitVRLittleEndian:
        source, options = pydicom.dcmread(file_path), {}
    try:
        if items[0][1].index is None:
            (k, frame), = items
            yield k, frame, pixel_array(source, **options)
            return
        items = sorted(items, key=lambda item: item[1].index)
        frames = iter_pixels(source, indices=[f.index for _, f in items], **options)
        for (k, frame), pixels in zip(items, frames):
            yield k, frame, pixels
    except DenoiseKitError:
        raise
    except Exception as exc:  # noqa: BLE001 - decoders raise many types for broken data
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if ("PixelData" in message or "Pixel Data" in message) and re.search(r"\bno\b|missing", message, re.I):
            raise DenoiseKitError(f"{file_path} has no pixel data ({message})") from exc
        raise DenoiseKitError(f"cannot decode the pixels of {file_path}: {message}") from exc
