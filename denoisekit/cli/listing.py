"""``plugins``, ``models``, ``backprops``, ``noises``: what is installed and registered.

A table when the terminal is wide enough to show every word whole, else one block per
entry: a name, path or ``key=value`` a user may type is never cut or split."""

from __future__ import annotations

from typing import Any, Callable

import typer

from denoisekit.cli import app
from denoisekit.cli.common import JsonOpt, out_console, print_json


def _column_widths(columns: list[list[str]], least: list[int], total: int) -> list[int] | None:
    """Widths (padding excluded) of table columns holding ``columns`` (their cells, header
    first) in ``total`` characters: each at least its longest word and ``least`` (or its
    longest line, if shorter), the spare shared out; None when that does not fit."""
    lines = [[line for cell in cells for line in cell.splitlines()] or [""] for cells in columns]
    longest = [max(map(len, col)) for col in lines]
    mins = [max(1, min(low, top), *(len(w) for line in col for w in line.split()))
            for col, low, top in zip(lines, least, longest)]
    maxs = [max(mn, top) for mn, top in zip(mins, longest)]
    spare = total - 3 * len(columns) - 1 - sum(mins)  # a border and two spaces a column, one border more
    wants = [mx - mn for mn, mx in zip(mins, maxs)]
    if spare < 0:
        return None
    if spare >= sum(wants):
        return maxs
    give = [0] * len(wants)  # water-filling: short columns whole, the longest takes the rest
    for n, i in enumerate(sorted(range(len(wants)), key=wants.__getitem__)):
        give[i] = min(wants[i], spare // (len(wants) - n))
        spare -= give[i]
    return [mn + g for mn, g in zip(mins, give)]


def _print(header: list[str], rows: list[list[Any]], blocks: list[tuple[str, list[Any]]],
           least: list[int] | None = None) -> None:
    """``rows`` (cells: str or rich Text) as a table if every word fits whole and each column
    gets ``least`` characters; else ``blocks``: a title line, then its lines indented."""
    from rich.table import Table
    from rich.text import Text

    console = out_console()
    columns = [[name] + [str(row[i]) for row in rows] for i, name in enumerate(header)]
    widths = _column_widths(columns, least or [0] * len(header), console.width)
    if widths is not None:
        table = Table(show_lines=True)
        for name, width in zip(header, widths):
            table.add_column(name, width=width, overflow="fold")
        for row in rows:  # plain strings as Text: "[...]" in a name is not markup
            table.add_row(*(cell if isinstance(cell, Text) else Text(cell) for cell in row))
        console.print(table)
        return
    for n, (title, lines) in enumerate(blocks):
        if n:
            console.print()
        _wrapped(console, Text(title, style="bold"), 0)
        for line in lines:
            _wrapped(console, line if isinstance(line, Text) else Text(line), 2)


def _wrapped(console: Any, text: Any, indent: int) -> None:
    """``text`` wrapped at spaces to the console's width less ``indent``, each line indented
    (rich's Padding would pad every line out with spaces)."""
    from rich.text import Text

    for line in text.wrap(console, max(1, console.width - indent)):
        line.rstrip()
        console.print(Text(" " * indent) + line, soft_wrap=True)


def _fail_on(ctx: Any, errors: list[str], strict: Callable[[], Any]) -> None:
    """After a listing: each broken plugin's error (naming the way out) on stderr, and exit 1.
    What loads is listed first, so the user sees what is installed and which plugin to block;
    the exit code still says the environment is broken, as every other command would. With
    ``--debug``, ``strict`` (what raises the first error) gives its traceback instead."""
    if not errors:
        return
    if (ctx.find_root().obj or {}).get("debug"):
        strict()
    for error in errors:
        typer.echo(f"Error: {error}", err=True)
    raise typer.Exit(1)


@app.command()
def plugins(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List plugins: name, version and the hooks each implements, or why it is broken."""
    from denoisekit import plugins as loaded
    from denoisekit.cli import command_errors, get_app

    infos = loaded.plugin_infos(broken=True)
    for name, error in command_errors().items():
        info = next(i for i in infos if i.name == name)
        info.error = info.error or error
    blocked, unmatched = loaded.blocked_plugins()
    if as_json:
        print_json([
            {"name": i.name, "version": i.version, "distribution": i.distribution,
             "builtin": i.builtin, "hooks": i.hooks, "error": i.error, "blocked": i in blocked}
            for i in infos + blocked
        ])
    else:
        rows = [[i.name, i.version, i.distribution + (" (built-in)" if i.builtin else ""),
                 "broken: see the error below" if i.error else ", ".join(i.hooks)] for i in infos]
        rows += [[i.name, i.version, i.distribution + (" (built-in)" if i.builtin else ""),
                  "none: blocked by DENOISEKIT_BLOCK_PLUGINS"] for i in blocked]
        _print(["plugin", "version", "distribution", "hooks"], rows,
               [(f"{name} {version}", [f"distribution: {dist}", f"hooks: {hooks}"]) for name, version, dist, hooks in rows])
    left_out, unmatched_load = loaded.left_out_plugins()
    for var, names in (("DENOISEKIT_BLOCK_PLUGINS", unmatched), ("DENOISEKIT_LOAD_PLUGINS", unmatched_load)):
        for name in names:  # a typo keeps nothing out (or everything else, for the allowlist), silently
            typer.echo(f"warning: {var} names {name!r}, which no installed plugin is called", err=True)
    if left_out:  # not loaded, so not listed above
        typer.echo(f"note: DENOISEKIT_LOAD_PLUGINS leaves out {', '.join(i.name for i in left_out)}", err=True)
    _fail_on(ctx, [i.error for i in infos if i.error],
             lambda: (loaded.get_models(), loaded.get_backprops(), loaded.get_noises(), get_app()))


def _entries(registry: dict[str, Any]) -> dict[str, Any]:
    return {
        name: {"description": cls.description, "plugin": getattr(cls, "plugin", "?"), **cls.capabilities()}
        for name, cls in sorted(registry.items())
    }


def _options(options: dict[str, Any]) -> str:
    """``key=value`` as ``--option`` takes it (a list comma-separated), one space between."""
    return " ".join(f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in options.items())


def _show(ctx: Any, kind: str, as_json: bool, flags: list[str], how_to_set: str) -> None:
    """List the ``kind`` registry; a broken plugin (its commands too: one taking a built-in's
    name stops every other command) leaves out its entries and fails the listing."""
    from denoisekit import plugins as loaded
    from denoisekit.cli import command_errors, get_app

    registry, broken = loaded.survey(kind)
    for name, error in command_errors().items():
        broken.setdefault(name, error)
    registry = {n: cls for n, cls in registry.items() if getattr(cls, "plugin", None) not in broken}
    _print_entries(_entries(registry), as_json, flags, how_to_set)
    kept_out = loaded.kept_out()
    if kept_out:  # an empty or short listing, explained
        typer.echo(f"note: {kept_out}: their entries are not listed", err=True)
    _fail_on(ctx, list(broken.values()), lambda: (getattr(loaded, f"get_{kind}s")(), get_app()))


def _print_entries(entries: dict[str, Any], as_json: bool, flags: list[str], how_to_set: str) -> None:
    if as_json:
        print_json(entries)
        return
    from rich.text import Text

    rows, blocks = [], []
    for name, e in entries.items():
        options = _options(e.get("options") or {})
        text = Text(e["description"])  # a Text, not markup: "denoisekit[bm3d]" stays as written
        if options:
            text.append("\n" + options, style="dim")
        caps = ", ".join(f.replace("_", " ") for f in flags if e.get(f))
        plugin = "built-in" if str(e["plugin"]).startswith("denoisekit_plugins.") else str(e["plugin"])
        rows.append([name, text, *([caps or "-"] if flags else []), plugin])
        about = [caps] if caps else []
        about.append(plugin if plugin == "built-in" else f"plugin {plugin}")
        blocks.append((f"{name} ({'; '.join(about)})",
                       [e["description"], *([Text("options: " + options, style="dim")] if options else [])]))
    header = ["name", "description and options", *(["capabilities"] if flags else []), "plugin"]
    _print(header, rows, blocks, [0, 30] + [0] * (len(header) - 2))  # below 30, blocks read better
    if any(e.get("options") for e in entries.values()):
        _wrapped(out_console(), Text(how_to_set, style="dim"), 0)


@app.command()
def models(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List denoising models with their capabilities and options."""
    _show(ctx, "model", as_json, ["trainable", "manual_gradients", "fixed_size"],
          "Set an option with --option key=value (infer, train, gradcheck).")


@app.command()
def backprops(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List training rules and what they need from a model."""
    _show(ctx, "backprop", as_json, ["requires_manual_gradients"],
          "Set an option with --backprop-option key=value (train).")


@app.command()
def noises(ctx: typer.Context, as_json: JsonOpt = False) -> None:
    """List noise kinds for 'denoisekit noise' and training."""
    _show(ctx, "noise", as_json, [],
          "Set an option with --option key=value (noise) or --noise-option key=value (train).")
