"""Text cut to what a header field holds: DICOM's LO and ST, NIfTI's descrip."""

from __future__ import annotations

import re

#: How ``noise.describe`` begins a step: a simulation ("noise lowdose seed=7 ..."), which every
#: description of what came of it must keep saying.
SIMULATED_STEP = re.compile(r"noise [A-Za-z0-9_.-]+ seed=\d+")


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
    return cut.rstrip().rstrip(",;:").rstrip() if words else cut.rstrip()  # not "... (weights: pretrained),"


#: Words an earlier step keeps when a chain of steps does not fit: what it was and its main
#: setting ("noise lowdose seed=0 dose=0.25").
STEP_WORDS = 4


def fit_steps(text: str, limit: int) -> str:
    """A chain of steps ("noise ...; denoised ...") in ``limit`` bytes: the latest as much as
    fits at whole words, each earlier one by its first ``STEP_WORDS`` words (while they leave the
    latest fewer than that, the oldest dropped first, a simulation last), so a denoised NIfTI
    still says its input was a simulated low dose, however many steps came after it. Without
    room for that, the latest alone."""
    if len(text.encode("utf-8")) <= limit:
        return text
    *earlier, latest = text.split("; ")
    earlier = [" ".join(step.split()[:STEP_WORDS]) for step in earlier]
    least = len(" ".join(latest.split()[:STEP_WORDS]).encode("utf-8"))
    while earlier:
        head = "; ".join(earlier) + "; "
        room = limit - len(head.encode("utf-8"))
        if room >= least:
            return head + fit(latest, room, words=True)
        earlier.pop(next((i for i, step in enumerate(earlier) if not SIMULATED_STEP.match(step)), 0))
    return fit(latest, limit, words=True)


#: How ``export`` describes a conversion, which changes no voxel worth a step in a chain.
CONVERTED = "converted by denoisekit"


def chain(*parts: str) -> str:
    """Steps (each part one or several, "; "-joined) in order, as one description; a
    conversion is left out when a step follows it ("converted ...; denoised tv" says no more
    than "denoised tv", in fields of 64 and 79 bytes)."""
    steps = [s.strip() for part in parts if part for s in part.split("; ") if s.strip()]
    kept = [s for i, s in enumerate(steps) if not (s.startswith(CONVERTED) and i + 1 < len(steps))]
    return "; ".join(kept)


#: The step a file's record gains when another tool changed its voxels after denoisekit wrote
#: it (``itk``): what was done before stays true; what came after is unknown.
CHANGED = "then changed by another tool"
