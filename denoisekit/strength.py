"""How much of a model's correction to keep, slice by slice (``infer --strength``).

A model takes away what it learned to call noise. On scans unlike its training data, with
lighter noise or coarser pixels, it takes anatomy away too (docs/models.md, "Where the
pretrained weights fail"). The output ``x - a r``, with ``r = x - f(x)`` the model's
correction, keeps a fraction ``a`` of it. ``auto`` picks ``a`` per slice by Stein's unbiased
risk estimate (SURE), which needs no clean image: for noise of standard deviation ``s`` on
``N`` pixels,

    SURE(a) = a^2 |r|^2 - N s^2 + 2 s^2 ((1 - a) N + a div f)

is least at ``a = s^2 (1 - div f / N) / mean(r^2)``. Where the model removes about the noise
and no more, ``a`` comes out at 1 or above (clipped to 1: the model's output as is); where it
removes much more than the noise, ``a`` falls towards 0 and the input shows through. ``s``
is read from the slice (``denoisekit.noise_level``), ``div f`` from the model's answer to a
small random probe (Monte-Carlo SURE, Ramani et al., IEEE TIP 2008) on a few slices of the
volume. CT noise is correlated, and for noise of covariance S the term is ``tr(S J) / s^2``,
not ``tr(J)``: the probe is given the noise's power spectrum, read from the same slices
(``noise_level.noise_spectrum``; white where it cannot be read). How well ``a`` does is
measured in docs/models.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from denoisekit.errors import DenoiseKitError

if TYPE_CHECKING:
    import numpy as np

#: ``--strength`` default: chosen per slice by SURE.
AUTO = "auto"
#: Slices of a volume, evenly spaced, that the divergence probe runs on.
PROBE_SLICES = 4
#: The probe runs on the central square of this side (pixels) of each of them: the model's
#: divergence is local, and the centre of a CT slice is the patient.
PROBE_SIZE = 256
#: Standard deviation (HU) of the probe's random perturbation: small next to CT noise, large
#: next to float32 rounding of HU values.
PROBE_HU = 1.0
#: Auto keeping less than this (median over a volume's slices) is worth a note: the output is
#: mostly the input, which a user who asked for denoising should hear about.
LOW = 0.25


def parse_strength(text: str | float) -> str | float:
    """``auto`` or a fraction in [0, 1], from the command line or a caller."""
    if isinstance(text, str) and text.strip().lower() == AUTO:
        return AUTO
    try:
        if isinstance(text, str) and "_" in text:  # float() reads "1_0" as 10
            raise ValueError
        value = float(text) + 0.0  # + 0.0: -0 is 0
    except ValueError:
        raise DenoiseKitError(f"strength must be 'auto' or a number from 0 to 1, got '{text}'") from None
    if not 0.0 <= value <= 1.0:
        raise DenoiseKitError(f"strength must be from 0 (the input) to 1 (the model's output), got {value:g}")
    return value


def probe_slices(array: np.ndarray) -> np.ndarray:
    """The central ``PROBE_SIZE`` square of up to ``PROBE_SLICES`` evenly spaced slices."""
    import numpy as np

    from denoisekit.noise_level import evenly_spaced

    nz, ny, nx = array.shape
    picks = evenly_spaced(nz, PROBE_SLICES)
    y0, x0 = max(0, (ny - PROBE_SIZE) // 2), max(0, (nx - PROBE_SIZE) // 2)
    return np.array(array[picks, y0 : y0 + PROBE_SIZE, x0 : x0 + PROBE_SIZE], dtype=np.float32)


def probe_spectrum(slices: np.ndarray) -> np.ndarray | None:
    """The noise's power spectrum shape (``noise_level.noise_spectrum``), averaged over the
    probe slices that have enough flat soft tissue to read it; None where none has."""
    import numpy as np

    from denoisekit.noise_level import noise_spectrum

    spectra = [s for s in (noise_spectrum(x) for x in slices) if s is not None]
    return np.mean(spectra, axis=0) if spectra else None


def colored(white: np.ndarray, spectrum: np.ndarray) -> np.ndarray:
    """Unit-variance noise with ``spectrum``'s shape, made from white noise slice by slice."""
    import numpy as np

    from denoisekit.noise_level import spectrum_on

    gain = np.sqrt(spectrum_on(spectrum, white.shape[1:]))
    return np.real(np.fft.ifft2(np.fft.fft2(white, axes=(1, 2)) * gain, axes=(1, 2))).astype(np.float32)


def divergence(run: Callable[[np.ndarray], np.ndarray], slices: np.ndarray, seed: int = 0,
               spectrum: np.ndarray | None = None) -> float:
    """The model's divergence per pixel at ``slices``: how much of a small perturbation of
    its input passes to its output (1 for the identity, 0 for a constant), averaged over the
    pixels that are not flat padding. One random probe, seeded, so inference is repeatable.

    With the noise's ``spectrum`` the probe has its correlation: SURE for correlated noise of
    covariance S needs tr(S J), not tr(J), and a probe b with that covariance (per pixel
    variance 1) gives E[b . J b] = tr(S J) / s^2 (Ramani et al. 2008, for colored noise)."""
    import numpy as np

    from denoisekit.noise_level import FLAT_BELOW_HU

    probe = np.random.default_rng(seed).standard_normal(slices.shape).astype(np.float32)
    if spectrum is not None:
        probe = colored(probe, spectrum)
    moved = run(slices + PROBE_HU * probe) - run(slices)
    keep = (slices > FLAT_BELOW_HU) & np.isfinite(moved)  # a NaN voxel must not spoil every slice
    if not keep.any():
        return 0.0
    return float(np.sum((probe * moved)[keep], dtype=np.float64) / PROBE_HU / keep.sum())


def sure_strength(noisy: np.ndarray, denoised: np.ndarray, div: float) -> float:
    """The SURE-optimal fraction (clipped to [0, 1]) of ``noisy - denoised`` to keep for
    one slice, given the model's divergence per pixel ``div``."""
    import numpy as np

    from denoisekit.noise_level import FLAT_BELOW_HU, estimate_noise_hu

    keep = (noisy > FLAT_BELOW_HU) & np.isfinite(denoised)
    if not keep.any():
        return 0.0  # all padding or clipped air: no noise to take away, so the input stays
    r = (noisy - denoised)[keep].astype(np.float64)
    power = float(np.mean(r * r))
    sigma = estimate_noise_hu(noisy)
    if not power > 0.0 or not np.isfinite(sigma):
        return 1.0  # nothing removed, or no reading of the noise (non-finite voxels): as it is
    return float(np.clip(sigma * sigma * (1.0 - div) / power, 0.0, 1.0))


def summary(strengths: list[float]) -> str:
    """``median 0.84 (0.31-1.00)``: what auto chose over a volume's slices."""
    import numpy as np

    if not strengths:
        return "no slices"
    a = np.asarray(strengths)
    if a.min() == a.max():
        return f"{a[0]:.2f}"
    return f"median {np.median(a):.2f} ({a.min():.2f}-{a.max():.2f})"


def low_strength_note(model: str, strengths: list[float], trained: bool = True) -> str | None:
    """Why the output is mostly the input, when auto kept little of the correction (a
    classical filter has no training data to be unlike)."""
    import numpy as np

    if not strengths or float(np.median(strengths)) >= LOW:
        return None
    median = "a median " if len(strengths) > 1 else ""
    why = "a scan with little noise, or unlike its training data" if trained else "a scan with little noise"
    return (f"--strength auto kept {median}{float(np.median(strengths)):.0%} of {model}'s correction: it would "
            f"take away much more than the noise read from this scan ({why}), "
            "so the output is mostly the input. --strength 1 gives the model's output as it is.")
