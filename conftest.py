"""Temporary home of the plugin fixtures until merged into tests/conftest.py."""


# --- plugin fixtures: fake installed distributions with denoisekit entry points ---

import textwrap as _textwrap

import pytest as _pytest


@_pytest.fixture
def fresh_plugins(monkeypatch):
    """Reload plugins from scratch for this test and again afterwards."""
    from denoisekit import plugins

    for var in ("DENOISEKIT_LOAD_PLUGINS", "DENOISEKIT_BLOCK_PLUGINS", "DENOISEKIT_TRACE_PLUGINS"):
        monkeypatch.delenv(var, raising=False)
    plugins.reset()
    yield plugins
    plugins.reset()


@_pytest.fixture
def fake_dist(tmp_path, monkeypatch, fresh_plugins):
    """Install a distribution the way pip would leave it: a module plus a dist-info
    folder with entry points, on sys.path. Returns ``make(dist, module, source)``."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    made = []

    def make(dist: str, module: str, source: str, version: str = "1.0", ep_name: str | None = None):
        (site / f"{module}.py").write_text(_textwrap.dedent(source))
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[denoisekit]\n{ep_name or module} = {module}\n")
        made.append(module)
        fresh_plugins.reset()
        return module

    yield make
    import sys

    for module in made:
        sys.modules.pop(module, None)
