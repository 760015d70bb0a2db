"""Engine semantics pinned by SPEC §4."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from escalade.runtime.clock import VirtualClock, format_time
from escalade.runtime.engine import Engine, Refused
from escalade.runtime.matcher import Matcher
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.pack import RulePack
from escalade.runtime.settings import LastResort
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0, critical


def event(event_id: str, kind: str, at: int, **fields: Any) -> dict[str, Any]:
    """An event at ``at``; ``ticket__status="new"`` sets ``data.ticket.status``."""
    data: dict[str, Any] = {}
    for key, value in fields.items():
        obj, _, name = key.partition("__")
        data.setdefault(obj, {})[name] = value
    return {"id": event_id, "type": kind, "at": format_time(at), "data": data}


def update(event_id: str, ticket: str, minute: int, **fields: Any) -> dict[str, Any]:
    """A ticket.updated event ``minute`` minutes after T0."""
    return event(event_id, "ticket.updated", T0 + minute * 60, ticket__id=ticket, **fields)


def test_rerouting_needs_strictly_higher_priority(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(critical("T1", "e1", status="escalated") | {})
    pro = copy.deepcopy(critical("T2", "e2", status="escalated"))
    pro["data"]["account"]["tier"] = "pro"
    engine.receive(pro)
    assert engine.status("T2")["policy"] == "critical_default"  # type: ignore[index]
    engine.receive(update("e3", "T2", 1, account__tier="enterprise"), T0 + 60)
    status = engine.status("T2")
    assert status is not None
    assert (status["policy"], status["priority"], status["level"]) == (
        "enterprise_critical",
        100,
        "primary",
    )
    assert [h["kind"] for h in status["history"]].count("rerouted") == 1
    # a lower-priority match does not move it back
    engine.receive(update("e4", "T2", 2, account__tier="pro"), T0 + 120)
    assert engine.status("T2")["policy"] == "enterprise_critical"  # type: ignore[index]


def test_handoff_keeps_priority_and_starts_new_chain(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(critical("T1", "e1", status="escalated"))
    engine.receive(update("e2", "T1", 2, ticket__tags=["vendor_outage"]), T0 + 120)
    status = engine.status("T1")
    assert status is not None
    assert (status["policy"], status["priority"], status["state"]) == (
        "vendor_outage",
        100,
        "assigned",
    )
    engine.advance(T0 + 120 + 15 * 60)
    assert engine.status("T1")["owner"] == "dana"  # type: ignore[index]


def test_sla_breach_fires_once_and_keeps_original_start(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(critical("T1", "e1", status="escalated"))
    engine.advance(T0 + 4 * 60)
    engine.receive(update("e2", "T1", 4, ticket__tags=["vendor_outage"]), T0 + 240)
    engine.advance(T0 + 3 * 3600)
    kinds = [h["kind"] for h in engine.status("T1")["history"]]  # type: ignore[index]
    # vendor_outage has no SLA: the enterprise 5m acknowledge SLA is replaced, no breach
    assert kinds.count("breach") == 0
    engine2, _, _ = make_engine()
    engine2.receive(critical("T1", "e1", status="escalated"))
    engine2.advance(T0 + 5 * 3600)
    history = engine2.status("T1")["history"]  # type: ignore[index]
    breaches = [h["reason"] for h in history if h["kind"] == "breach"]
    assert breaches == ["acknowledge SLA of 5m breached", "resolve SLA of 4h breached"]


def test_after_rechecks_condition_on_latest_state(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(
        event(
            "s1",
            "ticket.sla_breached",
            T0,
            ticket__id="S1",
            ticket__priority="high",
            ticket__status="open",
        )
    )
    assert engine.status("S1") is None
    engine.receive(update("s2", "S1", 10, ticket__status="closed"), T0 + 600)
    engine.advance(T0 + 31 * 60)
    assert engine.status("S1") is None
    dropped = [r for r in engine.store.audit_rows() if r.kind == "trigger_dropped"]
    assert len(dropped) == 1


def test_cooldown_after_close(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(critical("T1", "e1", status="escalated", root_cause="disk"))
    engine.ack("T1", "alice", T0 + 60)
    engine.resolve("T1", T0 + 120)
    engine.postmortem("T1", "https://pm", T0 + 130)
    engine.close("T1", T0 + 180)
    engine.receive(update("e2", "T1", 10, ticket__title="again"), T0 + 600)
    assert engine.status("T1")["state"] == "closed"  # type: ignore[index]
    later = update("e3", "T1", 0, ticket__title="again")
    later["at"] = "2026-11-27T11:30:00Z"
    engine.receive(later, T0 + 90 * 60)  # processing time: an event's `at` never moves it
    assert engine.status("T1")["state"] == "assigned"  # type: ignore[index]


def test_absent_owner_replaced_at_once_and_triage_falls_back(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(critical("T1", "e1", status="escalated"))
    engine.absent("alice", T0 + 8 * 3600, T0 + 60)
    status = engine.status("T1")
    assert status is not None and status["owner"] == "bob"  # next available on-call member
    engine.absent("dana", T0 + 8 * 3600, T0 + 61)
    engine.advance(T0 + 3 * 3600)
    status = engine.status("T1")
    # dana (escalation and triage owner) is absent: skipped in the chain, and triage
    # passes to the escalation owner, who is dana again, so nobody can take it. Without a
    # runtime.last_resort it stays with dana, flagged unowned, never owner-less.
    assert status is not None and (status["state"], status["owner"]) == ("triage", "dana")
    assert status["unowned"] and "no triage owner is available" in status["unowned"]
    reasons = " ".join(h["reason"] for h in status["history"])
    assert "dana is absent" in reasons and "no triage owner is available" in reasons
    assert [h["kind"] for h in status["history"]][-1] == "unowned"
    # someone available takes it over: the flag clears
    engine.transfer("T1", "erin", "dana is away all day", 3600, T0 + 3 * 3600 + 60, by="erin")
    after = engine.status("T1")
    assert after is not None and (after["owner"], after["unowned"]) == ("erin", None)


def test_the_last_resort_takes_what_nobody_else_can(tmp_path: Any, pack: dict[str, Any]) -> None:
    store = SQLiteStore(str(tmp_path / "lr.db"))
    notifier = RecordingNotifier()
    engine = Engine(store, VirtualClock(T0), notifier, last_resort=LastResort("erin", "oncall"))
    engine.activate(pack, T0)
    engine.receive(critical("T1", "e1", status="escalated"), T0)
    for person in ("alice", "bob", "carol", "dana"):
        engine.absent(person, T0 + 8 * 3600, T0 + 60)
    engine.advance(T0 + 3 * 3600)
    status = engine.status("T1")
    assert status is not None
    assert (status["state"], status["level"], status["owner"]) == ("triage", "last_resort", "erin")
    assert status["unowned"] is None  # it has an owner who can act
    alert = [
        s for s in notifier.sent if s.target in ("erin", "oncall") and "UNOWNED" in (s.text or "")
    ]
    assert {s.target for s in alert} == {"erin", "oncall"}
    store.close()


def test_close_refused_is_audited_and_nothing_changes(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(critical("T1", "e1", status="escalated"))
    with pytest.raises(Refused, match="not resolved"):
        engine.close("T1", T0 + 60)
    assert engine.status("T1")["state"] == "assigned"  # type: ignore[index]
    assert [r.kind for r in engine.store.audit_rows()][-1] == "close_refused"


def test_in_flight_escalation_keeps_its_pack_version(
    make_engine: Any, pack: dict[str, Any]
) -> None:
    engine, _, _ = make_engine()
    engine.receive(critical("T1", "e1", status="escalated"))
    newer = copy.deepcopy(pack)
    newer["metadata"]["content_hash"] = "sha256:" + "1" * 64
    for policy in newer["policies"]:
        if policy["name"] == "enterprise_critical":
            policy["owners"][1]["ref"] = "dana"
    engine.activate(newer, T0 + 60)
    engine.advance(T0 + 5 * 60)
    assert engine.status("T1")["owner"] == "carol"  # type: ignore[index]
    engine.receive(critical("T2", "e2", at="2026-11-27T10:06:00Z", status="escalated"))
    engine.advance(T0 + 11 * 60)
    assert engine.status("T2")["owner"] == "dana"  # type: ignore[index]


def looping_pack(pack: dict[str, Any]) -> dict[str, Any]:
    """enterprise_critical and vendor_outage hand a critical ticket to each other."""
    looping = copy.deepcopy(pack)
    looping["metadata"]["content_hash"] = "sha256:" + "2" * 64
    critical_cond = {"op": "cmp", "field": "ticket.severity", "cmp": "==", "value": "critical"}
    for policy in looping["policies"]:
        if policy["name"] == "vendor_outage":
            policy["exceptions"].append(
                {
                    "name": "back",
                    "when": critical_cond,
                    "failure": None,
                    "handoff": "enterprise_critical",
                }
            )
        if policy["name"] == "enterprise_critical":
            policy["exceptions"][0]["when"] = critical_cond
    return looping


def test_routing_loop_goes_to_triage(make_engine: Any, pack: dict[str, Any]) -> None:
    engine, _, _ = make_engine()
    engine.activate(looping_pack(pack), T0)
    engine.receive(critical("T1", "e1", status="escalated"))
    status = engine.status("T1")
    assert status is not None and status["state"] == "triage"
    history = [h["kind"] for h in status["history"]]
    # more than 5 handoffs within the hour: the sixth goes to triage instead
    assert (history.count("handoff"), history.count("loop_broken")) == (5, 1)
    # the breaker holds: later events do not hand it off (and triage it) again
    engine.receive(update("e2", "T1", 1, ticket__title="still down"), T0 + 60)
    engine.advance(T0 + 24 * 3600)
    status = engine.status("T1")
    assert status is not None and status["state"] == "triage"
    later = [h["kind"] for h in status["history"]][len(history) :]
    assert "loop_broken" not in later and "triage" not in later and "handoff" not in later


def test_step_failure_goes_to_triage(make_engine: Any) -> None:
    engine, _, notifier = make_engine()
    notifier.failing.add("create_task")
    notifier.failing.add("snapshot")  # publishing_block has no delivery check
    engine.receive(
        event(
            "c1",
            "content.updated",
            T0,
            content__id="C1",
            content__pipeline="failed",
            content__qa="pass",
        )
    )
    status = engine.status("C1")
    assert status is not None and status["state"] == "triage" and status["owner"] == "hugo"


def test_unknown_fields_ignored_and_counted(make_engine: Any) -> None:
    engine: Engine = make_engine()[0]
    event = critical("T1", "e1", status="escalated", mood="grumpy")
    event["extra"] = 1
    outcome = engine.receive(event)
    assert outcome.status == "applied"
    assert set(outcome.unknown_fields) == {"ticket.mood", "extra"}
    assert engine.store.counters()["unknown_fields"] == 2


def test_engine_routes_with_the_matcher_explain_uses(
    make_engine: Any, pack: dict[str, Any]
) -> None:
    """One piece of code decides ownership: a tie is broken by name in both places."""
    tied = copy.deepcopy(pack)
    tied["metadata"]["content_hash"] = "sha256:" + "3" * 64
    for policy in tied["policies"]:
        if policy["name"] == "enterprise_critical":
            policy["priority"] = 10  # ties with critical_default
    engine, _, _ = make_engine()
    active = engine.activate(tied, T0)
    event = critical("T1", "e1", status="escalated")
    explained = Matcher(RulePack.from_dict(tied, verify_hash=False)).explain(
        "ticket.created", event["data"]
    )
    assert active.matcher.owner("ticket.created", event["data"]) is not None
    engine.receive(event)
    status = engine.status("T1")
    assert explained.owner is not None and explained.tie_broken_by_name == ("enterprise_critical",)
    assert status is not None and status["policy"] == explained.owner.name == "critical_default"


def test_routing_loop_breaker_is_configurable(tmp_path: Any, pack: dict[str, Any]) -> None:
    store = SQLiteStore(str(tmp_path / "loop.db"))
    engine = Engine(store, VirtualClock(T0), loop_limit=2, loop_window=600)
    engine.activate(looping_pack(pack), T0)
    engine.receive(critical("T1", "e1", status="escalated"))
    status = engine.status("T1")
    assert status is not None and status["state"] == "triage"
    history = [h for h in status["history"] if h["kind"] in ("handoff", "loop_broken")]
    assert [h["kind"] for h in history] == ["handoff", "handoff", "loop_broken"]
    assert "3 handoffs within 10m" in history[-1]["reason"]
    store.close()
    with pytest.raises(ValueError, match="loop_limit >= 1"):
        Engine(SQLiteStore(":memory:"), loop_limit=0)
