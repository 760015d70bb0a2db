"""The SQLite store: migrations, WAL, timers by due time, idempotent outbox, durability."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from escalade.runtime.store import OutboxMessage, Timer
from escalade.runtime.store.sqlite import MIGRATIONS, SQLiteStore
from tests.runtime.conftest import T0, critical


def test_migrations_are_recorded_and_idempotent(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    store = SQLiteStore(path)
    assert store.schema_version() == len(MIGRATIONS)
    assert store.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    again = SQLiteStore(path)
    assert again.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
    again.close()


def test_due_timers_use_the_index_and_come_in_order(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "s.db"))
    with store.transaction():
        for due in (50, 10, 30, 10_000):
            store.add_timer(Timer(due=due, kind="ack", ticket="T"))
    assert [t.due for t in store.due_timers(100, 10)] == [10, 30, 50]
    plan = " ".join(
        str(r[3])
        for r in store.execute(
            "EXPLAIN QUERY PLAN SELECT id FROM timers WHERE due <= 5 ORDER BY due, id"
        )
    )
    assert "timers_due" in plan
    store.close()


def test_outbox_key_is_idempotent(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "s.db"))
    msg = OutboxMessage(
        key="esc-1/1",
        escalation_id=1,
        ticket="T",
        action="notify",
        target="x",
        target_kind="person",
        payload={},
        created_at=0,
    )
    assert store.add_outbox(msg) is True
    assert store.add_outbox(msg) is False
    assert len(store.outbox()) == 1
    store.close()


def test_transaction_rolls_back_everything(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "s.db"))
    try:
        with store.transaction():
            store.add_timer(Timer(due=1, kind="ack", ticket="T"))
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert store.due_timers(10, 10) == []
    store.close()


def test_committed_event_survives_kill_9(tmp_path: Path, pack_file: Path) -> None:
    """A child applies an event and is killed with SIGKILL; the store has it."""
    db = tmp_path / "k.db"
    script = (
        "import json, os, signal, sys\n"
        "from escalade.runtime.engine import Engine\n"
        "from escalade.runtime.store.sqlite import SQLiteStore\n"
        "from escalade.runtime.clock import VirtualClock\n"
        f"engine = Engine(SQLiteStore({str(db)!r}), VirtualClock({T0}))\n"
        f"engine.activate(json.load(open({str(pack_file)!r})), {T0})\n"
        f"engine.receive({json.dumps(json.dumps(critical('T1', 'e1')))})\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, check=False)
    assert proc.returncode == -9, proc.stderr
    store = SQLiteStore(str(db))
    esc: Any = store.open_escalation("T1")
    assert esc is not None and esc.state == "assigned" and store.has_event("e1")
    assert [t.kind for t in store.timers_of(esc.id)]  # timers survived as rows
    store.close()


def test_synchronous_setting_is_applied_and_checked(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "full.db"), synchronous="full")
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()
    with pytest.raises(ValueError, match="synchronous must be one of NORMAL, FULL"):
        SQLiteStore(str(tmp_path / "bad.db"), synchronous="sometimes")


def test_outbox_lookup_by_key_uses_the_unique_index(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "s.db"))
    with store.transaction():
        for i in range(3):
            store.add_outbox(OutboxMessage(f"esc-1/{i}", 1, "T", "notify", "x", "person", {}, 0))
    found = store.outbox_by_key("esc-1/2")
    assert found is not None and found.key == "esc-1/2" and found.status == "pending"
    assert store.outbox_by_key("esc-9/9") is None
    plan = " ".join(
        str(r[3])
        for r in store.execute("EXPLAIN QUERY PLAN SELECT * FROM outbox WHERE key = 'esc-1/2'")
    )
    assert plan.startswith("SEARCH outbox USING") and "(key=?)" in plan, plan
    store.close()


def test_a_version_1_store_gains_the_delivery_reason_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from escalade.runtime.store import sqlite

    path = str(tmp_path / "old.db")
    monkeypatch.setattr(sqlite, "MIGRATIONS", MIGRATIONS[:1])
    old = SQLiteStore(path)
    old.execute(
        "INSERT INTO outbox(key, action, payload, created_at, status, attempts)"
        " VALUES ('esc-1/1', 'notify', '{}', 0, 'sent', 1)"
    )
    old.close()
    monkeypatch.setattr(sqlite, "MIGRATIONS", MIGRATIONS)
    store = SQLiteStore(path)
    assert store.schema_version() == len(MIGRATIONS) >= 2
    [kept] = store.outbox()
    assert (kept.key, kept.status, kept.reason, kept.attempted_at) == (
        "esc-1/1",
        "sent",
        None,
        None,
    )
    with store.transaction():
        store.mark_outbox(kept.id, "failed", 5, 2, reason="HTTP 404")
        store.mark_outbox(kept.id, "failed", 6, 2, attempted=False)  # no reason: keeps it
    again = store.outbox_by_key("esc-1/1")
    assert again is not None and (again.reason, again.attempted_at) == ("HTTP 404", 5)
    store.close()
