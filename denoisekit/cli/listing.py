"""``plugins``, ``models``, ``backprops``, ``noises``: what is installed and registered."""

from __future__ import annotations

from typing import Any

from denoisekit.cli import app
from denoisekit.cli.common import JsonOpt, out_console, print_json


@app.command()
def plugins(as_json: JsonOpt = False) -> None:
    """List loaded plugins: name, version and the hooks each implements."""
    from denoisekit.plugins import plugin_infos

    infos = plugin_infos()
    if as_json:
        print_json([
            {"name": i.name, "version": i.version, "distribution": i.distribution,
             "builtin": i.builtin, "hooks": i.hooks}
            for i in infos
        ])
        return
    from rich.table import Table

    table = Table("plugin", "version", "distribution", "hooks")
    for i in infos:
        table.add_row(i.name, i.version, i.distribution + (" (built-in)" if i.builtin else ""), ", ".join(i.hooks))
    out_console().print(table)


def _entries(registry: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {"description": cls.description, "plugin": getattr(cls, "plugin", "?"), **cls.capabilities()}
        for name, cls in sorted(registry.items())
    }


def _options(options: dict[str, Any]) -> str:
    return " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in options.items())


def _show(registry: dict[str, Any], as_json: bool, flags: list[str]) -> None:
    entries = _entries(registry)
    if as_json:
        print_json(entries)
        return
    from rich.markup import escape
    from rich.table import Table

    table = Table(show_lines=True)
    # Names are what users type: never truncate them.
    table.add_column("name", no_wrap=True, min_width=max([4, *map(len, entries)]))
    table.add_column("description and options", overflow="fold", ratio=4)
    if flags:
        table.add_column("capabilities", overflow="fold", ratio=1)
    table.add_column("plugin", overflow="fold", ratio=1)
    for name, e in entries.items():
        text = escape(e["description"])  # "denoisekit[bm3d]" is not markup
        if e.get("options"):
            text += f"\n[dim]{escape(_options(e['options']))}[/dim]"
        caps = ", ".join(f.replace("_", " ") for f in flags if e.get(f)) or "-"
        plugin = "built-in" if str(e["plugin"]).startswith("denoisekit_plugins.") else e["plugin"]
        table.add_row(name, text, *([caps] if flags else []), plugin)
    out_console().print(table)


@app.command()
def models(as_json: JsonOpt = False) -> None:
    """List denoising models with their capabilities and options."""
    from denoisekit.plugins import get_models

    _show(get_models(), as_json, ["trainable", "manual_gradients", "fixed_size"])


@app.command()
def backprops(as_json: JsonOpt = False) -> None:
    """List training rules and what they need from a model."""
    from denoisekit.plugins import get_backprops

    _show(get_backprops(), as_json, ["requires_manual_gradients"])


@app.command()
def noises(as_json: JsonOpt = False) -> None:
    """List noise kinds for 'denoisekit noise' and training."""
    from denoisekit.plugins import get_noises

    _show(get_noises(), as_json, [])
