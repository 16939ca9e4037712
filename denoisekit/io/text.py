"""Text cut to what a header field holds: DICOM's LO and ST, NIfTI's descrip."""

from __future__ import annotations


def fit(text: str, limit: int, words: bool = False) -> str:
    """``text`` cut to at most ``limit`` bytes in UTF-8, never inside a character (fields count
    bytes, and 64 characters of 'ü' are 128 bytes), nor, with ``words``, inside a word where a
    space comes early enough ("i0=200000.0", not "electronic_noise=")."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    cut = data[:limit].decode("utf-8", "ignore")
    if words and data[limit:limit + 1] != b" " and " " in cut[limit // 2:]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip()
