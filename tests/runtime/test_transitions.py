"""The state machine as data: walk the table (SPEC §4)."""

from __future__ import annotations

from collections import deque
from itertools import pairwise
from typing import Any

import pytest

from escalade.runtime.engine.transitions import (
    INPUTS,
    OPEN_STATES,
    OWNER_IN,
    START,
    STATES,
    TRANSITIONS,
    IllegalTransition,
    allowed,
    next_state,
)
from escalade.runtime.store import Facts
from tests.runtime.conftest import T0, critical


def reachable(start: str) -> set[str]:
    seen = {start}
    todo = deque([start])
    while todo:
        state = todo.popleft()
        for (source, _input), target in TRANSITIONS.items():
            if source == state and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen


def test_the_table_names_only_known_states_and_inputs() -> None:
    for (source, name), target in TRANSITIONS.items():
        assert source in STATES and target in STATES and name in INPUTS


def test_every_state_is_reachable_from_the_start() -> None:
    assert reachable(START) == set(STATES)


def test_closed_is_reachable_from_every_state_and_is_terminal() -> None:
    for state in STATES:
        assert "closed" in reachable(state), f"{state} can never close"
    assert not [key for key in TRANSITIONS if key[0] == "closed"]


def test_every_state_says_who_owns_it() -> None:
    assert set(OWNER_IN) == set(STATES)


def test_every_input_is_used() -> None:
    assert {name for _, name in TRANSITIONS} == set(INPUTS)


@pytest.mark.parametrize(
    ("state", "name", "expected"),
    [
        ("assigned", "ack", "acknowledged"),
        ("triage", "ack", "acknowledged"),
        ("acknowledged", "resolve", "resolved"),
        ("resolved", "close", "closed"),
        ("acknowledged", "no_triage", "acknowledged"),
        ("assigned", "no_triage", "unacknowledged"),
        ("resolved", "route", "triggered"),
    ],
)
def test_moves(state: str, name: str, expected: str) -> None:
    assert next_state(state, name) == expected


@pytest.mark.parametrize(
    ("state", "name"),
    [("assigned", "close"), ("acknowledged", "ack"), ("resolved", "resolve"), ("closed", "route")],
)
def test_a_move_the_table_lacks_raises(state: str, name: str) -> None:
    assert not allowed(state, name)
    with pytest.raises(IllegalTransition):
        next_state(state, name)


def test_only_a_resolved_escalation_closes() -> None:
    assert [s for s in OPEN_STATES if allowed(s, "close")] == ["resolved"]


def test_facts_keep_the_stored_form_of_earlier_releases() -> None:
    stored = {
        "sla_acknowledge": 300,
        "sla_acknowledge_met": True,
        "sla_resolve": None,
        "sla_resolve_breached": True,
        "handoff_times": [1, 2],
        "owner_from": "cust_ops_oncall",
        "actions": 4,
        "first_ack": 99,
        "postmortem_required": True,
        "transfers": 1,
    }
    facts = Facts.from_json(stored)
    assert facts.met == {"acknowledge"} and facts.breached == {"resolve"}
    assert facts.sla_targets == {"acknowledge": 300, "resolve": None}
    assert facts.to_json() == stored
    assert Facts.from_json({}).to_json() == {}


def test_a_chain_walks_the_table_to_triage(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(critical("T1", "e1"), T0)
    seen = []
    for minutes in (0, 5, 15, 30, 60, 120):
        engine.advance(T0 + minutes * 60)
        esc = engine.store.latest_escalation("T1")
        assert esc is not None
        seen.append(esc.state)
    assert seen[0] == "assigned" and seen[-1] == "triage"
    assert all(b in reachable(a) for a, b in pairwise(seen))
