"""Several workers on one PostgreSQL store (store/shard_locks.py): decisions on tickets of
different shards go on at once, one ticket is never decided by two at a time, nothing
is assigned twice and the sharded audit trail verifies.

Needs a server: ``ESCALADE_TEST_PG_DSN`` (printed by ``scripts/postgres-for-tests.sh``);
without it every test here skips. Each test gets a fresh schema, dropped afterwards.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from escalade.runtime import audit
from escalade.runtime.clock import VirtualClock
from escalade.runtime.engine import Engine
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.store import Store, Timer
from escalade.runtime.store.sqlite import SQLiteStore
from escalade.runtime.store.trail import shard_of
from tests.runtime.conftest import T0, critical, pg_schema

PG_DSN = os.environ.get("ESCALADE_TEST_PG_DSN")
pytestmark = pytest.mark.skipif(PG_DSN is None, reason="no PostgreSQL (ESCALADE_TEST_PG_DSN)")
SHARDS = 8
MIN = 60
WAIT = 60  # seconds a helper thread may take before the test gives up on it


@pytest.fixture
def opener() -> Iterator[Callable[..., Any]]:
    """Every call opens another connection to ONE fresh schema."""
    assert PG_DSN is not None
    with pg_schema(PG_DSN, "w", audit_shards=SHARDS) as open_store:
        yield open_store


def _engine(store: Store, pack: dict[str, Any]) -> Engine:
    engine = Engine(store, VirtualClock(T0), RecordingNotifier())
    engine.activate(pack, T0)
    return engine


def _stream(tickets: int) -> list[tuple[str, int]]:
    """A new critical ticket, then an update, for each ticket; all processed at one time
    (the store's clock is the latest of every worker's: a worker's explicit times must
    not fall behind another's)."""
    out = []
    for i in range(tickets):
        out.append((json.dumps(critical(f"T{i}", f"c{i}", status="new")), T0 + MIN))
        out.append((json.dumps(critical(f"T{i}", f"u{i}", status="escalated")), T0 + MIN))
    return out


def _ticket(raw: str) -> str:
    return str(json.loads(raw)["data"]["ticket"]["id"])


def _run_all(work: list[Callable[[], Any]]) -> list[Any]:
    """Run each callable in a thread of its own, all released at once; their results."""
    results: list[Any] = [None] * len(work)
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(work))

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work[i]()
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(WAIT)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads), "a worker never finished"
    return results


def _decisions(store: Store, tickets: int) -> list[tuple[Any, ...]]:
    out = []
    for i in range(tickets):
        esc = store.latest_escalation(f"T{i}")
        out.append(None if esc is None else (esc.ticket, esc.policy, esc.state, esc.owner))
    return out


def test_two_workers_on_disjoint_shards_decide_as_one_worker_does(
    opener: Callable[..., Any], pack: dict[str, Any]
) -> None:
    tickets = 24
    stream = _stream(tickets)
    workers = [_engine(opener(checkpoint_every=4), pack) for _ in range(2)]

    def mine(k: int) -> list[tuple[str, int]]:
        return [(raw, at) for raw, at in stream if shard_of(_ticket(raw), SHARDS) % 2 == k]

    slices = [mine(0), mine(1)]
    assert slices[0] and slices[1]
    outcomes = _run_all(
        [
            lambda: [workers[0].receive(raw, at) for raw, at in slices[0]],
            lambda: workers[1].receive_many(slices[1], batch=5),
        ]
    )
    assert Counter(o.status for part in outcomes for o in part) == {"applied": len(stream)}
    single = _engine(SQLiteStore(":memory:"), pack)
    for raw, at in stream:
        single.receive(raw, at)
    store = workers[0].store
    assert _decisions(store, tickets) == _decisions(single.store, tickets)
    verdict = audit.verify(store)
    assert verdict.ok and verdict.checkpoints > 0, verdict
    assert verdict.rows == len(list(single.store.audit_rows()))  # the same decisions
    open_per_ticket = store.execute(
        "SELECT ticket, COUNT(*) FROM escalations WHERE state <> 'closed' GROUP BY ticket"
    ).fetchall()
    assert {n for _, n in open_per_ticket} == {1}
    single.store.close()


def test_two_workers_given_the_same_events_apply_each_once(
    opener: Callable[..., Any], pack: dict[str, Any]
) -> None:
    """Both workers receive every event (a redelivery): each event is applied by one of
    them, the other answers duplicate; no ticket ever has two open escalations."""
    tickets = 16
    stream = _stream(tickets)
    workers = [_engine(opener(checkpoint_every=4), pack) for _ in range(2)]
    outcomes = _run_all(
        [
            lambda: [workers[0].receive(raw, at) for raw, at in stream],
            lambda: workers[1].receive_many(stream, batch=3),
        ]
    )
    statuses = Counter(o.status for part in outcomes for o in part)
    assert statuses == {"applied": len(stream), "duplicate": len(stream)}
    store = workers[1].store
    assert store.count_events() == len(stream)
    assert all(d is not None and d[2] == "assigned" for d in _decisions(store, tickets))
    assert audit.verify(store).ok


def _other_shard_tickets() -> tuple[str, str]:
    first = "A0"
    second = next(
        f"B{i}" for i in range(100) if shard_of(f"B{i}", SHARDS) != shard_of(first, SHARDS)
    )
    return first, second


def test_a_ticket_is_held_until_commit_while_other_tickets_go_on(
    opener: Callable[..., Any],
) -> None:
    held, free = _other_shard_tickets()
    mine, other, watcher = opener(), opener(), opener()
    done = threading.Event()
    with mine.transaction():
        mine.lock_tickets([held])
        with other.transaction():  # another ticket: not held up
            other.lock_tickets([free])
            other.put_ticket_state(free, {"x": 1}, {})

        def wait_for_held() -> None:
            with other.transaction():
                other.lock_tickets([held])
                other.put_ticket_state(held, {"x": 2}, {})
            done.set()

        waiter = threading.Thread(target=wait_for_held)
        waiter.start()
        # The waiter is stuck on the advisory lock of the held ticket's shard.
        for _ in range(WAIT * 20):
            row = watcher.execute(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event = 'advisory'"
                " AND datname = current_database()"
            ).fetchone()
            if row[0]:
                break
            threading.Event().wait(0.05)
        assert row[0] >= 1 and not done.is_set()
        mine.put_ticket_state(held, {"x": 1}, {})
    waiter.join(WAIT)
    assert done.is_set()
    assert watcher.ticket_state(held)[0] == {"x": 2}  # written after the first committed
    assert watcher.ticket_state(free)[0] == {"x": 1}


def test_a_due_timer_of_a_held_ticket_is_left_to_its_holder(
    opener: Callable[..., Any],
) -> None:
    held, free = _other_shard_tickets()
    mine, other = opener(), opener()
    with mine.transaction():
        mine.add_timer(Timer(due=T0, kind="after", ticket=held, key="k"))
        mine.add_timer(Timer(due=T0 + 1, kind="after", ticket=free, key="k"))
    with mine.transaction():
        mine.lock_tickets([held])
        with other.transaction():
            other.lock_tickets([free])
            taken = other.take_due_timers(T0 + 60, 10)
            assert [t.ticket for t in taken] == [free]  # the held ticket's was passed over
        assert [t.ticket for t in mine.take_due_timers(T0 + 60, 10)] == [held]
    assert mine.count_timers() == 0


def test_a_one_chain_postgres_store_migrates_as_shard_0_and_scales_out(
    pack: dict[str, Any],
) -> None:
    """A schema the release before shards wrote (migrations 1-2, one chain whose head is
    a meta row): opening it migrates it to the default shards, its chain is shard 0,
    unchanged, and new tickets' rows go to their own shards; verify holds throughout."""
    import psycopg

    from escalade.runtime.store.postgres import MIGRATIONS, PostgresStore

    assert PG_DSN is not None
    schema = f"old_{uuid.uuid4().hex[:16]}"
    old = SQLiteStore(":memory:")  # the old rows, hashed as the old release hashed them
    _engine(old, pack).receive(critical("T1", "e1"))
    rows = list(old.audit_rows())
    assert rows and all(r.shard == 0 for r in rows)
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute(
            "CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        for version, script in enumerate(MIGRATIONS[:2], start=1):
            conn.execute(script)
            conn.execute("INSERT INTO schema_migrations(version) VALUES (%s)", (version,))
        for r in rows:
            conn.execute(
                "INSERT INTO audit(seq, at, kind, ticket, escalation_id, policy, pack_version,"
                " actor, reason, detail, prev, hash) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s,"
                " %s, %s, %s)",
                (r.seq, r.at, r.kind, r.ticket, r.escalation_id, r.policy, r.pack_version,
                 r.actor, r.reason, json.dumps(r.detail, sort_keys=True, separators=(",", ":")),
                 r.prev, r.hash),
            )  # fmt: skip
        conn.execute(
            "INSERT INTO meta(key, value) VALUES ('audit_head', %s), ('clock', %s)",
            (f"{rows[-1].seq}:{rows[-1].hash}", str(T0)),
        )
        conn.execute("INSERT INTO counters(name, value) VALUES ('events_unowned', 3)")
    try:
        store = PostgresStore(PG_DSN, schema=schema)
        assert store.audit_shards() == 16 and store.clock() == T0
        assert store.counters() == {"events_unowned": 3}
        assert [(r.shard, r.seq, r.hash) for r in store.audit_chain()] == [
            (0, r.seq, r.hash) for r in rows
        ]
        assert audit.verify(store).ok
        engine = Engine(store, VirtualClock(T0), RecordingNotifier())
        engine.activate(pack, T0)  # its row goes on shard 0's chain
        for i in range(8):
            engine.receive(critical(f"N{i}", f"n{i}"), at=T0 + MIN)
        verdict = audit.verify(store)
        assert verdict.ok and verdict.shards == 16
        assert len({r.shard for r in store.audit_chain()}) > 2
        store.close()
    finally:
        old.close()
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
