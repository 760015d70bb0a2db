"""``--format json`` on the runtime commands that print a result: one documented JSON
document on stdout (JSON Lines for ``event``, one line per input event), the same exit
codes as the text output, refusals as documents too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from escalade.compiler.cli import main
from tests.runtime.conftest import critical
from tests.runtime.test_activation import variant

T0 = "2026-11-27T10:00:00Z"
ESCALATION_KEYS = {"id", "ticket", "policy", "state", "owner", "level", "round"}


def run(args: list[str], db: Path, stdin: str | None = None) -> tuple[int, str]:
    """``escalade ARGS --db DB --format json``: exit code and stdout (stderr apart)."""
    result = CliRunner().invoke(main, [*args, "--db", str(db), "--format", "json"], input=stdin)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.stdout


def doc(args: list[str], db: Path, code: int = 0) -> dict[str, Any]:
    got, out = run(args, db)
    assert got == code, out
    parsed = json.loads(out)
    assert isinstance(parsed, dict)
    return parsed


def started(tmp_path: Path, pack_file: Path) -> Path:
    """A store where ticket T1 escalates to alice (primary) at T0."""
    db = tmp_path / "store.db"
    code, out = run(
        ["event", "-", "--pack", str(pack_file), "--at", T0], db, json.dumps(critical("T1", "e1"))
    )
    assert code == 0, out
    return db


def test_event_prints_one_json_line_per_event(tmp_path: Path, pack_file: Path) -> None:
    db = tmp_path / "store.db"
    lines = "\n".join(
        [json.dumps(critical("T1", "e1")), json.dumps(critical("T1", "e1")), "not json"]
    )
    code, out = run(["event", "-", "--pack", str(pack_file), "--at", T0], db, lines)
    assert code == 1  # a rejected event is exit 1, as in text
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["line"], r["event"], r["outcome"]) for r in rows] == [
        (1, "e1", "applied"),
        (2, "e1", "duplicate"),
        (3, None, "dead_letter"),
    ]
    first = rows[0]
    assert set(first) == {
        "line",
        "event",
        "outcome",
        "message",
        "ticket",
        "escalation",
        "unknown_fields",
    }
    assert first["ticket"] == "T1" and first["unknown_fields"] == []
    assert set(first["escalation"]) == ESCALATION_KEYS
    assert (first["escalation"]["policy"], first["escalation"]["owner"]) == (
        "enterprise_critical",
        "alice",
    )
    assert rows[2]["escalation"] is None and "not JSON" in rows[2]["message"]


def test_tick_reports_timers_fired_and_the_clock(tmp_path: Path, pack_file: Path) -> None:
    db = started(tmp_path, pack_file)
    got = doc(["tick", "--at", "2026-11-27T10:06:00Z"], db)
    assert got["clock"] == "2026-11-27T10:06:00Z"
    assert isinstance(got["fired"], int) and got["fired"] >= 1  # alice's 5m ack timer


def test_ack_then_a_refusal_are_documents(tmp_path: Path, pack_file: Path) -> None:
    db = started(tmp_path, pack_file)
    acked = doc(["ack", "T1", "--by", "alice", "--at", "2026-11-27T10:01:00Z"], db)
    assert (acked["action"], acked["ticket"], acked["outcome"]) == ("ack", "T1", "applied")
    assert acked["escalation"]["state"] == "acknowledged"
    assert acked["escalation"]["owner"] == "alice"

    refused = doc(["close", "T1", "--by", "alice", "--at", "2026-11-27T10:02:00Z"], db, code=1)
    assert (refused["action"], refused["outcome"]) == ("close", "refused")
    assert refused["escalation"] is None and refused["message"]


def test_every_operator_command_names_what_it_acted_on(tmp_path: Path, pack_file: Path) -> None:
    db = started(tmp_path, pack_file)
    at = "--at", "2026-11-27T10:01:00Z"
    moved = doc(
        ["transfer", "T1", "--to", "carol", "--reason", "db", "--sla", "2h", "--by", "alice", *at],
        db,
    )
    assert (moved["action"], moved["to"], moved["outcome"]) == ("transfer", "carol", "applied")
    assert moved["escalation"]["owner"] == "carol"
    fixed = doc(["resolve", "T1", "--by", "carol", *at], db)
    assert (fixed["action"], fixed["escalation"]["state"]) == ("resolve", "resolved")
    link = "https://wiki.example.com/pm/T1"
    pm = doc(["postmortem", "T1", "--link", link, "--by", "carol", *at], db)
    assert (pm["action"], pm["link"], pm["outcome"]) == ("postmortem", link, "applied")
    away = doc(["absent", "bob", "--until", "2026-11-28T10:00:00Z", "--by", "bob", *at], db)
    assert (away["action"], away["person"], away["until"]) == (
        "absent",
        "bob",
        "2026-11-28T10:00:00Z",
    )


def test_reads_and_upkeep_print_documents(tmp_path: Path, pack_file: Path) -> None:
    db = started(tmp_path, pack_file)
    oncall = doc(["oncall", "cust_ops_oncall", "--at", T0], db)
    assert oncall == {
        "team": "cust_ops_oncall",
        "at": T0,
        "on_call": "alice",
        "scheduled": True,
        "available": [],
    }
    verified = doc(["audit", "verify"], db)
    assert verified["ok"] is True and verified["rows"] > 0 and verified["problem"] is None
    assert doc(["migrate"], db) == {"store": str(db), "up_to_date": True}
    replay = doc(["deadletter", "replay", "--by", "alice", "--at", "2026-11-27T10:01:00Z"], db)
    assert replay == {"replayed": [], "failed": 0}


def test_deadletter_replay_lists_each_letter(tmp_path: Path, pack_file: Path) -> None:
    db = started(tmp_path, pack_file)
    code, _ = run(["event", "-", "--at", "2026-11-27T10:00:30Z"], db, "{broken")
    assert code == 1
    replay = doc(
        ["deadletter", "replay", "--by", "alice", "--at", "2026-11-27T10:01:00Z"], db, code=1
    )
    assert replay["failed"] == 1
    (row,) = replay["replayed"]
    assert set(row) == {"dead_letter", "outcome", "message", "ticket", "escalation"}
    assert row["outcome"] == "dead_letter"


def test_text_stays_the_default(tmp_path: Path, pack_file: Path) -> None:
    db = started(tmp_path, pack_file)
    result = CliRunner().invoke(main, ["tick", "--db", str(db), "--at", "2026-11-27T10:00:10Z"])
    assert result.exit_code == 0
    assert result.stdout.startswith("0 timer(s) fired; clock at 2026-11-27T10:00:10Z")


def test_pack_verify_activate_and_rollback_print_documents(
    tmp_path: Path, pack: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ESCALADE_TRUSTED_KEYS", raising=False)
    db = tmp_path / "store.db"
    first = variant(pack, tmp_path, "first", "1.0.0", "First")
    second = variant(pack, tmp_path, "second", "1.1.0", "Second")
    runner = CliRunner()
    assert runner.invoke(main, ["pack", "keygen", "--out", str(tmp_path)]).exit_code == 0
    key = tmp_path / "escalade.key"
    assert runner.invoke(main, ["pack", "sign", str(first), "--key", str(key)]).exit_code == 0

    trust = ["--trust", str(tmp_path / "escalade.pub")]
    ok = json.loads(
        runner.invoke(main, ["pack", "verify", str(first), *trust, "--format", "json"]).stdout
    )
    assert ok["ok"] is True and ok["key_id"] and ok["problem"] is None
    unsigned = runner.invoke(main, ["pack", "verify", str(second), *trust, "--format", "json"])
    assert unsigned.exit_code == 1 and json.loads(unsigned.stdout)["ok"] is False

    by = ["--by", "service:release"]
    active = doc(["pack", "activate", str(first), *by], db)
    assert (active["outcome"], active["version"].split("+")[0]) == ("active", "1.0.0")
    assert active["version"] == "1.0.0+" + active["content_hash"].removeprefix("sha256:")[:12]
    assert active["content_hash"].startswith("sha256:") and active["pack"] == str(first)
    assert doc(["pack", "activate", str(second), *by], db)["version"].startswith("1.1.0+")
    refused = doc(["pack", "activate", str(first), *by], db, code=1)  # a downgrade
    assert refused["outcome"] == "refused" and refused["version"].startswith("1.1.0+")  # kept
    back = doc(["pack", "rollback", "--reason", "bad rollout", *by], db)
    assert (back["outcome"], back["pack"]) == ("rolled_back", None)
    assert back["version"] == active["version"]
