"""SPEC §4 "Runtime semantics, pinned", one test (or more) per bullet, on the real engine.

Bullets already covered elsewhere: cooldown, the routing-loop breaker, in-flight
packs and `after D` dropping a stale trigger (test_engine.py); unknown fields
and dead letters (test_events.py, test_engine.py).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import pytest

from escalade.runtime.clock import format_time
from escalade.runtime.engine import Engine, Refused
from escalade.runtime.notify import RecordingNotifier
from tests.runtime.conftest import T0, critical
from tests.runtime.test_engine import event, update

MIN = 60


def variant(
    pack: dict[str, Any], tag: str, edit: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    """A copy of ``pack`` with ``edit`` applied to its policies (by name) and its own hash."""
    body = copy.deepcopy(pack)
    body["metadata"]["content_hash"] = "sha256:" + tag * 64
    edit({p["name"]: p for p in body["policies"]})
    return body


def pro_critical(ticket: str, event_id: str, at: int = T0, **extra: Any) -> dict[str, Any]:
    """A critical ticket of a pro account: critical_default (priority 10) owns it."""
    body = critical(ticket, event_id, at=format_time(at), status="escalated", **extra)
    body["data"]["account"]["tier"] = "pro"
    return body


def kinds(engine: Engine, ticket: str) -> list[str]:
    status = engine.status(ticket)
    assert status is not None
    return [h["kind"] for h in status["history"]]


def audit_times(engine: Engine, kind: str) -> list[int]:
    return [r.at for r in engine.store.audit_rows() if r.kind == kind]


def sent(notifier: RecordingNotifier, action: str) -> list[tuple[str | None, str | None]]:
    return [(s.target, s.text) for s in notifier.sent if s.action == action]


# --- priority: kept through a Type A handoff; only strictly higher re-routes ------------


def test_handoff_keeps_priority_so_a_lower_match_does_not_take_it(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(critical("T1", "e1", status="escalated"))
    engine.receive(update("e2", "T1", 1, ticket__tags=["vendor_outage"]), T0 + MIN)
    status = engine.status("T1")
    assert status is not None and (status["policy"], status["priority"]) == ("vendor_outage", 100)
    # critical_default (priority 10) now matches, enterprise_critical does not: no re-route
    engine.receive(update("e3", "T1", 2, account__tier="pro"), T0 + 2 * MIN)
    status = engine.status("T1")
    assert status is not None and status["policy"] == "vendor_outage"
    assert "rerouted" not in kinds(engine, "T1")


@pytest.mark.parametrize(("priority", "moves"), [(10, False), (11, True)])
def test_only_a_strictly_higher_priority_re_routes(
    make_engine: Any, pack: dict[str, Any], priority: int, moves: bool
) -> None:
    def edit(p: dict[str, Any]) -> None:
        p["vendor_outage"]["priority"] = priority  # critical_default has 10
        p["vendor_outage"]["triggers"] = ["ticket.updated"]
        p["vendor_outage"]["when"] = {
            "op": "cmp",
            "field": "ticket.severity",
            "cmp": "==",
            "value": "high",
        }

    engine, _, _ = make_engine()
    engine.activate(variant(pack, "4", edit), T0)
    engine.receive(pro_critical("T2", "e1"))
    assert engine.status("T2")["policy"] == "critical_default"  # type: ignore[index]
    engine.receive(update("e2", "T2", 1, ticket__severity="high"), T0 + MIN)
    status = engine.status("T2")
    assert status is not None
    assert status["policy"] == ("vendor_outage" if moves else "critical_default")
    assert kinds(engine, "T2").count("rerouted") == (1 if moves else 0)


# --- re-routes and handoffs start a new, unacknowledged chain --------------------------


def test_a_re_route_after_ack_starts_a_new_unacknowledged_chain(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(pro_critical("T2", "e1"))
    engine.ack("T2", "alice", T0 + MIN)
    engine.receive(update("e2", "T2", 2, account__tier="enterprise"), T0 + 2 * MIN)
    status = engine.status("T2")
    assert status is not None
    assert (status["policy"], status["state"], status["level"], status["owner"]) == (
        "enterprise_critical",
        "assigned",
        "primary",
        "alice",
    )
    assert status["acknowledged_at"] is None
    assert [t["kind"] for t in status["timers"]].count("ack") == 1
    engine.advance(T0 + 7 * MIN)  # the new chain fails over: 5m after the re-route
    status = engine.status("T2")
    assert status is not None and (status["owner"], status["level"]) == ("carol", "backup")


def test_a_handoff_after_ack_starts_a_new_unacknowledged_chain(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(critical("T1", "e1", status="escalated"))
    engine.ack("T1", "alice", T0 + MIN)
    engine.receive(update("e2", "T1", 2, ticket__tags=["vendor_outage"]), T0 + 2 * MIN)
    status = engine.status("T1")
    assert status is not None
    assert (status["policy"], status["state"], status["level"]) == (
        "vendor_outage",
        "assigned",
        "primary",
    )
    engine.advance(T0 + 17 * MIN)  # vendor_outage's primary has 15m
    assert engine.status("T1")["owner"] == "dana"  # type: ignore[index]


# --- SLA clocks: original start, the new policy's targets, a breach fires once ---------


def test_sla_keeps_its_original_start_and_takes_the_new_targets(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(pro_critical("T2", "e1"))  # critical_default: acknowledge within 10m
    engine.receive(update("e2", "T2", 1, account__tier="enterprise"), T0 + MIN)  # now 5m
    engine.advance(T0 + 9 * MIN)
    assert audit_times(engine, "breach") == [T0 + 5 * MIN]  # 5m after the original start
    engine.advance(T0 + 5 * 3600)
    assert audit_times(engine, "breach") == [T0 + 5 * MIN, T0 + 4 * 3600]


def test_a_re_route_past_the_new_target_breaches_at_once(make_engine: Any) -> None:
    engine, _, notifier = make_engine()
    engine.receive(pro_critical("T2", "e1"))
    engine.receive(update("e2", "T2", 7, account__tier="enterprise"), T0 + 7 * MIN)
    assert audit_times(engine, "breach") == [T0 + 7 * MIN]
    assert ("oncall", "SLA breached on T2") in sent(notifier, "notify")


def test_a_breach_fires_once_across_a_handoff(make_engine: Any, pack: dict[str, Any]) -> None:
    def edit(p: dict[str, Any]) -> None:
        p["vendor_outage"]["sla"] = {"acknowledge": 600, "resolve": None}

    engine, _, _ = make_engine()
    engine.activate(variant(pack, "5", edit), T0)
    engine.receive(critical("T1", "e1", status="escalated"))
    engine.advance(T0 + 6 * MIN)  # enterprise_critical's 5m acknowledge SLA breached
    engine.receive(update("e2", "T1", 6, ticket__tags=["vendor_outage"]), T0 + 6 * MIN)
    engine.advance(T0 + 30 * MIN)  # vendor_outage's 10m target passes too
    assert audit_times(engine, "breach") == [T0 + 5 * MIN]


# --- condition exceptions: at start before the steps, and on every later event ---------


def test_a_condition_exception_at_start_hands_off_before_any_step(make_engine: Any) -> None:
    engine, _, notifier = make_engine()
    engine.receive(critical("T1", "e1", status="escalated", tags=["vendor_outage"]))
    status = engine.status("T1")
    assert status is not None and (status["policy"], status["priority"]) == ("vendor_outage", 100)
    history = kinds(engine, "T1")
    assert history[:2] == ["triggered", "handoff"]
    # none of enterprise_critical's steps ran (create_ticket, page, open war_room)
    assert not sent(notifier, "create_ticket") and not sent(notifier, "open")
    assert ("oncall", "Vendor outage on T1: following the vendor runbook") in sent(
        notifier, "notify"
    )


# --- placeholders render against the ticket as it was at start -------------------------


def test_placeholders_never_pile_up(make_engine: Any) -> None:
    engine, _, notifier = make_engine()
    fields = {"ticket__id": "S1", "ticket__priority": "high", "ticket__status": "open"}
    engine.receive(event("s1", "ticket.sla_breached", T0, ticket__title="Login slow", **fields))
    engine.advance(T0 + 30 * MIN)  # `after 30m`: starts now
    # upstream applied a `set` and sends the new title back
    title = {"ticket__title": "URGENT: Login slow", "ticket__status": "in_progress"}
    engine.receive(update("s2", "S1", 31, **title), T0 + 31 * MIN)
    engine.advance(T0 + 45 * MIN)  # failovers at 35m and 40m
    texts = [text for _, text in sent(notifier, "set")]
    assert texts == ["URGENT: Login slow", "URGENT: Login slow"]


def test_after_starts_d_later_and_its_sla_counts_from_then(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    fields = {"ticket__id": "S1", "ticket__priority": "high", "ticket__status": "open"}
    engine.receive(event("s1", "ticket.sla_breached", T0, **fields))
    engine.receive(update("s2", "S1", 10, ticket__title="still open"), T0 + 10 * MIN)
    assert engine.status("S1") is None
    engine.advance(T0 + 30 * MIN)
    status = engine.status("S1")
    assert status is not None and status["started_at"] == format_time(T0 + 30 * MIN)
    engine.advance(T0 + 40 * MIN)
    assert audit_times(engine, "breach") == [T0 + 35 * MIN]


# --- ownership: rotation, absences, ack, the final level -------------------------------


def test_team_owner_is_the_on_call_member_of_the_rotation(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(critical("T1", "e1", status="escalated"))  # week 46 since the start: alice
    one = engine.status("T1")
    assert one is not None and (one["owner"], one["owner_from"]) == ("alice", "cust_ops_oncall")
    week = 7 * 86400
    engine.receive(critical("T2", "e2", at=format_time(T0 + week), status="escalated"), T0 + week)
    two = engine.status("T2")
    assert two is not None and (two["owner"], two["owner_from"]) == ("bob", "cust_ops_oncall")


def test_absent_on_call_member_passes_to_the_next_available(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.absent("alice", T0 + 3600, T0 - MIN)
    engine.receive(critical("T1", "e1", status="escalated"))
    assert engine.status("T1")["owner"] == "bob"  # type: ignore[index]


def test_ack_stops_failover_for_good(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(critical("T1", "e1", status="escalated"))
    engine.ack("T1", "alice", T0 + 3 * MIN)
    assigned = len(audit_times(engine, "assigned"))
    engine.receive(update("e2", "T1", 10, ticket__title="Checkout still down"), T0 + 10 * MIN)
    engine.advance(T0 + 3 * 3600)
    status = engine.status("T1")
    assert status is not None and (status["state"], status["owner"]) == ("acknowledged", "alice")
    assert len(audit_times(engine, "assigned")) == assigned
    assert "ack_timeout" not in kinds(engine, "T1")
    with pytest.raises(Refused, match="already acknowledged"):
        engine.ack("T1", "bob", T0 + 3 * 3600)


def test_a_final_level_without_ack_timeout_keeps_the_escalation(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(pro_critical("T2", "e1"))  # critical_default: escalation dana, no ack
    engine.advance(T0 + 3 * 86400)
    status = engine.status("T2")
    assert status is not None
    assert (status["state"], status["owner"], status["level"]) == ("assigned", "dana", "escalation")
    assert "unacknowledged" not in kinds(engine, "T2") and "triage" not in kinds(engine, "T2")


def test_an_owner_who_becomes_absent_is_replaced_at_once(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(critical("T1", "e1", status="escalated"))
    engine.advance(T0 + 6 * MIN)
    assert engine.status("T1")["owner"] == "carol"  # type: ignore[index]
    engine.absent("carol", T0 + 86400, T0 + 7 * MIN)
    status = engine.status("T1")
    assert status is not None and (status["owner"], status["level"]) == ("dana", "escalation")
    skipped = [h for h in status["history"] if h["kind"] == "skipped"]
    assert skipped and "carol is absent" in skipped[-1]["reason"]


# --- failures: Type B triage with a post-mortem; close only once every check holds ----


def test_an_unacknowledged_chain_goes_to_triage_with_a_postmortem_task(
    make_engine: Any,
) -> None:
    engine, _, notifier = make_engine()
    engine.receive(critical("T1", "e1", status="escalated"))
    engine.advance(T0 + 59 * MIN)
    assert engine.status("T1")["state"] == "assigned"  # type: ignore[index]
    engine.advance(T0 + 60 * MIN)  # primary, backup, escalation, twice (repeat 1)
    status = engine.status("T1")
    assert status is not None
    assert (status["state"], status["owner"], status["level"]) == ("triage", "dana", "triage")
    assert status["postmortem_required"] is True
    tasks = sent(notifier, "create_task")
    assert ("dana", "Post-mortem for ticket T1 (enterprise_critical)") in tasks
    engine.ack("T1", "dana", T0 + 61 * MIN)
    engine.receive(update("e2", "T1", 62, ticket__root_cause="bad deploy"), T0 + 62 * MIN)
    engine.resolve("T1", T0 + 70 * MIN)
    with pytest.raises(Refused, match="post-mortem is required"):
        engine.close("T1", T0 + 71 * MIN)
    engine.postmortem("T1", "https://wiki/pm/1", T0 + 72 * MIN)
    engine.close("T1", T0 + 73 * MIN)
    assert engine.status("T1")["state"] == "closed"  # type: ignore[index]


def test_an_absent_triage_owner_passes_to_the_escalation_owner(
    make_engine: Any, pack: dict[str, Any]
) -> None:
    def edit(p: dict[str, Any]) -> None:
        p["enterprise_critical"]["triage"] = {"ref": "kim", "kind": "person", "postmortem": True}

    engine, _, notifier = make_engine()
    engine.activate(variant(pack, "6", edit), T0)
    engine.absent("kim", T0 + 86400, T0)
    engine.receive(critical("T1", "e1", status="escalated"))
    engine.advance(T0 + 60 * MIN)
    status = engine.status("T1")
    assert status is not None and (status["state"], status["owner"]) == ("triage", "dana")
    reasons = [h["reason"] for h in status["history"] if h["kind"] == "triage"]
    assert reasons and "kim is absent; passed to the escalation owner" in reasons[0]
    assert ("dana", "Post-mortem for ticket T1 (enterprise_critical)") in sent(
        notifier, "create_task"
    )


def test_close_is_refused_until_every_close_check_holds(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(critical("T1", "e1", status="escalated"))
    engine.ack("T1", "alice", T0 + MIN)
    engine.resolve("T1", T0 + 2 * MIN)
    with pytest.raises(Refused, match=re.escape('ticket.root_cause != ""')):
        engine.close("T1", T0 + 3 * MIN)
    engine.receive(update("e2", "T1", 4, ticket__root_cause="disk full"), T0 + 4 * MIN)
    engine.close("T1", T0 + 5 * MIN)
    assert [k for k in kinds(engine, "T1") if k.startswith("close")] == ["close_refused", "closed"]


# --- one active escalation per ticket -------------------------------------------------


def test_one_active_escalation_per_ticket(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    first = engine.receive(critical("T1", "e1", status="escalated"))
    again = engine.receive(critical("T1", "e2", at="2026-11-27T10:01:00Z", status="escalated"))
    assert first.escalation_id is not None and again.escalation_id == first.escalation_id
    assert kinds(engine, "T1").count("triggered") == 1
