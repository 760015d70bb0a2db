"""The escalation state machine as data (SPEC §4).

::

    triggered -> assigned -> acknowledged -> resolved -> closed
                     \\-> unacknowledged -> triage -> (acknowledged -> resolved -> closed)

:data:`TRANSITIONS` maps ``(state, input)`` to the next state; anything not in
the table is a bug in the engine, which raises :class:`IllegalTransition`
instead of writing a state nobody planned for. Tests walk the table: every
state is reachable from ``triggered``, ``closed`` is reachable from every
state, and every state but ``triggered`` (the instant before the first
assignment) holds an owner.

>>> next_state("assigned", "ack")
'acknowledged'
"""

from __future__ import annotations

from collections.abc import Mapping

STATES = ("triggered", "assigned", "acknowledged", "resolved", "unacknowledged", "triage", "closed")
OPEN_STATES = STATES[:-1]
START = "triggered"

# What moves an escalation, and why:
INPUTS: Mapping[str, str] = {
    "route": "a policy takes it over (start, re-route or Type A handoff): a new chain",
    "assign": "a chain owner is assigned (at start, on failover, when an owner is absent)",
    "exhaust": "nobody in the chain acknowledged (all rounds)",
    "triage": "a failure goes to Type B: the triage owner",
    "no_triage": "a failure with no triage owner available: it stays where it was",
    "ack": "the assignee acknowledges: failover stops for good",
    "transfer": "an operator hands it to another owner with a reason and an SLA",
    "resolve": "the problem is fixed",
    "close": "every close check holds",
}

_NOT_ACKED = ("triggered", "assigned", "unacknowledged", "triage")


def _table() -> dict[tuple[str, str], str]:
    table: dict[tuple[str, str], str] = {}
    for state in OPEN_STATES:
        table[(state, "route")] = "triggered"
        table[(state, "triage")] = "triage"
        table[(state, "no_triage")] = (
            state if state in ("acknowledged", "resolved") else ("unacknowledged")
        )
        if state != "resolved":
            table[(state, "resolve")] = "resolved"
            table[(state, "transfer")] = "assigned"
    for state in ("triggered", "assigned"):
        table[(state, "assign")] = "assigned"
        table[(state, "exhaust")] = "unacknowledged"
    for state in _NOT_ACKED:
        table[(state, "ack")] = "acknowledged"
    table[("resolved", "close")] = "closed"
    return table


TRANSITIONS: Mapping[tuple[str, str], str] = _table()

# Who holds the escalation in each state (SPEC §4: an escalation always has an owner).
OWNER_IN: Mapping[str, str] = {
    "triggered": "nobody yet: the same decision assigns the first owner",
    "assigned": "the chain owner (or the transfer target)",
    "acknowledged": "the person who acknowledged",
    "resolved": "the person who acknowledged, else the last assignee",
    "unacknowledged": "the last chain owner, flagged when nobody is reachable",
    "triage": "the triage owner",
    "closed": "whoever held it when it closed",
}


class IllegalTransition(RuntimeError):
    """The engine tried a move the table does not have (a bug, never bad input)."""


def next_state(state: str, event: str) -> str:
    """The state after ``event`` in ``state``; :class:`IllegalTransition` when not allowed."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalTransition(f"no transition from {state!r} on {event!r}") from None


def allowed(state: str, event: str) -> bool:
    """Whether ``event`` may happen in ``state``."""
    return (state, event) in TRANSITIONS
