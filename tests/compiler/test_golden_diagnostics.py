"""Golden diagnostics: every ``tests/cases/*.esc`` beside its ``.diagnostics`` file.

Regenerate after a deliberate change with ``ESCALADE_REGEN=1 make unit`` and
review the diff.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from escalade.compiler import load_policy_set
from escalade.compiler.formats import render_text

CASES = Path(__file__).resolve().parent.parent / "cases"
REGEN = os.environ.get("ESCALADE_REGEN") == "1"


def render_case(path: Path) -> str:
    shown = f"cases/{path.name}"
    result = load_policy_set(path, sources=[(shown, path.read_text("utf-8"))])
    return render_text(result.diagnostics, result.diags.sources)


@pytest.mark.parametrize("case", sorted(CASES.glob("*.esc")), ids=lambda p: p.stem)
def test_golden(case: Path) -> None:
    expected_file = case.with_suffix(".diagnostics")
    actual = render_case(case)
    if REGEN or not expected_file.exists():
        expected_file.write_text(actual, "utf-8")
    assert actual == expected_file.read_text("utf-8")
