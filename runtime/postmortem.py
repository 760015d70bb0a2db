"""Post-mortem drafts written from the audit trail (issue #15).

:func:`draft` turns one escalation's audit rows and outbox messages into a JSON-ready
document: a summary (policy, pack version, the ticket as it was at start), the
timeline (EVERY audit row of the escalation, in order, with its time, actor, kind and
reason: nothing is filtered out, so it can be compared row by row with the trail),
the deliveries that failed (channel and reason), the escalation's KPIs against its
SLA targets, the exceptions taken (Type A handoffs, Type B triage) and why, the open
questions left blank for people, and remediation items.

The same trail gives the same bytes (no wall clock, no random order; :func:`dumps` sorts
keys). Generating a draft writes nothing; the engine stores one when triage requires the
post-mortem (:mod:`escalade.runtime.engine.postmortems`: ``Store.save_postmortem`` keeps
the :func:`dumps` text, its :func:`digest` is audited). A draft never satisfies ``close``:
the post-mortem is complete only once someone records it (``escalade postmortem T
--complete --link URL --by P``).

:func:`for_ticket` reads what a draft needs through the store's read API (it never
writes); :func:`stored_or_generated` is the stored draft when there is one (else one
generated now), saying which; :func:`render_markdown` renders a draft for people.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from escalade.runtime import kpi
from escalade.runtime.clock import format_duration, format_time
from escalade.runtime.store import AuditRow, Escalation, OutboxMessage, Store

FORMAT = "escalade.postmortem/1"
FAILED_STATUSES = ("failed", "undeliverable")
# Audit kinds that are exceptions taken, and their type (SPEC §4).
EXCEPTION_KINDS = {
    "handoff": "A",
    "loop_broken": "A",
    "triage": "B",
    "no_triage": "B",
    "ack_override": "override",
}
QUESTIONS = (
    ("impact", "What was the impact, on whom, and for how long?"),
    ("root_cause", "What was the root cause?"),
    ("what_went_well", "What went well?"),
    ("what_to_change", "What should change, so it does not happen again?"),
)
# Audit kinds that call for a remediation item, and how the item starts.
REMEDIATION_KINDS = {
    "check_failed": "Fix what made a check fail",
    "step_failed": "Fix the failed step",
    "unacknowledged": "Review the chain and who is on call",
    "breach": "Review the SLA breach",
    "unowned": "Make sure someone can own it",
    "loop_broken": "Break the routing loop in the policies",
}


def _time(at: int | None) -> str | None:
    return format_time(at) if at is not None else None


def _distinct(values: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def timeline(rows: Sequence[AuditRow]) -> list[dict[str, Any]]:
    """Every row, in the trail's order: time, actor, kind, reason, policy, pack version,
    detail (and the row's place in its chain)."""
    return [
        {
            "at": format_time(r.at),
            "kind": r.kind,
            "actor": r.actor,
            "reason": r.reason,
            "policy": r.policy,
            "pack_version": r.pack_version,
            "detail": r.detail,
            "seq": r.seq,
        }
        for r in rows
    ]


def _audited_channels(rows: Sequence[AuditRow]) -> dict[str, str]:
    """The channel each message's latest failed attempt went to, by idempotency key
    (when the notifier named one)."""
    found: dict[str, str] = {}
    for r in rows:
        if r.kind == "delivery_failed" and r.detail.get("channel") and r.detail.get("key"):
            found[str(r.detail["key"])] = str(r.detail["channel"])
    return found


def channel_of(msg: OutboxMessage, audited: Mapping[str, str]) -> str | None:
    """Where a message was to go: the channel its failed attempt named, else the channel
    of the step (``slack #ops``), else the person's contact points (``email, pager``),
    else (an action such as ``create_task``) the webhook."""
    if msg.key in audited:
        return audited[msg.key]
    channel = msg.payload.get("channel")
    if isinstance(channel, Mapping):
        target = channel.get("target")
        return f"{channel.get('kind')} {target}" if target else str(channel.get("kind"))
    contacts = msg.payload.get("contacts")
    if msg.action in ("notify", "page") and isinstance(contacts, Mapping):
        points = sorted(str(k) for k, v in contacts.items() if v)
        return ", ".join(points) or None
    if msg.action in ("notify", "page"):
        return None
    return "webhook"  # any other action goes to its connector, else the generic webhook


def failed_deliveries(
    messages: Sequence[OutboxMessage], rows: Sequence[AuditRow]
) -> list[dict[str, Any]]:
    """Each message that ended ``failed`` or ``undeliverable``, oldest first, with its
    channel and the notifier's reason."""
    audited = _audited_channels(rows)
    failed = [m for m in messages if m.status in FAILED_STATUSES]
    return [
        {
            "key": m.key,
            "action": m.action,
            "target": m.target,
            "channel": channel_of(m, audited),
            "status": m.status,
            "attempts": m.attempts,
            "reason": m.reason,
            "at": format_time(m.attempted_at if m.attempted_at is not None else m.created_at),
        }
        for m in sorted(failed, key=lambda m: (m.created_at, m.id, m.key))
    ]


def _life(esc: Escalation, rows: Sequence[AuditRow]) -> kpi.Life:
    """The escalation as the trail tells it (as the KPI report reads it); from the
    escalation itself when the trail holds no ``triggered`` row for it."""
    lives: dict[int, kpi.Life] = {}
    for row in rows:
        kpi.read_row(lives, row)
    found = lives.get(esc.id)
    if found is not None:
        return found
    targets = dict(esc.facts.sla_targets)
    return kpi.Life(
        ticket=esc.ticket,
        policy=esc.policy,
        started=esc.started_at,
        account=esc.account,
        acked=esc.acked_at,
        resolved=esc.resolved_at,
        closed=esc.closed_at,
        breached=set(esc.facts.breached),
        sla=targets,
    )


def _since(start: int, at: int | None) -> int | None:
    return at - start if at is not None else None


def kpis(esc: Escalation, rows: Sequence[AuditRow]) -> dict[str, Any]:
    """This escalation's KPIs, and each SLA with its target, its time and its outcome."""
    life = _life(esc, rows)
    kinds = [r.kind for r in rows]
    outcomes = dict(kpi.sla_outcomes(life))
    done = {"acknowledge": life.acked, "resolve": life.resolved}
    sla = {
        kind: {
            "target_s": life.sla.get(kind),
            "actual_s": _since(life.started, done[kind]),
            "outcome": outcomes.get(kind, "no target"),
        }
        for kind in kpi.SLA_KINDS
    }
    return {
        "time_to_acknowledge_s": _since(life.started, life.acked),
        "time_to_resolve_s": _since(life.started, life.resolved),
        "time_to_close_s": _since(life.started, life.closed),
        "handoffs": life.handoffs,
        "transfers": kinds.count("transfer"),
        "failovers": kinds.count("ack_timeout"),
        "rounds": esc.cycle + 1,
        "unacknowledged": life.unacknowledged,
        "triaged": life.triage,
        "failed_checks": kinds.count("check_failed"),
        "failed_delivery_attempts": kinds.count("delivery_failed"),
        "sla": sla,
    }


def exceptions(rows: Sequence[AuditRow]) -> list[dict[str, Any]]:
    """The exceptions taken, in order: Type A handoffs (and a routing loop broken), Type B
    triage, overridden acknowledgments; each with its reason."""
    return [
        {
            "type": EXCEPTION_KINDS[r.kind],
            "kind": r.kind,
            "at": format_time(r.at),
            "actor": r.actor,
            "policy": r.policy,
            "reason": r.reason,
        }
        for r in rows
        if r.kind in EXCEPTION_KINDS
    ]


def remediation(
    rows: Sequence[AuditRow],
    failed: Sequence[Mapping[str, Any]],
    owner: str | None,
    due: int | None,
    note: str | None = None,
) -> dict[str, Any]:
    """Items to follow up, from what went wrong (failed checks and steps, nobody
    acknowledging, breaches, failed deliveries), each once, in the trail's order; ``note``
    says who chose the owner (and whether anything is due)."""
    texts: list[str] = []
    for r in rows:
        lead = REMEDIATION_KINDS.get(r.kind)
        if lead is not None:
            texts.append(f"{lead}: {r.reason}")
    for f in failed:
        where = f" ({f['channel']})" if f["channel"] else ""
        texts.append(f"Make {f['action']} {f['target'] or ''}{where} deliverable: {f['reason']}")
    when = _time(due)
    items = [{"item": text, "owner": owner, "due": when} for text in dict.fromkeys(texts)]
    return {"owner": owner, "due": when, "note": note, "items": items}


def summary(esc: Escalation, rows: Sequence[AuditRow]) -> dict[str, Any]:
    """The escalation: ticket, policy (and every policy it went through), pack version,
    state, times, the ticket as it was at start, and the post-mortem's status."""
    versions = _distinct(r.pack_version for r in rows)
    facts = esc.facts
    return {
        "ticket": esc.ticket,
        "escalation": esc.id,
        "policy": esc.policy,
        "policy_path": _distinct([*(r.policy for r in rows), esc.policy]),
        "priority": esc.priority,
        "pack_version": versions[-1] if versions else None,
        "pack_versions": versions,
        "state": esc.state,
        "owner": esc.owner,
        "account": esc.account,
        "started_at": format_time(esc.started_at),
        "acknowledged_at": _time(esc.acked_at),
        "resolved_at": _time(esc.resolved_at),
        "closed_at": _time(esc.closed_at),
        "snapshot": esc.snapshot,
        "postmortem": {
            "required": facts.postmortem_required,
            "completed": facts.postmortem_link is not None,
            "link": facts.postmortem_link,
        },
    }


def draft(
    esc: Escalation,
    rows: Sequence[AuditRow],
    messages: Sequence[OutboxMessage],
    *,
    owner: str | None = None,
    due: int | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """The post-mortem draft of ``esc`` from its audit ``rows`` (in the trail's order) and
    its outbox ``messages``: a pure function, so the same trail gives the same document.

    ``owner`` and ``due`` (epoch seconds) are who follows the remediation up and by when
    (null when nobody said); ``note`` says how the owner was chosen."""
    rows = list(rows)
    failed = failed_deliveries(messages, rows)
    last = rows[-1] if rows else None
    return {
        "format": FORMAT,
        "status": "draft",
        "trail": {
            "rows": len(rows),
            "first_at": _time(rows[0].at) if rows else None,
            "last_at": _time(last.at) if last else None,
            "last_hash": last.hash if last else None,
        },
        "summary": summary(esc, rows),
        "timeline": timeline(rows),
        "failed_deliveries": failed,
        "kpis": kpis(esc, rows),
        "exceptions_taken": exceptions(rows),
        "open_questions": [
            {"key": key, "question": text, "answer": None} for key, text in QUESTIONS
        ],
        "remediation": remediation(rows, failed, owner, due, note),
    }


def escalation_of(store: Store, ticket: str) -> Escalation | None:
    """The escalation a ticket's post-mortem is about: its open one, else its latest."""
    return store.open_escalation(ticket) or store.latest_escalation(ticket)


def for_ticket(
    store: Store, ticket: str, *, owner: str | None = None, due: int | None = None
) -> dict[str, Any] | None:
    """The draft of ``ticket``'s escalation (None when it has none), read from the store
    (nothing is written)."""
    esc = escalation_of(store, ticket)
    if esc is None:
        return None
    rows = list(store.audit_rows(esc.id))
    return draft(esc, rows, store.outbox(esc.id), owner=owner, due=due)


def stored_or_generated(store: Store, ticket: str) -> dict[str, Any] | None:
    """The draft of ``ticket``'s escalation as stored when triage required the post-mortem,
    else one generated now from the trail (None without an escalation); its ``source``
    says which (a read: nothing is written)."""
    esc = escalation_of(store, ticket)
    if esc is None:
        return None
    record = store.postmortem_record(esc.id)
    if record is not None and record.draft:
        doc: dict[str, Any] = json.loads(record.draft)
        doc["source"] = {
            "kind": "stored",
            "drafted_at": format_time(record.created_at),
            "hash": digest(record.draft),
        }
        return doc
    found = for_ticket(store, ticket)
    assert found is not None
    found["source"] = {"kind": "generated", "drafted_at": None, "hash": None}
    return found


def digest(text: str) -> str:
    """The SHA-256 of a stored draft's text (what ``postmortem_drafted`` records)."""
    return hashlib.sha256(text.encode()).hexdigest()


def dumps(doc: Mapping[str, Any]) -> str:
    """A draft as JSON: sorted keys, indented, one trailing newline (the same draft, the
    same bytes)."""
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def stored_text(doc: Mapping[str, Any]) -> str:
    """A draft as the store keeps it: sorted keys, compact (the same draft, the same bytes;
    written by the C encoder, which an indent turns off: a tenth of the time at triage)."""
    return json.dumps(doc, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def _cell(value: Any) -> str:
    """A value as one Markdown table cell (pipes escaped, on one line)."""
    if value is None or value == "":
        return "—"
    text = " ".join(str(value).split())
    return text.replace("\\", "\\\\").replace("|", "\\|")


def _dur(seconds: int | None) -> str:
    return "—" if seconds is None else format_duration(seconds, " ")


def _summary_lines(doc: Mapping[str, Any]) -> list[str]:
    s = doc["summary"]
    pm = s["postmortem"]
    done = f"completed: {pm['link']}" if pm["completed"] else "not completed yet"
    snapshot = json.dumps(s["snapshot"], indent=2, sort_keys=True, ensure_ascii=False)
    source = doc.get("source") or {}
    if source.get("kind") == "stored":
        origin = (
            f"The stored draft, written from the audit trail at {source['drafted_at']}"
            f" (sha256 {source['hash']})"
        )
    elif source.get("kind") == "generated":
        origin = "Generated now from the audit trail (no draft is stored)"
    else:
        origin = "Generated from the audit trail"
    return [
        f"# Post-mortem (draft): ticket {s['ticket']}",
        "",
        f"{origin}; a draft does not complete the post-mortem"
        " (close needs `escalade postmortem TICKET --complete --link URL --by PERSON`).",
        "",
        "## Summary",
        "",
        "| | |",
        "|---|---|",
        f"| ticket | {_cell(s['ticket'])} (escalation {s['escalation']}) |",
        f"| policy | {_cell(s['policy'])} (priority {s['priority']}) |",
        f"| policies | {_cell(', '.join(s['policy_path']))} |",
        f"| pack version | {_cell(', '.join(s['pack_versions']))} |",
        f"| state | {_cell(s['state'])} (owner {_cell(s['owner'])}) |",
        f"| account | {_cell(s['account'])} |",
        f"| started | {s['started_at']} |",
        f"| acknowledged | {_cell(s['acknowledged_at'])} |",
        f"| resolved | {_cell(s['resolved_at'])} |",
        f"| closed | {_cell(s['closed_at'])} |",
        f"| post-mortem | {'required' if pm['required'] else 'not required'}, {_cell(done)} |",
        "",
        "Ticket at start:",
        "",
        "```json",
        snapshot,
        "```",
    ]


def _timeline_lines(doc: Mapping[str, Any]) -> list[str]:
    trail = doc["trail"]
    lines = [
        "## Timeline",
        "",
        f"Every audit row of the escalation ({trail['rows']}; last hash"
        f" {_cell(trail['last_hash'])}).",
        "",
        "| time | kind | actor | policy | reason |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {t['at']} | {_cell(t['kind'])} | {_cell(t['actor'])} | {_cell(t['policy'])}"
        f" | {_cell(t['reason'])} |"
        for t in doc["timeline"]
    ]
    return lines


def _delivery_lines(doc: Mapping[str, Any]) -> list[str]:
    lines = ["## Failed deliveries", ""]
    failed = doc["failed_deliveries"]
    if not failed:
        return [*lines, "None."]
    lines += [
        "| time | message | channel | status | attempts | reason |",
        "|---|---|---|---|---:|---|",
    ]
    lines += [
        f"| {f['at']} | {_cell(f['action'])} {_cell(f['target'])} | {_cell(f['channel'])}"
        f" | {f['status']} | {f['attempts']} | {_cell(f['reason'])} |"
        for f in failed
    ]
    return lines


def _kpi_lines(doc: Mapping[str, Any]) -> list[str]:
    k = doc["kpis"]
    lines = [
        "## KPIs",
        "",
        "| SLA | target | actual | outcome |",
        "|---|---|---|---|",
    ]
    for kind, sla in k["sla"].items():
        lines.append(
            f"| {kind} | {_dur(sla['target_s'])} | {_dur(sla['actual_s'])} | {sla['outcome']} |"
        )
    lines += [
        "",
        "| measure | value |",
        "|---|---|",
        f"| time to acknowledge | {_dur(k['time_to_acknowledge_s'])} |",
        f"| time to resolve | {_dur(k['time_to_resolve_s'])} |",
        f"| time to close | {_dur(k['time_to_close_s'])} |",
        f"| failovers / rounds | {k['failovers']} / {k['rounds']} |",
        f"| handoffs / transfers | {k['handoffs']} / {k['transfers']} |",
        f"| failed checks | {k['failed_checks']} |",
        f"| failed delivery attempts | {k['failed_delivery_attempts']} |",
        f"| nobody acknowledged | {'yes' if k['unacknowledged'] else 'no'} |",
        f"| Type B triage | {'yes' if k['triaged'] else 'no'} |",
    ]
    return lines


def _exception_lines(doc: Mapping[str, Any]) -> list[str]:
    lines = ["## Exceptions taken", ""]
    found = doc["exceptions_taken"]
    if not found:
        return [*lines, "None."]
    lines += ["| time | type | kind | actor | reason |", "|---|---|---|---|---|"]
    lines += [
        f"| {e['at']} | {_cell(e['type'])} | {_cell(e['kind'])} | {_cell(e['actor'])}"
        f" | {_cell(e['reason'])} |"
        for e in found
    ]
    return lines


def _closing_lines(doc: Mapping[str, Any]) -> list[str]:
    lines = ["## Open questions", ""]
    for q in doc["open_questions"]:
        lines += [f"### {q['question']}", "", q["answer"] or "_To be written._", ""]
    r = doc["remediation"]
    lines += [
        "## Remediation",
        "",
        f"Owner: {_cell(r['owner'])}. Due: {_cell(r['due'])}.",
        "",
    ]
    if r.get("note"):
        lines += [str(r["note"]), ""]
    if not r["items"]:
        return [*lines, "No item yet."]
    lines += ["| item | owner | due |", "|---|---|---|"]
    lines += [
        f"| {_cell(i['item'])} | {_cell(i['owner'])} | {_cell(i['due'])} |" for i in r["items"]
    ]
    return lines


def render_markdown(doc: Mapping[str, Any]) -> str:
    """A draft as Markdown: summary, timeline, failed deliveries, KPIs, exceptions, open
    questions and remediation."""
    parts = [
        _summary_lines(doc),
        _timeline_lines(doc),
        _delivery_lines(doc),
        _kpi_lines(doc),
        _exception_lines(doc),
        _closing_lines(doc),
    ]
    return "\n\n".join("\n".join(p).rstrip("\n") for p in parts) + "\n"
