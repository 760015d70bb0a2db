"""The sharded audit trail (store/trail.py): every ticket's rows in one chain, the chains
bound by checkpoints, and `audit verify` naming the shard and seq of what was tampered
with — an edit, a deletion, a cut tail, a rewritten head, a dropped checkpoint — and
older one-chain stores migrated and still verifying.

The tamperer here has SQL access: the append-only triggers are dropped first.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from escalade.runtime import audit
from escalade.runtime.clock import VirtualClock
from escalade.runtime.engine import Engine
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.store import AuditRow
from escalade.runtime.store.rows import dumps
from escalade.runtime.store.sqlite import MIGRATIONS, SQLiteStore, _split_sql
from escalade.runtime.store.trail import GENESIS, row_digest, shard_of
from tests.runtime.conftest import T0, critical

SHARDS = 4
EVERY = 3  # a checkpoint every 3 rows of a shard: several in a short history
MIN = 60
HEAD = "UPDATE audit_heads SET seq = ?, hash = ? WHERE shard = ?"  # a recorded head rewritten


def _engine(path: Path, pack: dict[str, Any], **kw: Any) -> Engine:
    store = SQLiteStore(str(path), audit_shards=SHARDS, checkpoint_every=EVERY, **kw)
    engine = Engine(store, VirtualClock(T0), RecordingNotifier())
    engine.activate(pack, T0)
    return engine


def _history(engine: Engine, tickets: int = 8) -> None:
    for i in range(tickets):
        engine.receive(critical(f"T{i}", f"e{i}", status="escalated"))
    engine.advance(T0 + 20 * MIN)
    engine.ack("T1", "dana", T0 + 21 * MIN)


@pytest.fixture
def engine(tmp_path: Path, pack: dict[str, Any]) -> Engine:
    found = _engine(tmp_path / "sharded.sqlite", pack)
    _history(found)
    return found


Statement = str | tuple[str, tuple[Any, ...]]


def _tamper(engine: Engine, *sql: Statement) -> None:
    """Drop the append-only triggers, then run ``sql`` (text, or text and parameters)."""
    store: Any = engine.store
    for trigger in ("audit_no_update", "audit_no_delete", "audit_checkpoints_no_delete"):
        store.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for statement in sql:
        text, params = (statement, ()) if isinstance(statement, str) else statement
        store.execute(text, params)


def _busiest(engine: Engine) -> int:
    """The shard (other than 0) with the most rows."""
    counts = Counter(r.shard for r in engine.store.audit_chain() if r.shard)
    return counts.most_common(1)[0][0]


def _last(engine: Engine, shard: int) -> int:
    return max(r.seq for r in engine.store.audit_chain() if r.shard == shard)


def test_each_ticket_is_one_chain_and_the_shards_are_bound_by_checkpoints(engine: Engine) -> None:
    store = engine.store
    verdict = audit.verify(store)
    assert verdict.ok, verdict
    assert verdict.shards == SHARDS and verdict.checkpoints >= 2 and verdict.anchor
    rows = list(store.audit_chain())
    assert verdict.rows == len(rows)
    assert len({r.shard for r in rows}) > 1  # the tickets spread over the shards
    for row in rows:
        if row.ticket is not None:
            assert row.shard == shard_of(row.ticket, SHARDS)
    # The trail as readers see it: every row once, each shard's rows in their order.
    merged = list(store.audit_rows())
    assert Counter((r.shard, r.seq) for r in merged) == Counter((r.shard, r.seq) for r in rows)
    for shard in {r.shard for r in rows}:
        seqs = [r.seq for r in merged if r.shard == shard]
        assert seqs == sorted(seqs)
    # A reader that keeps a cursor per shard gets only what was appended since.
    cursor = {s: _last(engine, s) for s in {r.shard for r in rows}}
    engine.receive(critical("T99", "e99"))
    fresh = list(store.audit_rows(after=cursor))
    assert fresh and all(r.ticket == "T99" for r in fresh)
    # Checkpoints name rows the chains hold.
    rows = list(store.audit_chain())
    for cp in store.audit_checkpoints():
        for shard, seq, digest in cp.heads:
            assert next(r.hash for r in rows if (r.shard, r.seq) == (shard, seq)) == digest


def test_an_edited_row_is_reported_with_its_shard_and_seq(engine: Engine) -> None:
    shard = _busiest(engine)
    _tamper(engine, ("UPDATE audit SET actor = 'mallory' WHERE shard = ? AND seq = 2", (shard,)))
    verdict = audit.verify(engine.store)
    assert not verdict.ok and (verdict.shard, verdict.seq) == (shard, 2)
    assert f"shard {shard}: row 2 was edited" in (verdict.problem or "")


def test_a_deleted_row_is_reported_with_its_shard_and_seq(engine: Engine) -> None:
    shard = _busiest(engine)
    _tamper(engine, ("DELETE FROM audit WHERE shard = ? AND seq = 2", (shard,)))
    verdict = audit.verify(engine.store)
    assert not verdict.ok and (verdict.shard, verdict.seq) == (shard, 2)
    assert "row 2 is missing" in (verdict.problem or "")


def test_a_cut_tail_is_reported_against_the_recorded_head(engine: Engine) -> None:
    shard = _busiest(engine)
    last = _last(engine, shard)
    _tamper(engine, ("DELETE FROM audit WHERE shard = ? AND seq = ?", (shard, last)))
    verdict = audit.verify(engine.store)
    assert not verdict.ok and verdict.shard == shard and "cut off" in (verdict.problem or "")


def _bound_seq(engine: Engine, shard: int) -> int:
    """The highest row of ``shard`` a checkpoint names."""
    return max(
        seq for cp in engine.store.audit_checkpoints() for s, seq, _ in cp.heads if s == shard
    )


def test_a_tail_cut_behind_a_checkpoint_is_caught_even_with_the_head_rewritten(
    engine: Engine,
) -> None:
    shard = _busiest(engine)
    bound = _bound_seq(engine, shard)
    keep = bound - 1
    digest = next(r.hash for r in engine.store.audit_chain() if (r.shard, r.seq) == (shard, keep))
    _tamper(
        engine,
        ("DELETE FROM audit WHERE shard = ? AND seq > ?", (shard, keep)),
        (HEAD, (keep, digest, shard)),
    )
    verdict = audit.verify(engine.store)
    assert not verdict.ok and verdict.shard == shard
    assert f"recorded row {bound} but the shard ends at row {keep}" in (verdict.problem or "")


def test_a_shard_rewritten_whole_behind_a_checkpoint_is_caught(engine: Engine) -> None:
    """Every hash after the edit recomputed and the head rewritten: the chain alone is
    consistent again, but a checkpoint names the old hash."""
    store = engine.store
    shard = _busiest(engine)
    rows = [r for r in store.audit_chain() if r.shard == shard]
    statements: list[Statement] = []
    prev = GENESIS
    for row in rows:
        if row.seq == 1:
            row.actor = "mallory"
        row.prev = prev
        row.hash = row_digest(row)
        prev = row.hash
        statements.append(
            (
                "UPDATE audit SET actor = ?, prev = ?, hash = ? WHERE shard = ? AND seq = ?",
                (row.actor, row.prev, row.hash, shard, row.seq),
            )
        )
    statements.append((HEAD, (rows[-1].seq, prev, shard)))
    _tamper(engine, *statements)
    verdict = audit.verify(engine.store)
    assert not verdict.ok and verdict.shard == shard
    assert "rewritten after the checkpoint" in (verdict.problem or "")


def test_a_dropped_or_edited_checkpoint_is_reported(tmp_path: Path, pack: dict[str, Any]) -> None:
    cases = {
        "DELETE FROM audit_checkpoints WHERE n = 1": "checkpoint 1 is missing",
        "DELETE FROM audit_checkpoints WHERE n = (SELECT MAX(n) FROM audit_checkpoints)": (
            "checkpoints were cut off the end"
        ),
        "UPDATE audit_checkpoints SET at = at + 1 WHERE n = 2": "checkpoint 2 was edited",
    }
    for i, (sql, why) in enumerate(cases.items()):
        engine = _engine(tmp_path / f"cp{i}.sqlite", pack)
        _history(engine)
        _tamper(engine, "DROP TRIGGER IF EXISTS audit_checkpoints_no_update", sql)
        verdict = audit.verify(engine.store)
        assert not verdict.ok and why in (verdict.problem or ""), (sql, verdict)


def test_a_tail_cut_past_the_last_checkpoint_with_the_head_rewritten_goes_unseen(
    engine: Engine,
) -> None:
    """The trade-off, pinned: rows a shard appended after the last checkpoint that names
    it can be cut by someone who also rewrites that shard's head (at most about
    checkpoint_every rows); anything before it cannot."""
    shard = _busiest(engine)
    last, bound = _last(engine, shard), _bound_seq(engine, shard)
    if last == bound:  # make an unbound tail: rows of this shard past its checkpoint
        ticket = next(f"X{i}" for i in range(1000) if shard_of(f"X{i}", SHARDS) == shard)
        engine.receive(critical(ticket, f"x-{ticket}"))
        last = _last(engine, shard)
    assert last > bound and last - bound <= 2 * EVERY
    digest = next(r.hash for r in engine.store.audit_chain() if (r.shard, r.seq) == (shard, bound))
    _tamper(
        engine,
        ("DELETE FROM audit WHERE shard = ? AND seq > ?", (shard, bound)),
        (HEAD, (bound, digest, shard)),
    )
    assert audit.verify(engine.store).ok


def _old_store(path: Path, rows: int) -> list[AuditRow]:
    """A store as the release before shards wrote it: migrations 1-3, one chain whose head
    is a meta row, the clock and a counter in the meta and counters tables."""
    db = sqlite3.connect(str(path), isolation_level=None)
    db.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY,"
        " applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    for version, script in enumerate(MIGRATIONS[:3], start=1):
        for statement in _split_sql(script):
            db.execute(statement)
        db.execute("INSERT INTO schema_migrations(version) VALUES (?)", (version,))
    written, prev = [], GENESIS
    for seq in range(1, rows + 1):
        row = AuditRow(
            T0 + seq, "note", f"T{seq % 3}", None, None, None, "op", f"r{seq}", {}, seq, prev
        )
        row.hash = hashlib.sha256((row.prev + dumps(row.chained())).encode()).hexdigest()
        db.execute(
            "INSERT INTO audit(seq, at, kind, ticket, escalation_id, policy, pack_version, actor,"
            " reason, detail, prev, hash) VALUES (?, ?, ?, ?, NULL, NULL, NULL, ?, ?, ?, ?, ?)",
            (
                seq,
                row.at,
                row.kind,
                row.ticket,
                row.actor,
                row.reason,
                json.dumps({}),
                row.prev,
                row.hash,
            ),
        )
        written.append(row)
        prev = row.hash
    db.execute("INSERT INTO meta(key, value) VALUES ('audit_head', ?)", (f"{rows}:{prev}",))
    db.execute("INSERT INTO meta(key, value) VALUES ('clock', ?)", (str(T0 + rows),))
    db.execute("INSERT INTO counters(name, value) VALUES ('events_unowned', 7)")
    db.close()
    return written


@pytest.mark.parametrize("shards", [None, SHARDS])
def test_a_one_chain_store_migrates_as_shard_0_and_keeps_verifying(
    tmp_path: Path, pack: dict[str, Any], shards: int | None
) -> None:
    path = tmp_path / "old.sqlite"
    old = _old_store(path, 5)
    store = SQLiteStore(str(path), audit_shards=shards)
    assert store.audit_shards() == (shards or 1)
    assert [(r.shard, r.seq, r.hash) for r in store.audit_chain()] == [
        (0, r.seq, r.hash) for r in old
    ]
    assert store.audit_recorded_head(0) == (5, old[-1].hash)
    assert store.clock() == T0 + 5 and store.counters() == {"events_unowned": 7}
    assert audit.verify(store).ok
    engine = Engine(store, VirtualClock(T0 + 5), RecordingNotifier())
    engine.activate(pack, T0 + 5)
    for i in range(6):
        engine.receive(critical(f"N{i}", f"n{i}"), at=T0 + 10)
    verdict = audit.verify(store)
    assert verdict.ok and verdict.rows > 5
    zero = [r for r in store.audit_chain() if r.shard == 0]
    assert zero[:5] == list(store.audit_chain())[:5]  # the old chain goes on as shard 0
    store.close()
    with pytest.raises(Exception, match="fixed when it was created"):
        SQLiteStore(str(path), audit_shards=(shards or 1) + 1)
