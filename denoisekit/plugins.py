"""Plugin loading and the registries built from it.

Plugins come from the ``denoisekit`` entry-point group only; the built-ins in
``denoisekit_plugins`` are found there exactly like a third party's. Registries are
built lazily, once, on first use.

Environment:
- ``DENOISEKIT_LOAD_PLUGINS=a,b``: load only these third-party plugins (by plugin name,
  entry-point name or distribution name; empty: built-ins only). Unset: load everything.
- ``DENOISEKIT_BLOCK_PLUGINS=x,y``: never load these plugins (by plugin name, entry-point
  name or distribution name); built-ins can be blocked too.
  For both, ``denoisekit plugins`` warns of a name that matches no plugin (a typo).
- ``DENOISEKIT_TRACE_PLUGINS=1``: print every hook call to stderr.
"""

from __future__ import annotations

import inspect
import os
import re
import sys
import traceback
from dataclasses import dataclass, field, replace
from importlib import metadata
from typing import Any, Callable

import pluggy

from denoisekit import hookspecs
from denoisekit.errors import PluginError, UsageError

BUILTIN_DIST = "denoisekit"
ENTRY_POINT_GROUP = "denoisekit"
NAME_RE = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass
class PluginInfo:
    name: str
    version: str
    distribution: str
    builtin: bool
    hooks: list[str] = field(default_factory=list)
    #: why the plugin is left out (it failed to load or to register), with the way out
    error: str | None = None


_pm: pluggy.PluginManager | None = None
_infos: dict[str, PluginInfo] = {}
_registries: dict[str, dict[str, Any]] = {}
_causes: dict[str, BaseException] = {}  # what broke each broken plugin, for --debug's traceback
_blocked: dict[str, PluginInfo] = {}  # kept out by DENOISEKIT_BLOCK_PLUGINS, for the listing
_block_matched: set[str] = set()  # the names in it that matched a plugin
_left_out: dict[str, PluginInfo] = {}  # third parties DENOISEKIT_LOAD_PLUGINS does not name
_load_matched: set[str] = set()  # the names in it that matched a plugin


def _env_list(var: str) -> list[str] | None:
    value = os.environ.get(var)
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _dist_name(ep: metadata.EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return dist.metadata["Name"] if dist is not None else "?"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def get_plugin_manager(broken: dict[str, str] | None = None) -> pluggy.PluginManager:
    """The process-wide plugin manager, loading plugins on first call. A plugin that failed to
    load is an error every time (running with it silently missing would be worse), or with
    ``broken`` put there (by plugin) for a listing to show, and left out."""
    pm = _load()
    errors = {i.name: i.error for i in _infos.values() if i.error}
    if broken is not None:
        broken.update(errors)
    elif errors:
        name, error = next(iter(errors.items()))
        raise PluginError(error) from _causes.get(name)
    return pm


def _load() -> pluggy.PluginManager:
    """Load every plugin once. One that fails to load is left out and kept in ``_infos`` with
    its error, so the listings can still show what is installed and name the culprit."""
    global _pm
    if _pm is not None:
        return _pm
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    allow = _env_list("DENOISEKIT_LOAD_PLUGINS")
    allowed = None if allow is None else {_normalise(a) for a in allow}
    blocked = {_normalise(b) for b in _env_list("DENOISEKIT_BLOCK_PLUGINS") or []}
    infos: dict[str, PluginInfo] = {}  # published only once every plugin has loaded
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = _dist_name(ep)
        builtin = _normalise(dist) == BUILTIN_DIST
        name = ep.value.split(":")[0]
        names = {_normalise(name), _normalise(ep.name), _normalise(dist)}
        version = ep.dist.version if getattr(ep, "dist", None) is not None else "?"
        _load_matched.update(names & (allowed or set()))
        if not builtin and allowed is not None and not names & allowed:
            _left_out[name] = PluginInfo(name, version, dist, builtin)
            continue
        if names & blocked:
            pm.set_blocked(name)
            _block_matched.update(names & blocked)
            _blocked[name] = PluginInfo(name, version, dist, builtin)
            continue
        if pm.has_plugin(name) or name in infos:
            continue  # the same distribution seen twice on sys.path
        info = infos[name] = PluginInfo(name, version, dist, builtin)
        try:
            module = ep.load()
        except Exception as exc:  # name the broken plugin instead of a bare traceback
            info.error = f"plugin {name!r} from {dist} failed to load: {_one_line(exc)}{_way_out(name)}"
            _causes[name] = exc
            continue
        try:
            pm.register(module, name=name)
        except pluggy.PluginValidationError as exc:  # e.g. a hook with arguments its spec lacks
            _unregister(pm, name)  # pluggy keeps the hooks it registered before the bad one
            info.error = f"plugin {name!r} from {dist}: {_one_line(exc)}{_way_out(name)}"
            _causes[name] = exc
    while True:  # a misspelled hook (register_model) would otherwise do nothing, silently
        try:
            pm.check_pending()
            break
        except pluggy.PluginValidationError as exc:
            name = pm.get_name(exc.plugin) or "?"
            if name not in infos or not _unregister(pm, name):
                raise PluginError(f"plugin {name!r}: {_one_line(exc)}{_way_out(name)}") from exc
            infos[name].error = f"plugin {name!r}: {_one_line(exc)} (hooks: {', '.join(_hook_names())}){_way_out(name)}"
            _causes[name] = exc
    for name, info in infos.items():
        plugin = pm.get_plugin(name)
        if info.error or plugin is None:
            continue
        info.hooks = sorted(
            hc.name for hc in pm.get_hookcallers(plugin) or [] if hc.name.startswith("register")
        )
        if not info.hooks and not info.builtin:
            _warn_registers_nothing(name, info.distribution, plugin)
    if os.environ.get("DENOISEKIT_TRACE_PLUGINS"):
        pm.trace.root.setwriter(lambda msg: print(msg, end="", file=sys.stderr))
        pm.enable_tracing()
    _infos.update(infos)
    _pm = pm
    return pm


def _unregister(pm: pluggy.PluginManager, name: str) -> bool:
    """Take a plugin that failed validation out again (whether it went in or not)."""
    try:
        pm.unregister(name=name)
    except (ValueError, AssertionError):
        return False
    return True


def _warn_registers_nothing(name: str, dist: str, plugin: Any) -> None:
    """A plugin whose module implements no hook is a mistake (an unmarked function, another
    project's marker): it would only be missing from the listings, silently. A warning, not an
    error: it harms nothing else, so denoisekit keeps working."""
    unmarked = [h for h in _hook_names() if callable(getattr(plugin, h, None))]
    why = (f"{', '.join(unmarked)} {'is' if len(unmarked) == 1 else 'are'} not marked @denoisekit.hookimpl"
           if unmarked else "no function is marked @denoisekit.hookimpl")
    print(f"warning: plugin {name!r} from {dist} registers nothing: {why}{_way_out(name)}", file=sys.stderr)


def _one_line(exc: Exception) -> str:
    """pluggy's messages span lines; the CLI shows one."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _way_out(name: str) -> str:
    return f"; DENOISEKIT_BLOCK_PLUGINS={name} runs denoisekit without it"


def _hook_names() -> list[str]:
    return sorted(n for n in dir(hookspecs) if n.startswith("register_"))


def reset() -> None:
    """Forget loaded plugins and registries (tests change the environment between runs)."""
    global _pm
    _pm = None
    _infos.clear()
    _causes.clear()
    _blocked.clear()
    _block_matched.clear()
    _left_out.clear()
    _load_matched.clear()
    _registries.clear()


def plugin_infos(broken: bool = False) -> list[PluginInfo]:
    """The plugins, built-ins first. With ``broken``, one that fails to load or to register
    (its hooks are run to find out) is listed with its ``error`` instead of raising it."""
    if not broken:
        get_plugin_manager()
        return sorted(_infos.values(), key=lambda i: (not i.builtin, i.name))
    _load()
    infos = {name: replace(info) for name, info in _infos.items()}  # copies: errors found here are not kept
    for kind in _KINDS:
        for name, error in survey(kind)[1].items():
            infos[name].error = infos[name].error or error
    return sorted(infos.values(), key=lambda i: (not i.builtin, i.name))


def blocked_plugins() -> tuple[list[PluginInfo], list[str]]:
    """The plugins DENOISEKIT_BLOCK_PLUGINS keeps out, and the names in it that match no
    installed plugin (a typo blocks nothing, silently otherwise)."""
    _load()
    unmatched = [b for b in _env_list("DENOISEKIT_BLOCK_PLUGINS") or [] if _normalise(b) not in _block_matched]
    return sorted(_blocked.values(), key=lambda i: (not i.builtin, i.name)), unmatched


def left_out_plugins() -> tuple[list[PluginInfo], list[str]]:
    """The third-party plugins DENOISEKIT_LOAD_PLUGINS leaves out, and the names in it that
    match no installed plugin: a typo there would otherwise run built-ins only, silently."""
    _load()
    unmatched = [a for a in _env_list("DENOISEKIT_LOAD_PLUGINS") or [] if _normalise(a) not in _load_matched]
    return sorted(_left_out.values(), key=lambda i: i.name), unmatched


def kept_out() -> str:
    """What the environment keeps out (for a listing or a name not found), or ''."""
    blocked = [i.name for i in blocked_plugins()[0]]  # only what it really keeps out: not a typo's
    left_out = [i.name for i in left_out_plugins()[0]]
    return "; ".join([*([f"DENOISEKIT_BLOCK_PLUGINS keeps out {', '.join(blocked)}"] if blocked else []),
                      *([f"DENOISEKIT_LOAD_PLUGINS leaves out {', '.join(left_out)}"] if left_out else [])])


def call_impl(impl: Any, hook_name: str, kwargs: dict[str, Any]) -> None:
    """Call one plugin's implementation of ``hook_name``; an error inside it names the plugin."""
    if os.environ.get("DENOISEKIT_TRACE_PLUGINS"):  # pluggy's own tracing sees only pm.hook calls
        print(f"{hook_name} -> {impl.plugin_name}", file=sys.stderr)
    try:
        returned = impl.function(*[kwargs[a] for a in impl.argnames])
    except PluginError:
        raise
    except Exception as exc:  # a plugin's own bug: say whose, not a bare traceback
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise PluginError(f"plugin '{impl.plugin_name}' failed in {hook_name}: {type(exc).__name__}"
                          f"{': ' + detail if detail else ''}{_way_out(impl.plugin_name)}") from exc
    if returned is not None:  # 'return [Model]': registers nothing, without a word
        given = "app" if "app" in impl.argnames else "register"
        raise PluginError(f"plugin '{impl.plugin_name}' returned a value from {hook_name}, which denoisekit "
                          f"ignores: call the {given} it is given instead{_way_out(impl.plugin_name)}")


def _build(pm: pluggy.PluginManager, hook_name: str, base: type, kind: str,
           broken: dict[str, str] | None = None) -> dict[str, Any]:
    """The registry of ``kind``; a plugin's error is raised, or with ``broken`` kept there
    (by plugin) and the plugin's entries left out."""
    registry: dict[str, Any] = {}
    owners: dict[str, str] = {}
    caller = getattr(pm.hook, hook_name)
    # One implementation at a time, so a clash can name both plugins involved; denoisekit's own
    # first, so a plugin taking a built-in's name is the one named and blocked (in the order
    # entry points came, the built-ins were blamed, and blocking them ran the plugin's model
    # under the built-in's name: new-user pass)
    impls = sorted(reversed(caller.get_hookimpls()), key=lambda impl: not _is_builtin(impl.plugin_name))
    for impl in impls:
        added: list[str] = []

        def register(cls: Any, _owner: str = impl.plugin_name, _added: list[str] = added) -> None:
            _validate(cls, base, kind, _owner)
            if cls.name in registry:
                first = owners[cls.name]
                if _is_builtin(first):
                    raise PluginError(f"plugin '{_owner}' registers a {kind} named '{cls.name}', the name of "
                                      f"denoisekit's own (plugin '{first}'): a plugin needs a name of its own"
                                      f"{_way_out(_owner)}")
                raise PluginError(
                    f"{kind} name '{cls.name}' is registered twice: by plugin "
                    f"'{first}' and by plugin '{_owner}'{_way_out(_owner)}"
                )
            registry[cls.name] = cls
            owners[cls.name] = _owner
            _added.append(cls.name)
            cls.plugin = _owner

        try:
            call_impl(impl, hook_name, {"register": register})
        except PluginError as exc:
            if broken is None:
                raise
            broken.setdefault(impl.plugin_name, str(exc))  # its first error: what the command asked for
            for name in added:
                del registry[name], owners[name]
    return registry


def _is_builtin(name: str) -> bool:
    """Whether plugin ``name`` is one denoisekit ships (``denoisekit_plugins.*``)."""
    info = _infos.get(name)
    return info.builtin if info is not None else name.startswith("denoisekit_plugins")


def _validate(cls: Any, base: type, kind: str, owner: str) -> None:
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise PluginError(
            f"plugin '{owner}' registered {cls!r} as a {kind}; it must be a subclass of "
            f"denoisekit.plugin.{base.__name__}{_way_out(owner)}"
        )
    name = getattr(cls, "name", "")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise PluginError(
            f"plugin '{owner}' registered a {kind} named {name!r}; names are kebab-case "
            f"(lowercase letters, digits and single hyphens){_way_out(owner)}"
        )
    desc = getattr(cls, "description", "")
    if not isinstance(desc, str) or not desc.strip() or "\n" in desc.strip():
        raise PluginError(f"{kind} '{name}' from plugin '{owner}' needs a one-line description{_way_out(owner)}")


_KINDS = {"model": "register_models", "backprop": "register_backprops", "noise": "register_noise"}


def _base(kind: str) -> type:
    from denoisekit import plugin

    return {"model": plugin.Model, "backprop": plugin.Backprop, "noise": plugin.NoiseKind}[kind]


def _registry(hook_name: str, kind: str) -> dict[str, Any]:
    # every kind at once (registering is cheap: no model imports TensorFlow to be registered),
    # so a plugin whose other hook fails stops every command, as the docs say: its noise kind
    # ran while its models could not register (new-user pass)
    if hook_name not in _registries:
        for other in _first(kind):
            if _KINDS[other] not in _registries:
                _registries[_KINDS[other]] = _build(get_plugin_manager(), _KINDS[other], _base(other), other)
    return _registries[hook_name]


def _first(kind: str) -> list[str]:
    """Every kind, ``kind`` first: its error is the one a command asking for it hears."""
    return [kind, *(k for k in _KINDS if k != kind)]


def survey(kind: str) -> tuple[dict[str, Any], dict[str, str]]:
    """What a listing shows when plugins are broken: the ``kind`` registry of every plugin that
    loads and registers cleanly, in every hook, and the error of each plugin that does not (by
    plugin)."""
    broken: dict[str, str] = {}
    pm = get_plugin_manager(broken)
    built = {k: _build(pm, _KINDS[k], _base(k), k, broken) for k in _first(kind)}
    return {name: cls for name, cls in built[kind].items() if cls.plugin not in broken}, broken


def get_models() -> dict[str, Any]:
    return _registry("register_models", "model")


def get_backprops() -> dict[str, Any]:
    return _registry("register_backprops", "backprop")


def get_noises() -> dict[str, Any]:
    return _registry("register_noise", "noise")


def _lookup(registry: dict[str, Any], name: str, kind: str, command: str) -> Any:
    if name not in registry:
        known = ", ".join(sorted(registry)) or "none installed"
        why = kept_out()
        why = f"; {why}" if why else ""
        raise PluginError(f"no {kind} named '{name}' (available: {known}; see 'denoisekit {command}'){why}")
    return registry[name]


def get_model(name: str) -> Any:
    return _lookup(get_models(), name, "model", "models")


def get_backprop(name: str) -> Any:
    return _lookup(get_backprops(), name, "backprop", "backprops")


def get_noise(name: str) -> Any:
    return _lookup(get_noises(), name, "noise kind", "noises")


def provider(cls: Any) -> dict[str, str] | None:
    """The plugin that registered ``cls`` and its distribution, for weight files to record."""
    info = _infos.get(getattr(cls, "plugin", None) or "")
    return None if info is None else {"name": info.name, "distribution": info.distribution, "version": info.version}


#: a frame of code TensorFlow traced, as its 'in user code:' message lists them
_TRACED_FRAME = re.compile(r'^\s*File "(.+)", line (\d+), in ', re.MULTILINE)


def blame(exc: BaseException) -> str | None:
    """Whose code an unexpected error came from, for its one line: the innermost frame of its
    traceback (or of the 'in user code:' frames TensorFlow puts in its message in their place)
    that lies in a loaded plugin's package, as "plugin 'NAME' from DIST (model 'x',
    path:line)"; None if it passed through no plugin. Built-ins are named like any plugin
    (they are registered as one, and every other plugin error names them), as built-in: their
    bug is ours to fix, not a third party's to report or block."""
    if _pm is None:  # nothing loaded: no plugin's code ran
        return None
    roots = _plugin_roots(_pm)
    frames = [(f.f_code.co_filename, line, f) for f, line in traceback.walk_tb(exc.__traceback__)]
    traced = [(path, int(line), None) for path, line in _TRACED_FRAME.findall(str(exc))]
    for path, line, _ in reversed(frames + traced):  # traced code ran innermost
        owner = _owner(os.path.abspath(path), roots)
        if owner is not None:
            name, shown = owner
            info = _infos.get(name)
            who = (f"plugin '{name}'" if info is None else f"built-in plugin '{name}'" if info.builtin
                   else f"plugin '{name}' from {info.distribution}")
            thing = _thing(name, [f for *_, f in reversed(frames)])
            return f"{who} ({thing}{shown}:{line})"
    return None


def _plugin_roots(pm: pluggy.PluginManager) -> list[tuple[str, str, str]]:
    """(path, plugin, its dotted name) for each loaded plugin: its module file or package
    folder, and its top-level package's folder (a model may live beside the module the entry
    point names), longest first, so that a built-in is told from its siblings."""
    roots = []
    for name, plugin in pm.list_name_plugin():
        module = plugin if inspect.ismodule(plugin) else inspect.getmodule(plugin)  # None: blocked
        if module is None:
            continue
        top = sys.modules.get(module.__name__.partition(".")[0], module)
        for mod in dict.fromkeys([module, top]):
            if getattr(mod, "__file__", None) is None:  # a namespace package: other projects share it
                continue
            place = os.path.dirname(mod.__file__) if hasattr(mod, "__path__") else mod.__file__
            roots.append((os.path.abspath(place), name, mod.__name__))
    return sorted(roots, key=lambda r: -len(r[0]))


def _owner(path: str, roots: list[tuple[str, str, str]]) -> tuple[str, str] | None:
    """The plugin whose code ``path`` is, and the path as its package names it
    (``acme/models.py``, not where pip put it)."""
    for place, name, dotted in roots:
        if path == place:
            return name, dotted.replace(".", "/") + os.path.splitext(path)[1]
        if path.startswith(place + os.sep):
            return name, "/".join([*dotted.split("."), *os.path.relpath(path, place).split(os.sep)])
    return None


def _thing(plugin_name: str, frames: list) -> str:
    """"model 'x', " when a frame of the error's runs a method of a model (noise kind,
    backprop) that ``plugin_name`` registered; else nothing."""
    from denoisekit.plugin import Plugin

    for frame in frames:
        obj = frame.f_locals.get("self")
        # type(), not isinstance: that reads obj.__class__, which a proxy may compute and raise in
        if issubclass(type(obj), Plugin) and getattr(type(obj), "plugin", None) == plugin_name:
            return f"{obj.kind} '{obj.name}', "
    return ""


def check_trainable(model_cls: Any, backprop_cls: Any) -> None:
    """Refuse model/rule pairs that cannot work, before any computation starts: a choice of
    options no data could make right, so a usage error."""
    if not model_cls.trainable:
        raise UsageError(
            f"model '{model_cls.name}' is a fixed filter and cannot be trained; "
            "use it directly with 'denoisekit infer'"
        )
    if backprop_cls.requires_manual_gradients and not model_cls.manual_gradients:
        usable = sorted(n for n, b in get_backprops().items() if not b.requires_manual_gradients)
        raise UsageError(
            f"backprop '{backprop_cls.name}' needs hand-written gradients, which model "
            f"'{model_cls.name}' does not provide; use --backprop {' or '.join(usable) or 'autodiff'}"
        )


def complete(names: Callable[[], dict[str, Any]]) -> Callable[[str], list[str]]:
    """Shell-completion callback over a registry's names."""
    return lambda incomplete: [n for n in sorted(names()) if n.startswith(incomplete)]
