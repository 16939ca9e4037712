"""Which format a path means, and where outputs go by default.

Light on purpose (no numpy/pydicom/SimpleITK): the CLI calls these before reading.
"""

from __future__ import annotations

from pathlib import Path

# Formats SimpleITK reads and writes for us, longest suffix first.
ITK_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".mha")
# Readable only: a header beside a raw file cannot be written atomically as one file.
ITK_READ_ONLY_SUFFIXES = (".mhd", ".nhdr")
# File suffixes that a user might mistake for a writable single-file output (any other name
# is a DICOM directory, so `-o out.txt` would otherwise quietly become one).
_NOT_WRITABLE = (".dcm", ".dicom", ".ima", ".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif",
                 ".npy", ".npz", ".hdr", ".img", ".raw", ".json", ".txt", ".csv", ".xml", ".h5", ".mat",
                 ".gz", ".zip", ".tar") + ITK_READ_ONLY_SUFFIXES


def itk_suffix(path: str | Path) -> str | None:
    """The SimpleITK format suffix of ``path`` ('.nii.gz', '.nrrd', ...) or None."""
    name = Path(path).name.lower()
    for suffix in ITK_SUFFIXES + ITK_READ_ONLY_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return suffix
    return None


def format_name(suffix: str) -> str:
    """How messages and descriptions name the format of an ``itk_suffix``: NIfTI, NRRD, MHA."""
    return {".nii": "NIfTI", ".nii.gz": "NIfTI", ".nhdr": "NRRD"}.get(suffix, suffix[1:].upper())


def output_kind(path: str | Path) -> str:
    """'nifti', 'nrrd', 'mha' (single files) or 'dicom' (a directory: a DICOM series)."""
    from denoisekit.errors import UsageError

    suffix = itk_suffix(path)
    if suffix in (".nii", ".nii.gz"):
        return "nifti"
    if suffix in (".nrrd", ".mha"):
        return suffix[1:]
    lowered = Path(path).name.lower()
    if suffix is not None or any(lowered.endswith(s) for s in _NOT_WRITABLE):
        raise UsageError(  # the path asked for, whatever the input
            f"cannot write {Path(path).name}: use a directory (DICOM series), .nii/.nii.gz, .nrrd or .mha"
        )
    return "dicom"


def strip_suffix(path: str | Path) -> Path:
    """``path`` without its format suffix: out.nii.gz -> out, out_dir/ -> out_dir."""
    path = Path(path)
    suffix = itk_suffix(path)
    return path.with_name(path.name[: -len(suffix)]) if suffix else path


def sidecar_path(output: str | Path) -> Path:
    """Where the JSON sidecar of ``output`` goes: out.nii.gz -> out.json, out_dir/ -> out_dir.json."""
    base = strip_suffix(output)
    return base.with_name(base.name + ".json")


def sidecar_owners(output: str | Path) -> list[Path]:
    """Other existing outputs whose sidecar is ``output``'s (``x/``, ``x.nii.gz``, ``x.nrrd``...
    all map to ``x.json``): a sidecar there may be theirs, so not ``output``'s to replace. A
    sidecar names its output (``sidecar_of``); for an older one, sharing its path is what counts."""
    import os

    output = Path(output)
    side = sidecar_path(output)
    if not side.exists():
        return []
    recorded = _recorded_output(side)
    if recorded is not None:  # it says whose it is: another's only while that one exists
        other = side.with_name(recorded)
        return [other] if recorded != output.name and other.exists() and not _same(other, output) else []
    base = strip_suffix(output).name.casefold()  # a case-insensitive disk maps X.nrrd to x.json too
    owners = []
    with os.scandir(side.parent) as entries:
        for entry in entries:
            other = Path(entry.path)
            if entry.name == output.name or strip_suffix(other).name.casefold() != base or not _is_output(entry):
                continue
            theirs = sidecar_path(other)
            if theirs.exists() and os.path.samefile(theirs, side) and not _same(other, output):
                owners.append(other)
    return sorted(owners)


def read_sidecar(side: Path) -> dict | None:
    """A sidecar's JSON object, or None for a file that is missing, unreadable or no JSON object."""
    import json

    try:
        data = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _recorded_output(side: Path) -> str | None:
    """The output name a sidecar records (``sidecar_of``); None for older sidecars."""
    name = (read_sidecar(side) or {}).get("sidecar_of")
    return name if isinstance(name, str) and name and "/" not in name and "\\" not in name else None


def _is_output(entry) -> bool:
    """Whether a directory entry is what denoisekit writes: a directory (a DICOM series) or a
    file of a writable format."""
    suffix = itk_suffix(entry.name)
    return entry.is_dir() if suffix is None else suffix in ITK_SUFFIXES and entry.is_file()


def _same(a: Path, b: Path) -> bool:
    import os

    return a.exists() and b.exists() and os.path.samefile(a, b)


def default_output(input_path: str | Path, tag: str) -> Path:
    """An output next to the input, named after it and ``tag``, in the input's format.

    ``scan/`` -> ``scan_<tag>/``; ``a.nii.gz`` -> ``a_<tag>.nii.gz``; a single DICOM file
    ``x.dcm`` -> ``x_<tag>/`` (outputs from DICOM are always a series directory).
    """
    path = Path(input_path)
    if path.name in ("", ".", ".."):
        path = path.resolve()
    suffix = itk_suffix(path)
    if suffix in ITK_SUFFIXES:
        return path.with_name(f"{path.name[: -len(suffix)]}_{tag}{suffix}")
    if suffix in ITK_READ_ONLY_SUFFIXES:  # .mhd/.nhdr in, single-file equivalent out
        return path.with_name(f"{path.name[: -len(suffix)]}_{tag}" + (".mha" if suffix == ".mhd" else ".nrrd"))
    if path.is_dir():
        return path.with_name(f"{path.name}_{tag}")
    stem = path.name[: -len(path.suffix)] if path.suffix.lower() in (".dcm", ".dicom", ".ima") else path.name
    return path.with_name(f"{stem}_{tag}")
