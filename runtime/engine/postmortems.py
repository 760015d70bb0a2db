"""Post-mortems the runtime drafts, assigns and chases (issue #15, SPEC §4).

When Type B triage requires a post-mortem (:func:`on_triage`, called by
``chain.triage`` once the post-mortem task is created):

- the draft is written from the escalation's audit trail so far
  (:func:`escalade.runtime.postmortem.draft`: its timeline is every row up to the triage,
  one for one), stored (``Store.save_postmortem``, the JSON text) and audited
  ``postmortem_drafted`` with the owner, the due time and the SHA-256 of the stored text;
- with ``postmortem owner REF within D`` the remediation owner is REF as an owner resolves
  (a team with a rotation: its on-call member; absent: the policy's escalation owner), is
  notified with the draft's summary and where to read it, and a ``postmortem_due`` timer is
  set at the triage time + D. Without it the triage owner is the remediation owner and
  nothing is due (the draft says so).

A ``postmortem_due`` timer that finds the post-mortem not completed audits
``postmortem_overdue`` (stage ``escalation``), notifies the policy's escalation owner (the
``escalation`` level, else the last level) and sets ``postmortem_last_resort`` the same D
after the due time; that one, still not completed, audits ``postmortem_overdue`` (stage
``last_resort``) and notifies ``runtime.last_resort`` (its channel too), else the policy's
channels. Completing the post-mortem (:func:`complete`) cancels both timers and records the
link in the store. A draft never satisfies ``close``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from escalade.runtime import postmortem
from escalade.runtime.clock import format_duration, format_time
from escalade.runtime.engine.actions import emit
from escalade.runtime.engine.context import Moment, Runtime
from escalade.runtime.engine.loaded import LoadedPack, PolicyRules
from escalade.runtime.engine.ownership import resolve_ref, team_recipients
from escalade.runtime.engine.unowned import _last_resort, policy_channels
from escalade.runtime.store import Escalation, Timer

POSTMORTEM_DUE = "postmortem_due"
POSTMORTEM_LAST_RESORT = "postmortem_last_resort"
TIMER_KINDS = (POSTMORTEM_DUE, POSTMORTEM_LAST_RESORT)
NO_NAMED_OWNER = (
    "The policy names no post-mortem owner (postmortem owner REF within D): the triage"
    " owner follows it up, and nothing is due."
)


def pointers(rt: Runtime, ticket: str) -> dict[str, str]:
    """Where to read a ticket's draft: the command, the web path, and the full URL when the
    runtime knows its public address."""
    path = f"/tickets/{quote(ticket, safe='')}/postmortem"
    found = {"command": f"escalade postmortem {ticket} --draft", "path": path}
    if rt.links is not None and rt.links.public_url:
        found["url"] = rt.links.public_url.rstrip("/") + path
    return found


def _escalation_owner(
    rt: Runtime, pack: LoadedPack, rules: PolicyRules, m: Moment
) -> tuple[str, str] | None:
    """The policy's escalation owner (level ``escalation``, else the last level), resolved
    now; None when the policy has none or nobody is available."""
    owners = rules.policy.owners
    spec = rules.policy.owner("escalation") or (owners[-1] if owners else None)
    if spec is None:
        return None
    away = rt.store.absences(m.now)
    return resolve_ref(pack, spec.ref, spec.kind, m.now, away, rt.store)


def remediation_owner(
    rt: Runtime, pack: LoadedPack, rules: PolicyRules, m: Moment, triage: tuple[str, str]
) -> tuple[str, str, str]:
    """``(owner, owner kind, note)``: the named post-mortem owner resolved now (absent: the
    escalation owner, else the triage owner), or the triage owner when none is named."""
    spec = rules.policy.postmortem_owner
    if spec is None:
        return triage[0], triage[1], NO_NAMED_OWNER
    away = rt.store.absences(m.now)
    found = resolve_ref(pack, spec.ref, spec.kind, m.now, away, rt.store)
    note = (
        f"Named by the policy: postmortem owner {spec.ref} within {format_duration(spec.within)}."
    )
    if found is not None:
        return found[0], found[1], note
    fallback = _escalation_owner(rt, pack, rules, m) or triage
    return fallback[0], fallback[1], f"{note} {spec.ref} is unavailable: {fallback[0]} owns it."


def _notify(
    rt: Runtime,
    esc: Escalation,
    pack: LoadedPack,
    rules: PolicyRules,
    m: Moment,
    who: tuple[str, str],
    payload: dict[str, Any],
) -> list[str]:
    """Notify a person, or each available member of a team; who was notified."""
    people = team_recipients(rt.store, pack, who[0], m.now) if who[1] == "team" else [who[0]]
    for person in people:
        emit(rt, esc, pack, rules, m, "notify", person, "person", dict(payload))
    return people


def on_triage(
    rt: Runtime,
    esc: Escalation,
    pack: LoadedPack,
    rules: PolicyRules,
    m: Moment,
    triage: tuple[str, str],
) -> None:
    """Triage requires a post-mortem: draft it from the trail, store it, audit it; assign and
    notify the named owner with a ``postmortem_due`` timer. Once per escalation: a draft
    already stored (or a post-mortem completed) is kept as it is."""
    if esc.facts.postmortem_link or rt.store.postmortem_record(esc.id) is not None:
        return
    spec = rules.policy.postmortem_owner
    owner, kind, note = remediation_owner(rt, pack, rules, m, triage)
    due = m.now + spec.within if spec is not None else None
    rows = list(rt.store.audit_rows(esc.id))
    messages = rt.store.outbox(esc.id, keep_queued=True)  # the queued ones stay queued
    doc = postmortem.draft(esc, rows, messages, owner=owner, due=due, note=note)
    text = postmortem.stored_text(doc)
    rt.store.save_postmortem(esc.id, text, owner, due, m.now)
    when = format_time(due) if due is not None else None
    rt.audit(
        m,
        "postmortem_drafted",
        esc,
        pack,
        rules.name,
        reason=f"post-mortem drafted from {len(rows)} audit rows; owner {owner}"
        + (f", due {when}" if when else ", nothing due (no post-mortem owner named)"),
        detail={"owner": owner, "due": when, "hash": postmortem.digest(text), "rows": len(rows)},
    )
    if spec is None:
        return
    where = pointers(rt, esc.ticket)
    summary = (
        f"Post-mortem for ticket {esc.ticket} ({rules.name}) is yours, due {when}: a draft"
        f" from {len(rows)} audit rows is at `{where['command']}` ({where.get('url', where['path'])})."
    )
    payload = {
        "text": summary,
        "reason": "postmortem",
        "postmortem": {**where, "owner": owner, "due": when, "hash": postmortem.digest(text)},
    }
    _notify(rt, esc, pack, rules, m, (owner, kind), payload)
    rt.store.add_timer(
        Timer(
            due=due or m.now,
            kind=POSTMORTEM_DUE,
            ticket=esc.ticket,
            escalation_id=esc.id,
            payload={"owner": owner, "due": due, "within": spec.within},
        )
    )


def _pending(rt: Runtime, esc: Escalation) -> bool:
    """Whether a drafted post-mortem is still to complete."""
    record = rt.store.postmortem_record(esc.id)
    return not (record is None or record.completed_link or esc.facts.postmortem_link)


def fire_due(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, timer: Timer, m: Moment
) -> None:
    """The post-mortem is overdue: audit ``postmortem_overdue``, notify the escalation owner,
    and give it the same D again before the last resort is told."""
    if not _pending(rt, esc):
        return
    owner, due = timer.payload.get("owner"), int(timer.payload.get("due") or timer.due)
    within = int(timer.payload.get("within") or 0)
    boss = _escalation_owner(rt, pack, rules, m)
    later = due + within
    to = boss[0] if boss is not None else "nobody (no escalation owner is available)"
    rt.audit(
        m,
        "postmortem_overdue",
        esc,
        pack,
        rules.name,
        reason=f"post-mortem of ticket {esc.ticket} (owner {owner}) was due {format_time(due)}:"
        f" escalated to {to}; the last resort is told at {format_time(later)}",
        detail={"stage": "escalation", "owner": owner, "due": format_time(due), "to": to},
    )
    if boss is not None:
        text = (
            f"OVERDUE post-mortem: ticket {esc.ticket} ({rules.name}), owner {owner}, was due"
            f" {format_time(due)}. Not completed by {format_time(later)}, it goes to the last"
            f" resort. Draft: `{pointers(rt, esc.ticket)['command']}`."
        )
        payload = {"text": text, "reason": "postmortem_overdue"}
        _notify(rt, esc, pack, rules, m, boss, payload)
    rt.store.add_timer(
        Timer(
            due=later,
            kind=POSTMORTEM_LAST_RESORT,
            ticket=esc.ticket,
            escalation_id=esc.id,
            payload={"owner": owner, "due": due, "within": within},
        )
    )


def fire_last_resort(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, timer: Timer, m: Moment
) -> None:
    """Still not completed the same D after the due time: ``runtime.last_resort`` is told
    (and its channel), else every channel the policy uses."""
    if not _pending(rt, esc):
        return
    owner, due = timer.payload.get("owner"), int(timer.payload.get("due") or timer.due)
    last = _last_resort(rt, pack)
    text = (
        f"OVERDUE post-mortem: ticket {esc.ticket} ({rules.name}), owner {owner}, was due"
        f" {format_time(due)} and is still not completed."
        f" Draft: `{pointers(rt, esc.ticket)['command']}`."
    )
    payload = {"text": text, "reason": "postmortem_overdue"}
    if last is not None:
        to = last[0]
        channels = [rt.last_resort.channel] if rt.last_resort and rt.last_resort.channel else []
    else:
        to = "the policy's channels (no runtime.last_resort)"
        channels = policy_channels(pack, rules)
    rt.audit(
        m,
        "postmortem_overdue",
        esc,
        pack,
        rules.name,
        reason=f"post-mortem of ticket {esc.ticket} (owner {owner}) still not completed:"
        f" escalated to {to}",
        detail={"stage": "last_resort", "owner": owner, "due": format_time(due), "to": to},
    )
    if last is not None:
        _notify(rt, esc, pack, rules, m, (last[0], last[1]), payload)
    for channel in channels:
        if channel in pack.channels:
            emit(rt, esc, pack, rules, m, "notify", channel, "channel", dict(payload))


def complete(rt: Runtime, esc: Escalation, m: Moment, link: str) -> dict[str, Any]:
    """Record the completed post-mortem: the overdue timers are cancelled, the store keeps
    the link, who and when; the detail for the ``postmortem`` audit row."""
    record = rt.store.postmortem_record(esc.id)
    rt.store.cancel_timers(esc.id, TIMER_KINDS)
    rt.store.complete_postmortem(esc.id, link, m.actor, m.now)
    detail: dict[str, Any] = {"link": link, "by": m.actor}
    if record is not None and record.draft:
        detail["draft_hash"] = postmortem.digest(record.draft)
        detail["owner"] = record.owner
        if record.due is not None:
            detail["due"] = format_time(record.due)
            detail["on_time"] = m.now <= record.due
    return detail


def postmortem_status(rt: Runtime, esc: Escalation) -> dict[str, Any]:
    """``status``'s ``postmortem``: required, owner, due, when drafted, completed link (and
    by whom, when), and how to read the stored draft. A read."""
    record = rt.store.postmortem_record(esc.id)
    drafted = record is not None and bool(record.draft)
    link = (record.completed_link if record is not None else None) or esc.facts.postmortem_link
    return {
        "required": esc.facts.postmortem_required,
        "owner": record.owner if record is not None else None,
        "due": format_time(record.due) if record is not None and record.due else None,
        "drafted_at": format_time(record.created_at) if record is not None and drafted else None,
        "completed_link": link,
        "completed_by": record.completed_by if record is not None else None,
        "completed_at": format_time(record.completed_at)
        if record is not None and record.completed_at
        else None,
        "draft": f"escalade postmortem {esc.ticket} --draft" if drafted else None,
    }
