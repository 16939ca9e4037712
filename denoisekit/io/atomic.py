"""Outputs appear complete or not at all: write under a temporary name in the same
directory, then rename. An existing output is replaced only with ``force``."""

from __future__ import annotations

import json
import os
import secrets
import shutil
from collections.abc import Iterator
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


def refuse_existing(paths: list[Path], force: bool) -> None:
    """Raise before any work if an output exists and ``force`` is off."""
    if force:
        return
    for path in paths:
        if path.exists() or path.is_symlink():
            raise DenoiseKitError(f"{path} already exists (use --force to overwrite it)")


def publish(temp: Path, final: Path, force: bool) -> None:
    """Move a complete ``temp`` to ``final``; with ``force`` replace what is there, restoring
    it if the move fails."""
    if not (final.exists() or final.is_symlink()):
        os.rename(temp, final)
        return
    if not force:
        raise DenoiseKitError(f"{final} already exists (use --force to overwrite it)")
    backup = temp_sibling(final, "old")
    os.rename(final, backup)
    try:
        os.rename(temp, final)
    except BaseException:
        os.rename(backup, final)
        raise
    remove(backup)


def write_json_temp(data: Any, final: Path) -> Path:
    """Write ``data`` as JSON to a temporary sibling of ``final``; return its path."""
    temp = temp_sibling(final)
    text = json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"
    with open(temp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
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
