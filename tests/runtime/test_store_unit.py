"""What a store transaction keeps until its commit (store/unit.py), on every back end.

Rows appended inside a transaction are written just before the commit, but the
store's own queries inside it still see them; a rollback drops them; what a
transaction read once (the earliest due timer, the absences) follows what other
connections (other processes, other workers) committed since.
"""

from __future__ import annotations

from typing import Any

import pytest

from escalade.runtime.store import AuditRow, Escalation, OutboxMessage, Timer
from tests.runtime.conftest import T0
from tests.runtime.test_store_contract import Opener, backend  # noqa: F401  (the fixture)


def _escalation(store: Any, ticket: str) -> Escalation:
    pack_id = store.add_pack(f"sha256:{ticket}", "1.0.0", "{}", T0)
    esc = Escalation(ticket=ticket, policy="p", pack_id=pack_id, priority=1, started_at=T0)
    store.insert_escalation(esc)
    return esc


def test_reads_in_a_transaction_see_its_rows_and_a_rollback_drops_them(
    backend: tuple[str, Opener],  # noqa: F811
) -> None:
    _, opener = backend
    store = opener()
    with pytest.raises(RuntimeError), store.transaction():
        esc = _escalation(store, "T1")
        store.add_timer(Timer(due=T0 + 60, kind="ack", ticket="T1", escalation_id=esc.id))
        store.add_outbox(OutboxMessage("esc-1/1", esc.id, "T1", "notify", "a", "person", {}, T0))
        store.bump("seen", 2)
        store.put_ticket_state("T1", {"ticket": {"id": "T1"}}, {"ticket.id": T0})
        assert [t.kind for t in store.timers_of(esc.id)] == ["ack"]
        assert store.has_timer("T1", "ack", "")
        assert [m.key for m in store.outbox(esc.id)] == ["esc-1/1"]
        assert store.counters()["seen"] == 2
        assert store.ticket_state("T1")[0] == {"ticket": {"id": "T1"}}
        assert store.open_escalation("T1") is not None
        raise RuntimeError("roll back")
    assert store.count_timers() == 0 and store.outbox() == [] and store.counters() == {}
    assert store.ticket_state("T1") == ({}, {}) and store.open_escalation("T1") is None


def test_an_escalation_updated_and_closed_in_a_transaction_reads_back_as_written(
    backend: tuple[str, Opener],  # noqa: F811
) -> None:
    _, opener = backend
    store = opener()
    with store.transaction():
        esc = _escalation(store, "T1")
        esc.state, esc.owner = "assigned", "alice"
        store.update_escalation(esc)
        found = store.open_escalation("T1")
        assert found is not None and (found.state, found.owner) == ("assigned", "alice")
        esc.state, esc.closed_at = "closed", T0 + 1
        store.update_escalation(esc)
        assert store.open_escalation("T1") is None
        assert store.last_closed_at("T1", "p") == T0 + 1
    again = store.escalation(esc.id)
    assert again is not None and (again.state, again.owner) == ("closed", "alice")


def test_taking_due_timers_follows_timers_another_connection_added(
    backend: tuple[str, Opener],  # noqa: F811
) -> None:
    _, opener = backend
    mine, other = opener(), opener()
    with mine.transaction():
        assert mine.take_due_timers(T0 + 3600, 10) == []  # nothing is due: nothing to take
    other.add_timer(Timer(due=T0 + 60, kind="after", ticket="T1", key="k"))
    with mine.transaction():
        mine.add_timer(Timer(due=T0 + 30, kind="after", ticket="T2", key="k"))
        taken = mine.take_due_timers(T0 + 60, 1)
        assert [t.ticket for t in taken] == ["T2"]
        assert [t.ticket for t in mine.take_due_timers(T0 + 60, 10)] == ["T1"]
        assert mine.take_due_timers(T0 + 60, 10) == []
    assert other.count_timers() == 0


def test_absences_another_connection_set_are_seen_by_the_next_transaction(
    backend: tuple[str, Opener],  # noqa: F811
) -> None:
    _, opener = backend
    mine, other = opener(), opener()
    with mine.transaction():
        assert mine.absences(T0) == {}
    with other.transaction():
        other.set_absence("alice", T0 + 3600)
    with mine.transaction():
        assert mine.absences(T0) == {"alice": T0 + 3600}
        mine.set_absence("bob", T0 + 60)
        assert mine.absences(T0) == {"alice": T0 + 3600, "bob": T0 + 60}
        assert mine.absences(T0 + 60) == {"alice": T0 + 3600}
    other.set_absence("carol", T0 + 10)  # outside a transaction: bumps the version too
    with mine.transaction():
        assert set(mine.absences(T0)) == {"alice", "bob", "carol"}


def test_the_audit_head_and_rows_of_a_transaction(backend: tuple[str, Opener]) -> None:  # noqa: F811
    _, opener = backend
    store = opener()
    with store.transaction():
        for seq in (1, 2):
            row = AuditRow(T0, "k", "T1", None, None, None, "a", "r", {}, seq, "p", f"h{seq}")
            store.append_audit(row)
        assert store.audit_head() == (2, "h2")
        assert [r.seq for r in store.audit_rows()] == [1, 2]
    assert store.audit_recorded_head() == (2, "h2")


def test_reading_ahead_answers_claims_and_tickets_as_the_database_would(
    backend: tuple[str, Opener],  # noqa: F811
) -> None:
    _, opener = backend
    store = opener()
    store.add_event("old", "ticket.created", T0, "T1", "{}")
    store.put_ticket_state("T1", {"ticket": {"id": "T1"}}, {"ticket.id": T0})
    with store.transaction():
        esc = _escalation(store, "T2")
        esc.state, esc.closed_at = "closed", T0
        store.update_escalation(esc)
        _escalation(store, "T2")
    with store.transaction():
        store.read_ahead(["T1", "T2", "T3"], ["old", "new"])
        statements = store.statements
        assert not store.claim_event("old", "ticket.created", T0, "T1", "{}")
        assert store.claim_event("new", "ticket.created", T0, "T3", "{}")
        assert not store.claim_event("new", "ticket.created", T0, "T3", "{}")
        assert store.has_event("new") and store.has_event("old")
        assert store.ticket_state("T1")[0] == {"ticket": {"id": "T1"}}
        assert store.ticket_state("T3") == ({}, {}) and store.open_escalation("T3") is None
        found = store.open_escalation("T2")
        assert found is not None and found.state == "triggered"
        assert store.statements == statements  # all of it from what was read ahead
        assert store.last_closed_at("T2", "p") == T0
    assert store.has_event("new") and store.count_events() == 2
