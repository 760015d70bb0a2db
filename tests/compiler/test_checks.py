"""Each per-policy check: codes and positions (not prose)."""

from __future__ import annotations

from pathlib import Path

import pytest

from escalade.compiler import load_policy_set
from escalade.compiler.passes.analysis import ANALYSIS_PASSES

CASES = Path(__file__).resolve().parent.parent / "cases"


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


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("ack_exceeds_sla", "E401"),
        ("ambiguous_route", "E302"),
        ("enum_typo", "E104"),
        ("handoff_loop", "E301"),
        ("missing_backup", "E202"),
        ("syntax_error", "E001"),
    ],
)
def test_shared_broken_examples(shared: Path, case: str, expected: str) -> None:
    path = shared / "examples" / "broken" / f"{case}.esc"
    header = path.read_text("utf-8").splitlines()[0]
    assert header == f"# expect: {expected}"
    if expected[1] == "3" and not ANALYSIS_PASSES:
        pytest.skip("whole-set analysis (E3xx) not registered yet")
    result = load_policy_set(path)
    assert expected in {d.code for d in result.diagnostics}


def test_every_shared_broken_example_is_covered(shared: Path) -> None:
    """New files in shared/examples/broken are picked up by their header, not a list."""
    for path in sorted((shared / "examples" / "broken").glob("*.esc")):
        header = path.read_text("utf-8").splitlines()[0]
        assert header.startswith("# expect: "), path
        expected = header.removeprefix("# expect: ").strip()
        if expected[1:2] == "3" and not ANALYSIS_PASSES:
            continue
        result = load_policy_set(path)
        found = {d.code for d in result.diagnostics}
        if expected == "clean":
            assert result.errors == 0, (path, found)
        else:
            assert expected in found, (path, found)


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
