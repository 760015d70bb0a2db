"""Noise control (issue #15): grouping (`group by`) and silences, with the bundled pack.

vendor_outage groups by account.id within 10m and is entered by handoff from
enterprise_critical (`exception vendor_outage when ticket.tags has "vendor_outage"`), so
grouping applies where an escalation enters a policy, not only at its trigger.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from escalade.compiler.cli import main
from escalade.runtime import kpi
from escalade.runtime.clock import VirtualClock, format_time
from escalade.runtime.engine import Engine, Refused
from escalade.runtime.metrics import ServerMetrics, open_reader
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.simulate import replay
from escalade.runtime.store import OutboxMessage
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import REPO, T0

MakeEngine = Callable[..., tuple[Engine, VirtualClock, RecordingNotifier]]
PAGES = ("notify", "page")


def outage(
    n: int, at: int, account: str = "acme", tags: tuple[str, ...] = ("vendor_outage",)
) -> dict[str, Any]:
    """A critical enterprise ticket of ``account`` tagged vendor_outage (event ``e<n>``)."""
    return {
        "id": f"e{n}",
        "type": "ticket.created",
        "at": format_time(at),
        "data": {
            "ticket": {
                "id": f"T{n}",
                "title": "Payments vendor down",
                "severity": "critical",
                "status": "new",
                "tags": list(tags),
            },
            "account": {"id": account, "name": account.title(), "tier": "enterprise"},
        },
    }


def pages(engine: Engine) -> list[OutboxMessage]:
    return [m for m in engine.store.outbox() if m.action in PAGES]


def sent(engine: Engine) -> list[OutboxMessage]:
    return [m for m in pages(engine) if m.status != "silenced"]


def kinds(engine: Engine, ticket: str) -> list[str]:
    status = engine.status(ticket)
    assert status is not None
    return [h["kind"] for h in status["history"]]


# --- grouping ------------------------------------------------------------------------
def test_fifty_outage_tickets_of_one_account_page_once(make_engine: MakeEngine) -> None:
    engine, _, _ = make_engine()
    events = [(outage(i, T0 + i * 12), T0 + i * 12) for i in range(50)]  # within 10 minutes
    assert {o.status for o in engine.receive_many(events)} == {"applied"}
    paging = {m.escalation_id for m in sent(engine)}
    assert len(paging) == 1
    [parent_id] = paging
    parent = engine.store.escalation(parent_id)
    assert parent is not None and parent.ticket == "T0" and parent.policy == "vendor_outage"
    related = engine.store.related(parent_id)
    assert [t for t, _ in related] == [f"T{i}" for i in range(1, 50)]
    status = engine.status("T0", T0 + 600)
    assert status is not None and len(status["related"]) == 49
    assert status["related"][0] == {"ticket": "T1", "at": format_time(T0 + 12), "open": True}
    assert kinds(engine, "T0").count("grouped") == 49
    child = engine.status("T7", T0 + 600)
    assert child is not None
    assert (child["state"], child["owner"], child["grouped_into"]) == ("triggered", None, "T0")
    assert child["timers"] == [] and child["actions"] == []
    last = child["history"][-1]
    assert last["kind"] == "grouped"
    assert "attached to ticket T0's escalation: same account.id within 10m" in last["reason"]
    kpis = kpi.compute(engine.store)
    assert kpis["grouped_events"] == {"vendor_outage": 49}
    assert "grouped events (attached, not paged) | 49" in kpi.render_markdown(kpis)


def test_another_account_or_a_later_ticket_starts_its_own_group(make_engine: MakeEngine) -> None:
    engine, _, _ = make_engine()
    engine.receive(outage(1, T0), T0)
    engine.receive(outage(2, T0 + 60, account="globex"), T0 + 60)  # another group
    engine.receive(outage(3, T0 + 11 * 60), T0 + 11 * 60)  # after the window
    assert len({m.escalation_id for m in sent(engine)}) == 3
    for ticket in ("T1", "T2", "T3"):
        assert "grouped" not in kinds(engine, ticket)


def test_close_lists_related_tickets_and_closes_them_when_asked(make_engine: MakeEngine) -> None:
    engine, _, _ = make_engine()
    engine.receive_many([(outage(i, T0 + i), T0 + i) for i in range(3)])
    at = T0 + 60
    engine.ack("T0", "alice", at)
    engine.postmortem("T0", "https://wiki/pm/1", at)
    engine.resolve("T0", at)
    note = engine.close("T0", at, by="carol").message
    assert "2 related ticket(s) still open: T1, T2" in note and "--close-related" in note
    assert engine.store.open_escalation("T1") is not None

    engine, _, _ = make_engine()
    engine.receive_many([(outage(i, T0 + i), T0 + i) for i in range(3)])
    engine.ack("T0", "alice", at)
    engine.postmortem("T0", "https://wiki/pm/1", at)
    engine.resolve("T0", at)
    done = engine.close("T0", at, by="carol", related=True).message
    assert "closed 2 related ticket(s): T1, T2" in done
    for ticket in ("T1", "T2"):
        assert engine.store.open_escalation(ticket) is None
        status = engine.status(ticket)
        assert status is not None and status["state"] == "closed"
        assert "closed with ticket T0" in status["history"][-1]["reason"]
        assert status["history"][-1]["actor"] == "carol"
    status = engine.status("T0")
    assert status is not None and all(not r["open"] for r in status["related"])


def test_close_related_through_the_cli(tmp_path: Path, pack_file: Path) -> None:
    db = str(tmp_path / "e.db")

    def run(*args: str, stdin: str | None = None) -> tuple[int, str]:
        result = CliRunner().invoke(
            main, [*args, "--db", db, "--pack", str(pack_file)], input=stdin
        )
        return result.exit_code, result.output

    lines = "\n".join(json.dumps(outage(i, T0 + i)) for i in range(3))
    assert run("event", "-", "--at", format_time(T0 + 5), stdin=lines)[0] == 0
    at = ["--at", format_time(T0 + 60)]
    assert run("ack", "T0", "--by", "alice", *at)[0] == 0
    assert run("postmortem", "T0", "--link", "https://wiki/pm", "--by", "carol", *at)[0] == 0
    assert run("resolve", "T0", "--by", "alice", *at)[0] == 0
    code, out = run("close", "T0", "--by", "carol", "--close-related", *at)
    assert code == 0 and "closed 2 related ticket(s): T1, T2" in out, out


# --- silences ------------------------------------------------------------------------
def test_a_silence_on_vendor_outage_pages_nobody_until_it_ends(make_engine: MakeEngine) -> None:
    engine, _, notifier = make_engine()
    until = T0 + 3600
    engine.silence(("policy", "vendor_outage"), None, until, "vendor maintenance", "carol", T0)
    engine.receive(outage(1, T0 + 60), T0 + 60)
    engine.receive(outage(2, T0 + 120, account="globex"), T0 + 120)
    held = pages(engine)
    assert held and all(m.status == "silenced" for m in held)
    assert all("vendor maintenance" in (m.reason or "") for m in held)
    assert not [s for s in notifier.sent if s.action in PAGES]
    status = engine.status("T1", T0 + 600)
    assert status is not None and status["state"] == "assigned"
    assert status["silenced"]["until"] == format_time(until)
    assert status["silenced"]["reason"] == "vendor maintenance"
    assert [t["kind"] for t in status["timers"]] == ["silence_end"]  # no ack timer
    assert "silenced" in kinds(engine, "T1")
    engine.advance(until - 1)
    assert not sent(engine)  # nothing while it lasts
    engine.advance(until)
    for ticket in ("T1", "T2"):
        history = kinds(engine, ticket)
        assert history[-2:] == ["released", "assigned"]
        status = engine.status(ticket, until)
        assert status is not None and status["silenced"] is None
        assert "ack" in [t["kind"] for t in status["timers"]]
    fresh = sent(engine)
    assert {m.target for m in fresh} == {"alice"}
    assert all(m.created_at == until and m.status != "failed" for m in fresh)
    assert all(
        m.status == "silenced" for m in engine.store.outbox() if m.id in {h.id for h in held}
    )
    assert kpi.compute(engine.store)["silenced_messages"] == len(held)


def test_silenced_messages_are_neither_delivered_nor_failed(make_engine: MakeEngine) -> None:
    engine, _, _ = make_engine()
    engine.silence(("policy", "vendor_outage"), None, T0 + 600, "planned", "carol", T0)
    engine.receive(outage(1, T0), T0)
    engine.dispatch(T0 + 1)
    statuses = {m.status for m in pages(engine)}
    assert statuses == {"silenced"}
    assert engine.store.pending_outbox() == []


def test_a_team_silence_holds_its_assignments_and_ending_it_releases_them(
    make_engine: MakeEngine,
) -> None:
    engine, _, _ = make_engine()
    outcome = engine.silence(("team", "cust_ops_oncall"), None, T0 + 7200, "offsite", "carol", T0)
    ident = int(outcome.message.split("#")[1].split(":")[0])
    engine.receive(outage(1, T0 + 60, tags=()), T0 + 60)  # enterprise_critical, no handoff
    status = engine.status("T1", T0 + 60)
    assert status is not None and status["policy"] == "enterprise_critical"
    assert status["owner_from"] == "cust_ops_oncall" and status["silenced"] is not None
    assignment = [m for m in pages(engine) if m.payload.get("reason") == "assignment"]
    assert [m.status for m in assignment] == ["silenced"]
    with pytest.raises(Refused, match="no silence #99"):
        engine.unsilence(99, "carol", T0 + 100)
    assert "1 escalation(s) released" in engine.unsilence(ident, "carol", T0 + 120).message
    assert kinds(engine, "T1")[-2:] == ["released", "assigned"]
    assert [m.status for m in pages(engine) if m.target == "alice"][-1] != "silenced"
    with pytest.raises(Refused):  # over already
        engine.unsilence(ident, "carol", T0 + 130)


def test_a_maintenance_window_in_the_pack_is_a_silence(
    tmp_path: Path, pack: dict[str, Any]
) -> None:
    body = copy.deepcopy(pack)
    body["directory"]["maintenance"] = [
        {
            "name": "vendor_upgrade",
            "policy": "vendor_outage",
            "team": None,
            "from": format_time(T0),
            "to": format_time(T0 + 1800),
            "reason": "vendor upgrade",
        }
    ]
    store = SQLiteStore(str(tmp_path / "m.db"))
    try:
        engine = Engine(store, VirtualClock(T0), RecordingNotifier())
        engine.activate(body, T0)
        engine.receive(outage(1, T0 + 60), T0 + 60)
        assert {m.status for m in pages(engine)} == {"silenced"}
        status = engine.status("T1", T0 + 60)
        assert status is not None and status["silenced"]["by"] == "maintenance vendor_upgrade"
        engine.advance(T0 + 1800)
        assert kinds(engine, "T1")[-2:] == ["released", "assigned"]
        assert sent(engine)
    finally:
        store.close()


def test_bad_silences_are_refused_and_write_nothing(tmp_path: Path, pack_file: Path) -> None:
    db = str(tmp_path / "s.db")

    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, [*args, "--db", db, "--pack", str(pack_file)])
        return result.exit_code, result.output

    at = ["--at", format_time(T0)]
    base = ["--reason", "planned", "--by", "carol", *at]
    later, sooner = format_time(T0 + 3600), format_time(T0 + 60)
    cases = [
        (["--policy", "vendor_outage", "--from", later, "--until", sooner, *base], "is not after"),
        (["--policy", "nope", "--until", later, *base], "no policy 'nope'"),
        (["--team", "nope", "--until", later, *base], "no team 'nope'"),
        (["--until", later, *base], "one of --policy POLICY or --team TEAM"),
        (
            ["--policy", "vendor_outage", "--team", "cust_ops_oncall", "--until", later, *base],
            "one of",
        ),
        (["--policy", "vendor_outage", "--until", "soon", *base], "--until"),
    ]
    for args, words in cases:
        code, out = run("silence", *args)
        assert code == 2 and words in out, (args, out)
    code, out = run(
        "silence",
        "--policy",
        "vendor_outage",
        "--until",
        later,
        "--reason",
        " ",
        "--by",
        "carol",
        *at,
    )
    assert code == 1 and "needs a reason" in out
    code, out = run("silence", "list", "--format", "json", "--at", format_time(T0))
    assert code == 0 and json.loads(out)["silences"] == []
    code, out = run(
        "silence", "--policy", "vendor_outage", "--until", later, *base, "--format", "json"
    )
    assert code == 0 and json.loads(out)["outcome"] == "applied", out
    code, out = run("silence", "list", "--at", format_time(T0 + 60))
    assert code == 0 and "silence #1: policy vendor_outage" in out and "planned" in out
    code, out = run("silence", "end", "1", "--by", "carol", "--at", format_time(T0 + 120))
    assert code == 0 and "silence #1 ended" in out
    code, out = run("silence", "end", "1", "--by", "carol", "--at", format_time(T0 + 180))
    assert code == 1 and "no silence #1" in out


# --- durability, replay, metrics --------------------------------------------------------
def test_a_restart_keeps_silences_and_groups(tmp_path: Path, pack: dict[str, Any]) -> None:
    path = str(tmp_path / "r.db")
    first = SQLiteStore(path)
    engine = Engine(first, VirtualClock(T0), RecordingNotifier())
    engine.activate(pack, T0)
    engine.receive(outage(1, T0), T0)  # the group's parent
    engine.silence(("policy", "vendor_outage"), None, T0 + 3600, "planned", "carol", T0 + 10)
    first.close()
    again = SQLiteStore(path)
    try:
        engine = Engine(again, VirtualClock(T0 + 60), RecordingNotifier())
        engine.receive(outage(2, T0 + 60), T0 + 60)  # same group: attached
        engine.receive(outage(3, T0 + 90, account="globex"), T0 + 90)  # silenced
        assert [t for t, _ in again.related(1)] == ["T2"]
        status = engine.status("T3", T0 + 90)
        assert status is not None and status["silenced"] is not None
        assert {m.status for m in pages(engine) if m.ticket == "T3"} == {"silenced"}
    finally:
        again.close()


def test_simulate_replays_grouping(pack: dict[str, Any]) -> None:
    lines = [json.dumps(outage(i, T0 + i * 30)) for i in range(10)]
    result = replay(pack, lines)
    assert result.applied == 10
    assert result.kpis["grouped_events"] == {"vendor_outage": 9}
    assert result.kpis["silenced_messages"] == 0


def test_simulate_replays_a_maintenance_window(pack: dict[str, Any]) -> None:
    body = copy.deepcopy(pack)
    body["directory"]["maintenance"] = [
        {
            "name": "vendor_upgrade",
            "policy": "vendor_outage",
            "team": None,
            "from": format_time(T0),
            "to": format_time(T0 + 1800),
            "reason": "vendor upgrade",
        }
    ]
    lines = [json.dumps(outage(1, T0 + 60)), json.dumps(outage(2, T0 + 60, account="globex"))]
    store = SQLiteStore(":memory:")
    try:
        result = replay(body, lines, store=store, until=T0 + 1800)
        assert result.kpis["silenced_messages"] >= 2
        released = [r for r in store.audit_rows() if r.kind == "released"]
        assert [r.ticket for r in released] == ["T1", "T2"]
        assert all(r.at == T0 + 1800 for r in released)
    finally:
        store.close()


def test_metrics_count_grouped_events_and_silenced_messages(
    tmp_path: Path, pack: dict[str, Any]
) -> None:
    store = SQLiteStore(str(tmp_path / "x.db"))
    metrics = ServerMetrics(open_reader(store))
    try:
        engine = Engine(store, VirtualClock(T0), RecordingNotifier())
        engine.activate(pack, T0)
        engine.receive_many([(outage(i, T0 + i), T0 + i) for i in range(4)])
        engine.silence(("policy", "vendor_outage"), None, T0 + 600, "planned", "carol", T0 + 10)
        engine.receive(outage(9, T0 + 20, account="globex"), T0 + 20)
        text = metrics.exposition()[0].decode()
    finally:
        metrics.close()
        store.close()
    assert 'escalade_grouped_events_total{policy="vendor_outage"} 3.0' in text
    silenced = [ln for ln in text.splitlines() if ln.startswith("escalade_silenced_messages_total")]
    assert silenced and float(silenced[0].split()[-1]) >= 2
    assert 'escalade_outbox_messages{status="silenced"}' in text


def test_a_group_field_not_in_the_schema_is_a_located_error(tmp_path: Path) -> None:
    from escalade.compiler import load_policy_set

    policies = tmp_path / "policies"
    policies.mkdir()
    for source in (REPO / "policies").glob("*.esc"):
        text = source.read_text("utf-8")
        bad = text.replace("group by account.id within", "group by account.region_code within")
        (policies / source.name).write_text(bad, "utf-8")
    result = load_policy_set(str(policies))
    assert result.errors == 1
    [found] = [d for d in result.diagnostics if d.code == "E101"]
    assert found.message == "unknown field 'account.region_code' to group by"
