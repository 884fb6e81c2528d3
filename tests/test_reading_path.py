"""A beginner's reading path stays short: bench/reading_path.py measures it (issue 25)."""
from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "reading_path.py"


def load_script():
    """bench/ is not a package: load the script from its file."""
    spec = importlib.util.spec_from_file_location("reading_path", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


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


def test_the_machinery_imports_no_chapter():
    """shopkit/ is to the shop what Flask is to flaskr: it imports none of the shop's files (where it must reach
    the shop, a chapter hands it a function when it registers), and every chapter reaches it through shopkit."""
    root = load_script().ROOT
    chapters = {path.stem for path in root.glob("*.py")}
    for module in sorted((root / "shopkit").glob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported = [node.module]
            else:
                continue
            assert not {name.split(".")[0] for name in imported} & chapters, f"{module.name} imports {imported}"
    for chapter in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(chapter.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("shopkit."):
                raise AssertionError(f"{chapter.name} imports {node.module}: chapters import shopkit alone")
