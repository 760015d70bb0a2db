"""Post-mortems the runtime drafts, assigns and chases (issue #15 part 1): a Type B
escalation's draft is stored (its timeline is the trail row for row, with actor and
time), the remediation owner is assigned and notified, an overdue draft escalates to the
escalation owner, then the last resort; completing it ends that; a draft never closes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from escalade.runtime import postmortem
from escalade.runtime.clock import VirtualClock, format_time
from escalade.runtime.engine import Engine, Refused
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.notify.router import ChannelNotifier
from escalade.runtime.settings import LastResort
from escalade.runtime.store import Escalation, OutboxMessage, Store
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import REPO, T0, critical

TRIAGE = T0 + 3600  # nobody acknowledges enterprise_critical's chain in two rounds
DAY = 86400
DUE = TRIAGE + 5 * DAY  # postmortem owner carol within 5d
LINK = "https://wiki.example.com/pm/T1"


def started(store: Store, pack: dict[str, Any], last_resort: LastResort | None = None) -> Engine:
    engine = Engine(store, VirtualClock(T0), RecordingNotifier(), last_resort=last_resort)
    engine.activate(pack, T0)
    return engine


def triaged(store: Store, pack: dict[str, Any], last_resort: LastResort | None = None) -> Engine:
    """enterprise_critical: nobody acknowledges, so dana triages it with a post-mortem."""
    engine = started(store, pack, last_resort)
    engine.receive(critical("T1", "e1", status="escalated"), T0)
    engine.advance(TRIAGE)
    return engine


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    opened = SQLiteStore(str(tmp_path / "pm.db"))
    yield opened
    opened.close()


def esc_of(store: Store) -> Escalation:
    esc = store.latest_escalation("T1")
    assert esc is not None
    return esc


def kinds(store: Store) -> list[str]:
    return [r.kind for r in store.audit_rows(esc_of(store).id)]


def notes(store: Store, reason: str, action: str = "notify") -> list[OutboxMessage]:
    return [
        m
        for m in store.outbox(esc_of(store).id)
        if m.payload.get("reason") == reason and m.action == action
    ]


def test_the_stored_draft_is_the_trail_at_drafting_time(store: Store, pack: dict[str, Any]) -> None:
    triaged(store, pack)
    esc = esc_of(store)
    record = store.postmortem_record(esc.id)
    assert record is not None and record.completed_link is None
    assert (record.owner, record.due, record.created_at) == ("carol", DUE, TRIAGE)
    rows = list(store.audit_rows(esc.id))
    at = [r.kind for r in rows].index("postmortem_drafted")
    drafted, before = rows[at], rows[:at]
    assert before[-1].kind == "triage" and drafted.at == TRIAGE
    doc = json.loads(record.draft)
    assert [(t["kind"], t["actor"], t["at"]) for t in doc["timeline"]] == [
        (r.kind, r.actor, format_time(r.at)) for r in before
    ]
    assert [t["seq"] for t in doc["timeline"]] == [r.seq for r in before]
    assert doc["trail"]["last_hash"] == before[-1].hash
    for kind in ("triggered", "assigned", "ack_timeout", "unacknowledged", "triage"):
        assert kind in [t["kind"] for t in doc["timeline"]]
    assert drafted.detail == {
        "owner": "carol",
        "due": format_time(DUE),
        "hash": postmortem.digest(record.draft),
        "rows": len(before),
    }
    remediation = doc["remediation"]
    assert (remediation["owner"], remediation["due"]) == ("carol", format_time(DUE))
    assert "postmortem owner carol within 5d" in remediation["note"]
    # deterministic: the same trail gives the same bytes
    again = postmortem.draft(
        esc, before, store.outbox(esc.id), owner="carol", due=DUE, note=remediation["note"]
    )
    assert postmortem.stored_text(again) == record.draft


def test_the_owner_is_assigned_notified_and_a_due_timer_set(
    store: Store, pack: dict[str, Any]
) -> None:
    engine = triaged(store, pack)
    (note,) = notes(store, "postmortem")
    assert (note.action, note.target, note.created_at) == ("notify", "carol", TRIAGE)
    text = str(note.payload["text"])
    assert "escalade postmortem T1 --draft" in text and "/tickets/T1/postmortem" in text
    assert format_time(DUE) in text
    assert note.payload["postmortem"]["owner"] == "carol"
    # the triage owner still gets the post-mortem task
    task = [m for m in store.outbox(esc_of(store).id) if m.action == "create_task"]
    assert [m.target for m in task] == ["dana"]
    # every message of the triage (the task, the notices) went out at once, none left pending
    assert {m.status for m in store.outbox(esc_of(store).id) if m.created_at == TRIAGE} == {
        "dry_run"
    }
    timers = [(t.kind, t.due) for t in store.timers_of(esc_of(store).id)]
    assert ("postmortem_due", DUE) in timers
    status = engine.status("T1")
    assert status is not None
    assert status["postmortem"] == {
        "required": True,
        "owner": "carol",
        "due": format_time(DUE),
        "drafted_at": format_time(TRIAGE),
        "completed_link": None,
        "completed_by": None,
        "completed_at": None,
        "draft": "escalade postmortem T1 --draft",
    }


def test_overdue_escalates_to_the_escalation_owner_then_the_last_resort(
    store: Store, pack: dict[str, Any]
) -> None:
    engine = triaged(store, pack, LastResort("erin", "oncall"))
    engine.advance(DUE - 1)
    assert "postmortem_overdue" not in kinds(store)
    engine.advance(DUE)
    overdue = [r for r in store.audit_rows(esc_of(store).id) if r.kind == "postmortem_overdue"]
    assert [(r.at, r.detail["stage"], r.detail["to"]) for r in overdue] == [
        (DUE, "escalation", "dana")
    ]
    (to_dana,) = notes(store, "postmortem_overdue")
    assert (to_dana.target, to_dana.created_at) == ("dana", DUE)
    assert "OVERDUE post-mortem" in str(to_dana.payload["text"])
    later = DUE + 5 * DAY  # the same 5d again, then the last resort
    assert [(t.kind, t.due) for t in store.timers_of(esc_of(store).id)] == [
        ("postmortem_last_resort", later)
    ]
    engine.advance(later)
    overdue = [r for r in store.audit_rows(esc_of(store).id) if r.kind == "postmortem_overdue"]
    assert [(r.at, r.detail["stage"]) for r in overdue] == [
        (DUE, "escalation"),
        (later, "last_resort"),
    ]
    assert {m.target for m in notes(store, "postmortem_overdue")} == {"dana", "erin", "oncall"}
    assert store.timers_of(esc_of(store).id) == []
    # still refused at close: overdue or not, the draft does not count
    engine.resolve("T1", later + 60, by="dana")
    with pytest.raises(Refused, match="post-mortem is required"):
        engine.close("T1", later + 120, by="dana")


def test_without_a_last_resort_the_policy_channels_are_told(
    store: Store, pack: dict[str, Any]
) -> None:
    engine = triaged(store, pack)
    engine.advance(DUE + 5 * DAY)
    last = [r for r in store.audit_rows(esc_of(store).id) if r.kind == "postmortem_overdue"][-1]
    assert last.detail["stage"] == "last_resort" and "no runtime.last_resort" in last.reason
    targets = [(m.target, m.target_kind) for m in notes(store, "postmortem_overdue")]
    assert ("dana", "person") in targets
    assert any(kind == "channel" for _, kind in targets)


def test_completing_before_the_due_cancels_the_chase(store: Store, pack: dict[str, Any]) -> None:
    engine = triaged(store, pack)
    fix = {
        "id": "e2",
        "type": "ticket.updated",
        "at": format_time(TRIAGE + 60),
        "data": {"ticket": {"id": "T1", "root_cause": "expired certificate"}},
    }
    engine.receive(json.dumps(fix), TRIAGE + 60)
    engine.ack("T1", "dana", TRIAGE + 120)
    engine.resolve("T1", TRIAGE + 180, by="dana")
    with pytest.raises(Refused, match="post-mortem is required"):
        engine.close("T1", TRIAGE + 240, by="dana")  # a stored draft is not a post-mortem
    engine.postmortem("T1", LINK, TRIAGE + 300, by="carol")
    esc = esc_of(store)
    assert [t.kind for t in store.timers_of(esc.id)] == []
    record = store.postmortem_record(esc.id)
    assert record is not None
    assert (record.completed_link, record.completed_by, record.completed_at) == (
        LINK,
        "carol",
        TRIAGE + 300,
    )
    (done,) = [r for r in store.audit_rows(esc.id) if r.kind == "postmortem"]
    assert done.detail["link"] == LINK and done.detail["by"] == "carol"
    assert done.detail["on_time"] is True and done.detail["owner"] == "carol"
    assert done.detail["draft_hash"] == postmortem.digest(record.draft)
    engine.advance(DUE + 6 * DAY)
    assert "postmortem_overdue" not in kinds(store)
    assert notes(store, "postmortem_overdue") == []
    engine.close("T1", DUE + 6 * DAY + 60, by="dana")
    assert kinds(store)[-1] == "closed"


def test_a_restart_keeps_the_timers_and_the_stored_draft(
    tmp_path: Path, pack: dict[str, Any]
) -> None:
    path = str(tmp_path / "restart.db")
    first = SQLiteStore(path)
    triaged(first, pack)
    esc_id = esc_of(first).id
    stored = first.postmortem_record(esc_id)
    first.close()
    again = SQLiteStore(path)
    try:
        assert again.postmortem_record(esc_id) == stored
        assert "postmortem_due" in [t.kind for t in again.timers_of(esc_id)]
        engine = Engine(again, VirtualClock(TRIAGE + 60), RecordingNotifier())
        engine.advance(DUE)
        assert "postmortem_overdue" in kinds(again)
        assert [n.target for n in notes(again, "postmortem_overdue")] == ["dana"]
        doc = postmortem.stored_or_generated(again, "T1")
        assert doc is not None and doc["source"]["kind"] == "stored"
        assert stored is not None and doc["source"]["hash"] == postmortem.digest(stored.draft)
    finally:
        again.close()


def test_an_absent_owner_passes_it_to_the_escalation_owner(
    store: Store, pack: dict[str, Any]
) -> None:
    engine = started(store, pack)
    engine.receive(critical("T1", "e1", status="escalated"), T0)
    engine.absent("carol", TRIAGE + DAY, T0 + 60)
    engine.advance(TRIAGE)
    record = store.postmortem_record(esc_of(store).id)
    assert record is not None and record.owner == "dana"
    assert "carol is unavailable" in json.loads(record.draft)["remediation"]["note"]
    assert [m.target for m in notes(store, "postmortem")] == ["dana"]


def test_without_a_named_owner_the_triage_owner_has_it_and_nothing_is_due(
    store: Store, pack: dict[str, Any]
) -> None:
    """paid_lead_rejected: `triage kim postmortem`, no `postmortem owner`; with no channel
    configured its steps fail, so it goes to Type B triage at once."""
    engine = Engine(store, VirtualClock(T0), ChannelNotifier())
    engine.activate(pack, T0)
    raw = json.loads((REPO / "examples" / "events" / "paid_lead_rejected.json").read_text())
    raw["at"] = format_time(T0)
    assert engine.receive(json.dumps(raw), T0).status == "applied"
    esc = store.latest_escalation(raw["data"]["lead"]["id"])
    assert esc is not None and esc.facts.postmortem_required
    record = store.postmortem_record(esc.id)
    assert record is not None and (record.owner, record.due) == ("kim", None)
    doc = json.loads(record.draft)
    assert "names no post-mortem owner" in doc["remediation"]["note"]
    assert "nothing is due" in doc["remediation"]["note"]
    assert postmortem.render_markdown(doc).count("names no post-mortem owner") == 1
    assert [t.kind for t in store.timers_of(esc.id) if t.kind.startswith("postmortem")] == []
    pm = [m for m in store.outbox(esc.id) if m.payload.get("reason") == "postmortem"]
    assert [m.action for m in pm] == ["create_task"]  # the task, no extra notice
    drafted = [r for r in store.audit_rows(esc.id) if r.kind == "postmortem_drafted"]
    assert len(drafted) == 1 and "nothing due" in drafted[0].reason
    status = engine.status(esc.ticket)
    assert status is not None and status["postmortem"]["owner"] == "kim"
    assert status["postmortem"]["due"] is None


def test_without_a_stored_draft_one_is_generated_and_says_so(
    store: Store, pack: dict[str, Any]
) -> None:
    engine = started(store, pack)
    engine.receive(critical("T1", "e1", status="escalated"), T0)  # assigned, no triage yet
    assert store.postmortem_record(esc_of(store).id) is None
    doc = postmortem.stored_or_generated(store, "T1")
    assert doc is not None and doc["source"] == {
        "kind": "generated",
        "drafted_at": None,
        "hash": None,
    }
    assert "Generated now from the audit trail (no draft is stored)" in postmortem.render_markdown(
        doc
    )
    assert postmortem.stored_or_generated(store, "NOPE") is None
