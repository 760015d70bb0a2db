"""Golden diagnostics: every ``tests/cases/*.esc`` beside its ``.diagnostics`` file.

A missing or different ``.diagnostics`` file fails; regenerate after a deliberate
change with ``ESCALADE_REGEN=1 make unit`` and review the diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from escalade.compiler import load_policy_set
from escalade.compiler.formats import render_text
from tests.conftest import CASES, check_golden


def render_case(path: Path) -> str:
    shown = f"cases/{path.name}"
    result = load_policy_set(path, sources=[(shown, path.read_text("utf-8"))])
    return render_text(result.diagnostics, result.diags.sources)


@pytest.mark.parametrize("case", sorted(CASES.glob("*.esc")), ids=lambda p: p.stem)
def test_golden(case: Path) -> None:
    check_golden(case.with_suffix(".diagnostics"), render_case(case))
