"""Plugin discovery through entry points, the allowlist and blocklist, and registration checks."""

import re
from importlib import metadata

import pytest

from denoisekit.errors import PluginError, UsageError

MODEL_PLUGIN = """
from denoisekit.plugin import Model, hookimpl

class Blur(Model):
    name = "{name}"
    description = "A test filter"

    def denoise(self, slices):
        return slices

@hookimpl
def register_models(register):
    register(Blur)
"""


def test_builtins_come_from_the_entry_point_group(fresh_plugins):
    eps = {ep.value for ep in metadata.entry_points(group="denoisekit") if ep.dist.name == "denoisekit"}
    assert {"denoisekit_plugins.models", "denoisekit_plugins.backprops", "denoisekit_plugins.noise"} <= eps
    infos = {i.name: i for i in fresh_plugins.plugin_infos()}
    for name in eps:
        assert infos[name].builtin
        assert infos[name].distribution == "denoisekit"
    assert infos["denoisekit_plugins.models"].hooks == ["register_models"]


def test_hook_register_models_third_party_model_is_discovered(fake_dist, fresh_plugins):
    fake_dist("acme-denoise", "acme_denoise", MODEL_PLUGIN.format(name="acme-blur"), version="2.3")
    models = fresh_plugins.get_models()
    assert models["acme-blur"].description == "A test filter"
    assert models["acme-blur"].plugin == "acme_denoise"
    info = {i.name: i for i in fresh_plugins.plugin_infos()}["acme_denoise"]
    assert (info.version, info.distribution, info.builtin, info.hooks) == ("2.3", "acme-denoise", False, ["register_models"])


@pytest.mark.parametrize(
    "allow, loaded",
    [(None, True), ("", False), ("someone-else", False), ("acme-denoise", True), ("acme_denoise,x", True)],
)
def test_load_plugins_allowlist(fake_dist, fresh_plugins, monkeypatch, allow, loaded):
    fake_dist("acme-denoise", "acme_denoise", MODEL_PLUGIN.format(name="acme-blur"))
    if allow is not None:
        monkeypatch.setenv("DENOISEKIT_LOAD_PLUGINS", allow)
    names = {i.name for i in fresh_plugins.plugin_infos()}
    assert ("acme_denoise" in names) is loaded
    assert ("acme-blur" in fresh_plugins.get_models()) is loaded
    assert "denoisekit_plugins.models" in names  # built-ins load whatever the allowlist says


def test_block_plugins_by_name_including_builtins(fake_dist, fresh_plugins, monkeypatch):
    fake_dist("acme-denoise", "acme_denoise", MODEL_PLUGIN.format(name="acme-blur"))
    monkeypatch.setenv("DENOISEKIT_BLOCK_PLUGINS", "acme-denoise, denoisekit_plugins.backprops")
    names = {i.name for i in fresh_plugins.plugin_infos()}
    assert "acme_denoise" not in names
    assert "denoisekit_plugins.backprops" not in names
    assert fresh_plugins.get_backprops() == {}
    assert "denoisekit_plugins.models" in names
    # a name only a blocked plugin had: the error says what keeps it out
    with pytest.raises(PluginError, match="DENOISEKIT_BLOCK_PLUGINS keeps out denoisekit_plugins.backprops, acme_denoise"):
        fresh_plugins.get_backprop("manual")


def test_a_block_that_matches_no_plugin_is_not_blamed_for_a_missing_name(fresh_plugins, monkeypatch):
    monkeypatch.setenv("DENOISEKIT_BLOCK_PLUGINS", "modles")  # a typo: blocks nothing
    with pytest.raises(PluginError) as err:
        fresh_plugins.get_model("residual-mull")
    assert "DENOISEKIT_BLOCK_PLUGINS" not in str(err.value)


def test_same_name_from_two_plugins_is_an_error_naming_both(fake_dist, fresh_plugins):
    fake_dist("acme-one", "acme_one", MODEL_PLUGIN.format(name="same-name"))
    fake_dist("acme-two", "acme_two", MODEL_PLUGIN.format(name="same-name"))
    with pytest.raises(PluginError, match="same-name") as err:
        fresh_plugins.get_models()
    assert "acme_one" in str(err.value) and "acme_two" in str(err.value)


def test_clash_with_a_builtin_names_the_builtin(fake_dist, fresh_plugins):
    fake_dist("acme-one", "acme_one", MODEL_PLUGIN.format(name="residual-mul"))
    with pytest.raises(PluginError, match="denoisekit_plugins.models"):
        fresh_plugins.get_models()


@pytest.mark.parametrize("bad", ["Camel-Case", "under_score", "-lead", "two--hyphens", ""])
def test_names_must_be_kebab_case(fake_dist, fresh_plugins, bad):
    fake_dist("acme-one", "acme_one", MODEL_PLUGIN.format(name=bad))
    with pytest.raises(PluginError, match="kebab-case"):
        fresh_plugins.get_models()


def test_registering_something_that_is_not_a_model_is_an_error(fake_dist, fresh_plugins):
    fake_dist("acme-one", "acme_one", """
from denoisekit.plugin import hookimpl

class NotAModel:
    name = "nope"
    description = "x"

@hookimpl
def register_models(register):
    register(NotAModel)
""")
    with pytest.raises(PluginError, match="subclass of denoisekit.plugin.Model"):
        fresh_plugins.get_models()


def test_description_is_required_and_one_line(fake_dist, fresh_plugins):
    fake_dist("acme-one", "acme_one", MODEL_PLUGIN.format(name="blur").replace('"A test filter"', '"two\\nlines"'))
    with pytest.raises(PluginError, match="one-line description"):
        fresh_plugins.get_models()


def test_an_implementation_may_take_fewer_arguments_than_the_spec(fake_dist, fresh_plugins):
    fake_dist("acme-one", "acme_one", """
from denoisekit.plugin import hookimpl

called = []

@hookimpl
def register_models():
    called.append(True)
""")
    fresh_plugins.get_models()
    import acme_one

    assert acme_one.called == [True]


def test_a_plugin_that_fails_to_import_is_a_clear_error(fake_dist, fresh_plugins):
    fake_dist("acme-broken", "acme_broken", "raise ImportError('needs libfoo')\n")
    with pytest.raises(PluginError, match="acme_broken.*libfoo"):
        fresh_plugins.plugin_infos()


def test_trace_plugins_prints_hook_calls(fake_dist, fresh_plugins, monkeypatch, capsys):
    fake_dist("acme-one", "acme_one", MODEL_PLUGIN.format(name="acme-blur"))
    monkeypatch.setenv("DENOISEKIT_TRACE_PLUGINS", "1")
    fresh_plugins.get_models()
    assert "register_models -> acme_one" in capsys.readouterr().err


def test_unknown_name_lists_what_is_available(fake_dist, fresh_plugins):
    fake_dist("acme-one", "acme_one", MODEL_PLUGIN.format(name="acme-blur"))
    with pytest.raises(PluginError, match=r"no model named 'nope' \(available: .*acme-blur"):
        fresh_plugins.get_model("nope")


class _Trainable:
    trainable, manual_gradients, name = True, False, "keras-thing"


class _Fixed:
    trainable, manual_gradients, name = False, False, "a-filter"


class _Manual:
    requires_manual_gradients, name = True, "manual"


class _Auto:
    requires_manual_gradients, name = False, "autodiff"


def test_capability_errors(fresh_plugins):
    with pytest.raises(UsageError, match="'a-filter' is a fixed filter and cannot be trained"):
        fresh_plugins.check_trainable(_Fixed, _Auto)
    with pytest.raises(UsageError, match="needs hand-written gradients.*'keras-thing'.*--backprop autodiff"):
        fresh_plugins.check_trainable(_Trainable, _Manual)
    fresh_plugins.check_trainable(_Trainable, _Auto)  # compatible: no error


def test_hook_register_backprops_third_party_rule(fake_dist, fresh_plugins):
    fake_dist("acme-rules", "acme_rules", """
from denoisekit.plugin import Backprop, hookimpl

class Sign(Backprop):
    name = "sign-sgd"
    description = "Sign of the autodiff gradient"

@hookimpl
def register_backprops(register):
    register(Sign)
""")
    rule = fresh_plugins.get_backprop("sign-sgd")
    assert rule.requires_manual_gradients is False and rule.plugin == "acme_rules"
    # a model without hand-written gradients is pointed at every rule that can train it
    with pytest.raises(UsageError, match="use --backprop autodiff or sign-sgd$"):
        fresh_plugins.check_trainable(_Trainable, _Manual)


def test_hook_register_noise_third_party_kind(fake_dist, fresh_plugins):
    fake_dist("acme-noise", "acme_noise", """
import numpy as np
from denoisekit.plugin import NoiseKind, hookimpl

class Offset(NoiseKind):
    name = "offset"
    description = "Adds a constant"
    options = {"hu": 5.0}

    def apply(self, hu, params, spacing=(1.0, 1.0, 1.0)):
        return hu + params["hu"]

@hookimpl
def register_noise(register):
    register(Offset)
""")
    import numpy as np

    kind = fresh_plugins.get_noise("offset")(hu=2.0)
    params = kind.sample(np.random.default_rng(0), (1, 2, 2))
    assert (kind.apply(np.zeros((1, 2, 2)), params) == 2.0).all()


def test_a_broken_plugin_is_named_with_the_way_to_run_without_it(fake_dist, fresh_plugins):
    fake_dist("acme-broken", "acme_broken", "raise ImportError('needs libfoo')\n")
    with pytest.raises(PluginError, match="DENOISEKIT_BLOCK_PLUGINS=acme_broken runs denoisekit without it"):
        fresh_plugins.plugin_infos()


def test_a_hook_with_the_wrong_arguments_names_its_plugin(fake_dist, fresh_plugins):
    fake_dist("acme-sig", "acme_sig", """
from denoisekit.plugin import hookimpl

@hookimpl
def register_models(register, colour):
    pass
""")
    with pytest.raises(PluginError, match=r"plugin 'acme_sig'.*colour.*DENOISEKIT_BLOCK_PLUGINS=acme_sig"):
        fresh_plugins.plugin_infos()


def test_a_misspelled_hook_is_an_error_not_silence(fake_dist, fresh_plugins):
    fake_dist("acme-typo", "acme_typo", """
from denoisekit.plugin import hookimpl

@hookimpl
def register_model(register):
    pass
""")
    with pytest.raises(PluginError, match=r"plugin 'acme_typo'.*register_model\b.*hooks: .*register_models"):
        fresh_plugins.plugin_infos()


@pytest.mark.parametrize("marker", ["", "@pluggy.HookimplMarker('otherproject')"], ids=["unmarked", "other marker"])
def test_a_plugin_that_registers_nothing_is_warned_about_and_harms_nothing(fake_dist, fresh_plugins, capsys, marker):
    fake_dist("acme-bare", "acme_bare", f"""
import pluggy

{marker}
def register_models(register):
    raise AssertionError("never called")
""")
    infos = {i.name: i for i in fresh_plugins.plugin_infos()}
    assert infos["acme_bare"].hooks == []
    err = capsys.readouterr().err
    assert "warning: plugin 'acme_bare' from acme-bare registers nothing: register_models is not marked " \
           "@denoisekit.hookimpl" in err and "DENOISEKIT_BLOCK_PLUGINS=acme_bare" in err
    assert "residual-mul" in fresh_plugins.get_models()  # denoisekit keeps working


def test_a_hook_that_returns_its_models_instead_of_registering_them_is_named(fake_dist, fresh_plugins):
    fake_dist("acme-return", "acme_return", """
from denoisekit.plugin import hookimpl, Model

class Thing(Model):
    name = "thing"
    description = "a model"

@hookimpl
def register_models(register):
    return [Thing]
""")
    with pytest.raises(PluginError, match="plugin 'acme_return' returned a value from register_models, which "
                                          "denoisekit ignores: call the register it is given instead"):
        fresh_plugins.get_models()


def test_an_error_inside_a_hook_names_the_plugin(fake_dist, fresh_plugins):
    fake_dist("acme-raise", "acme_raise", """
from denoisekit.plugin import hookimpl

@hookimpl
def register_models(register):
    raise RuntimeError("boom")
""")
    with pytest.raises(PluginError, match="plugin 'acme_raise' failed in register_models: RuntimeError: boom"):
        fresh_plugins.get_models()


@pytest.mark.parametrize("how", ["command", "group", "function name"])
def test_a_plugin_command_may_not_take_a_builtin_name(fake_dist, fresh_plugins, monkeypatch, capsys, how):
    import typer

    from denoisekit.cli import add_plugin_commands

    taking = {
        "command": '@app.command(name="train")\n    def mine():\n        pass',
        "group": 'sub = typer.Typer()\n    app.add_typer(sub, name="train")',
        "function name": '@app.command()\n    def Train():  # Typer names it "train"\n        pass',
    }[how]
    fake_dist("acme-cmd", "acme_cmd", f"""
import typer
from denoisekit.plugin import hookimpl

@hookimpl
def register_commands(app):
    @app.command(name="acme-hello")
    def hello():
        pass

    {taking}
""")
    monkeypatch.setenv("DENOISEKIT_TRACE_PLUGINS", "1")
    app = typer.Typer()

    @app.command()
    def train():  # stands for the built-in
        pass

    with pytest.raises(PluginError, match="command 'train' is registered twice: by denoisekit \\(built in\\) "
                                          "and by plugin 'acme_cmd'"):
        add_plugin_commands(app)
    assert [c.callback for c in app.registered_commands] == [train] and not app.registered_groups  # nothing left
    assert "register_commands -> acme_cmd" in capsys.readouterr().err  # traced like every hook


NOT_A_CLASS = """
from denoisekit.plugin import hookimpl

@hookimpl
def register_models(register):
    register(lambda slices: slices)
"""


@pytest.mark.parametrize("source", [
    NOT_A_CLASS,
    MODEL_PLUGIN.format(name="Bad_Name"),
    MODEL_PLUGIN.format(name="blur").replace('"A test filter"', '""'),
    MODEL_PLUGIN.format(name="residual-mul"),
], ids=["not a class", "bad name", "no description", "name taken"])
def test_every_registration_error_names_the_way_out(fake_dist, fresh_plugins, source):
    fake_dist("acme-one", "acme_one", source)
    with pytest.raises(PluginError, match="DENOISEKIT_BLOCK_PLUGINS=acme_one runs denoisekit without it$"):
        fresh_plugins.get_models()


BROKEN = {
    "import": ("raise ImportError('needs libfoo')\n", "failed to load: needs libfoo"),
    "signature": ("from denoisekit.plugin import Backprop, hookimpl\n\nclass R(Backprop):\n    name = 'acme-r'\n"
                  "    description = 'r'\n\n@hookimpl\ndef register_backprops(register):\n    register(R)\n\n"
                  "@hookimpl\ndef register_models(register, colour):\n    pass\n", "colour"),
    "misspelled": ("from denoisekit.plugin import hookimpl\n\n@hookimpl\ndef register_model(register):\n    pass\n",
                   "register_model"),
    "raises": ("from denoisekit.plugin import hookimpl\n\n@hookimpl\ndef register_models(register):\n"
               "    raise RuntimeError('boom')\n", "failed in register_models: RuntimeError: boom"),
    "half registered": (MODEL_PLUGIN.format(name="acme-half") + "    register(object)\n", "subclass of"),
}


@pytest.mark.parametrize("how", list(BROKEN))
def test_listings_survey_what_loads_and_name_each_broken_plugin(fake_dist, fresh_plugins, how):
    source, why = BROKEN[how]
    fake_dist("acme-broken", "acme_broken", source)
    fake_dist("acme-fine", "acme_fine", MODEL_PLUGIN.format(name="acme-blur"))
    models, broken = fresh_plugins.survey("model")
    assert "acme-blur" in models and "residual-mul" in models and "acme-half" not in models
    assert list(broken) == ["acme_broken"] and why in broken["acme_broken"]
    assert broken["acme_broken"].endswith("DENOISEKIT_BLOCK_PLUGINS=acme_broken runs denoisekit without it")
    rules = fresh_plugins.survey("backprop")[0]  # pluggy had registered this hook before the bad one
    assert "autodiff" in rules and "acme-r" not in rules  # a bad signature leaves out all the plugin's hooks
    infos = {i.name: i for i in fresh_plugins.plugin_infos(broken=True)}
    assert why in infos["acme_broken"].error and infos["acme_fine"].error is None
    assert infos["acme_broken"].distribution == "acme-broken"
    with pytest.raises(PluginError, match="acme_broken"):  # everything else still stops at it
        fresh_plugins.get_models()
    if how in ("import", "signature", "misspelled"):
        with pytest.raises(PluginError, match="acme_broken"):
            fresh_plugins.plugin_infos()


def test_provider_names_the_plugin_and_its_distribution(fake_dist, fresh_plugins):
    fake_dist("acme-denoise", "acme_denoise", MODEL_PLUGIN.format(name="acme-blur"), version="2.3")
    assert fresh_plugins.provider(fresh_plugins.get_model("acme-blur")) == {
        "name": "acme_denoise", "distribution": "acme-denoise", "version": "2.3"}


def test_an_allowlist_name_that_matches_no_plugin_is_reported(fake_dist, fresh_plugins, monkeypatch):
    """As for the blocklist: a typo would run built-ins only, silently."""
    fake_dist("acme-denoise", "acme_denoise", MODEL_PLUGIN.format(name="acme-blur"))
    monkeypatch.setenv("DENOISEKIT_LOAD_PLUGINS", "acme-denoize, denoisekit_plugins.models")
    left_out, unmatched = fresh_plugins.left_out_plugins()
    assert [i.name for i in left_out] == ["acme_denoise"] and unmatched == ["acme-denoize"]
    with pytest.raises(PluginError, match="no model named 'acme-blur'.*; DENOISEKIT_LOAD_PLUGINS leaves out acme_denoise$"):
        fresh_plugins.get_model("acme-blur")


RAISING_PLUGIN = '''
from denoisekit.errors import DenoiseKitError
from denoisekit.plugin import Model, TrainableModel, hookimpl


class Raising(Model):
    name = "acme-raising"
    description = "raises"

    def denoise(self, slices):
        if slices is None:
            raise DenoiseKitError("meant for users")
        return helper(slices)


def helper(slices):
    raise RuntimeError("boom inside denoise")


class NumpyCall(TrainableModel):
    name = "acme-numpy"
    description = "uses NumPy in call()"

    def call(self, x):
        import numpy as np

        return np.asarray(x)


@hookimpl
def register_models(register):
    register(Raising)
    register(NumpyCall)
'''


def _raised(call, *args):
    try:
        call(*args)
    except Exception as exc:  # noqa: BLE001 - what the CLI's boundary gets
        return exc
    raise AssertionError("nothing raised")


def test_blame_names_the_plugin_whose_code_raised(fake_dist, fresh_plugins):
    fake_dist("acme-raise", "acme_raise", RAISING_PLUGIN, package=True)
    model = fresh_plugins.get_model("acme-raising")()
    assert fresh_plugins.blame(_raised(model.denoise, [1])) == (
        "plugin 'acme_raise' from acme-raise (model 'acme-raising', acme_raise/__init__.py:17)")
    assert fresh_plugins.blame(_raised(lambda: [][1])) is None  # no plugin's code


def test_blame_finds_the_plugin_in_code_tensorflow_traced(fake_dist, fresh_plugins):
    """tf.function keeps the plugin's frames only in its 'in user code:' message."""
    tf = pytest.importorskip("tensorflow")
    fake_dist("acme-raise", "acme_raise", RAISING_PLUGIN, package=True)
    model = fresh_plugins.get_model("acme-numpy")()
    exc = _raised(tf.function(model.call), tf.zeros((1, 4, 4, 1)))
    assert "in user code:" in str(exc)
    assert fresh_plugins.blame(exc) == "plugin 'acme_raise' from acme-raise (model 'acme-numpy', acme_raise/__init__.py:27)"


def test_blame_names_a_builtin_as_built_in(fresh_plugins):
    """Registered like a third party, named like one; marked built-in: the bug is ours."""
    import numpy as np

    exc = _raised(fresh_plugins.get_model("tv")().denoise, np.zeros((4, 4), np.float32))
    assert re.fullmatch(r"built-in plugin 'denoisekit_plugins\.models' \(model 'tv', "
                        r"denoisekit_plugins/models/classical\.py:\d+\)", fresh_plugins.blame(exc))
