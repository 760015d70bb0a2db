"""The Store contract, run against every back end: SQLite and PostgreSQL.

The PostgreSQL cases need a server: ``ESCALADE_TEST_PG_DSN`` (printed by
``scripts/postgres-for-tests.sh``); without it they skip. Each test gets a fresh
schema of that database, dropped afterwards.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from escalade.runtime import audit, tokens
from escalade.runtime.clock import VirtualClock
from escalade.runtime.engine import Engine
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.store import AuditRow, Store, Timer, open_store
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0, critical, pg_schema

PG_DSN = os.environ.get("ESCALADE_TEST_PG_DSN")
NO_PG = "no PostgreSQL server (ESCALADE_TEST_PG_DSN unset; .ci/run starts one)"
MIN = 60

Opener = Callable[[], Any]  # a new connection to the same store


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.skipif(PG_DSN is None, reason=NO_PG)),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Opener]]:
    """(name, opener): every call of ``opener`` opens another connection to ONE fresh store."""
    opened: list[Any] = []
    if request.param == "sqlite":
        path = str(tmp_path / "contract.sqlite")

        def opener() -> Any:
            store = SQLiteStore(path)
            opened.append(store)
            return store

        yield "sqlite", opener
        for store in opened:
            store.close()
        return

    assert PG_DSN is not None
    with pg_schema(PG_DSN, "t") as pg_opener:
        yield "postgres", pg_opener


def _engine(store: Store, pack: dict[str, Any]) -> Engine:
    engine = Engine(store, VirtualClock(T0), RecordingNotifier())
    engine.activate(pack, T0)
    return engine


def test_migrations_are_recorded_and_idempotent(backend: tuple[str, Opener]) -> None:
    _, opener = backend
    first = opener()
    version = first.schema_version()
    assert version >= 1
    first.close()
    again = opener()  # a second open applies nothing
    assert again.schema_version() == version
    rows = again.execute("SELECT COUNT(*), MAX(version) FROM schema_migrations").fetchone()
    assert (rows[0], rows[1]) == (version, version)


def test_enterprise_critical_fails_over_to_carol_at_5m(
    backend: tuple[str, Opener], pack: dict[str, Any]
) -> None:
    _, opener = backend
    engine = _engine(opener(), pack)
    outcome = engine.receive(critical("T1", "e1", status="escalated"))
    assert outcome.status == "applied"
    status = engine.status("T1")
    assert status is not None
    assert (status["policy"], status["level"], status["owner"]) == (
        "enterprise_critical",
        "primary",
        "alice",  # cust_ops_oncall's member on call at T0
    )
    engine.advance(T0 + 5 * MIN - 1)
    assert engine.status("T1")["owner"] == "alice"  # type: ignore[index]
    engine.advance(T0 + 5 * MIN)
    status = engine.status("T1")
    assert status is not None and (status["owner"], status["level"]) == ("carol", "backup")
    # A second connection (a restart, another worker) sees the same state and timers.
    other = _engine(opener(), pack)
    assert other.status("T1") == status
    assert audit.verify(other.store).ok


def test_duplicate_event_id_is_a_no_op(backend: tuple[str, Opener], pack: dict[str, Any]) -> None:
    _, opener = backend
    engine = _engine(opener(), pack)
    assert engine.receive(critical("T1", "e1")).status == "applied"
    rows = len(list(engine.store.audit_rows()))
    again = engine.receive(critical("T1", "e1", title="changed"))
    assert again.status == "duplicate"
    assert engine.store.count_events() == 1
    assert len(list(engine.store.audit_rows())) == rows
    # The primary key holds even past the engine's check: the transaction fails whole.
    store = engine.store
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"), store.transaction():
        store.bump("before_duplicate")
        store.add_event("e1", "ticket.created", T0, "T1", "{}")
    assert "before_duplicate" not in store.counters()


def test_an_event_applied_by_another_worker_meanwhile_is_a_duplicate(
    backend: tuple[str, Opener], pack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two workers receive the same id; the second passes the quick check before the
    first commits, and still answers 'duplicate' (nothing applied twice, no exception)."""
    _, opener = backend
    first = _engine(opener(), pack)
    second = _engine(opener(), pack)
    assert first.receive(critical("T1", "e1")).status == "applied"
    rows = len(list(first.store.audit_rows()))
    monkeypatch.setattr(second.store, "has_event", lambda _id: False)  # the race window
    outcome = second.receive(critical("T1", "e1"))
    assert outcome.status == "duplicate"
    assert second.store.count_events() == 1
    assert len(list(second.store.audit_rows())) == rows


def test_audit_is_append_only_and_verifies(
    backend: tuple[str, Opener], pack: dict[str, Any]
) -> None:
    _, opener = backend
    engine = _engine(opener(), pack)
    engine.receive(critical("T1", "e1"))
    engine.advance(T0 + 6 * MIN)
    store = engine.store
    verdict = audit.verify(store)
    assert verdict.ok and verdict.rows >= 3
    for sql in ("UPDATE audit SET reason = 'edited'", "DELETE FROM audit"):
        with pytest.raises(Exception, match="append-only"), store.transaction():
            store.execute(sql)
    assert audit.verify(store).ok
    assert audit.verify(store).rows == verdict.rows


def test_two_workers_never_fire_a_timer_twice(
    backend: tuple[str, Opener], pack: dict[str, Any]
) -> None:
    """Two engines on two connections advance the same store at once: the trail equals
    one worker's, and every timer fired exactly once."""
    _, opener = backend
    feeder = _engine(opener(), pack)
    tickets = [f"T{i}" for i in range(12)]
    for i, ticket in enumerate(tickets):
        feeder.receive(critical(ticket, f"e{i}"))
    pending = feeder.store.count_timers()
    assert pending >= 2 * len(tickets)
    workers = [_engine(opener(), pack) for _ in range(2)]
    fired: list[int] = [0, 0]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(index: int) -> None:
        try:
            barrier.wait()
            fired[index] = workers[index].advance(T0 + 20 * MIN)
        except BaseException as exc:  # reported below, not swallowed
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert audit.verify(feeder.store).ok

    # The same history on one worker alone, on a fresh SQLite store.
    single = _engine(SQLiteStore(":memory:"), pack)
    for i, ticket in enumerate(tickets):
        single.receive(critical(ticket, f"e{i}"))
    alone = single.advance(T0 + 20 * MIN)
    assert sum(fired) == alone > len(tickets)

    def history(store: Store) -> Counter[tuple[Any, ...]]:
        return Counter((r.kind, r.ticket, r.at, r.reason) for r in store.audit_rows())

    assert history(feeder.store) == history(single.store)
    for ticket in tickets:
        assert feeder.status(ticket)["owner"] == single.status(ticket)["owner"]  # type: ignore[index]
    single.store.close()


def test_due_timers_come_in_order_and_each_goes_to_one_taker(
    backend: tuple[str, Opener],
) -> None:
    _, opener = backend
    store = opener()
    with store.transaction():
        for due in (50, 10, 30, 10_000):
            store.add_timer(Timer(due=due, kind="ack", ticket="T"))
        for n in range(40):
            store.add_timer(Timer(due=100 + n, kind="ack", ticket=f"U{n}"))
    assert [t.due for t in store.due_timers(100, 3)] == [10, 30, 50]
    taken: list[int] = []
    lock = threading.Lock()

    def take(conn: Any) -> None:
        while True:
            with conn.transaction():
                due = conn.due_timers(1000, 1)
                if not due:
                    return
                conn.delete_timer(due[0].id)
            with lock:
                taken.append(due[0].id)

    takers = [threading.Thread(target=take, args=(opener(),)) for _ in range(3)]
    for t in takers:
        t.start()
    for t in takers:
        t.join(60)
    assert len(taken) == 43 and len(set(taken)) == 43
    assert [t.due for t in store.due_timers(20_000, 10)] == [10_000]


def test_a_killed_connection_leaves_nothing_half_applied(backend: tuple[str, Opener]) -> None:
    name, opener = backend
    store = opener()
    with pytest.raises(Exception), store.transaction():  # noqa: B017 - either driver's error
        store.add_event("e1", "ticket.created", T0, "T1", "{}")
        store.put_ticket_state("T1", {"ticket.id": "T1"}, {"ticket.id": T0})
        store.add_timer(Timer(due=T0 + MIN, kind="ack", ticket="T1"))
        store.set_clock(T0)
        if name == "postgres":
            watcher = opener()
            pid = store.execute("SELECT pg_backend_pid()").fetchone()[0]
            watcher.execute("SELECT pg_terminate_backend(%s)", (pid,))
        else:
            store._db.close()  # closing with a transaction open discards it
        store.append_audit(
            AuditRow(at=T0, kind="x", ticket="T1", escalation_id=None, policy=None,
                     pack_version=None, actor="test", reason="never", seq=1)
        )  # fmt: skip
    fresh = opener()
    assert not fresh.has_event("e1")
    assert fresh.ticket_state("T1") == ({}, {})
    assert fresh.due_timers(T0 + 3600, 10) == []
    assert fresh.clock() is None
    assert list(fresh.audit_rows()) == []
    if name == "postgres":  # the store reconnects for its next decision
        with store.transaction():
            store.add_event("e2", "ticket.created", T0, "T2", "{}")
        assert fresh.has_event("e2")


def test_open_store_picks_the_back_end(tmp_path: Path) -> None:
    path = tmp_path / "picked.sqlite"
    for url in (str(path), f"sqlite:///{path}"):
        store = open_store(url)
        assert isinstance(store, SQLiteStore) and store.path == str(path)
        store.close()
    with pytest.raises(ValueError, match="three slashes"):
        open_store("sqlite://relative.db")
    if PG_DSN is not None:
        from escalade.runtime.store.postgres import PostgresStore

        pg = open_store(PG_DSN)
        assert isinstance(pg, PostgresStore)
        pg.close()


def test_the_counts_metrics_read(backend: tuple[str, Opener], pack: dict[str, Any]) -> None:
    _, opener = backend
    engine = _engine(opener(), pack)
    engine.receive(critical("T1", "e1"))
    engine.receive(critical("T2", "e2"))
    engine.receive("{not json")
    store = engine.store
    assert store.count_events() == 2
    assert store.count_dead_letters() == 1
    assert store.count_timers() == len(engine.status("T1")["timers"]) * 2  # type: ignore[index]
    assert store.open_by_state_and_policy() == [("assigned", "enterprise_critical", 2)]
    assert sum(store.outbox_by_status().values()) == len(store.outbox())


def test_open_escalations_come_oldest_first_up_to_the_limit(
    backend: tuple[str, Opener], pack: dict[str, Any]
) -> None:
    _, opener = backend
    engine = _engine(opener(), pack)
    engine.receive(critical("T2", "e2"), at=T0 + 2 * MIN)
    engine.receive(critical("T1", "e1"), at=T0 + 2 * MIN)  # same start: by id
    engine.receive(critical("T3", "e3", root_cause="disk"), at=T0 + 3 * MIN)
    engine.ack("T3", "alice", at=T0 + 4 * MIN)
    engine.resolve("T3", at=T0 + 5 * MIN, by="alice")
    engine.postmortem("T3", "https://wiki.example.com/pm/3", at=T0 + 5 * MIN, by="alice")
    engine.close("T3", at=T0 + 6 * MIN, by="alice")
    store = opener()  # another connection reads what the first wrote
    assert [e.ticket for e in store.open_escalations(10)] == ["T2", "T1"]
    assert [e.ticket for e in store.open_escalations(1)] == ["T2"]
    first = store.open_escalations(1)[0]
    assert first == store.open_escalation("T2")  # the whole row, facts included


def test_tokens_are_kept_by_hash_and_revoked_once(backend: tuple[str, Opener]) -> None:
    _, opener = backend
    store = opener()
    issued = tokens.create_token(store, principal="person:alice", role="lead", by="bob", at=T0)
    token_id = issued.token.id
    other = opener()  # another worker sees it at once
    assert other.token(token_id) == issued.token
    second = tokens.create_token(store, principal="service:x", role="ingest", by="bob", at=T0)
    assert [t.id for t in other.tokens()] == [token_id, second.token.id]  # as created
    assert issued.secret not in repr(other.tokens())
    principal = tokens.authenticate(other, issued.secret)
    assert principal is not None and (principal.name, principal.roles) == (
        "person:alice",
        frozenset({"lead"}),
    )
    assert tokens.authenticate(other, issued.secret[:-1] + "x") is None
    assert other.token("nope") is None
    with pytest.raises(Exception, match=r"(?i)unique|duplicate"), store.transaction():
        store.add_token(issued.token)
    with store.transaction():
        assert store.revoke_token(token_id, T0 + MIN, "dana")
        assert not store.revoke_token(token_id, T0 + 2 * MIN, "dana")  # once only
        assert not store.revoke_token("nope", T0 + 2 * MIN, "dana")
    revoked = other.token(token_id)
    assert revoked is not None and (revoked.revoked_at, revoked.revoked_by) == (T0 + MIN, "dana")
    assert tokens.authenticate(other, issued.secret) is None
    assert [r.kind for r in other.audit_rows()] == ["token_created", "token_created"]
    assert audit.verify(other).ok
