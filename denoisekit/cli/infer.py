"""``infer``: denoise volumes with a model (pretrained, from a weights file, or a filter)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from denoisekit.cli import app
from denoisekit.cli.common import (
    ForceOpt,
    JsonOpt,
    OutputOpt,
    PluginOptionOpt,
    QuietOpt,
    err_console,
    note_to,
    print_json,
    slice_progress,
    status,
)
from denoisekit.cli.io_options import AllowIrregularOpt, AllowTiltOpt, SeriesOpt
from denoisekit.errors import DenoiseKitError, UsageError
from denoisekit.infer import DEFAULT_MODEL
from denoisekit.plugins import complete, get_models


def _plan_outputs(inputs: list[Path], output: Optional[Path], model_name: str, force: bool,
                  series: Optional[str] = None) -> list[Path]:
    """Every output path, checked before any work starts: none is an input, none exists
    (unless ``force``), no two inputs write the same place. A single input that does not exist
    is refused here; one of several is left to fail in its turn, as an unreadable one does."""
    from denoisekit.io import check_output, default_output, refuse_input

    if output is not None and len(inputs) > 1:
        raise UsageError("-o/--output names one output; with several inputs, outputs go next to each input")
    from denoisekit.cli.io_options import output_tag

    outputs = [output or default_output(p, output_tag(f"denoised-{model_name}", series)) for p in inputs]
    seen: set[Path] = set()
    for inp, out in zip(inputs, outputs):
        if not inp.exists():
            if len(inputs) == 1:
                raise DenoiseKitError(f"{inp} does not exist")
            continue  # reading it fails, and says so, with the others written
        for source in inputs:  # write_volume refuses these too, but only after denoising
            refuse_input(source, out)
        key = out.resolve()
        if key in seen:
            raise DenoiseKitError(f"two inputs would write the same output {out}")
        seen.add(key)
        check_output(out, force=force)  # an unwritable or irreplaceable output fails now, not after denoising
    return outputs


def _strength(value: str) -> str | float:
    """``--strength``'s callback: a bad value is a usage error (exit 2), in one line as the
    command's other option errors (click's BadParameter would draw Typer's box)."""
    from denoisekit.strength import parse_strength

    try:
        return parse_strength(value)
    except DenoiseKitError as exc:
        raise UsageError(f"--strength {str(exc).removeprefix('strength ')}") from None


@app.command()
def infer(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="CT volumes: DICOM directories or files, NIfTI/NRRD/MHA files.", show_default=False),
    ],
    model: Annotated[
        Optional[str],
        typer.Option(
            "--model",
            "-m",
            help=f"Model to run (default: {DEFAULT_MODEL}, or the one the --weights were trained for).",
            autocompletion=complete(get_models),
            show_default=False,
        ),
    ] = None,
    weights: Annotated[
        Optional[Path],
        typer.Option(
            "--weights", "-w", help="A weights file or training run directory (default: the shipped pretrained weights)."
        ),
    ] = None,
    output: OutputOpt = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Slices per model call.")] = 8,
    strength: Annotated[
        str,
        typer.Option(
            "--strength",
            help="How much of the model's correction to keep: 'auto' chooses per slice (by SURE) and keeps less "
            "where the model would take away more than the noise; or a fraction from 0 (the input) to 1 (the "
            "model's output as is).",
            callback=_strength,
        ),
    ] = "auto",
    option: PluginOptionOpt = None,
    series: SeriesOpt = None,
    allow_irregular: AllowIrregularOpt = False,
    allow_tilt: AllowTiltOpt = False,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Denoise CT volumes; outputs go next to each input, in its format, named after the model.

    With several inputs, one that fails (unreadable, refused) is reported and the others are still
    denoised; the command then exits 1, and --json lists every input, a failed one with its error."""
    import time

    from rich.markup import escape

    from denoisekit.infer import denoise_volume, load_model_for_inference, weights_label
    from denoisekit.pretrained import coarse_pixel_note, plane_note
    from denoisekit.strength import AUTO, low_strength_note, parse_strength, summary
    from denoisekit.cli.io_options import read_input
    from denoisekit.io import write_volume

    setting = parse_strength(strength)  # checked by _strength already, before any model or volume loads
    if model is not None:  # an unknown or broken model is named first, as before (no weights or TensorFlow yet)
        from denoisekit.plugins import get_model

        if not get_model(model).trainable and weights is not None:  # nothing to load: not looked for
            raise UsageError(f"model '{model}' is a fixed filter and takes no --weights; "
                             "set its options with --option (see 'denoisekit models')")
    if not any(inp.exists() for inp in inputs):  # nothing to denoise: say so before loading a model
        raise DenoiseKitError(f"{inputs[0]} does not exist" if len(inputs) == 1
                              else f"none of the inputs exists: {', '.join(map(str, inputs))}")
    net = load_model_for_inference(model, weights, option)
    outputs = _plan_outputs(inputs, output, net.name, force, series)
    console = err_console(quiet)
    records = []
    def one(inp: Path, out: Path) -> dict:
        """Denoise one input into ``out``; its record for --json."""
        start = time.perf_counter()
        read_notes: list[str] = []  # skipped files, accepted irregularities
        volume = read_input(inp, series, allow_irregular, allow_tilt, quiet=quiet, notes=read_notes)
        # why the output may disappoint
        notes = [n for n in [coarse_pixel_note(net, volume.spacing), plane_note(net, volume)] if n]
        for note in notes:
            status(console, note)
        notes = read_notes + notes
        with slice_progress(console, transient=False) as bar:
            task = bar.add_task(escape(f"{inp.name} [{net.name}]"), total=volume.shape[0])
            used: list[float] = []
            denoised = denoise_volume(
                volume,
                net,
                batch_size=batch_size,
                progress=lambda n: bar.advance(task, n),
                inplace=True,
                strength=setting,
                strengths=used,
            )
        source_note = note_to(console, notes)  # the model's, or a source value the series could not copy
        for message in getattr(net, "take_notes", list)():
            source_note(message)

        # after what was done to the input (a simulated low dose, as a NIfTI or a series records it):
        # write_volume's own description of a derived volume (io.recorded_steps)
        written = write_volume(denoised, out, force=force, note=source_note)
        seconds = time.perf_counter() - start
        low = low_strength_note(net.name, used, net.trainable) if setting == AUTO else None
        notes += [low] if low else []
        chosen = f"strength auto, {summary(used)}" if setting == AUTO else f"strength {setting:g}"
        n = volume.shape[0]
        status(console, f"wrote {written} ({n} slice{'' if n == 1 else 's'}, {seconds:.1f} s; {chosen})")
        if low:  # said after the "wrote" line it explains; in --json as every other note, without "note: "
            status(console, f"note: {low}")
        return {
            "input": str(inp),
            "output": str(written),
            "model": net.name,
            "weights": weights_label(net),
            "slices": volume.shape[0],
            "seconds": round(seconds, 3),
            "notes": notes,  # why the output may disappoint: coarse pixels, a strength kept low
            "strength": setting,
            "strengths": [round(a, 3) for a in used],  # per slice, what was kept of the correction
        }

    failed: list[str] = []
    try:
        for inp, out in zip(inputs, outputs):
            try:
                records.append(one(inp, out))
            except DenoiseKitError as exc:
                if len(inputs) == 1:
                    raise
                # one bad scan of several: say so and go on, the others are wanted as much
                failed.append(inp.name)
                records.append({"input": str(inp), "output": None, "error": str(exc)})
                typer.echo(f"error: {inp}: {exc}", err=True)
    except BaseException:
        if json_out and records:  # the outputs already on disk: a script must learn of them too
            print_json(records)
        raise
    if json_out:
        print_json(records)
    if failed:
        written = len(inputs) - len(failed)
        rest = {0: "nothing was written", 1: "the other was written"}.get(written, "the others were written")
        raise DenoiseKitError(f"{len(failed)} of {len(inputs)} inputs failed ({', '.join(failed)}); {rest}")
