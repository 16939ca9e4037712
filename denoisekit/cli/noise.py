"""``noise``: write a noisy copy of a volume, with the parameters that reproduce it."""

from __future__ import annotations

from typing import Annotated, Optional

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
    seed: Annotated[int, typer.Option("--seed", help="Random seed: the same seed gives the same noise.")] = 0,
    sigma: Annotated[
        Optional[float], typer.Option("--sigma", help="gaussian: noise std in HU (default 25).", show_default=False)
    ] = None,
    dose: Annotated[
        Optional[float], typer.Option("--dose", help="lowdose: fraction of the full dose, e.g. 0.25.", show_default=False)
    ] = None,
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

    Example: denoisekit noise scan/ --kind lowdose --dose 0.25
    """
    import time

    from denoisekit.cli.io_options import read_input
    from denoisekit.io import check_output, default_output, sidecar_path, write_volume
    from denoisekit.noise import add_noise
    from denoisekit.plugins import get_noise

    cls = get_noise(kind)
    noise_kind = cls.from_strings(option, **flag_options(cls, option, sigma=sigma, dose=dose, i0=i0, aec=aec))

    from denoisekit.cli.io_options import output_tag

    output = output or default_output(input_path, output_tag(f"noise-{kind}", series))
    check_output(output, force=force, sidecar=True)  # refuse what write_volume would, before any work

    console = err_console(quiet)
    start = time.perf_counter()
    volume = read_input(input_path, series, allow_irregular, allow_tilt, quiet=quiet)
    with slice_progress(console) as bar:
        task = bar.add_task(f"noise {kind}", total=volume.shape[0])
        noisy, record = add_noise(volume, noise_kind, seed=seed, progress=lambda n: bar.advance(task, n))
    record["input"] = str(input_path)
    notes: list[str] = []  # source values the derived series could not copy as they were
    note = note_to(console, notes)

    written = write_volume(noisy, output, force=force, description=noisy.history[-1], sidecar=record, note=note)
    seconds = time.perf_counter() - start
    from denoisekit.volume import padding_mask

    added = (noisy.array - volume.array)[~padding_mask(volume.array)]  # the padding gets none
    result = {
        "input": str(input_path),
        "output": str(written),
        "sidecar": str(sidecar_path(written)),
        "kind": kind,
        "seed": seed,
        "options": record["options"],
        "slices": volume.shape[0],
        "noise_std_hu": round(float(added.std()), 3) if added.size else 0.0,
        "seconds": round(seconds, 3),
        "notes": notes,
    }
    status(
        console,
        f"wrote {written} ({kind}, seed {seed}, noise std {result['noise_std_hu']:.1f} HU, "
        f"{volume.shape[0]} slice{'' if volume.shape[0] == 1 else 's'}, {seconds:.1f} s)",
    )
    if json_out:
        print_json(result)
