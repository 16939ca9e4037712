"""``gradcheck``: compare a model's hand-written gradients with automatic differentiation."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from denoisekit.cli import app
from denoisekit.cli.common import JsonOpt, PluginOptionOpt, out_console, print_json
from denoisekit.errors import DenoiseKitError


def _complete_models(incomplete: str) -> list[str]:
    from denoisekit.plugins import complete, get_models

    return complete(get_models)(incomplete)


@app.command()
def gradcheck(
    model: Annotated[str, typer.Option("--model", "-m", help="Model to check.", autocompletion=_complete_models)],
    option: PluginOptionOpt = None,
    size: Annotated[Optional[int], typer.Option("--size", help="Input side in pixels (fixed-size models: the patch size).", min=8)] = None,
    seed: Annotated[int, typer.Option("--seed", min=0, metavar="<int>", help="Seed for the weights and the random input.")] = 0,
    tolerance: Annotated[float, typer.Option("--tolerance", help="Largest relative error accepted.", min=0.0)] = 1e-4,
    as_json: JsonOpt = False,
) -> None:
    """Check a model's hand-written gradients against autodiff, layer by layer.

    Print, per layer variable, the relative difference between the manual and autodiff
    gradients on random inputs; exit 1 when any exceeds the tolerance."""
    from denoisekit.gradcheck import default_size, gradcheck as run_check
    from denoisekit.plugins import get_model

    from denoisekit.tfenv import import_tensorflow

    instance = get_model(model).from_strings(option)
    import_tensorflow()
    results = run_check(instance, size=size, seed=seed, tolerance=tolerance)
    failed = [r for r in results if not r.ok]
    size = instance.patch_size if instance.fixed_size else (size or default_size(instance))
    if as_json:
        print_json({
            "model": instance.name,
            "options": {k: list(v) if isinstance(v, tuple) else v for k, v in instance.config.items()},
            "size": size,
            "seed": seed,
            "tolerance": tolerance,
            "ok": not failed,
            "max_rel_error": max(r.rel_error for r in results),
            "variables": [r.to_dict() for r in results],
        })
    else:
        from rich.table import Table

        table = Table("layer", "variable", "shape", "|autodiff grad|", "relative error", "",
                      title=f"gradcheck {instance.name} (tolerance {tolerance:g})")
        for r in results:
            table.add_row(r.layer, r.variable, "x".join(map(str, r.shape)), f"{r.norm:.3e}",
                          f"{r.rel_error:.2e}", "[green]ok[/]" if r.ok else "[red]FAIL[/]")
        out_console().print(table)
    if failed:
        worst = max(failed, key=lambda r: r.rel_error)
        raise DenoiseKitError(
            f"{len(failed)} of {len(results)} gradients differ from autodiff by more than "
            f"{tolerance:g} (worst: {worst.variable}, relative error {worst.rel_error:.3g})"
        )
