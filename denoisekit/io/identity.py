"""Which file a volume with no DICOM study came from, as a few hex digits of its content.

A NIfTI (NRRD, MHA) carries no patient or study. A DICOM series written from one takes its
study, frame of reference and patient from this identity, so every series made from one file,
and from the files denoisekit makes of it (``noise``, ``infer``, ``export`` to NIfTI, which
record the identity beside their mark in ``aux_file``), files into one study in a PACS, and
files that differ never share one. Read when a file is written, not on every read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

#: Hex digits kept (52 bits): what NIfTI's 24-byte ``aux_file`` holds beside denoisekit's mark and digest.
DIGITS = 13
#: The volume tag a read file's recorded identity comes back in.
TAG = "SourceIdentity"


def file_identity(path: str | Path | None) -> str | None:
    """The first ``DIGITS`` hex digits of the file's BLAKE2b, or None for no file."""
    import hashlib

    if not path or not Path(path).is_file():
        return None
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 24):
            h.update(chunk)
    return h.hexdigest()[:DIGITS]


def volume_identity(volume: Any) -> str | None:
    """The identity a volume's outputs share: None for a DICOM source (it has its own study),
    else the one its file recorded (made by denoisekit from another file), else its file's."""
    tags = volume.tags
    if tags.get("StudyInstanceUID") or tags.get("SeriesInstanceUID"):
        return None
    return tags.get(TAG) or file_identity(volume.source)
