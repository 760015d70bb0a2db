"""The diagnostics reference: generated from the registry, and every example is true.

docs/diagnostics.md must equal what ``python -m escalade.compiler.rules_doc``
prints; each code's example, checked with the repository's declarations
(policies/schema.esc and policies/directory.esc), must produce that code and
no other finding in its own file, and the fixed example none.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from escalade.compiler import load_policy_set
from escalade.compiler.codes import CODES, Code
from escalade.compiler.diagnostics import Diagnostic
from escalade.compiler.rules_doc import REGENERATE, anchor, diagnostics_markdown
from escalade.compiler.sarif import sarif_rules

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "diagnostics.md"
DECLARATIONS = ("schema.esc", "directory.esc")
EXAMPLE = "policies/example.esc"


def check_with_declarations(source: str) -> list[Diagnostic]:
    """Findings located in ``source`` when checked beside the repository's declarations."""
    sources = [
        (f"policies/{name}", (REPO / "policies" / name).read_text("utf-8")) for name in DECLARATIONS
    ]
    result = load_policy_set(REPO / "policies", sources=[*sources, (EXAMPLE, source)])
    return [d for d in result.diagnostics if d.span.file == EXAMPLE]


def test_the_committed_page_is_the_generated_one() -> None:
    assert DOC.read_text("utf-8") == diagnostics_markdown(), f"regenerate it: {REGENERATE}"


def test_the_module_prints_the_page() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "escalade.compiler.rules_doc"],
        capture_output=True,
        check=True,
        cwd=REPO,
    ).stdout
    assert out.decode("utf-8") == diagnostics_markdown()


@pytest.mark.parametrize("code", list(CODES.values()), ids=lambda c: c.code)
def test_every_code_is_documented(code: Code) -> None:
    for text in (code.description, code.meaning, code.why, code.fix, code.example, code.fixed):
        assert text.strip()
    page = diagnostics_markdown()
    assert f"\n## {code.code} {code.name}\n" in page
    assert f"(#{anchor(code)})" in page


@pytest.mark.parametrize("code", list(CODES.values()), ids=lambda c: c.code)
def test_the_example_produces_exactly_its_code(code: Code) -> None:
    found = check_with_declarations(code.example)
    assert found, f"{code.code}: the example produces nothing"
    assert {d.code for d in found} == {code.code}, [(d.code, d.message) for d in found]


@pytest.mark.parametrize("code", list(CODES.values()), ids=lambda c: c.code)
def test_the_fixed_example_is_clean(code: Code) -> None:
    found = check_with_declarations(code.fixed)
    assert found == [], [(d.code, d.message) for d in found]


def test_sarif_rules_carry_the_registry_documentation() -> None:
    rules = {r["id"]: r for r in sarif_rules()}
    assert list(rules) == list(CODES)
    for code in CODES.values():
        help_ = rules[code.code]["help"]
        assert code.meaning in help_["text"] and code.fix in help_["text"]
        assert code.example.strip() in help_["markdown"]
