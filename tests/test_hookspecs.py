"""Meta-tests: every hook in the spec has a test and a documented section."""

import re
from pathlib import Path

import pytest

from denoisekit import hookspecs

ROOT = Path(__file__).resolve().parent.parent
HOOKS = sorted(name for name, obj in vars(hookspecs).items() if hasattr(obj, f"{hookspecs.PROJECT}_spec"))


def test_the_spec_has_the_hooks_plugins_rely_on():
    assert {"register_models", "register_backprops", "register_noise", "register_commands"} <= set(HOOKS)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented(hook):
    doc = (ROOT / "docs" / "writing-plugins.md").read_text()
    assert re.search(rf"^## `{hook}\(", doc, re.M), f"docs/writing-plugins.md lacks a '## `{hook}(...)`' section"


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_has_a_test(hook):
    names = set()
    for path in (ROOT / "tests").rglob("test_*.py"):
        names.update(re.findall(r"^def (test_hook_\w+)", path.read_text(), re.M))
    assert any(n.startswith(f"test_hook_{hook}") for n in names), f"no test named test_hook_{hook}*"
