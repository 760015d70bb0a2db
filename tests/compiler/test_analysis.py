"""Whole-set analysis (E301-W307): codes and positions, witnesses checked by the runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from escalade.compiler import CheckResult, load_policy_set
from escalade.compiler.backends.rulepack import lower_condition, schema_section
from escalade.compiler.diagnostics import Diagnostic
from escalade.compiler.passes import analysis
from escalade.runtime.conditions import evaluate
from escalade.runtime.events import parse_event
from escalade.runtime.pack import EventSchema
from tests.conftest import BROKEN

HEADER = """\
event ticket.created
event ticket.updated
schema ticket {
  id: text
  severity: enum(low, medium, high, critical)
  tags: set
}
schema account {
  tier: enum(free, pro, enterprise)
  arr: number
}
person ann { email "ann@example.com" }
person ben { email "ben@example.com" }
person cat { email "cat@example.com" }
"""
HEADER_LINES = HEADER.count("\n")


def policy(
    name: str,
    when: str | None,
    *,
    priority: int = 0,
    trigger: str | None = "ticket.created",
    extra: str = "",
) -> str:
    """A policy that passes every per-policy check; 8 lines + one per extra line."""
    return (
        f"policy {name} {{\n"
        f'  title "{name}"  approvers "@example/ops"  priority {priority}\n'
        + (f"  trigger {trigger}\n" if trigger else "  # no trigger\n")
        + (f"  when {when}\n" if when else "  # no condition\n")
        + "  owner primary ann ack 5m\n"
        + "  owner backup ben ack 5m\n"
        + "  exception unknown triage cat\n"
        + extra
        + "}\n"
    )


def check(*parts: str) -> CheckResult:
    return load_policy_set("set", sources=[("set.esc", HEADER + "".join(parts))])


def analysis_findings(result: CheckResult) -> list[Diagnostic]:
    return [d for d in result.diagnostics if d.code[1] == "3"]


def codes(result: CheckResult) -> list[str]:
    return [d.code for d in analysis_findings(result)]


def pack_schema(result: CheckResult) -> EventSchema:
    assert result.pset is not None
    return EventSchema.of(schema_section(result.pset))


def matches(result: CheckResult, policy_name: str, witness: Any) -> bool:
    """Does the runtime think the policy's condition holds on the witness event?"""
    assert result.pset is not None
    event = parse_event(witness, pack_schema(result))
    when = result.pset.policies[policy_name].when
    return evaluate(None if when is None else lower_condition(result.pset, when), event.data)


# --------------------------------------------------------------------------- the broken examples


def test_reference_policies_have_no_analysis_findings(policies_dir: Path) -> None:
    assert codes(load_policy_set(policies_dir)) == []


def test_handoff_loop_example() -> None:
    result = load_policy_set(BROKEN / "handoff_loop.esc")
    (d,) = [d for d in result.diagnostics if d.code == "E301"]
    assert (d.span.line, d.span.col) == (22, 3)
    assert [(note.span.line, note.span.col) for note in d.notes] == [(22, 3), (31, 3)]
    assert "publishing_block → content_review → publishing_block" in d.message


def test_ambiguous_route_example_has_a_checkable_witness() -> None:
    result = load_policy_set(BROKEN / "ambiguous_route.esc")
    (d,) = [d for d in result.diagnostics if d.code == "E302"]
    assert (d.span.line, d.span.col) == (26, 8)
    assert d.witness is not None and d.witness["type"] == "lead.updated"
    assert matches(result, "lead_rejected", d.witness) and matches(result, "paid_lead", d.witness)
    assert "lead.crm_status = rejected, lead.source = paid_campaign" in d.message


@pytest.mark.parametrize("name", ["clean", "ack_exceeds_sla", "missing_backup", "enum_typo"])
def test_other_examples_have_no_analysis_findings(name: str) -> None:
    result = load_policy_set(BROKEN / f"{name}.esc")
    assert codes(result) == []


# --------------------------------------------------------------------------- E302


def test_disjoint_conditions_at_equal_priority_are_not_ambiguous() -> None:
    result = check(
        policy("big_vip", 'account.arr >= 100000 and ticket.tags has "vip"'),
        policy("rest", 'account.arr < 100000 or not ticket.tags has "vip"'),
    )
    assert codes(result) == []


def test_same_conditions_on_different_kinds_are_not_ambiguous() -> None:
    result = check(
        policy("a", "ticket.severity == critical", trigger="ticket.created"),
        policy("b", "ticket.severity == critical", trigger="ticket.updated"),
    )
    assert codes(result) == []


def test_overlap_owned_by_a_higher_priority_policy_is_not_ambiguous() -> None:
    result = check(
        policy("top", "ticket.severity == critical", priority=10),
        policy("a", "ticket.severity == critical and account.tier == free"),
        policy("b", "ticket.severity == critical"),
    )
    assert "E302" not in codes(result)


def test_ambiguity_witness_avoids_higher_priority_policies() -> None:
    result = check(
        policy("top", "account.tier == enterprise", priority=10),
        policy("a", "ticket.severity == critical"),
        policy("b", "ticket.severity in (high, critical)"),
    )
    (d,) = [d for d in result.diagnostics if d.code == "E302"]
    start = HEADER_LINES + 1
    assert (d.span.line, d.span.col) == (start + 16, 8)  # the later policy's name
    assert d.witness is not None
    assert matches(result, "a", d.witness) and matches(result, "b", d.witness)
    assert not matches(result, "top", d.witness)


def test_untriggered_policies_are_not_ambiguous() -> None:
    result = check(
        policy(
            "a",
            "ticket.severity == critical",
            extra="  exception x when ticket.severity == low handoff b\n",
        ),
        policy("b", "ticket.severity == critical", trigger=None),
    )
    assert "E302" not in codes(result)


def test_suppressed_ambiguity() -> None:
    text = (BROKEN / "ambiguous_route.esc").read_text()
    text = text.replace(
        "policy paid_lead {", "# escalade: ignore[E302] reviewed overlap\npolicy paid_lead {"
    )
    assert "ignore[E302]" in text
    result = load_policy_set("x", sources=[("ambiguous_route.esc", text)])
    assert "E302" not in codes(result)


# --------------------------------------------------------------------------- E303


def test_never_matches() -> None:
    result = check(policy("never", "ticket.severity == low and ticket.severity == high"))
    (d,) = analysis_findings(result)
    assert d.code == "E303"
    assert (d.span.line, d.span.col) == (HEADER_LINES + 4, 8)
    assert d.help is not None and "ticket.severity == low" in d.help


def test_missing_field_is_not_a_contradiction() -> None:
    # `not x != v` also holds when x is missing: satisfiable together with `not x == v`.
    result = check(policy("p", "not ticket.severity != low and not ticket.severity == low"))
    assert codes(result) == []


def test_exception_that_can_never_hold() -> None:
    target = policy("target", None, trigger=None)
    dead = "  exception dead when account.arr > 5 and account.arr < 3 handoff target\n"
    result = check(policy("p", "ticket.severity == high", extra=dead), target)
    d, unreachable = analysis_findings(result)
    assert d.code == "E303"
    # the dead handoff was the only way into 'target'
    assert unreachable.code == "W306" and "'target'" in unreachable.message
    assert (d.span.line, d.span.col) == (HEADER_LINES + 8, 23)
    assert "exception 'dead' in policy 'p'" in d.message and "'target'" in d.message
    assert d.help is not None and "'account.arr > 5' and 'account.arr < 3'" in d.help


def test_exception_contradicting_the_trigger_is_a_real_path() -> None:
    # Exceptions are evaluated again on later events: the ticket may be downgraded.
    later = "  exception downgraded when ticket.severity == low handoff target\n"
    result = check(
        policy("p", "ticket.severity == critical", extra=later),
        policy("target", None, trigger=None),
    )
    assert codes(result) == []


def test_coverage_that_promises_nothing() -> None:
    result = check(
        policy("p", "ticket.severity == high"),
        'coverage ticket.created when ticket.tags has "a" and not ticket.tags has "a"\n',
    )
    (d,) = analysis_findings(result)
    assert d.code == "E303"
    assert (d.span.line, d.span.col) == (HEADER_LINES + 9, 30)
    assert "covers no event" in d.message


# --------------------------------------------------------------------------- W304


def test_shadowed_by_the_union_of_higher_priorities() -> None:
    result = check(
        policy("high", "ticket.severity == high", priority=50),
        policy("crit", "ticket.severity == critical", priority=60),
        policy("both", "ticket.severity in (high, critical)", priority=10),
    )
    (d,) = analysis_findings(result)
    assert d.code == "W304"
    assert (d.span.line, d.span.col) == (HEADER_LINES + 17, 8)
    assert "'crit', 'high'" in d.message
    assert [n.span.line for n in d.notes] == [HEADER_LINES + 9, HEADER_LINES + 1]


def test_missing_value_keeps_a_policy_reachable() -> None:
    # `not severity == low` also owns tickets without a severity, which no higher policy takes.
    result = check(
        policy("rest", "ticket.severity in (medium, high, critical)", priority=50),
        policy("fallback", "not ticket.severity == low", priority=10),
    )
    assert codes(result) == []


def test_shadowed_on_one_kind_only_is_not_reported() -> None:
    result = check(
        policy("top", None, priority=50, trigger="ticket.created"),
        policy("both", "ticket.severity == high", trigger="ticket.created, ticket.updated"),
    )
    assert codes(result) == []


# --------------------------------------------------------------------------- W305


def test_coverage_gap_with_witness() -> None:
    result = check(
        "coverage ticket.created when ticket.severity == critical\n",
        policy("ent", "ticket.severity == critical and account.tier == enterprise"),
    )
    (d,) = analysis_findings(result)
    assert d.code == "W305"
    assert (d.span.line, d.span.col) == (HEADER_LINES + 1, 1)
    assert d.witness is not None and not matches(result, "ent", d.witness)
    event = parse_event(d.witness, pack_schema(result))
    assert event.data["ticket"]["severity"] == "critical"


def test_kept_coverage_promise() -> None:
    result = check(
        "coverage ticket.created, ticket.updated when ticket.severity == critical\n",
        policy("ent", "ticket.severity == critical and account.tier == enterprise", priority=5),
        policy(
            "any", "ticket.severity in (high, critical)", trigger="ticket.created, ticket.updated"
        ),
    )
    assert codes(result) == []


# --------------------------------------------------------------------------- E301, W306


def test_self_handoff_is_a_loop() -> None:
    result = check(
        policy("a", None, extra="  exception again when unacknowledged handoff a\n"),
    )
    (d,) = analysis_findings(result)
    assert d.code == "E301" and d.span.line == HEADER_LINES + 8 and len(d.notes) == 1


def test_unreachable_policy() -> None:
    result = check(
        policy(
            "entry",
            "ticket.severity == low",
            extra="  exception x when unacknowledged handoff used\n",
        ),
        policy("used", None, trigger=None),
        policy("orphan", None, trigger=None),
    )
    (d,) = analysis_findings(result)
    assert d.code == "W306" and d.span.line == HEADER_LINES + 18


def test_handoffs_only_from_unreachable_policies_do_not_count() -> None:
    result = check(
        policy(
            "lost",
            None,
            trigger=None,
            extra="  exception x when unacknowledged handoff also_lost\n",
        ),
        policy("also_lost", None, trigger=None),
    )
    assert codes(result) == ["W306", "W306"]


# --------------------------------------------------------------------------- errors, budget


def test_condition_with_an_error_is_skipped() -> None:
    result = check(
        policy("typo", "ticket.severity == critcal"),
        policy("other", "ticket.severity == critical"),
        policy("lower", "ticket.severity == critical", priority=-5),
    )
    assert [d.code for d in result.diagnostics] == ["E104"]


def test_budget_exhaustion_is_reported_not_guessed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(analysis, "DEFAULT_STEPS", 0)
    result = check(
        policy("a", "ticket.severity == critical"),
        policy("b", "account.tier == enterprise"),
    )
    assert "E302" not in codes(result)
    undecided = [d for d in result.diagnostics if d.code == "W307"]
    assert any("'a' and 'b'" in d.message for d in undecided)
    assert all(d.severity == "warning" for d in undecided)


def test_a_dead_handoff_is_no_way_in(tmp_path: Path) -> None:
    """W306 holds when the only handoff into a policy has a condition no event meets."""
    (tmp_path / "set.esc").write_text(
        """
event ticket.created
schema ticket { id: text  severity: enum(low, high) }
person ann { email "a@example.com" }
person ben { email "b@example.com" }
policy entry {
  approvers "@x/y"
  trigger ticket.created
  when ticket.severity == high
  owner primary ann ack 5m
  owner backup ben ack 5m
  exception never when ticket.severity == low and ticket.severity == high handoff target
  exception unknown triage ben
}
policy target {
  approvers "@x/y"
  owner primary ann ack 5m
  owner backup ben ack 5m
  exception unknown triage ben
}
"""
    )
    found = {d.code: d for d in load_policy_set(tmp_path).diagnostics}
    assert "E303" in found
    assert "W306" in found and "target" in found["W306"].message
