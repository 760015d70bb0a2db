"""A ticket's escalation as operators read it (``escalade status``, ``GET /tickets/<id>``).

Read-only: nothing here writes to the store.
"""

from __future__ import annotations

from typing import Any

from escalade.runtime.clock import format_duration, format_time
from escalade.runtime.engine.context import Runtime
from escalade.runtime.engine.loaded import SLA_KINDS, LoadedPack
from escalade.runtime.engine.noise import noise_status
from escalade.runtime.engine.postmortems import postmortem_status
from escalade.runtime.localtime import local, zone
from escalade.runtime.store import Escalation


def _when(at: int | None) -> str | None:
    return format_time(at) if at else None


def ticket_status(rt: Runtime, ticket: str, now: int | None = None) -> dict[str, Any] | None:
    """The ticket's latest escalation: policy, state, owner, level, timers and history.

    ``now`` is the display time: each timer says how long until it fires, or that it
    is overdue (it fires at the next tick; reading never fires it)."""
    store = rt.store
    esc = store.open_escalation(ticket) or store.latest_escalation(ticket)
    if esc is None:
        return None
    pack = rt.pack(esc.pack_id)
    return {
        "ticket": esc.ticket,
        "escalation": esc.id,
        "policy": esc.policy,
        "priority": esc.priority,
        "pack_version": pack.version,
        "state": esc.state,
        "owner": esc.owner,
        "owner_from": esc.facts.owner_from,
        "level": esc.level,
        "round": esc.cycle + 1,
        "started_at": format_time(esc.started_at),
        "acknowledged_at": _when(esc.acked_at),
        "resolved_at": _when(esc.resolved_at),
        "closed_at": _when(esc.closed_at),
        "unowned": esc.facts.unowned,
        "postmortem_required": esc.facts.postmortem_required,
        "postmortem_link": esc.facts.postmortem_link,
        "postmortem": postmortem_status(rt, esc),  # owner, due, drafted_at, completed_link
        "sla": _slas(pack, esc),
        **noise_status(rt, esc),  # related tickets, grouped_into, silenced
        "timers": _timers(rt, esc, now),
        "actions": _actions(rt, esc),
        "history": _history(rt, esc),
    }


def _slas(pack: LoadedPack, esc: Escalation) -> dict[str, dict[str, Any]]:
    """Each SLA the escalation's policy sets: its target (``12h``), when it falls due
    (``due``, UTC), whether it is ``open``, ``met`` or ``breached``, and for one counted
    in a calendar the calendar, its zone and the due instant in that zone
    (``due_local``)."""
    rules = pack.rules.get(esc.policy)
    if rules is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for kind in SLA_KINDS:
        target, due = rules.sla(kind), pack.sla_due(rules, kind, esc.started_at)
        if target is None or due is None:
            continue
        row: dict[str, Any] = {
            "target": format_duration(target),
            "due": format_time(due),
            "calendar": rules.sla_calendar(kind),
            "outcome": "breached"
            if kind in esc.facts.breached
            else ("met" if kind in esc.facts.met else "open"),
        }
        calendar = pack.sla_calendar_of(rules, kind)
        if calendar is not None:
            row["zone"] = calendar.zone
            row["due_local"] = local(zone(calendar.zone), due).isoformat()
        out[kind] = row
    return out


def _timers(rt: Runtime, esc: Escalation, now: int | None) -> list[dict[str, Any]]:
    out = []
    for t in rt.store.timers_of(esc.id):
        row: dict[str, Any] = {"kind": t.kind, "due": format_time(t.due)}
        if t.kind == "ack":
            row["level"] = esc.level
        if now is not None:
            row["in_s"] = max(0, t.due - now)
            row["overdue"] = t.due <= now
        out.append(row)
    return out


def _actions(rt: Runtime, esc: Escalation) -> list[dict[str, Any]]:
    return [
        {
            "action": m.action,
            "target": m.target,
            "text": m.payload.get("text"),
            "status": m.status,
            "attempts": m.attempts,
            "reason": m.reason,
            "at": format_time(m.created_at),
        }
        for m in rt.store.outbox(esc.id)
    ]


def _history(rt: Runtime, esc: Escalation) -> list[dict[str, Any]]:
    return [
        {
            "at": format_time(r.at),
            "kind": r.kind,
            "policy": r.policy,
            "actor": r.actor,
            "reason": r.reason,
        }
        for r in rt.store.audit_rows(esc.id)
    ]
