"""`denoisekit plugins/models/backprops/noises`: JSON shapes, tables and exit codes."""

import json

import pytest
from typer.testing import CliRunner

from denoisekit.cli import get_app

runner = CliRunner()

PLUGIN = """
from denoisekit.plugin import Backprop, Model, NoiseKind, hookimpl

class Blur(Model):
    name = "acme-blur"
    description = "A test filter"
    options = {"radius": 2}

class Rule(Backprop):
    name = "acme-rule"
    description = "A test rule"
    requires_manual_gradients = True

class Speckle(NoiseKind):
    name = "acme-speckle"
    description = "A test noise"
    options = {"level": 0.1}

@hookimpl
def register_models(register):
    register(Blur)

@hookimpl
def register_backprops(register):
    register(Rule)

@hookimpl
def register_noise(register):
    register(Speckle)
"""


def invoke(*args):
    return runner.invoke(get_app(), list(args))


def test_plugins_json_names_version_and_hooks(fake_dist):
    fake_dist("acme-denoise", "acme_denoise", PLUGIN, version="0.7")
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["acme_denoise"] == {
        "name": "acme_denoise", "version": "0.7", "distribution": "acme-denoise", "builtin": False,
        "hooks": ["register_backprops", "register_models", "register_noise"], "error": None, "blocked": False,
    }
    assert rows["denoisekit_plugins.models"]["builtin"] is True


def test_plugins_shows_what_is_blocked_and_warns_of_a_block_that_matches_nothing(fake_dist, monkeypatch):
    fake_dist("acme-denoise", "acme_denoise", PLUGIN, version="0.7")
    monkeypatch.setenv("DENOISEKIT_BLOCK_PLUGINS", "acme-denoise,acme-typo")
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["acme_denoise"]["blocked"] is True and rows["denoisekit_plugins.models"]["blocked"] is False
    assert result.stderr == "warning: DENOISEKIT_BLOCK_PLUGINS names 'acme-typo', which no installed plugin is called\n"
    table = runner.invoke(get_app(), ["plugins"], env={"COLUMNS": "200"})
    assert "blocked by DENOISEKIT_BLOCK_PLUGINS" in table.stdout


def test_a_listing_says_what_a_block_keeps_out(fresh_plugins, monkeypatch):
    monkeypatch.setenv("DENOISEKIT_BLOCK_PLUGINS", "denoisekit_plugins.models")
    result = invoke("models", "--json")
    assert result.exit_code == 0 and json.loads(result.stdout) == {}
    assert result.stderr == ("note: DENOISEKIT_BLOCK_PLUGINS keeps out denoisekit_plugins.models: "
                             "their entries are not listed\n")


def test_plugins_warns_of_an_allowlist_name_that_matches_nothing_and_says_what_it_leaves_out(fake_dist, monkeypatch):
    """As for the blocklist: a typo there would run built-ins only, silently."""
    fake_dist("acme-denoise", "acme_denoise", PLUGIN, version="0.7")
    monkeypatch.setenv("DENOISEKIT_LOAD_PLUGINS", "acme-denoize")
    result = invoke("plugins", "--json")
    assert result.exit_code == 0, result.output
    assert "acme_denoise" not in {row["name"] for row in json.loads(result.stdout)}
    assert result.stderr == ("warning: DENOISEKIT_LOAD_PLUGINS names 'acme-denoize', which no installed plugin is called\n"
                             "note: DENOISEKIT_LOAD_PLUGINS leaves out acme_denoise\n")
    result = invoke("noises", "--json")
    assert result.exit_code == 0 and "acme-speckle" not in json.loads(result.stdout)
    assert result.stderr == "note: DENOISEKIT_LOAD_PLUGINS leaves out acme_denoise: their entries are not listed\n"


def test_models_json_is_keyed_by_registered_name(fake_dist):
    fake_dist("acme-denoise", "acme_denoise", PLUGIN)
    result = invoke("models", "--json")
    assert result.exit_code == 0, result.output
    entry = json.loads(result.stdout)["acme-blur"]
    assert entry["description"] == "A test filter"
    assert entry["plugin"] == "acme_denoise"
    assert entry["trainable"] is False and entry["manual_gradients"] is False
    assert entry["options"] == {"radius": 2}


def test_backprops_and_noises_json(fake_dist):
    fake_dist("acme-denoise", "acme_denoise", PLUGIN)
    rules = json.loads(invoke("backprops", "--json").stdout)
    assert rules["acme-rule"]["requires_manual_gradients"] is True
    noises = json.loads(invoke("noises", "--json").stdout)
    assert noises["acme-speckle"]["options"] == {"level": 0.1}


def test_tables_show_the_registered_entries(fake_dist):
    fake_dist("acme-denoise", "acme_denoise", PLUGIN)
    for command, name in [("models", "acme-blur"), ("backprops", "acme-rule"), ("noises", "acme-speckle")]:
        result = invoke(command)
        assert result.exit_code == 0 and name in result.stdout


def test_tables_print_descriptions_as_written_not_as_markup():
    result = invoke("models")
    assert result.exit_code == 0 and "denoisekit[bm3d]" in result.stdout.replace("\n", "").replace(" ", "").replace("│", "")


def test_registration_error_is_one_line_exit_1(fake_dist):
    fake_dist("acme-one", "acme_one", PLUGIN)
    fake_dist("acme-two", "acme_two", PLUGIN)
    result = invoke("models")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: model name 'acme-blur' is registered twice: by plugin 'acme_one' and by plugin 'acme_two'"
    ] or result.stderr.count("\n") == 1
    assert "Traceback" not in result.output


def test_a_plugin_taking_a_built_in_name_is_the_one_named_and_blocked(fake_dist):
    """The built-in was blamed and its block suggested, which then ran the plugin's model as
    'residual-mul' without a word (new-user pass)."""
    fake_dist("acme-denoise", "acme_denoise", PLUGIN.replace('"acme-blur"', '"residual-mul"')
              .replace('"acme-rule"', '"manual"'))
    result = invoke("models")
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        "Error: plugin 'acme_denoise' registers a model named 'residual-mul', the name of denoisekit's own "
        "(plugin 'denoisekit_plugins.models'): a plugin needs a name of its own; "
        "DENOISEKIT_BLOCK_PLUGINS=acme_denoise runs denoisekit without it")
    rows = {row["name"]: row for row in json.loads(invoke("plugins", "--json").stdout)}
    assert rows["denoisekit_plugins.models"]["error"] is None and rows["denoisekit_plugins.backprops"]["error"] is None
    assert "'residual-mul'" in rows["acme_denoise"]["error"]
    from denoisekit.plugins import survey

    models, broken = survey("model")
    assert models["residual-mul"].plugin == "denoisekit_plugins.models" and list(broken) == ["acme_denoise"]
    rules, broken = survey("backprop")
    assert rules["manual"].plugin == "denoisekit_plugins.backprops" and "'manual'" in broken["acme_denoise"]


def test_a_plugin_failing_in_one_hook_provides_nothing_in_the_others(fake_dist):
    """Its register_models raised, yet `backprops` listed its rule with exit 0 and its noise kind
    ran (new-user pass); the docs say such a plugin stops denoisekit."""
    fake_dist("acme-denoise", "acme_denoise", PLUGIN.replace("    register(Blur)", "    raise RuntimeError('no blur today')"))
    listed = invoke("backprops", "--json")
    assert listed.exit_code == 1
    assert "acme-rule" not in json.loads(listed.stdout) and "manual" in json.loads(listed.stdout)
    assert "plugin 'acme_denoise' failed in register_models: RuntimeError: no blur today" in listed.stderr
    from denoisekit.errors import PluginError
    from denoisekit.plugins import get_noise

    with pytest.raises(PluginError, match="no blur today"):
        get_noise("acme-speckle")


def test_debug_keeps_the_exception(fake_dist):
    from denoisekit.errors import PluginError

    fake_dist("acme-one", "acme_one", PLUGIN)
    fake_dist("acme-two", "acme_two", PLUGIN)
    result = invoke("--debug", "models")
    assert isinstance(result.exception, PluginError)


LONG = """
from denoisekit.plugin import Model, hookimpl

class Wide(Model):
    name = "acme-wide-model-name"
    description = "A model with long option values, as the residual CNNs have"
    options = {"activations": ["sigmoid", "tanh", "arctan", "relu", "tanh", "sigmoid2"], "profile": "np",
               "spectrum": "estimated", "kernels": [13, 7, 3, 5, 3, 1]}

@hookimpl
def register_models(register):
    register(Wide)
"""


def _words_kept_whole(command: str, width: int, words: list[str]) -> str:
    result = runner.invoke(get_app(), [command], env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(line) <= width for line in lines), (command, width, result.stdout)
    assert "…" not in result.stdout, result.stdout
    for word in words:
        assert any(word in line for line in lines), (command, width, word, result.stdout)
    return result.stdout


def test_listings_never_cut_or_split_a_name_option_or_path_at_80_or_60_columns(fake_dist):
    fake_dist("acme-long-distribution-name", "acme_plugin_with_a_long_module_name", LONG)
    for width in (80, 60):
        for command in ("models", "backprops", "noises"):
            entries = json.loads(invoke(command, "--json").stdout)
            words = [*entries, *(str(e["plugin"]) for e in entries.values()
                                 if not str(e["plugin"]).startswith("denoisekit_plugins."))]
            for e in entries.values():
                words += [f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}"
                          for k, v in (e.get("options") or {}).items()]
            _words_kept_whole(command, width, words)
        infos = json.loads(invoke("plugins", "--json").stdout)
        _words_kept_whole("plugins", width, [w for i in infos for w in (i["name"], i["distribution"], *i["hooks"])])


def test_listings_are_tables_when_wide_and_blocks_when_not(fake_dist):
    fake_dist("acme-long-distribution-name", "acme_plugin_with_a_long_module_name", LONG)
    wide = _words_kept_whole("models", 200, ["activations=sigmoid,tanh,arctan,relu,tanh,sigmoid2"])
    assert "┃ name" in wide and "description and options" in wide
    narrow = _words_kept_whole("models", 80, ["activations=sigmoid,tanh,arctan,relu,tanh,sigmoid2"])
    assert "┃" not in narrow
    assert "acme-wide-model-name (plugin acme_plugin_with_a_long_module_name)" in narrow
    assert "  options: activations=" in narrow
    assert "--option key=value" in narrow  # how to set what is listed


def test_bm3d_says_what_its_profile_option_is():
    entry = json.loads(invoke("models", "--json").stdout)["bm3d"]
    assert "profile" in entry["options"] and "profile: the bm3d package's parameter set" in entry["description"]


BROKEN_IMPORT = "raise ImportError('needs libfoo')\n"
BAD_MODEL = """
from denoisekit.plugin import Model, hookimpl

class NoDescription(Model):
    name = "acme-bad"

@hookimpl
def register_models(register):
    register(NoDescription)
"""
BAD_COMMANDS = """
from denoisekit.plugin import hookimpl

@hookimpl
def register_commands(app):
    raise RuntimeError("boom")
"""


def test_plugins_lists_a_broken_plugin_with_its_error_and_exits_1(fake_dist):
    """What is installed, which plugin is broken and how to run without it; exit 1, as the
    environment is broken (every other command stops at it)."""
    from denoisekit.cli import app  # get_app() itself stops at a broken plugin

    fake_dist("acme-denoise", "acme_denoise", PLUGIN, version="0.7")
    fake_dist("acme-import", "acme_import", BROKEN_IMPORT, version="1.1")
    fake_dist("acme-model", "acme_model", BAD_MODEL)
    fake_dist("acme-cmd", "acme_cmd", BAD_COMMANDS)
    result = runner.invoke(app, ["plugins", "--json"])
    assert result.exit_code == 1
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["acme_denoise"]["error"] is None and rows["denoisekit_plugins.models"]["error"] is None
    assert rows["acme_import"]["version"] == "1.1" and "needs libfoo" in rows["acme_import"]["error"]
    assert "needs a one-line description" in rows["acme_model"]["error"]
    assert "failed in register_commands" in rows["acme_cmd"]["error"]
    errors = result.stderr.splitlines()
    assert len(errors) == 3 and all(e.startswith("Error: plugin") or e.startswith("Error: model") for e in errors)
    for name in ("acme_import", "acme_model", "acme_cmd"):
        assert f"DENOISEKIT_BLOCK_PLUGINS={name} runs denoisekit without it" in result.stderr
    table = runner.invoke(app, ["plugins"], env={"COLUMNS": "200"})
    assert table.exit_code == 1 and "acme_import" in table.stdout and "broken: see the error below" in table.stdout


def test_models_lists_what_loads_and_names_the_broken_plugin(fake_dist):
    from denoisekit.cli import app

    fake_dist("acme-denoise", "acme_denoise", PLUGIN)
    fake_dist("acme-import", "acme_import", BROKEN_IMPORT)
    result = runner.invoke(app, ["models", "--json"])
    assert result.exit_code == 1
    assert {"acme-blur", "residual-mul"} <= set(json.loads(result.stdout))
    assert result.stderr.startswith("Error: plugin 'acme_import' from acme-import failed to load: needs libfoo; "
                                    "DENOISEKIT_BLOCK_PLUGINS=acme_import") and result.stderr.count("\n") == 1
    result = runner.invoke(app, ["--debug", "models"])  # --debug: the traceback of what broke it
    assert isinstance(result.exception.__cause__, ImportError)


CLASHING_COMMAND = PLUGIN + """

@hookimpl
def register_commands(app):
    @app.command(name="train")
    def mine():
        pass
"""


def test_listings_name_a_plugin_whose_command_takes_a_builtin_name(fake_dist):
    """As every other command does (it is as broken as one that fails to import): shown, not
    stopped at, as the listings show any broken plugin; its entries are left out."""
    from denoisekit.cli import app

    fake_dist("acme-clash", "acme_clash", CLASHING_COMMAND)
    for listing, entry in (("models", "acme-blur"), ("backprops", "acme-rule"), ("noises", "acme-speckle")):
        result = runner.invoke(app, [listing, "--json"])
        assert result.exit_code == 1, (listing, result.output)
        entries = json.loads(result.stdout)
        assert entries and entry not in entries, listing
        assert result.stderr == ("Error: command 'train' is registered twice: by denoisekit (built in) and by plugin "
                                 "'acme_clash'; DENOISEKIT_BLOCK_PLUGINS=acme_clash runs denoisekit without it\n")
