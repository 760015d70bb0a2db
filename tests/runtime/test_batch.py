"""The batch API (``Engine.receive_many``) and what one event costs the store.

Many events in one transaction must leave exactly the store that one transaction per
event leaves (the same rows, ids, audit chain and deliveries); each event is still
checked on its own; an event that raises is answered ``error`` while the others
commit; nothing is answered before its commit. Counts are of statements and commits,
never of time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from escalade.runtime import audit
from escalade.runtime.clock import VirtualClock, format_time
from escalade.runtime.engine import Engine, intake
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0, critical

MIN = 60
TABLES = (
    "events",
    "tickets",
    "escalations",
    "timers",
    "outbox",
    "audit",
    "dead_letters",
    "counters",
    "absences",
    "meta",
)


def stream() -> Iterator[tuple[str, int]]:
    """Events (and their processing times) that start, update, re-route and fail over
    escalations, with time passing so timers fire between them; a malformed line, a
    duplicate id and an event from the future are among them."""
    now = T0
    for i in range(60):
        ticket = f"T{i % 9}"
        severity = ("critical", "high", "low")[i % 3]
        tier = "enterprise" if i % 4 else "pro"
        status = "escalated" if i % 5 == 0 else "new"
        event = critical(ticket, f"e{i}", severity=severity, tier=tier, status=status)
        event["at"] = format_time(now)
        if i % 7 == 3:
            event["data"]["ticket"]["tags"] = ["vendor_outage"]
        yield json.dumps(event), now
        if i == 20:
            yield "{not json", now
        if i == 30:
            yield json.dumps(event), now  # the same id again
        if i == 40:
            ahead = dict(event, id="e-ahead", at=format_time(now + 3600))
            yield json.dumps(ahead), now
        now += (i % 4) * 2 * MIN


def dump(store: SQLiteStore) -> dict[str, list[tuple[Any, ...]]]:
    return {t: store.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in TABLES}  # noqa: S608


def engine_on(
    path: Path, pack: dict[str, Any], *, quiet: bool = False
) -> tuple[Engine, SQLiteStore, RecordingNotifier]:
    """An engine whose notifier never answers carol and refuses revops (unless ``quiet``)."""
    store = SQLiteStore(str(path))
    notifier = RecordingNotifier() if quiet else RecordingNotifier({"revops"}, {"carol"})
    engine = Engine(store, VirtualClock(T0), notifier)
    engine.activate(pack, T0)
    return engine, store, notifier


@pytest.mark.parametrize("batch", [1, 7, 500])
def test_a_batch_leaves_the_store_one_transaction_per_event_leaves(
    tmp_path: Path, pack: dict[str, Any], batch: int
) -> None:
    lines = list(stream())
    one, one_store, one_sent = engine_on(tmp_path / "one.sqlite", pack)
    singles = [one.receive(line, at) for line, at in lines]
    many, many_store, many_sent = engine_on(tmp_path / "many.sqlite", pack)
    commits = many_store.commits
    outcomes = many.receive_many(lines, batch=batch)
    assert [(o.status, o.message) for o in outcomes] == [(o.status, o.message) for o in singles]
    assert {o.status for o in outcomes} == {"applied", "dead_letter", "duplicate"}
    assert many_store.commits - commits == -(-len(lines) // batch)
    assert dump(many_store) == dump(one_store)
    assert many_sent.sent == one_sent.sent
    assert audit.verify(many_store).ok


def test_each_event_is_answered_after_its_transaction_commits(
    tmp_path: Path, pack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, store, _ = engine_on(tmp_path / "b.sqlite", pack)
    seen: list[bool] = []
    real = intake.Intake._commit_chunk

    def watched(self: intake.Intake, chunk: Any) -> Any:
        done = real(self, chunk)
        seen.append(store._unit is None and not store._db.in_transaction)
        return done

    monkeypatch.setattr(intake.Intake, "_commit_chunk", watched)
    events = [critical(f"T{i}", f"e{i}") for i in range(5)]
    outcomes = engine.receive_many(events, T0, batch=2)
    assert [o.status for o in outcomes] == ["applied"] * 5
    assert seen == [True, True, True]


def test_an_event_that_raises_is_an_error_and_the_others_are_applied(
    tmp_path: Path, pack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, store, _ = engine_on(tmp_path / "b.sqlite", pack)
    real = intake.chain.route

    def route(rt: Any, ticket: str, *args: Any) -> Any:
        if ticket == "T2":
            raise RuntimeError("a bug")
        return real(rt, ticket, *args)

    monkeypatch.setattr(intake.chain, "route", route)
    events = [critical(f"T{i}", f"e{i}") for i in range(5)]
    outcomes = engine.receive_many(events, T0)
    assert [o.status for o in outcomes] == ["applied", "applied", "error", "applied", "applied"]
    assert "RuntimeError" in outcomes[2].message
    assert not store.has_event("e2") and store.open_escalation("T2") is None
    assert all(store.open_escalation(f"T{i}") is not None for i in (0, 1, 3, 4))
    assert audit.verify(store).ok
    monkeypatch.setattr(intake.chain, "route", real)
    again = engine.receive_many(events, T0)  # idempotent by id: only the failed one applies
    assert [o.status for o in again] == ["duplicate"] * 2 + ["applied"] + ["duplicate"] * 2


def test_a_failed_commit_answers_error_for_the_whole_batch_and_writes_nothing(
    tmp_path: Path, pack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, store, _ = engine_on(tmp_path / "b.sqlite", pack)
    before = dump(store)

    def refuse() -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store, "_commit", refuse)
    events = [critical(f"T{i}", f"e{i}") for i in range(3)]
    outcomes = engine.receive_many(events, T0)
    assert [o.status for o in outcomes] == ["error"] * 3
    monkeypatch.undo()
    assert dump(store) == before
    assert [o.status for o in engine.receive_many(events, T0)] == ["applied"] * 3


def test_a_time_before_the_clock_is_refused_for_that_event_alone(
    tmp_path: Path, pack: dict[str, Any]
) -> None:
    engine, store, _ = engine_on(tmp_path / "b.sqlite", pack)
    engine.advance(T0 + 10 * MIN)
    items = [(critical("T1", "e1"), T0 + 10 * MIN), (critical("T2", "e2"), T0)]
    outcomes = engine.receive_many(items)
    assert [o.status for o in outcomes] == ["applied", "refused"]
    assert "earlier than the store's clock" in outcomes[1].message
    assert not store.has_event("e2")


def test_a_new_escalation_costs_one_commit_and_at_most_twelve_statements(
    tmp_path: Path, pack: dict[str, Any]
) -> None:
    engine, store, _ = engine_on(tmp_path / "b.sqlite", pack, quiet=True)
    engine.receive(critical("T0", "e0"))  # the first decision reads what an earlier process left
    for i in range(1, 4):
        statements, commits = store.statements, store.commits
        assert engine.receive(critical(f"T{i}", f"e{i}")).status == "applied"
        assert store.commits - commits == 1
        assert store.statements - statements <= 12
    statements = store.statements
    assert engine.receive(critical("T1", "e1")).status == "duplicate"
    assert store.statements - statements <= 4


def test_the_trace_of_sqlite_agrees_with_the_count(tmp_path: Path, pack: dict[str, Any]) -> None:
    engine, store, _ = engine_on(tmp_path / "b.sqlite", pack)
    engine.receive(critical("T0", "e0"))
    traced: list[str] = []
    store._db.set_trace_callback(traced.append)
    statements = store.statements
    engine.receive_many([critical(f"T{i}", f"e{i}") for i in range(1, 6)], T0)
    assert store.statements - statements == len(traced)
