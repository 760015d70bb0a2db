"""The one registry of diagnostic codes: code, name, severity, description.

Codes are stable: tests, suppressions (``# escalade: ignore[E302] ...``) and
SARIF ``ruleId`` values depend on them. Add, never renumber.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    name: str
    severity: Severity
    description: str


_CODES = (
    Code("E001", "syntax", "error", "Unexpected token, unterminated string or bad literal."),
    Code("E101", "undefined-name", "error", "Reference to an undeclared name or field."),
    Code(
        "E102",
        "duplicate-name",
        "error",
        "Two declarations of one name or one single-valued statement.",
    ),
    Code(
        "E103",
        "type-mismatch",
        "error",
        "A field compared with a value of the wrong type, or a bad placeholder.",
    ),
    Code("E104", "unknown-enum-value", "error", "An enum value the field's enum does not list."),
    Code("E105", "bad-arguments", "error", "Wrong action, action arguments or template arguments."),
    Code("E201", "missing-primary", "error", "Policy without a primary owner."),
    Code("E202", "missing-backup", "error", "Policy without a backup owner."),
    Code("E203", "self-backup", "error", "A backup or escalation owner equals an earlier owner."),
    Code("E204", "missing-ack-timeout", "error", "A non-final owner level without an ack timeout."),
    Code(
        "E205", "empty-team", "error", "Team without members, or an owner nobody can be reached at."
    ),
    Code("E206", "no-triage", "error", "Policy without an `exception unknown` triage path."),
    Code("E301", "handoff-loop", "error", "A cycle of handoffs between policies."),
    Code(
        "E302", "ambiguous-route", "error", "Two policies of equal priority can own the same event."
    ),
    Code("E303", "never-matches", "error", "A trigger condition no event can satisfy."),
    Code("W304", "shadowed", "warning", "Higher-priority policies together always match first."),
    Code("W305", "coverage-gap", "warning", "An event promised by `coverage` that no policy owns."),
    Code(
        "W306", "unreachable-policy", "warning", "Policy without trigger that no handoff reaches."
    ),
    Code("W307", "undecided", "warning", "The analysis hit its budget and could not decide."),
    Code(
        "E401", "ack-exceeds-sla", "error", "The primary's ack timeout exceeds the acknowledge SLA."
    ),
    Code(
        "W402",
        "chain-exceeds-sla",
        "warning",
        "Walking the whole chain takes longer than the resolve SLA.",
    ),
    Code("E501", "missing-approvers", "error", "Policy without approvers."),
    Code("W601", "unused", "warning", "Person, team, channel or template that nothing uses."),
)

CODES: dict[str, Code] = {c.code: c for c in _CODES}


def lookup(code: str) -> Code:
    """Return the registered code; an unknown code is a programming error."""
    return CODES[code]
