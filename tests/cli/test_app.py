"""The app itself: version, help, exit codes and staying light to start."""

import re
import subprocess
import sys

import numpy as np
import pytest

from typer.testing import CliRunner

from denoisekit import __version__
from denoisekit.cli import app, get_app

runner = CliRunner()


def test_version():
    result = runner.invoke(get_app(), ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"denoisekit {__version__}"


def test_help_lists_every_stage():
    result = runner.invoke(get_app(), ["--help"])
    assert result.exit_code == 0
    for command in ["noise", "train", "infer", "export", "evaluate", "demo", "gradcheck",
                    "plugins", "models", "backprops", "noises"]:
        assert command in result.stdout


def test_usage_error_exits_2():
    result = runner.invoke(get_app(), ["models", "--no-such-flag"])
    assert result.exit_code == 2


def test_unexpected_errors_are_one_line_and_hint_at_debug():
    @app.command("boom-for-test", hidden=True)
    def boom():
        raise RuntimeError("disk on fire")

    try:
        result = runner.invoke(app, ["boom-for-test"])
        assert result.exit_code == 1
        assert result.stderr.strip() == "Error: RuntimeError: disk on fire (rerun as 'denoisekit --debug ...' for the traceback)"
        result = runner.invoke(app, ["--debug", "boom-for-test"])
        assert isinstance(result.exception, RuntimeError)
    finally:
        app.registered_commands[:] = [c for c in app.registered_commands if c.name != "boom-for-test"]


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys\n"
        "from denoisekit.cli import main\n"
        "sys.argv = ['denoisekit', '--help']\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "for heavy in ('tensorflow', 'SimpleITK', 'pydicom', 'skimage', 'scipy'):\n"
        "    assert heavy not in sys.modules, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_console_script_runs():
    proc = subprocess.run(["denoisekit", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_hook_register_commands_adds_a_command(fake_dist):
    import typer

    from denoisekit.cli import add_plugin_commands

    fake_dist("acme-cmd", "acme_cmd", """
import typer
from denoisekit.plugin import hookimpl

@hookimpl
def register_commands(app):
    @app.command(name="acme-hello")
    def hello(name: str = "world"):
        typer.echo(f"hello {name}")
""")
    fresh = typer.Typer()

    @fresh.callback()
    def _root():
        pass

    add_plugin_commands(fresh)
    result = runner.invoke(fresh, ["acme-hello", "--name", "ct"])
    assert result.exit_code == 0 and result.stdout == "hello ct\n"


def test_python_dash_m_runs_the_cli():
    import sys

    proc = subprocess.run([sys.executable, "-m", "denoisekit", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0 and __version__ in proc.stdout


def test_a_missing_input_is_the_same_one_line_in_every_command(tmp_path):
    missing = tmp_path / "nope.dcm"
    for args in (["infer", missing], ["noise", missing, "--kind", "gaussian"], ["export", missing, "-o", tmp_path / "a.nii.gz"],
                 ["evaluate", missing, missing]):
        result = runner.invoke(get_app(), [str(a) for a in args])
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.strip() == f"Error: {missing} does not exist", (args, result.stderr)


@pytest.mark.parametrize(("output", "kind"), [("s0.nii.gz/", "NIfTI"), ("s0.nii/", "NIfTI"), ("s0.NRRD/", "NRRD"),
                                              ("s0.mha//", "MHA"), ("s0.nii.gz/.", "NIfTI"), ("s0.nii.gz/./", "NIfTI")])
def test_an_output_with_a_file_suffix_and_a_trailing_slash_is_refused_in_every_command(tmp_path, output, kind):
    from denoisekit.io import write_volume
    from denoisekit.volume import Volume

    src = write_volume(Volume(np.zeros((1, 8, 8), np.float32), spacing=(1.0, 1.0, 1.0)), tmp_path / "in.nii.gz")
    existing = write_volume(Volume(np.ones((1, 8, 8), np.float32), spacing=(1.0, 1.0, 1.0)),
                            tmp_path / output.rstrip("/.").removesuffix("/"))
    before = existing.read_bytes()  # a file --force would replace: the slash says a folder was meant
    for args in (["export", src], ["noise", src, "--kind", "gaussian"], ["infer", src, "-m", "tv"]):
        result = runner.invoke(get_app(), [str(a) for a in args] + ["-o", f"{tmp_path}/{output}", "--force"])
        assert result.exit_code == 2, (args, result.output)  # a usage error
        suffix = existing.name[2:]
        assert result.stderr.strip() == (f"Error: -o {tmp_path}/{output}: a trailing '/' means a folder, but "
                                         f"{suffix} names a file: drop the slash to write {'an' if kind == 'MHA' else 'a'} {kind} file, or name "
                                         "the folder without a file suffix"), (args, result.stderr)
        assert existing.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([src.name, existing.name])
    folder = runner.invoke(get_app(), ["export", str(src), "-o", f"{tmp_path}/series/", "--quiet"])
    assert folder.exit_code == 0 and (tmp_path / "series").is_dir()  # a folder with a slash: as ever


def _hidden_command(name, callback):
    app.command(name, hidden=True)(callback)
    return lambda: app.registered_commands.__setitem__(
        slice(None), [c for c in app.registered_commands if c.name != name])


def test_hand_wrapped_help_paragraphs_are_reflowed_to_the_terminal():
    def wrapped():
        """First line.

        A second paragraph wrapped by hand at some
        width that is not the terminal's.

        \b
        kept
        as is
        """

    wrapped.__module__ = "denoisekit.cli.for_test"  # a built-in command's
    remove = _hidden_command("wrapped-for-test", wrapped)
    try:
        result = runner.invoke(app, ["wrapped-for-test", "--help"], env={"COLUMNS": "120"})
        assert result.exit_code == 0, result.output
        assert "A second paragraph wrapped by hand at some width that is not the terminal's." in result.stdout
        lines = [line.strip() for line in result.stdout.splitlines()]
        assert "kept" in lines and "as is" in lines
    finally:
        remove()

    wrapped.__module__ = "their_plugin.commands"  # a plugin's help is laid out as its author chose
    remove = _hidden_command("plugin-for-test", wrapped)
    try:
        result = runner.invoke(app, ["plugin-for-test", "--help"], env={"COLUMNS": "120"})
        assert "A second paragraph wrapped by hand at some width that is not the terminal's." not in result.stdout
    finally:
        remove()


def test_every_commands_help_reads_at_80_and_60_columns():
    """No paragraph of a command's help breaks mid-sentence: a line of prose ends where the
    next word would not fit, not where the docstring's source line did."""
    for width in (80, 60):
        for command in ["noise", "train", "infer", "export", "evaluate", "demo", "gradcheck", "plugins", "models"]:
            result = runner.invoke(get_app(), [command, "--help"], env={"COLUMNS": str(width)})
            assert result.exit_code == 0, (command, result.output)
            lines = result.stdout.splitlines()
            assert all(len(line) <= width for line in lines), (command, width)
            prose = lines[: next(i for i, line in enumerate(lines) if line.startswith("╭"))]
            for line, following in zip(prose, prose[1:]):
                words = following.split()
                if line.strip() and words:  # the next line's first word would have fitted here
                    assert len(line.rstrip()) + 1 + len(words[0]) > width - 1, (command, width, line, following)


def test_a_closed_stdout_ends_quietly():
    """'denoisekit models --help | head': no 'Error: BrokenPipeError' once the reader is gone."""
    import os

    read, write = os.pipe()
    os.close(read)  # the reader is gone before denoisekit writes a byte
    try:
        proc = subprocess.run([sys.executable, "-m", "denoisekit", "models", "--help"], stdout=write,
                              stderr=subprocess.PIPE, text=True, timeout=120)
    finally:
        os.close(write)
    assert proc.returncode == 1 and proc.stderr == "", proc.stderr


def test_any_other_broken_pipe_is_an_error_like_any_other():
    """A plugin's subprocess pipe breaking is no closed stdout: one line, exit 1."""
    def pipe():
        raise BrokenPipeError(32, "Broken pipe")

    remove = _hidden_command("pipe-for-test", pipe)
    try:
        result = runner.invoke(app, ["pipe-for-test"])
        assert result.exit_code == 1 and result.stderr.startswith("Error: BrokenPipeError"), result.stderr
    finally:
        remove()


def test_help_lists_the_demo_first_then_the_pipeline_in_order():
    result = runner.invoke(get_app(), ["--help"], env={"COLUMNS": "80"})
    names = [line.split()[1] for line in result.stdout.splitlines() if line.startswith("│ ") and line[2] != " "]
    order = ["demo", "noise", "train", "infer", "evaluate", "export"]
    assert [n for n in names if n in order] == order, names


def test_help_gives_flags_no_value_and_repeatable_options_their_item():
    """Typer labels a flag '<bool>' (as if it took a value) and a repeatable option or
    several positional paths '<list[str]>' / '<list[Path]>' (as if they took a list at once)."""
    for args in (["--help"], ["infer", "--help"], ["train", "--help"], ["noise", "--help"]):
        result = runner.invoke(get_app(), args, env={"COLUMNS": "120"})
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.stdout and "<list[" not in result.stdout, args
    infer = runner.invoke(get_app(), ["infer", "--help"], env={"COLUMNS": "120"}).stdout
    assert re.search(r"--option\s+<str>", infer) and re.search(r"--force\s+Overwrite", infer)
    assert re.search(r"inputs\.\.\.\s+<path>\s+CT volumes", infer)  # several paths: each one a path


BROKEN = {
    "import": "raise ImportError('needs libfoo')\n",
    "hook": "from denoisekit.plugin import hookimpl\n\n@hookimpl\ndef register_models(register):\n"
            "    raise RuntimeError('boom')\n",
    "bad model": "from denoisekit.plugin import hookimpl\n\nclass NotAModel:\n    name = 'x'\n\n"
                 "@hookimpl\ndef register_models(register):\n    register(NotAModel)\n",
    "commands": "from denoisekit.plugin import hookimpl\n\n@hookimpl\ndef register_commands(app):\n"
                "    raise RuntimeError('boom')\n",
}


def _main(monkeypatch, capsys, *args):
    """Run the console script's entry point, as in a new process (plugins' commands not yet
    added): (exit code, stdout, stderr)."""
    from denoisekit import cli

    monkeypatch.setattr(cli, "_plugin_commands_added", False)
    monkeypatch.setattr(sys, "argv", ["denoisekit", *args])
    monkeypatch.setenv("COLUMNS", "120")
    try:
        cli.main()
        code = 0
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("how", list(BROKEN))
def test_version_and_help_survive_a_broken_plugin(fake_dist, fresh_plugins, monkeypatch, capsys, how):
    """They are how a user finds the plugin to block: --version and a command's --help load no
    plugin at all; the main --help lists the built-ins and warns, naming the way out."""
    fake_dist("acme-broken", "acme_broken", BROKEN[how])
    for args in (["--version"], ["infer", "--help"], ["train", "--help"], ["models", "--help"]):
        code, out, err = _main(monkeypatch, capsys, *args)
        assert code == 0 and out and not err, (args, err)
    assert fresh_plugins._pm is None  # nothing loaded
    for args in (["--help"], []):  # no arguments: the help, with click's exit code 2
        code, out, err = _main(monkeypatch, capsys, *args)
        assert code == (0 if args else 2) and "infer" in out and "plugins" in out, (args, err)
        if how in ("import", "commands"):  # what stops plugins' commands from being listed
            assert err.startswith("warning: plugin 'acme_broken'") and "DENOISEKIT_BLOCK_PLUGINS=acme_broken" in err


@pytest.mark.parametrize("how", ["import", "commands"])
def test_every_other_command_stops_at_a_broken_plugin(fake_dist, fresh_plugins, monkeypatch, capsys, tmp_path, how):
    """Running with a plugin silently missing would be worse: one line naming it and the way out,
    before the command looks at its input (or at a name only a plugin could provide)."""
    fake_dist("acme-broken", "acme_broken", BROKEN[how])
    for args in (["infer", str(tmp_path / "nope")], ["noise", str(tmp_path / "nope"), "-k", "gaussian"],
                 ["acme-hello"]):
        code, out, err = _main(monkeypatch, capsys, *args)
        assert code == 1 and err.count("\n") == 1, (args, err)
        assert err.startswith("Error: plugin 'acme_broken'") and "DENOISEKIT_BLOCK_PLUGINS=acme_broken runs" in err


@pytest.mark.parametrize("how", ["import", "commands"])
def test_commands_that_use_no_plugin_run_despite_a_broken_one(fake_dist, fresh_plugins, monkeypatch, capsys, tmp_path,
                                                                how):
    """Export and evaluate read, write and score: nothing a plugin provides is missing."""
    from denoisekit.io import write_volume
    from denoisekit.volume import Volume

    fake_dist("acme-broken", "acme_broken", BROKEN[how])
    scan = write_volume(Volume(np.full((2, 16, 16), 40.0, np.float32)), tmp_path / "scan.nii.gz")
    for args in (["export", str(scan), "-o", str(tmp_path / "out.nrrd")], ["evaluate", str(scan), str(scan)]):
        code, out, err = _main(monkeypatch, capsys, *args)
        assert code == 0, (args, err)
    assert (tmp_path / "out.nrrd").exists()


def test_a_model_from_a_broken_plugin_stops_the_commands_that_use_models(fake_dist, fresh_plugins, monkeypatch, capsys,
                                                                         tmp_path):
    fake_dist("acme-broken", "acme_broken", BROKEN["bad model"])
    code, out, err = _main(monkeypatch, capsys, "infer", str(tmp_path / "nope"), "-m", "acme-x")
    assert code == 1 and err.startswith("Error: plugin 'acme_broken' registered") and "DENOISEKIT_BLOCK_PLUGINS" in err


def test_debug_after_the_command_keeps_the_traceback_too(monkeypatch, capsys, tmp_path):
    """Where a user adds it on rerunning: 'denoisekit export scan/ -o x.nii.gz --debug'."""
    from denoisekit.errors import DenoiseKitError

    with pytest.raises(DenoiseKitError, match="does not exist"):
        _main(monkeypatch, capsys, "export", str(tmp_path / "nope"), "-o", str(tmp_path / "x.nii.gz"), "--debug")
    code, out, err = _main(monkeypatch, capsys, "export", str(tmp_path / "nope"), "-o", str(tmp_path / "x.nii.gz"))
    assert code == 1 and err.startswith("Error:") and "does not exist" in err


RAISING = """
from denoisekit.errors import DenoiseKitError
from denoisekit.plugin import Model, hookimpl


class Raising(Model):
    name = "acme-raising"
    description = "raises inside denoise"

    def denoise(self, slices):
        if slices.shape[0] == 1:
            raise DenoiseKitError("a message meant for users")
        raise RuntimeError("boom inside denoise")


@hookimpl
def register_models(register):
    register(Raising)
"""


def test_an_unexpected_error_in_a_plugins_code_names_the_plugin(fake_dist, tmp_path):
    """Its own bug, not denoisekit's: say whose, where and in which model; a DenoiseKitError it
    raises is meant for users and stays as it is."""
    from denoisekit.io import write_volume
    from denoisekit.volume import Volume

    fake_dist("acme-raise", "acme_raise", RAISING, package=True)
    for n, expected in ((2, "Error: RuntimeError in plugin 'acme_raise' from acme-raise (model 'acme-raising', "
                            "acme_raise/__init__.py:13): boom inside denoise (rerun as 'denoisekit --debug ...' "
                            "for the traceback)"),
                        (1, "Error: a message meant for users")):
        scan = write_volume(Volume(np.full((n, 16, 16), -1000.0, np.float32)), tmp_path / f"scan{n}.nii.gz")
        result = runner.invoke(get_app(), ["infer", str(scan), "-m", "acme-raising", "--strength", "1", "--quiet",
                                           "-o", str(tmp_path / f"out{n}.nii.gz")])
        assert result.exit_code == 1 and result.stderr.strip() == expected, result.stderr


def test_naming_the_culprit_never_costs_the_one_line(fake_dist, tmp_path, monkeypatch):
    """blame() reads the failing frames' locals (a proxy's __class__ may raise there): if it
    fails, the error is still one line, unnamed."""
    from denoisekit import plugins
    from denoisekit.io import write_volume
    from denoisekit.volume import Volume

    def broken(exc):
        raise RuntimeError("proxy target not available")

    fake_dist("acme-raise", "acme_raise", RAISING, package=True)
    monkeypatch.setattr(plugins, "blame", broken)
    scan = write_volume(Volume(np.full((2, 16, 16), -1000.0, np.float32)), tmp_path / "scan.nii.gz")
    result = runner.invoke(get_app(), ["infer", str(scan), "-m", "acme-raising", "--strength", "1", "--quiet",
                                       "-o", str(tmp_path / "out.nii.gz")])
    assert result.exit_code == 1 and result.stderr.strip() == (
        "Error: RuntimeError: boom inside denoise (rerun as 'denoisekit --debug ...' for the traceback)"), result.stderr
