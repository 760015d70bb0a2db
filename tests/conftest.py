"""Shared fixtures and helpers: paths to the bundled policies and the test cases, and
the one way golden (expected-output) files are compared and regenerated."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CASES = REPO / "tests" / "cases"
BROKEN = CASES / "broken"  # one defect per file, named by its `# expect: CODE` header
REGEN_VARIABLE = "ESCALADE_REGEN"


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture
def policies_dir() -> Path:
    return REPO / "policies"


def _regen_command() -> str:
    """The command that rewrites the golden files of the running test."""
    current = os.environ.get("PYTEST_CURRENT_TEST", "")
    test_id = current.rsplit(" (", 1)[0] if current else "tests"
    return f"{REGEN_VARIABLE}=1 .venv/bin/python -m pytest '{test_id}'"


def check_golden(path: Path, actual: str) -> None:
    """Compare ``actual`` with the golden file at ``path``.

    A missing or different golden file fails the test. With ``ESCALADE_REGEN=1`` in the
    environment the file is (re)written instead and the test passes: review the diff.
    """
    if os.environ.get(REGEN_VARIABLE) == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, "utf-8")
        return
    shown = path.relative_to(REPO) if path.is_relative_to(REPO) else path
    if not path.exists():
        pytest.fail(
            f"golden file {shown} is missing; write it with `{_regen_command()}` "
            "and review what it contains",
            pytrace=False,
        )
    assert actual == path.read_text("utf-8"), (
        f"{shown} differs; if the change is intended, regenerate with "
        f"`{_regen_command()}` and review the diff"
    )
