"""examples/compare_models.py fills its tables into docs/models.md without touching the prose."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

DOC = """intro
<!-- RESULTS main table -->
old main
<!-- /RESULTS -->
between
<!-- RESULTS:vanilla-ae longer budget -->
old vae
<!-- /RESULTS:vanilla-ae -->
outro
"""


def test_each_section_is_replaced_alone_and_reruns_are_stable(example):
    replace = example("compare_models").replace_section
    once = replace(DOC, "| new main |\n")
    assert once == DOC.replace("old main\n", "| new main |\n\n")
    assert replace(once, "| new main |\n") == once  # a rerun changes nothing
    both = replace(once, "| new vae |\n", "vanilla-ae")
    assert "old vae" not in both and "| new main |" in both
    assert [line for line in both.splitlines() if not line.startswith("|") and line] == [
        line for line in DOC.splitlines() if not line.startswith("old") and line]


def test_a_missing_block_is_refused(example):
    with pytest.raises(SystemExit, match="RESULTS:nope"):
        example("compare_models").replace_section(DOC, "x", "nope")


def test_the_docs_hold_the_main_block(example):
    text = (ROOT / "docs" / "models.md").read_text()
    example("compare_models").replace_section(text, "x")  # raises when the markers were edited away
