"""Reads never write, and an event's time never moves the clock (issue #9's Done-when)."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from escalade.compiler.cli import main
from escalade.runtime.clock import VirtualClock, parse_time
from escalade.runtime.engine import Engine
from escalade.runtime.pack import RulePack
from escalade.runtime.server import EscaladeServer
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import critical

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "generated" / "rulepack.json"
AT = "2026-11-27T10:00:00Z"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def dump(db: Path) -> list[str]:
    """The store's content, as SQLite's own SQL dump (not its bytes: WAL pages may move)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(con.iterdump())
    finally:
        con.close()


def store_with_one_escalation(tmp_path: Path) -> Path:
    (tmp_path / "escalade.yaml").write_text("runtime:\n  notifiers: {dry_run: true}\n")
    db = tmp_path / "s.db"
    event = tmp_path / "e.json"
    event.write_text(json.dumps(critical("T1", "e1")))
    code, out = run("event", str(event), "--db", str(db), "--pack", str(PACK), "--at", AT)
    assert code == 0, out
    return db


def test_reads_leave_the_store_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = store_with_one_escalation(tmp_path)
    before = dump(db)
    # timers are due by 10:06 (the primary's 5m ack), yet a read fires none of them
    for at in ([], ["--at", "2026-11-27T10:06:00Z"], ["--at", "2026-11-27T09:00:00Z"]):
        code, out = run("status", "T1", "--db", str(db), "--format", "json", *at)
        assert code == 0, out
        doc = json.loads(out)
        assert doc["level"] == "primary"  # no failover happened
        if at == ["--at", "2026-11-27T10:06:00Z"]:
            assert any(t["overdue"] for t in doc["timers"] if t["kind"] == "ack")
        assert run("report", "--db", str(db), "--format", "json", *at)[0] == 0
        assert run("audit", "verify", "--db", str(db), *at)[0] == 0
        assert run("deadletter", "list", "--db", str(db), *at)[0] == 0
        assert run("oncall", "cust_ops_oncall", "--db", str(db), *at)[0] == 0
        assert dump(db) == before, f"a read with {at} changed the store"
    # and over HTTP: GET /tickets/<id> with no timer due writes nothing
    store = SQLiteStore(str(db))
    engine = Engine(store, VirtualClock(parse_time(AT)))
    server = EscaladeServer(engine, "127.0.0.1", 0, tick_interval=3600)
    server.start()
    try:
        with urllib.request.urlopen(server.url + "/tickets/T1", timeout=10) as answer:
            assert json.loads(answer.read())["ticket"] == "T1"
    finally:
        server.stop()
        store.close()
    assert dump(db) == before


def test_a_read_never_creates_a_store(tmp_path: Path) -> None:
    missing = tmp_path / "nope.db"
    code, out = run("status", "T1", "--db", str(missing))
    assert code == 1 and "no such store" in out and not missing.exists()


def test_an_event_a_thousand_years_ahead_moves_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "f.db"))
    t0 = parse_time(AT)
    engine = Engine(store, VirtualClock(t0))
    engine.activate(RulePack.load(PACK), t0)
    assert engine.receive(json.dumps(critical("T1", "e1")), t0).status == "applied"
    timers = store.count_timers()
    clock = store.clock()
    future = critical("T2", "e2", at="2999-11-27T10:00:00Z")  # the last year a time may name
    outcome = engine.receive(json.dumps(future), t0 + 30)
    assert outcome.status == "dead_letter" and "from the future" in outcome.message
    beyond = critical("T3", "e3", at="3026-11-27T10:00:00Z")  # past it: not a time at all
    outcome = engine.receive(json.dumps(beyond), t0 + 30)
    assert outcome.status == "dead_letter" and "from 1970 to 2999" in outcome.message
    assert store.clock() == clock and store.count_timers() == timers
    assert store.open_escalation("T2") is None and len(store.dead_letters()) == 2
    # the next minute is still accepted, and the first escalation went nowhere
    assert engine.advance(t0 + 60) == 0
    status = engine.status("T1")
    assert status is not None and status["level"] == "primary"
    store.close()
