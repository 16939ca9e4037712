"""The ``denoisekit`` command line: one module per command, joined here.

Command modules import nothing heavy at module level (no TensorFlow, SimpleITK or
pydicom), so ``denoisekit --help`` stays instant.
"""

from __future__ import annotations

import inspect
import os
import sys
from typing import Annotated, Optional

import typer
from typer import core as _typer_core
from typer.core import TyperGroup

from denoisekit import __version__
from denoisekit.errors import DenoiseKitError, UsageError


def _click_module():
    """Typer >= 0.29 vendors click as ``typer._click``; older versions use click itself."""
    vendored = getattr(_typer_core, "_click", None)
    if vendored is not None:
        return vendored
    import click

    return click


_click = _click_module()
# Exits, aborts and usage errors keep Typer's own handling (usage errors exit 2).
_PASS_THROUGH = (typer.Exit, typer.Abort, _click.exceptions.ClickException)


def _stdout_closed() -> bool:
    """Whether stdout's reader has gone ('denoisekit models | head'): then a BrokenPipeError
    is no error of ours, and Typer exits 1 without a word. Any other broken pipe (a plugin's
    subprocess) is an error like any other. POLLERR on the write end says the reader is gone."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLERR)
        return bool(poll.poll(0))
    except (AttributeError, OSError, ValueError):  # no real stdout (a test runner's buffer), or no poll
        return False


# TensorFlow's C++ start-up chatter (CUDA probing on CPU-only machines) is not for users;
# an explicit TF_CPP_MIN_LOG_LEVEL from the environment still wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def reflow(help_text: str) -> str:
    """Join the lines of each paragraph of a docstring, as click does: Typer's rich help keeps
    a docstring's line breaks, so hand-wrapped paragraphs break mid-sentence in any terminal
    narrower or wider than the source. A paragraph starting with \\b keeps its lines."""
    text, cut, rest = inspect.cleandoc(help_text).partition("\f")
    paragraphs = [p if p.startswith("\b") else " ".join(line.strip() for line in p.splitlines())
                  for p in text.split("\n\n")]
    return "\n\n".join(paragraphs) + cut + rest


def _value_label(param) -> None:
    """Typer's help labels a flag's value ``<bool>``, as if it took one, and a repeatable
    option's or several positional paths' ``<list[str]>``, as if they took a list at once: a
    flag gets no label, a repeatable option or argument its item's (its help says it repeats)."""
    if getattr(param, "is_flag", False) and param.metavar is None:
        param.metavar = ""
    elif getattr(param, "multiple", False) and param.metavar is None and hasattr(param, "display_type"):
        try:
            label = param.display_type(None)
        except Exception:  # noqa: BLE001 - a type (a plugin's choice list) that needs a context: as Typer shows it
            return
        if label.startswith("<list[") and label.endswith("]>"):
            param.metavar = f"<{label[6:-2]}>"
    elif getattr(param, "nargs", 1) != 1 and param.param_type_name == "argument" and hasattr(param, "display_type"):
        # several positional paths: the row already says "inputs...", so its type is one item's
        # (a metavar would rename the row itself); an instance attribute, as Typer reads it
        try:
            label = param.display_type(None)
        except Exception:  # noqa: BLE001 - as Typer shows it
            return
        if label.startswith("<list[") and label.endswith("]>"):
            item = f"<{label[6:-2].lower()}>"
            param.display_type = lambda ctx, item=item: item


def _first_line(exc: BaseException) -> str:
    """The line of an error's message that says what went wrong. An error raised in code
    TensorFlow traced (a plugin's call() or gradients()) comes back as 'in user code:', a
    traceback, and the original message last."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    if not lines:
        return ""
    if lines[0] == "in user code:":
        last, prefix = lines[-1], f"{type(exc).__name__}: "
        return last[len(prefix):] if last.startswith(prefix) else last
    return lines[0]


#: Commands that show a broken plugin rather than stop at it: how a user finds which to block.
_LISTINGS = ("plugins", "models", "backprops", "noises")
#: Commands that use no plugin (reading, writing, scoring): a broken one does not stop them.
_PLUGIN_FREE = ("export", "evaluate")


class _Group(TyperGroup):
    """Turns errors into one line on stderr and exit code 1; ``--debug`` keeps tracebacks.

    Plugins load only when something needs them: ``--version`` and a built-in command's
    ``--help`` never do, so a broken plugin cannot stop them (nor slow them down); nor do the
    commands that use none (``_PLUGIN_FREE``). Any other built-in command loads them before it
    runs, a listing shows a broken one, the main ``--help`` lists plugins' commands or says why
    it cannot."""

    _plugins_added = False
    _plugins_failed = False  # for the help: warn once

    def _add_plugins(self) -> None:
        """Load plugins, adding their commands (a broken plugin raises its PluginError)."""
        from denoisekit.plugins import get_plugin_manager

        if self._plugins_added:
            return
        get_plugin_manager()  # raises for a broken plugin even when the commands came in earlier
        _add_plugin_commands()
        built = typer.main.get_command(app)  # the plugins' commands, as Typer makes them
        for name, command in getattr(built, "commands", {}).items():
            self.commands.setdefault(name, command)
        self._plugins_added = True

    def list_commands(self, ctx) -> list[str]:
        if not self._plugins_added and not self._plugins_failed:
            try:
                self._add_plugins()
            except DenoiseKitError as exc:  # help must still work: it is how users find their way out
                self._plugins_failed = True
                typer.echo(f"warning: {exc} (plugins' commands are not listed)", err=True)
        return list(self.commands)  # in the order they were added, not alphabetical

    def format_help(self, ctx, formatter):
        for param in [*self.params, self.get_help_option(ctx)]:
            if param is not None:
                _value_label(param)
        return super().format_help(ctx, formatter)

    def get_command(self, ctx, cmd_name):
        if cmd_name not in self.commands:
            self._add_plugins()  # a plugin's command, perhaps; a broken plugin says so, not 'No such command'
        command = super().get_command(ctx, cmd_name)
        callback = getattr(command, "callback", None)
        skip = _LISTINGS + _PLUGIN_FREE
        if callback is not None and cmd_name not in skip and not hasattr(callback, "_loads_plugins"):
            command.callback = self._loading_plugins_first(callback)
        ours = getattr(callback, "__module__", "") or ""
        if command is not None and command.help and ours.startswith("denoisekit."):
            command.help = reflow(command.help)  # a plugin's help is laid out as its author chose
        if command is not None:
            for param in [*command.params, command.get_help_option(ctx)]:
                if param is not None:
                    _value_label(param)
        return command

    def _loading_plugins_first(self, callback):
        """``callback`` once plugins have loaded: after the command's own ``--help`` and usage
        checks (which need none), before it runs (a plugin silently missing would be worse)."""
        import functools

        @functools.wraps(callback)
        def run(*args, **kwargs):
            self._add_plugins()
            return callback(*args, **kwargs)

        run._loads_plugins = True
        return run

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except _PASS_THROUGH:
            raise
        except KeyboardInterrupt:
            typer.echo("Interrupted.", err=True)
            raise typer.Exit(130)
        except Exception as exc:  # noqa: BLE001 - the CLI's single error boundary
            if (ctx.obj or {}).get("debug") or (isinstance(exc, BrokenPipeError) and _stdout_closed()):
                raise
            message = _first_line(exc)
            if not isinstance(exc, DenoiseKitError):  # a bug: say whose, if a plugin's code raised it
                from denoisekit.plugins import blame

                try:
                    where = blame(exc)
                except Exception:  # noqa: BLE001 - naming the culprit must never cost the one line
                    where = None
                kind = f"{type(exc).__name__} in {where}" if where else type(exc).__name__
                message = f"{kind}: {message}" if message else kind
                message += " (rerun as 'denoisekit --debug ...' for the traceback)"
            typer.echo(f"Error: {message}", err=True)
            raise typer.Exit(2 if isinstance(exc, UsageError) else 1)


app = typer.Typer(
    cls=_Group,
    name="denoisekit",
    help="Denoise CT volumes: simulate noise, train, infer and export, with plugins.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"denoisekit {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit."),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """Denoise CT volumes: simulate noise, train, infer and export, with plugins."""
    ctx.obj = {"debug": debug}
    if debug:
        os.environ.setdefault("DENOISEKIT_TF_LOGS", "1")  # keep TensorFlow's native logs too


def _add_commands() -> None:
    """Import each command module (it adds its commands to ``app``) in the order ``--help``
    lists them: the demo to start with, then the pipeline's order, then the listings."""
    import importlib

    for module in ("demo", "noise", "train", "infer", "evaluate", "export", "gradcheck", "listing"):
        importlib.import_module(f"denoisekit.cli.{module}")


_add_commands()
_BUILTINS = (len(app.registered_commands), len(app.registered_groups))
_plugin_commands_added = False


def _add_plugin_commands() -> None:
    """Add plugins' commands to ``app`` once; none of them if a plugin is broken."""
    global _plugin_commands_added
    if _plugin_commands_added:
        return
    commands, groups = len(app.registered_commands), len(app.registered_groups)
    try:
        add_plugin_commands(app)
    except Exception:
        del app.registered_commands[commands:]
        del app.registered_groups[groups:]
        raise
    _plugin_commands_added = True


def add_plugin_commands(target: typer.Typer, broken: dict[str, str] | None = None) -> None:
    """Add the commands of every plugin's ``register_commands`` to ``target``, one plugin at
    a time, so that a command taking another's name is refused, naming both: Typer would let
    the later replace the earlier, a built-in 'train' included. With ``broken``, a broken
    plugin's error goes there (by plugin) and its commands are left out, instead of raising."""
    from typer.main import get_command_name

    from denoisekit.errors import PluginError
    from denoisekit.plugins import _way_out, call_impl, get_plugin_manager

    def names(commands: list, groups: list) -> list[str]:  # as Typer will name them
        return ([c.name or get_command_name(c.callback.__name__) for c in commands]
                + [g.name or g.typer_instance.info.name or "" for g in groups])

    owners = {name: "denoisekit (built in)" for name in names(target.registered_commands, target.registered_groups)}
    for impl in reversed(get_plugin_manager(broken).hook.register_commands.get_hookimpls()):
        commands, groups = len(target.registered_commands), len(target.registered_groups)
        added = {}
        try:
            call_impl(impl, "register_commands", {"app": target})
            for name in names(target.registered_commands[commands:], target.registered_groups[groups:]):
                if name in owners or name in added:
                    raise PluginError(f"command '{name}' is registered twice: by {owners.get(name) or added[name]} "
                                      f"and by plugin '{impl.plugin_name}'{_way_out(impl.plugin_name)}")
                added[name] = f"plugin '{impl.plugin_name}'"
        except PluginError as exc:
            del target.registered_commands[commands:]
            del target.registered_groups[groups:]
            if broken is None:
                raise
            broken[impl.plugin_name] = str(exc)
        else:
            owners.update(added)


def command_errors() -> dict[str, str]:
    """Each plugin whose ``register_commands`` fails, with its error (for ``denoisekit plugins``),
    found on a copy of the app holding only the built-in commands."""
    scratch = typer.Typer()
    scratch.registered_commands = app.registered_commands[: _BUILTINS[0]]
    scratch.registered_groups = app.registered_groups[: _BUILTINS[1]]
    broken: dict[str, str] = {}
    add_plugin_commands(scratch, broken)
    return broken


def get_app() -> typer.Typer:
    """The app with commands from plugins' ``register_commands`` added (once); a broken
    plugin raises its PluginError. ``main`` runs ``app`` instead, which loads plugins only
    when a command needs them."""
    _add_plugin_commands()
    return app


def main() -> None:
    """Console-script entry point. ``--debug`` may come after the command too (``denoisekit
    infer scan/ --debug``): it is where a user adds it on rerunning a failed command."""
    args = sys.argv[1:]
    cut = args.index("--") if "--" in args else len(args)
    if "--debug" in args[1:cut]:
        args = ["--debug"] + [a for a in args[:cut] if a != "--debug"] + args[cut:]
    app(args=args, prog_name="denoisekit")
