"""Outputs appear complete or not at all: write under a temporary name in the same
directory, then rename. An existing output is replaced only with ``force``, and only when it
is what denoisekit would have written there (``refuse_foreign``): never someone's data."""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from denoisekit.errors import DenoiseKitError


def temp_sibling(final: Path, kind: str = "partial") -> Path:
    """A hidden name next to ``final`` keeping its suffix (SimpleITK picks the format by it)."""
    return final.with_name(f".{kind}-{secrets.token_hex(4)}-{final.name}")


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


#: The slice files ``dicom_write.write_series`` puts in a series directory.
SERIES_FILE = re.compile(r"IM\d{5,}\.dcm")


def refuse_foreign(path: Path, series: bool, *, output: Path | None = None) -> None:
    """Raise unless an existing ``path`` is what denoisekit would write there, so that
    ``--force`` replaces an earlier output and never someone's data:

    - a DICOM series output (``series``) replaces only a directory holding nothing but our
      slice files (``IM00001.dcm``..., each with the DICOM preamble), or an empty one;
    - a file output (NIfTI, NRRD, MHA, a JSON sidecar) replaces only a regular file of that
      format (by its content: ``notes.txt`` renamed ``out.nii.gz`` stays); a JSON file only if
      it is a sidecar denoisekit wrote (``is_our_sidecar``): a ``study.json`` beside
      ``study.nii.gz`` may be another tool's (dcm2niix writes exactly that pair);
    - so a directory never replaces a file, nor a file a directory;
    - a symbolic link is replaced as a link: what it points to is never touched.

    ``output``: the output a JSON ``path`` would be the sidecar of, named in the refusal.
    """
    if path.is_symlink() or not path.exists():
        return
    if not series:
        if not path.is_file():
            what = "a directory" if path.is_dir() else "not a regular file"
            raise DenoiseKitError(f"{path} is {what}: not replaced by a file; choose another --output")
        kind = _format_of(path)
        if kind is not None and not _is_format(path, kind):
            raise DenoiseKitError(f"{path} is not a {kind} file: not replaced; choose another --output")
        if kind == "JSON" and not is_our_sidecar(path):
            raise DenoiseKitError(f"{path} is not a denoisekit sidecar: not replaced (it would be the sidecar of "
                                  f"{_named(output)}); choose another --output")
        return
    if not path.is_dir():
        raise DenoiseKitError(f"{path} is a file, not a DICOM series directory: not replaced; choose another --output")
    refuse_foreign_folder(path, _ours)


#: Keys only denoisekit's sidecars carry: the output's name (``write_volume``), and the
#: version in every noise record (the only sidecar written before ``sidecar_of``).
SIDECAR_KEYS = ("sidecar_of", "denoisekit_version")


def is_our_sidecar(path: Path) -> bool:
    """Whether ``path`` holds a JSON object denoisekit wrote as a sidecar: that it parses is
    not enough, any tool's metadata does."""
    from denoisekit.io.paths import read_sidecar

    return any(key in (read_sidecar(path) or {}) for key in SIDECAR_KEYS)


def _named(output: Path | None) -> str:
    return "the output" if output is None else Path(output).name


def _exists_message(path: Path, output: Path | None) -> str:
    """Without ``--force``: a sidecar is named as one, or the user looks for an output there."""
    if _format_of(path) == "JSON" and not path.is_dir():
        return f"{path} (the sidecar of {_named(output)}) already exists; --force replaces it"
    return f"{path} already exists (use --force to overwrite it)"


def refuse_foreign_folder(path: Path, ours: Callable[[os.DirEntry], bool]) -> None:
    """Raise, naming them, if the folder ``path`` holds entries that ``ours`` does not claim."""
    with os.scandir(path) as entries:
        foreign = sorted(e.name + ("/" if e.is_dir(follow_symlinks=False) else "") for e in entries if not ours(e))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise DenoiseKitError(f"{path} holds other files ({shown}): not replaced; choose another --output")


def _format_of(path: Path) -> str | None:
    name = path.name.lower()
    for suffix, kind in ((".nii.gz", "NIfTI"), (".nii", "NIfTI"), (".nrrd", "NRRD"), (".mha", "MetaImage"),
                         (".json", "JSON")):
        if name.endswith(suffix):
            return kind
    return None


def _is_format(path: Path, kind: str) -> bool:
    """Whether ``path`` holds a file of ``kind`` (its first bytes; JSON: that it parses)."""
    try:
        if kind == "JSON":
            json.loads(path.read_text(encoding="utf-8"))
            return True
        if kind == "NIfTI":
            from denoisekit.io.itk import open_nifti

            with open_nifti(path) as found:
                return found is not None
        with open(path, "rb") as fh:
            head = fh.read(600)
        if kind == "NRRD":
            return head.startswith(b"NRRD")
        return b"NDims" in head or b"ObjectType" in head  # MetaImage's text header
    except (OSError, ValueError, EOFError):
        return False


#: Files a desktop leaves in any folder it shows: not data, so they do not make a folder foreign.
DESKTOP_FILES = {".DS_Store", "Thumbs.db", "desktop.ini"}


def _ours(entry: os.DirEntry) -> bool:
    """A slice file denoisekit writes (named so, a regular DICOM file whose Manufacturer is
    denoisekit: other tools name slices IM00001.dcm too), or a desktop's metadata file."""
    if entry.name in DESKTOP_FILES and entry.is_file(follow_symlinks=False):
        return True
    if not (SERIES_FILE.fullmatch(entry.name) and entry.is_file(follow_symlinks=False)):
        return False
    try:
        with open(entry.path, "rb") as fh:
            if fh.read(132)[128:] != b"DICM":
                return False
        import pydicom

        header = pydicom.dcmread(entry.path, stop_before_pixels=True, specific_tags=["Manufacturer"])
        return str(header.get("Manufacturer", "")) == "denoisekit"
    except Exception:  # noqa: BLE001 - unreadable: not ours
        return False


def refuse_existing(paths: list[Path], force: bool, *, series: bool = False, output: Path | None = None) -> None:
    """Raise before any work if an output exists and is not ours to replace (see
    ``refuse_foreign``; ``series``: the outputs are DICOM series directories) or ``force``
    is off. ``output``: the output that JSON ``paths`` are the sidecar of."""
    for path in paths:
        if path.exists() or path.is_symlink():
            refuse_foreign(path, series, output=output)
            if not force:
                raise DenoiseKitError(_exists_message(path, output))


def publish(temp: Path, final: Path, force: bool, *, series: bool | None = None, output: Path | None = None) -> None:
    """Move a complete ``temp`` to ``final``; with ``force`` replace what is there, restoring
    it if the move fails. ``series`` (True: a DICOM series directory, False: a file) checks
    again that what is there is ours to replace (``refuse_foreign``; ``output`` as there);
    None leaves that to a caller owning its own layout."""
    if not (final.exists() or final.is_symlink()):
        os.rename(temp, final)
        return
    if series is not None:
        refuse_foreign(final, series, output=output)
    if not force:
        raise DenoiseKitError(_exists_message(final, output) if series is not None else
                              f"{final} already exists (use --force to overwrite it)")
    backup = temp_sibling(final, "old")
    os.rename(final, backup)
    try:
        os.rename(temp, final)
    except BaseException:
        os.rename(backup, final)
        raise
    remove(backup)


def write_json_temp(data: Any, final: Path) -> Path:
    """Write ``data`` as JSON to a temporary sibling of ``final``; return its path. A write
    that fails (a full disk) leaves no temporary file behind."""
    temp = temp_sibling(final)
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    try:
        with open(temp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        remove(temp)
        raise
    return temp


@contextmanager
def replacing(final: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``final`` to write; when the block succeeds it replaces
    ``final`` in one rename, otherwise it is removed. For files a run rewrites on purpose
    (checkpoints, metrics, weights); user-facing outputs go through ``publish``."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    temp = temp_sibling(final)
    try:
        yield temp
        os.replace(temp, final)
    except BaseException:
        remove(temp)
        raise
