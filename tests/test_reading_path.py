"""A beginner's reading path stays short: bench/reading_path.py measures it (issue 25)."""
from __future__ import annotations

import importlib.util
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
