"""Each per-policy check: codes and positions (not prose)."""

from __future__ import annotations

from pathlib import Path

import pytest

from escalade.compiler import load_policy_set
from escalade.compiler.codes import CODES
from tests.conftest import BROKEN, CASES


def findings(name: str) -> set[tuple[str, int, int]]:
    path = CASES / f"{name}.esc"
    result = load_policy_set(path, sources=[(name, path.read_text("utf-8"))])
    return {(d.code, d.span.line, d.span.col) for d in result.diagnostics}


def codes(name: str) -> list[str]:
    return sorted(c for c, _, _ in findings(name))


def test_reference_policies_are_clean(policies_dir: Path) -> None:
    result = load_policy_set(policies_dir)
    assert result.pset is not None
    assert [d.code for d in result.diagnostics] == []
    assert set(result.pset.policies) == {
        "enterprise_critical",
        "critical_default",
        "vendor_outage",
        "paid_lead_rejected",
        "publishing_block",
        "content_review",
        "high_priority_sla_breach",
        "urgent_ticket_waiting",
        "source_silent",
    }


def test_reference_templates_expand(policies_dir: Path) -> None:
    result = load_policy_set(policies_dir)
    assert result.pset is not None
    p = result.pset.policies["enterprise_critical"]
    assert [s.action for s in p.steps] == [
        "create_ticket",
        "notify",
        "page",
        "open",
        "snapshot",
    ]
    assert [(c.within, c.retry) for c in p.delivery_checks] == [(60, 3)]
    assert len(p.state_checks) == 1 and p.state_checks[0].within == 300
    assert [o.ref for o in p.owners] == ["cust_ops_oncall", "carol", "dana"]
    assert [o.ack for o in p.owners] == [300, 600, 900]
    assert p.repeat == 1 and p.priority == 100
    vendor = result.pset.policies["vendor_outage"]
    # guidance attaches to the manual step before it
    assert vendor.steps[-1].guide is not None and vendor.steps[-1].action == "manual"


def expected_code(path: Path) -> str:
    """The code a defect case is written for: its first line is ``# expect: CODE``."""
    header = path.read_text("utf-8").splitlines()[0]
    assert header.startswith("# expect: "), f"{path.name}: first line must be `# expect: CODE`"
    return header.removeprefix("# expect: ").strip()


BROKEN_CASES = sorted(BROKEN.glob("*.esc"))

# W307 is the analysis running out of its budget, not a defect a policy file shows:
# test_analysis.py provokes it by lowering the budget.
NOT_A_FILE_DEFECT = {"W307"}


@pytest.mark.parametrize("path", BROKEN_CASES, ids=lambda p: p.stem)
def test_every_broken_example_is_covered(path: Path) -> None:
    """New files in tests/cases/broken are picked up by their header, not a list; each
    shows its one defect and nothing else."""
    expected = expected_code(path)
    result = load_policy_set(path)
    found = sorted(d.code for d in result.diagnostics)
    if expected == "clean":
        assert found == [], path.name
    else:
        assert found == [expected], path.name


def test_every_code_has_a_broken_example() -> None:
    """A new diagnostic code comes with a defect case in tests/cases/broken."""
    covered = {expected_code(path) for path in BROKEN_CASES}
    assert "clean" in covered
    assert set(CODES) - NOT_A_FILE_DEFECT - covered == set()
    assert covered - set(CODES) - {"clean"} == set(), "unknown code in a header"


def test_duplicates() -> None:
    f = findings("duplicate_names")
    assert ("E102", 26, 8) in f  # person ann declared twice
    assert ("E102", 30, 3) in f  # title twice
    assert ("E102", 35, 3) in f  # owner primary twice


def test_undefined_names_with_suggestions() -> None:
    path = CASES / "undefined_names.esc"
    result = load_policy_set(path, sources=[("u", path.read_text("utf-8"))])
    by_line = {(d.span.line, d.code): d for d in result.diagnostics}
    assert by_line[(29, "E101")].help == "did you mean 'ticket.created'?"
    assert by_line[(31, "E101")].help == "did you mean 'ann'?"
    assert {d.code for d in result.diagnostics if d.span.line == 30} == {"E101"}
    assert len([d for d in result.diagnostics if d.span.line == 30]) == 2
    assert (33, "E101") in by_line  # unknown template
    assert (34, "E101") in by_line  # unknown handoff policy


def test_type_mismatches() -> None:
    f = findings("type_mismatch")
    assert sum(1 for c, line, _ in f if c == "E103" and line == 30) == 8
    assert sum(1 for c, line, _ in f if c == "E103" and line == 33) == 2


def test_bad_arguments() -> None:
    assert codes("bad_arguments").count("E105") == 7


def test_owner_chain() -> None:
    f = findings("owner_chain")
    got = {c for c, _, _ in f}
    assert {"E201", "E203", "E204", "E205", "E206", "E501"} <= got
    assert ("E205", 27, 6) in f  # empty team
    assert ("E203", 42, 3) in f  # ann twice
    assert ("E204", 41, 3) in f  # primary without ack


def test_timing() -> None:
    f = findings("timing")
    assert ("E401", 31, 3) in f
    assert ("W402", 35, 3) in f


def test_suppression_needs_a_reason() -> None:
    f = findings("suppressed")
    assert [c for c, line, _ in f if c == "W601"] == ["W601"]
    assert ("W601", 28, 8) in f  # the suppression without a reason does not count


def test_templates_expand_cleanly() -> None:
    f = findings("templates")
    assert f == {("W601", 32, 10)}
