"""``noise``: write a noisy copy of a volume, with the parameters that reproduce it."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from denoisekit.cli import app
from denoisekit.cli.common import (
    ForceOpt,
    JsonOpt,
    PluginOptionOpt,
    QuietOpt,
    err_console,
    flag_options,
    note_to,
    output_option,
    print_json,
    slice_progress,
    status,
)
from denoisekit.cli.io_options import AllowIrregularOpt, AllowTiltOpt, InputArg, SeriesOpt
from denoisekit.plugins import complete, get_noises

NoiseOutputOpt = output_option(
    "<input>_noise-<kind> next to the input (<input>_series-<S>_noise-<kind> with --series S), in its "
    "format (a DICOM input gives a series directory)"
)


@app.command()
def noise(
    input_path: InputArg,
    kind: Annotated[
        str,
        typer.Option(
            "--kind", "-k", help="Noise kind: gaussian, poisson, lowdose, ... (see 'denoisekit noises').",
            autocompletion=complete(get_noises), show_default=False,
        ),
    ],
    output: NoiseOutputOpt = None,
    seed: Annotated[int, typer.Option("--seed", min=0, metavar="<int>", help="Random seed: the same seed gives the same noise.")] = 0,
    sigma: Annotated[
        Optional[float], typer.Option("--sigma", help="gaussian: noise std in HU (default 25).", show_default=False)
    ] = None,
    dose: Annotated[
        Optional[float],
        typer.Option(
            "--dose",
            help="lowdose: the dose as a fraction of --i0's (default 0.25), as training and the benchmark simulate "
            "on clean images; with --scan-relative, a fraction of the scan's own dose.",
            show_default=False,
        ),
    ] = None,
    scan_relative: Annotated[
        bool,
        typer.Option(
            "--scan-relative",
            help="lowdose: --dose is a fraction of the scan's own dose: each slice's own noise, read in its soft "
            "tissue, grows as 1/sqrt(dose) (0.25 doubles it). Needs soft tissue and a dose below 1.",
        ),
    ] = False,
    i0: Annotated[
        Optional[float],
        typer.Option("--i0", help="lowdose: full-dose photons per detector bin and view.", show_default=False),
    ] = None,
    aec: Annotated[
        Optional[str],
        typer.Option(
            "--aec",
            help="lowdose, mixed: tube-current modulation as scanners do it: off (default; one flux for every "
            "slice), z (each slice's flux follows its size, so shoulders and abdomen are not far noisier "
            "than the chest), angle, z+angle.",
            show_default=False,
        ),
    ] = None,
    option: PluginOptionOpt = None,
    series: SeriesOpt = None,
    allow_irregular: AllowIrregularOpt = False,
    allow_tilt: AllowTiltOpt = False,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Add simulated noise to a CT volume (DICOM, NIfTI, NRRD or MHA, in and out).

    The output goes next to the input unless -o says otherwise: scan/ gives scan_noise-lowdose/,
    a.nii.gz gives a_noise-lowdose.nii.gz. The noise parameters go into a JSON sidecar beside it
    (a_noise-lowdose.json), from which it can be reproduced, and into a DICOM output's derivation tags.

    --dose is a fraction of a reference flux (--i0, a chest protocol's), the same for every scan: right for
    clean references (training, the benchmark). A real scan already has noise of its own; --scan-relative
    makes --dose a fraction of that scan's own dose instead.

    Example: denoisekit noise scan/ --kind lowdose --dose 0.25 --scan-relative
    """
    import time

    from denoisekit.cli.io_options import read_input
    from denoisekit.errors import UsageError
    from denoisekit.io import check_output, default_output, sidecar_path, write_volume
    from denoisekit.noise import add_noise
    from denoisekit.plugins import get_noise

    cls = get_noise(kind)
    flags = flag_options(cls, option, sigma=sigma, dose=dose, i0=i0, aec=aec, scan_relative=scan_relative or None)
    noise_kind = cls.from_strings(option, **flags)
    if noise_kind.config.get("scan_relative") and (i0 is not None or any(o.startswith("i0=") for o in option or [])):
        raise UsageError("--i0 has no meaning with --scan-relative: the scan's own noise sets each slice's flux")

    from denoisekit.cli.io_options import output_tag

    output = output or default_output(input_path, output_tag(f"noise-{kind}", series))
    check_output(output, force=force, sidecar=True)  # refuse what write_volume would, before any work

    console = err_console(quiet)
    start = time.perf_counter()
    notes: list[str] = []  # what the user should know: skipped files, the plane, values the series could not copy
    note = note_to(console, notes)
    volume = read_input(input_path, series, allow_irregular, allow_tilt, quiet=quiet, notes=notes)
    if getattr(noise_kind, "projection_domain", False) and volume.plane() != "axial":
        note(f"the slices are {volume.plane()}, not axial: {kind} simulates a scanner's projections and "
             "reconstruction in their plane, where a real scan's noise does not lie; simulate on the axial series")
    with slice_progress(console) as bar:
        task = bar.add_task(f"noise {kind}", total=volume.shape[0] * getattr(noise_kind, "passes", 1))
        noisy, record = add_noise(volume, noise_kind, seed=seed, progress=lambda n: bar.advance(task, n))
    for message in record.get("notes", []):  # what the kind did that the user should hear (a relative dose's flux)
        note(message)
    record["source"] = _source(volume, input_path)

    # described after what was done to the input (as a NIfTI or a series denoisekit derived
    # records it): write_volume's own description of a derived volume (io.recorded_steps)
    written = write_volume(noisy, output, force=force, sidecar=record, note=note)
    seconds = time.perf_counter() - start
    from denoisekit.noise_level import volume_noise_hu
    from denoisekit.volume import padding_mask

    difference, padding = noisy.array - volume.array, padding_mask(volume.array)
    added = difference[~padding]  # the padding gets none
    outliers = _outlier_slices(difference, padding)
    if outliers:
        note(outliers)
    before, after = volume_noise_hu(volume.array), volume_noise_hu(noisy.array)
    absolute = getattr(noise_kind, "projection_domain", False) and not noise_kind.config.get("scan_relative", True)
    # a reference with noise of its own (not a clean phantom or a denoised image: under 1 HU)
    if absolute and before and before >= 1.0 and after and after > before:
        own = (before / after) ** 2  # noise variance goes as 1 / dose: the fraction of the scan's own dose it looks like
        asked = float(noise_kind.config["dose"])
        if not asked / 2 <= own <= asked * 2:
            # --scan-relative takes a dose below 1 only: it cannot give a scan more dose than it had
            relative = f"; --scan-relative gives {asked:g} of its own" if asked < 1 else ""
            note(f"dose {asked:g} is a fraction of i0, not of this scan's own dose: its soft-tissue noise went from "
                 f"{before:.1f} to {after:.1f} HU, as at about {own:.2g} of its own dose{relative}")
    result = {
        "input": str(input_path),
        "output": str(written),
        "sidecar": str(sidecar_path(written)),
        "kind": kind,
        "seed": seed,
        "options": record["options"],
        "slices": volume.shape[0],
        "noise_std_hu": round(float(added.std()), 3) if added.size else 0.0,
        # as a reader would measure it in soft tissue, before and after: a scan has its own
        "soft_tissue_noise_hu": [None if v is None else round(v, 3) for v in (before, after)],
        "seconds": round(seconds, 3),
        "notes": notes,
    }
    tissue = "" if None in (before, after) else f"; soft tissue {before:.1f} -> {after:.1f} HU"
    status(
        console,
        f"wrote {written} ({kind}, seed {seed}, noise std {result['noise_std_hu']:.1f} HU added{tissue}, "
        f"{volume.shape[0]} slice{'' if volume.shape[0] == 1 else 's'}, {seconds:.1f} s)",
    )
    if json_out:
        print_json(result)


def _outlier_slices(added: Any, padding: Any) -> str | None:
    """A note naming the slices whose added noise (std, outside the padding) is over 4 times
    the median slice's: streaks through metal or dense bone at a low dose, which the volume's
    one std figure would hide (a head CT's two dental slices got 199 and 119 HU against 13)."""
    import numpy as np

    stds = np.array([float(a[~p].std()) if (~p).any() else 0.0 for a, p in zip(added, padding)])
    if stds.size < 3:
        return None
    typical = float(np.median(stds))
    loud = [int(k) for k in np.flatnonzero(stds > max(4.0 * typical, 1.0))]
    if not loud:
        return None
    listed = ", ".join(f"{k} ({stds[k]:.0f} HU)" for k in loud[:8]) + (", ..." if len(loud) > 8 else "")
    return (f"slice{'s' if len(loud) > 1 else ''} {listed} (counted from 0) got over 4 times the added noise of the "
            f"median slice ({typical:.0f} HU std): streaks through metal or dense bone at this dose; look at them "
            "before using them")


def _source(volume, input_path) -> dict:
    """What the noise was added to, for the sidecar, without its path: a sidecar travels with
    the noisy file, and a folder or file may be named after its patient. A series by its UID
    (its derived series references it too), a file by its BLAKE2b (``io.identity``)."""
    from denoisekit.io.identity import file_identity

    uid = volume.tags.get("SeriesInstanceUID")
    if uid:
        return {"SeriesInstanceUID": str(uid)}
    identity = file_identity(input_path)
    return {"blake2b": identity} if identity else {}
