"""Property: whatever happens, the runtime never loses an escalation, and an escalation
always has an owner (SPEC §4).

In ``make test`` the exploration is derandomized (the same examples every run, so
the suite is deterministic); ``make never-lose`` explores with fresh random
examples, 20 runs in a row (``ESCALADE_EXPLORE=1``).
"""

from __future__ import annotations

import json
import os
from typing import Any, ClassVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from escalade.runtime import audit
from escalade.runtime.clock import VirtualClock, format_time
from escalade.runtime.engine import Engine, Refused
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0

TICKETS = ["T1", "T2", "T3"]
PEOPLE = ["alice", "bob", "carol", "dana"]


class NeverLose(RuleBasedStateMachine):
    """Events, time and operators in any order; the invariants hold after every step."""

    pack: ClassVar[dict[str, Any]] = {}  # set per test by make_machine

    def __init__(self) -> None:
        super().__init__()
        self.store = SQLiteStore(":memory:")
        self.clock = VirtualClock(T0)
        self.engine = Engine(self.store, self.clock)
        self.engine.activate(self.pack, T0)
        self.now = T0
        self.seq = 0
        self.owned: set[str] = set()  # tickets an escalation was ever started for

    @rule(
        ticket=st.sampled_from(TICKETS),
        severity=st.sampled_from(["critical", "high", "low"]),
        tier=st.sampled_from(["enterprise", "pro"]),
        status=st.sampled_from(["new", "escalated"]),
        vendor=st.booleans(),
    )
    def event(self, ticket: str, severity: str, tier: str, status: str, vendor: bool) -> None:
        self.seq += 1
        data = {
            "ticket": {
                "id": ticket,
                "severity": severity,
                "status": status,
                "tags": ["vendor_outage"] if vendor else [],
            },
            "account": {"id": "a", "tier": tier},
        }
        kind = "ticket.created" if self.seq % 2 else "ticket.updated"
        event = {"id": f"e{self.seq}", "type": kind, "at": format_time(self.now), "data": data}
        outcome = self.engine.receive(json.dumps(event), self.now)
        assert outcome.status == "applied"
        if self.store.open_escalation(ticket) is not None:
            self.owned.add(ticket)

    @rule(
        burst=st.lists(
            st.tuples(
                st.sampled_from(TICKETS),
                st.sampled_from(["critical", "high", "low"]),
                st.integers(min_value=0, max_value=30),
            ),
            min_size=1,
            max_size=6,
        )
    )
    def batch(self, burst: list[tuple[str, str, int]]) -> None:
        """Events through the batch API, minutes apart (timers fire between them), in one
        transaction."""
        items = []
        for ticket, severity, minutes in burst:
            self.seq += 1
            self.now += minutes * 60
            data = {
                "ticket": {"id": ticket, "severity": severity, "status": "escalated"},
                "account": {"id": "a", "tier": "enterprise"},
            }
            event = {"id": f"e{self.seq}", "type": "ticket.updated", "at": format_time(self.now)}
            items.append((json.dumps({**event, "data": data}), self.now))
        outcomes = self.engine.receive_many(items)
        assert [o.status for o in outcomes] == ["applied"] * len(items)
        for ticket, _, _ in burst:
            if self.store.open_escalation(ticket) is not None:
                self.owned.add(ticket)

    @rule(minutes=st.integers(min_value=1, max_value=90))
    def wait(self, minutes: int) -> None:
        self.now += minutes * 60
        self.engine.advance(self.now)

    @rule(
        ticket=st.sampled_from(TICKETS),
        person=st.sampled_from(PEOPLE),
        op=st.sampled_from(["ack", "override", "resolve", "close", "absent"]),
    )
    def operate(self, ticket: str, person: str, op: str) -> None:
        try:
            if op == "ack":
                self.engine.ack(ticket, person, self.now)
            elif op == "override":
                self.engine.ack(ticket, person, self.now, override="property test")
            elif op == "resolve":
                self.engine.resolve(ticket, self.now, by=person)
            elif op == "close":
                self.engine.close(ticket, self.now, by=person)
            else:
                self.engine.absent(person, self.now + 3600, self.now, by=person)
        except Refused:
            pass

    @invariant()
    def nothing_lost(self) -> None:
        for ticket in self.owned:
            esc = self.store.latest_escalation(ticket)
            assert esc is not None, f"{ticket}'s escalation vanished"
            if esc.state == "closed":
                continue
            timers = {t.kind for t in self.store.timers_of(esc.id)}
            pack_ = self.engine.pack(esc.pack_id)
            owners = pack_.rules[esc.policy].policy.owners
            if esc.state == "assigned" and esc.level not in ("transfer", None):
                has_timeout = owners[esc.level_index].ack is not None
                assert not has_timeout or "ack" in timers, f"{ticket} waits with no ack timer"
            assert esc.state in (
                "assigned",
                "acknowledged",
                "resolved",
                "triage",
                "unacknowledged",
            )
            assert esc.owner is not None, f"{ticket} has no owner ({esc.state})"

    @invariant()
    def audit_intact(self) -> None:
        assert audit.verify(self.store).ok

    def teardown(self) -> None:
        self.store.close()


def make_machine(pack: dict[str, Any]) -> type[RuleBasedStateMachine]:
    """The machine over ``pack``."""
    return type("NeverLoseOverPack", (NeverLose,), {"pack": pack})


def test_runtime_never_loses_an_escalation(pack: dict[str, Any]) -> None:
    machine = make_machine(pack)
    explore = os.environ.get("ESCALADE_EXPLORE") == "1"
    machine.TestCase.settings = settings(
        derandomize=not explore,
        database=None,
        max_examples=40 if explore else 15,
        stateful_step_count=20,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    machine.TestCase().runTest()
