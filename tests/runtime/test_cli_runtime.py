"""The issue's Done-when scenario, scripted through the CLI with --at."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from escalade.compiler.cli import main
from tests.runtime.conftest import critical


def run(args: list[str], db: Path, pack_file: Path, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, [*args, "--db", str(db), "--pack", str(pack_file)], input=stdin
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def status(ticket: str, at: str, db: Path, pack_file: Path) -> dict[str, object]:
    """The ticket at ``at``: timers due by then fire first (``tick``; a read fires none)."""
    code, out = run(["tick", "--at", at], db, pack_file)
    assert code == 0, out
    code, out = run(["status", ticket, "--format", "json", "--at", at], db, pack_file)
    assert code == 0, out
    data = json.loads(out)
    assert {"policy", "state", "owner", "level", "timers", "history"} <= set(data)
    return data


def test_nobody_acks_then_triage(tmp_path: Path, pack_file: Path) -> None:
    db = tmp_path / "escalade.db"
    event = json.dumps(critical("T1", "e1"))
    code, out = run(["event", "-", "--at", "2026-11-27T10:00:00Z"], db, pack_file, event)
    assert code == 0 and "applied" in out
    s = status("T1", "2026-11-27T10:00:00Z", db, pack_file)
    assert (s["policy"], s["state"], s["owner"], s["level"]) == (
        "enterprise_critical",
        "assigned",
        "alice",
        "primary",
    )
    assert s["owner_from"] == "cust_ops_oncall"
    # the helpdesk shows the escalated status: the state-consistency check passes
    update = {
        "id": "e2",
        "type": "ticket.updated",
        "at": "2026-11-27T10:01:00Z",
        "data": {"ticket": {"id": "T1", "status": "escalated"}},
    }
    assert (
        run(["event", "-", "--at", "2026-11-27T10:01:00Z"], db, pack_file, json.dumps(update))[0]
        == 0
    )
    expected = [
        ("10:05", "carol", "backup"),
        ("10:15", "dana", "escalation"),
        ("10:30", "alice", "primary"),
        ("10:35", "carol", "backup"),
        ("10:45", "dana", "escalation"),
    ]
    for hhmm, owner, level in expected:
        s = status("T1", f"2026-11-27T{hhmm}:00Z", db, pack_file)
        assert (s["owner"], s["level"], s["state"]) == (owner, level, "assigned"), hhmm
        assert s["round"] == (1 if hhmm < "10:30" else 2)
    s = status("T1", "2026-11-27T11:00:00Z", db, pack_file)
    assert (s["state"], s["owner"], s["level"]) == ("triage", "dana", "triage")
    assert s["postmortem_required"] is True
    kinds = [h["kind"] for h in s["history"]]  # type: ignore[union-attr]
    assert kinds.count("unacknowledged") == 1 and kinds[-2:] == ["triage", "postmortem_drafted"]
    assert any(a["action"] == "create_task" and a["target"] == "dana" for a in s["actions"])  # type: ignore[union-attr]

    # an earlier --at is refused with a clear message
    code, out = run(["tick", "--at", "2026-11-27T10:30:00Z"], db, pack_file)
    assert code == 2 and "earlier than the store's clock" in out

    # closing without a root cause is refused, with the reason
    assert run(["ack", "T1", "--by", "dana", "--at", "2026-11-27T11:02:00Z"], db, pack_file)[0] == 0
    assert (
        run(["resolve", "T1", "--by", "dana", "--at", "2026-11-27T12:00:00Z"], db, pack_file)[0]
        == 0
    )
    code, out = run(["close", "T1", "--by", "dana", "--at", "2026-11-27T12:01:00Z"], db, pack_file)
    assert code == 1 and "ticket.root_cause" in out and "post-mortem" in out
    assert status("T1", "2026-11-27T12:01:00Z", db, pack_file)["state"] == "resolved"

    # a duplicate event id changes nothing
    before = status("T1", "2026-11-27T12:02:00Z", db, pack_file)
    code, out = run(["event", "-", "--at", "2026-11-27T12:02:00Z"], db, pack_file, event)
    assert code == 0 and "duplicate" in out
    assert status("T1", "2026-11-27T12:02:00Z", db, pack_file) == before

    # a malformed event is dead-lettered, nothing else changes
    bad = json.dumps(
        {
            "id": "e9",
            "type": "ticket.updated",
            "at": "2026-11-27T12:03:00Z",
            "data": {"ticket": {"id": "T1", "severity": "apocalyptic"}},
        }
    )
    code, out = run(["event", "-", "--at", "2026-11-27T12:03:00Z"], db, pack_file, bad)
    assert code == 1 and "ticket.severity" in out and "dead letter" in out
    code, out = run(["deadletter", "list"], db, pack_file)
    assert "e9" in out and "apocalyptic" in out
    assert status("T1", "2026-11-27T12:03:00Z", db, pack_file)["history"] == before["history"]

    # root cause and post-mortem, then close works; the audit trail verifies
    fix = {
        "id": "e10",
        "type": "ticket.updated",
        "at": "2026-11-27T12:04:00Z",
        "data": {"ticket": {"id": "T1", "root_cause": "expired certificate"}},
    }
    run(["event", "-", "--at", "2026-11-27T12:04:00Z"], db, pack_file, json.dumps(fix))
    run(
        [
            "postmortem",
            "T1",
            "--link",
            "https://wiki/pm/T1",
            "--by",
            "dana",
            "--at",
            "2026-11-27T12:05:00Z",
        ],
        db,
        pack_file,
    )
    code, out = run(["close", "T1", "--by", "dana", "--at", "2026-11-27T12:06:00Z"], db, pack_file)
    assert code == 0 and "closed" in out
    result = CliRunner().invoke(main, ["audit", "verify", "--db", str(db)])
    assert result.exit_code == 0 and "intact" in result.output


def test_ack_at_3m_stops_failover(tmp_path: Path, pack_file: Path) -> None:
    db = tmp_path / "escalade.db"
    event = json.dumps(critical("T2", "e1", status="escalated"))
    run(["event", "-", "--at", "2026-11-27T10:00:00Z"], db, pack_file, event)
    code, out = run(["ack", "T2", "--by", "alice", "--at", "2026-11-27T10:03:00Z"], db, pack_file)
    assert code == 0, out
    s = status("T2", "2026-11-27T11:30:00Z", db, pack_file)
    assert (s["state"], s["owner"], s["level"]) == ("acknowledged", "alice", "primary")
    assert not [t for t in s["timers"] if t["kind"] == "ack"]  # type: ignore[union-attr,index]
    assert "ack_timeout" not in [h["kind"] for h in s["history"]]  # type: ignore[union-attr]


def test_transfer_needs_reason_and_sla(tmp_path: Path, pack_file: Path) -> None:
    db = tmp_path / "escalade.db"
    run(
        ["event", "-", "--at", "2026-11-27T10:00:00Z"],
        db,
        pack_file,
        json.dumps(critical("T3", "e1", status="escalated")),
    )
    transfer = ["transfer", "T3", "--to", "dana", "--by", "carol"]
    at = ["--at", "2026-11-27T10:01:00Z"]
    code, out = run([*transfer, "--sla", "2h", *at], db, pack_file)
    assert code == 2 and "reason" in out
    code, out = run([*transfer, "--reason", "DB expertise", *at], db, pack_file)
    assert code == 2 and "SLA" in out
    code, out = run([*transfer, "--reason", "DB expertise", "--sla", "2h", *at], db, pack_file)
    assert code == 0, out
    s = status("T3", "2026-11-27T10:30:00Z", db, pack_file)
    assert (s["owner"], s["level"]) == ("dana", "transfer")


def test_oncall_and_absent(tmp_path: Path, pack_file: Path) -> None:
    db = tmp_path / "escalade.db"
    code, out = run(["oncall", "cust_ops_oncall", "--at", "2026-11-27T10:00:00Z"], db, pack_file)
    assert code == 1 and "no such store" in out and not db.exists()  # a read never creates it
    assert CliRunner().invoke(main, ["migrate", "--db", str(db)]).exit_code == 0
    code, out = run(["oncall", "cust_ops_oncall", "--at", "2026-11-27T10:00:00Z"], db, pack_file)
    assert (code, out.strip()) == (0, "alice")
    code, out = run(["oncall", "cust_ops_oncall", "--at", "2026-12-04T10:00:00Z"], db, pack_file)
    assert (code, out.strip()) == (0, "bob")
    run(
        [
            "absent",
            "alice",
            "--until",
            "2026-11-28T00:00:00Z",
            "--by",
            "dana",
            "--at",
            "2026-11-27T09:00:00Z",
        ],
        db,
        pack_file,
    )
    code, out = run(["oncall", "cust_ops_oncall", "--at", "2026-11-27T10:00:00Z"], db, pack_file)
    assert out.strip() == "bob"


def test_event_jsonl_and_report(tmp_path: Path, pack_file: Path) -> None:
    db = tmp_path / "escalade.db"
    lines = "\n".join(json.dumps(critical(f"T{i}", f"e{i}")) for i in range(3)) + "\nnot json\n"
    code, out = run(["event", "-"], db, pack_file, lines)
    assert code == 1 and out.count("applied:") == 3 and "rejected" in out
    code, out = run(["report", "--format", "json", "--at", "2026-11-27T10:10:00Z"], db, pack_file)
    kpis = json.loads(out)
    assert kpis["escalations"] == 3 and kpis["dead_letters"] == 1


def test_only_the_assignee_acks_unless_an_audited_override(tmp_path: Path, pack_file: Path) -> None:
    db = tmp_path / "escalade.db"
    event = json.dumps(critical("T9", "e1", status="escalated"))
    run(["event", "-", "--at", "2026-11-27T10:00:00Z"], db, pack_file, event)
    code, out = run(["ack", "T9", "--by", "dana", "--at", "2026-11-27T10:01:00Z"], db, pack_file)
    assert code == 1 and "not the current assignee" in out and "alice" in out
    code, out = run(
        [
            "ack",
            "T9",
            "--by",
            "dana",
            "--override",
            "alice is in a meeting",
            "--at",
            "2026-11-27T10:02:00Z",
        ],
        db,
        pack_file,
    )
    assert code == 0, out
    s = status("T9", "2026-11-27T10:02:00Z", db, pack_file)
    overrides = [h for h in s["history"] if h["kind"] == "ack_override"]  # type: ignore[union-attr]
    assert overrides and overrides[0]["actor"] == "dana"
    assert "alice is in a meeting" in overrides[0]["reason"]
    run(["resolve", "T9", "--by", "carol", "--at", "2026-11-27T10:03:00Z"], db, pack_file)
    s = status("T9", "2026-11-27T10:03:00Z", db, pack_file)
    [resolved] = [h for h in s["history"] if h["kind"] == "resolved"]  # type: ignore[union-attr]
    assert resolved["actor"] == "carol"
    code, out = run(
        ["resolve", "T9", "--by", "nobody", "--at", "2026-11-27T10:04:00Z"], db, pack_file
    )
    assert code == 2 and "not a person" in out


def test_event_jsonl_goes_through_the_batch_api(
    tmp_path: Path, pack_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JSON Lines share transactions (Engine.receive_many): the one-event path is not used,
    and every outcome is still printed in input order."""
    from escalade.runtime.engine import Engine

    def one_at_a_time(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("event must apply JSON Lines through receive_many")

    monkeypatch.setattr(Engine, "receive", one_at_a_time)
    db = tmp_path / "escalade.db"
    events = [json.dumps(critical(f"T{i}", f"e{i}")) for i in range(4)]
    lines = "\n".join([*events[:2], "not json", events[0], *events[2:]]) + "\n"
    code, out = run(["event", "-", "--at", "2026-11-27T10:00:00Z"], db, pack_file, lines)
    labels = [line.split(":")[0] for line in out.splitlines()]
    assert code == 1
    assert labels == ["applied", "applied", "rejected", "duplicate", "applied", "applied"]


def test_event_at_before_the_store_clock_is_a_usage_error(tmp_path: Path, pack_file: Path) -> None:
    db = tmp_path / "escalade.db"
    run(
        ["event", "-", "--at", "2026-11-27T10:05:00Z"],
        db,
        pack_file,
        json.dumps(critical("T1", "e1")),
    )
    code, out = run(
        ["event", "-", "--at", "2026-11-27T10:00:00Z"],
        db,
        pack_file,
        json.dumps(critical("T2", "e2")),
    )
    assert code == 2 and "--at" in out
    code, out = run(["status", "T2"], db, pack_file)
    assert "has no escalation" in out  # nothing of the refused run was applied
