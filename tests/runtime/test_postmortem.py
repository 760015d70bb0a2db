"""Post-mortem drafts from the audit trail (issue #15's Done-when: a Type B escalation's
draft lists every audited transition with its actor and time, compared with the trail)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from escalade.runtime import postmortem
from escalade.runtime.cli import main
from escalade.runtime.clock import VirtualClock, format_time
from escalade.runtime.engine import Engine
from escalade.runtime.notify.router import ChannelNotifier
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import REPO, T0, critical

SECTIONS = (
    "## Summary",
    "## Timeline",
    "## Failed deliveries",
    "## KPIs",
    "## Exceptions taken",
    "## Open questions",
    "## Remediation",
)


def triaged(make_engine: Any) -> Engine:
    """Type B: nobody acknowledges enterprise_critical's chain (two rounds), so the triage
    owner (dana) takes it with a post-mortem task; dana then acknowledges and resolves."""
    engine, _, _ = make_engine()
    engine.receive(critical("T1", "e1", status="escalated"), T0)
    engine.advance(T0 + 3600)
    engine.ack("T1", "dana", T0 + 3660)
    engine.resolve("T1", T0 + 7200, by="dana")
    return engine


def test_the_timeline_is_the_trail_row_for_row(make_engine: Any) -> None:
    engine = triaged(make_engine)
    store = engine.store
    esc = store.latest_escalation("T1")
    assert esc is not None
    doc = postmortem.for_ticket(store, "T1")
    assert doc is not None
    rows = list(store.audit_rows(esc.id))
    assert [(t["at"], t["kind"], t["actor"], t["reason"]) for t in doc["timeline"]] == [
        (format_time(r.at), r.kind, r.actor, r.reason) for r in rows
    ]
    kinds = [t["kind"] for t in doc["timeline"]]
    for kind in ("triggered", "assigned", "ack_timeout", "unacknowledged", "triage"):
        assert kind in kinds
    assert ("acknowledged", "dana") in {(t["kind"], t["actor"]) for t in doc["timeline"]}
    assert ("resolved", "dana") in {(t["kind"], t["actor"]) for t in doc["timeline"]}
    assert doc["trail"]["rows"] == len(rows) and doc["trail"]["last_hash"] == rows[-1].hash

    summary = doc["summary"]
    assert (summary["policy"], summary["state"]) == ("enterprise_critical", "resolved")
    assert summary["pack_version"] == rows[0].pack_version
    assert summary["snapshot"]["ticket"]["title"] == "Checkout down"
    assert summary["postmortem"] == {"required": True, "completed": False, "link": None}
    assert [(e["type"], e["kind"]) for e in doc["exceptions_taken"]] == [("B", "triage")]
    sla = doc["kpis"]["sla"]
    assert sla["acknowledge"] == {"target_s": 300, "actual_s": 3660, "outcome": "breached"}
    assert sla["resolve"] == {"target_s": 4 * 3600, "actual_s": 7200, "outcome": "met"}
    assert doc["kpis"]["unacknowledged"] and doc["kpis"]["failovers"] == 6
    assert all(q["answer"] is None for q in doc["open_questions"])
    assert {q["key"] for q in doc["open_questions"]} == {
        "impact",
        "root_cause",
        "what_went_well",
        "what_to_change",
    }
    remediation = doc["remediation"]
    assert remediation["owner"] is None and remediation["due"] is None
    assert remediation["items"] and all(i["owner"] is None for i in remediation["items"])


def test_the_draft_is_deterministic_and_changes_nothing(make_engine: Any, tmp_path: Path) -> None:
    engine = triaged(make_engine)
    store = engine.store
    before = list(store.audit_rows())
    first = postmortem.dumps(postmortem.for_ticket(store, "T1") or {})
    second = postmortem.dumps(postmortem.for_ticket(store, "T1") or {})
    assert first == second
    assert list(store.audit_rows()) == before
    doc = json.loads(first)
    assert postmortem.render_markdown(doc) == postmortem.render_markdown(json.loads(second))
    # owner and due fill the remediation in
    filled = postmortem.for_ticket(store, "T1", owner="dana", due=T0 + 5 * 86400)
    assert filled is not None
    assert filled["remediation"]["owner"] == "dana"
    assert filled["remediation"]["due"] == format_time(T0 + 5 * 86400)
    assert postmortem.for_ticket(store, "nope") is None


def test_markdown_renders_every_section(make_engine: Any) -> None:
    engine = triaged(make_engine)
    doc = postmortem.for_ticket(engine.store, "T1", owner="dana")
    assert doc is not None
    text = postmortem.render_markdown(doc)
    assert text.startswith("# Post-mortem (draft): ticket T1\n") and text.endswith("\n")
    positions = [text.index(heading) for heading in SECTIONS]
    assert positions == sorted(positions)
    for row in doc["timeline"]:
        assert f"| {row['at']} | {row['kind']} | {row['actor']} |" in text
    for q in doc["open_questions"]:
        assert f"### {q['question']}" in text
    assert "| acknowledge | 5m | 1h 1m | breached |" in text
    assert "Owner: dana." in text


def test_a_failed_delivery_has_its_channel_and_reason(tmp_path: Path, pack: Any) -> None:
    """No notifier configured: every message is undeliverable, the step fails, triage."""
    store = SQLiteStore(str(tmp_path / "none.db"))
    try:
        engine = Engine(store, VirtualClock(T0), ChannelNotifier())
        engine.activate(pack, T0)
        raw = json.loads((REPO / "examples" / "events" / "paid_lead_rejected.json").read_text())
        raw["at"] = format_time(T0)
        assert engine.receive(json.dumps(raw), T0).status == "applied"
        ticket = raw["data"]["lead"]["id"]
        doc = postmortem.for_ticket(store, ticket)
        assert doc is not None
        failed = doc["failed_deliveries"]
        assert failed and {f["status"] for f in failed} == {"undeliverable"}
        assert all(f["reason"] and f["channel"] for f in failed), failed
        assert "delivery_failed" in [t["kind"] for t in doc["timeline"]]
        assert any(e["kind"] == "triage" for e in doc["exceptions_taken"])
        assert any("deliverable" in i["item"] for i in doc["remediation"]["items"])
        text = postmortem.render_markdown(doc)
        for f in failed:
            assert f"| {f['channel']} | undeliverable |" in text
    finally:
        store.close()


# --- the command line -------------------------------------------------------------


def cli(*args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


@pytest.fixture
def cli_store(tmp_path: Path, pack_file: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A store (in a directory of its own) where T1 went to Type B triage at 11:00."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "escalade.yaml").write_text("runtime:\n  notifiers: {dry_run: true}\n")
    home = tmp_path / "store"
    home.mkdir()
    db = home / "s.db"
    common = ["--db", str(db), "--pack", str(pack_file)]
    event = json.dumps(critical("T1", "e1", status="escalated"))
    assert cli("event", "-", *common, "--at", "2026-11-27T10:00:00Z", stdin=event)[0] == 0
    assert cli("tick", *common, "--at", "2026-11-27T11:00:00Z")[0] == 0
    return db


def test_cli_draft_is_a_read(cli_store: Path) -> None:
    db = cli_store
    before = files(db.parent)
    code, text = cli("postmortem", "T1", "--draft", "--db", str(db))
    assert code == 0, text
    for heading in SECTIONS:
        assert heading in text
    assert "The stored draft, written from the audit trail at 2026-11-27T11:00:00Z" in text
    code, out = cli("postmortem", "T1", "--draft", "--format", "json", "--db", str(db))
    assert code == 0, out
    doc = json.loads(out)
    assert doc["timeline"][-1]["kind"] == "triage" and doc["summary"]["state"] == "triage"
    assert doc["source"]["kind"] == "stored"
    again = cli("postmortem", "T1", "--draft", "--format", "json", "--db", str(db))[1]
    assert again == out
    # a draft at a later time fires no timer either
    at = ["--at", "2026-11-27T23:00:00Z"]
    assert cli("postmortem", "T1", "--draft", "--db", str(db), *at)[1] == text
    after = files(db.parent)
    assert after["s.db"] == before["s.db"], "a draft changed the store"
    # a read-only SQLite reader may leave an empty WAL beside it: nothing in it
    assert set(after) - set(before) <= {"s.db-wal", "s.db-shm"}
    assert after.get("s.db-wal", b"") == b""


def test_cli_draft_errors(cli_store: Path) -> None:
    db = str(cli_store)
    code, out = cli("postmortem", "T1", "--draft", "--link", "https://pm", "--db", db)
    assert code == 2 and "--draft" in out
    code, out = cli("postmortem", "T1", "--draft", "--complete", "--db", db)
    assert code == 2
    code, out = cli("postmortem", "T1", "--db", db)
    assert code == 2 and "--link" in out
    code, out = cli("postmortem", "T1", "--link", "https://pm", "--db", db)
    assert code == 2 and "--by" in out
    code, out = cli("postmortem", "NOPE", "--draft", "--db", db)
    assert code == 1 and "NOPE has no escalation" in out
    code, out = cli("postmortem", "T1", "--draft", "--db", str(cli_store.parent / "missing.db"))
    assert code == 1 and not (cli_store.parent / "missing.db").exists()


def test_cli_complete_satisfies_close(cli_store: Path) -> None:
    db = ["--db", str(cli_store)]
    fix = {
        "id": "e2",
        "type": "ticket.updated",
        "at": "2026-11-27T11:01:00Z",
        "data": {"ticket": {"id": "T1", "root_cause": "expired certificate"}},
    }
    assert cli("event", "-", *db, "--at", "2026-11-27T11:01:00Z", stdin=json.dumps(fix))[0] == 0
    assert cli("ack", "T1", "--by", "dana", *db, "--at", "2026-11-27T11:02:00Z")[0] == 0
    assert cli("resolve", "T1", "--by", "dana", *db, "--at", "2026-11-27T11:30:00Z")[0] == 0
    code, out = cli("close", "T1", "--by", "dana", *db, "--at", "2026-11-27T11:31:00Z")
    assert code == 1 and "post-mortem" in out  # a draft (there is one) does not count
    complete = ["--complete", "--link", "https://wiki/pm/T1", "--by", "dana"]
    code, out = cli("postmortem", "T1", *complete, *db, "--at", "2026-11-27T11:32:00Z")
    assert code == 0, out
    code, out = cli("close", "T1", "--by", "dana", *db, "--at", "2026-11-27T11:33:00Z")
    assert code == 0 and "closed" in out
    # --draft prints the draft stored at triage (it says so); the completion is in status
    doc = json.loads(cli("postmortem", "T1", "--draft", "--format", "json", *db)[1])
    assert doc["source"]["kind"] == "stored" and doc["timeline"][-1]["kind"] == "triage"
    assert doc["summary"]["postmortem"]["completed"] is False
    code, out = cli("status", "T1", "--format", "json", *db)
    pm = json.loads(out)["postmortem"]
    assert (pm["completed_link"], pm["completed_by"]) == ("https://wiki/pm/T1", "dana")
    assert pm["drafted_at"] == "2026-11-27T11:00:00Z" and pm["owner"] == "carol"


# --- over HTTP --------------------------------------------------------------------


def test_get_the_draft_over_http(make_engine: Any) -> None:
    from escalade.runtime.server import EscaladeServer
    from tests.runtime.test_server import http

    engine = triaged(make_engine)
    expected = postmortem.stored_or_generated(engine.store, "T1")  # as the CLI's --draft
    assert expected is not None and expected["source"]["kind"] == "stored"
    rows = len(list(engine.store.audit_rows()))
    server = EscaladeServer(engine, "127.0.0.1", 0, tick_interval=3600)
    server.start()
    try:
        status, headers, body = http(server.url + "/tickets/T1/postmortem")
        assert status == 200 and headers["Content-Type"].startswith("text/markdown")
        assert body.decode() == postmortem.render_markdown(expected)
        status, _, body = http(server.url + "/tickets/T1/postmortem?format=json")
        assert status == 200 and body.decode() == postmortem.dumps(expected)
        assert http(server.url + "/tickets/T1/postmortem?format=pdf")[0] == 400
        assert http(server.url + "/tickets/NOPE/postmortem")[0] == 404
        assert http(server.url + "/tickets/T1")[0] == 200  # the status route is unchanged
    finally:
        server.stop()
    assert len(list(engine.store.audit_rows())) == rows  # a GET writes nothing
