"""A beginner's reading path stays short: bench/reading_path.py measures it (issue 25)."""
from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "reading_path.py"


def load_script():
    """bench/ is not a package: load the script from its file."""
    spec = importlib.util.spec_from_file_location("reading_path", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


# Only an exceeded limit is expected to fail; a journey that breaks (an error) still fails the test.
@pytest.mark.xfail(strict=False, raises=AssertionError,
                   reason="issue 25: the reorganisation brings these under the limits")
def test_a_beginner_reaches_start_and_follows_a_purchase_in_few_chapters():
    script = load_script()
    assert script.over_limits(script.measure()) == []


def test_every_chapter_says_the_reading_order_shopbot_py_gives():
    """One reading order, the same everywhere it is written: a chapter's docstring names the chapters
    before and after it in shopbot.py's list (or does not speak of the order at all)."""
    script = load_script()
    order = script.reading_order()
    for before, chapter, after in zip(["shopbot.py", *order], order, [*order[1:], None], strict=False):
        docstring = ast.get_docstring(ast.parse((script.ROOT / chapter).read_text(encoding="utf-8"))) or ""
        said = re.search(r"Reading order:(.*?)(?:\n\n|$)", docstring, re.S)
        if chapter == "shopbot.py" or said is None:
            continue
        names = re.findall(r"[\w/]+\.py", said.group(1))
        where = names.index(chapter)
        assert names[where - 1] == before, f"{chapter} says {names[where - 1]} comes before it, not {before}"
        if where + 1 < len(names):
            assert names[where + 1] == after, f"{chapter} says {names[where + 1]} comes after it, not {after}"
