"""``escalade explain EVENT.json``: which policy owns this event, and why.

Loads a pack (``--pack FILE``, default ``generated/rulepack.json``) or builds
one in memory from ``--policies DIR``; no database is involved. Prints the
owning policy, every candidate's condition atom by atom, the owner chain with
its timings, the exception paths that apply, and the pack version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from escalade.compiler.backends.oncall import pick_text
from escalade.compiler.backends.rulepack import build_pack
from escalade.compiler.build import load_for_build, resolve_config
from escalade.compiler.formats import render_text
from escalade.runtime.clock import duration_words, format_duration, format_time
from escalade.runtime.conditions import evaluate, format_condition
from escalade.runtime.engine.loaded import SLA_KINDS, sla_calendar, sla_due
from escalade.runtime.events import EventError, load_json, parse_event
from escalade.runtime.localtime import local, zone
from escalade.runtime.matcher import Explanation, Matcher
from escalade.runtime.pack import Policy, RulePack
from escalade.runtime.textio import TextError, loads_json


class ExplainError(Exception):
    """Bad input for explain; the message is for people."""


def load_pack(pack: Path | None, policies: Path | None) -> RulePack:
    """The pack to explain against: a file, or one built in memory from a policy set."""
    if policies is not None:
        if not policies.exists():
            raise ExplainError(f"--policies {policies}: no such file or directory")
        config = resolve_config(policies)
        result = load_for_build(policies, config.root, config.version)
        if result.pset is None or result.errors:
            text = render_text(result.diagnostics, result.diags.sources, color=False)
            raise ExplainError(text + "the policy set has errors; cannot build a pack")
        if not result.pset.policies:
            raise ExplainError(f"--policies {policies}: the policy set has no policies")
        return RulePack.from_dict(build_pack(result.pset), source=str(policies))
    if pack is None:
        config = resolve_config(None)
        pack = config.output_path / "rulepack.json"
    return RulePack.load(pack)


def _who(pack: RulePack, ref: str, kind: str, at: float, pick: str | None = None) -> str:
    if pick is not None:
        return _picked(pack, ref, pick, at)
    if kind == "team":
        team = pack.teams.get(ref)
        if team is None:
            return ref
        on_call = team.on_call(at)
        if on_call is not None:
            return f"{ref} (team; on call now: {pack.display_name(on_call)})"
        if team.scheduled:
            return f"{ref} (team; nobody on call)"
        members = ", ".join(pack.display_name(m) for m in team.members)
        return f"{ref} (team: {members})"
    return pack.display_name(ref)


def _picked(pack: RulePack, team: str, pick: str, at: float) -> str:
    """A ``round_robin(T)`` or ``all(T)`` level in words, with who it picks among at ``at``
    (a team with a schedule: its on-call member). Without a database, explain cannot say
    whose turn it is."""
    spec = pack.teams.get(team)
    if spec is None:
        return f"{pick}({team})"
    if spec.scheduled:
        on_call = spec.on_call(at)
        now = f"now: {pack.display_name(on_call)}" if on_call else "nobody now"
        return pick_text(pick, team, now, scheduled=True)
    return pick_text(pick, team, ", ".join(pack.display_name(m) for m in spec.members))


def _reaches(pack: RulePack, ref: str, kind: str, at: float) -> str | None:
    """Who a chain level reaches at ``at``: the person, a scheduled team's on-call member
    (None: nobody is on call then), or a team without a schedule itself (any member)."""
    team = pack.teams.get(ref) if kind == "team" else None
    if team is None or not team.scheduled:
        return ref
    return team.on_call(at)


def sla_rows(pack: RulePack, policy: Policy, at: int) -> dict[str, dict[str, Any]]:
    """Each SLA of ``policy`` for an escalation starting at ``at``: its target (seconds),
    when it falls due (as the runtime computes it: calendar time for ``within CAL``),
    and the calendar with its zone and the due instant's local time."""
    rows: dict[str, dict[str, Any]] = {}
    for kind in SLA_KINDS:
        due = sla_due(pack, policy, kind, at)
        if due is None:
            continue
        target = policy.sla_acknowledge if kind == "acknowledge" else policy.sla_resolve
        row: dict[str, Any] = {"target": target, "due": format_time(due), "calendar": None}
        calendar = sla_calendar(pack, policy, kind)
        if calendar is not None:
            row["calendar"] = calendar.name
            row["zone"] = calendar.zone
            row["due_local"] = local(zone(calendar.zone), due).isoformat()
        rows[kind] = row
    return rows


def chain_rows(pack: RulePack, policy: Policy, at: float) -> list[dict[str, Any]]:
    """The owner chain with timings, as explain prints it (and as JSON)."""
    schedule = policy.chain_schedule()
    rows: list[dict[str, Any]] = [
        {
            "at": stop.at,
            "level": stop.owner.level,
            "pass": stop.round,
            "ref": stop.owner.ref,
            "who": _who(pack, stop.owner.ref, stop.owner.kind, at + stop.at, stop.owner.pick),
            "pick": stop.owner.pick,
            "reaches": _reaches(pack, stop.owner.ref, stop.owner.kind, at + stop.at),
            "when": format_time(at + stop.at),
            "ack": stop.owner.ack,
        }
        for stop in schedule.stops
    ]
    if schedule.exhausted_at is not None:
        handoff = policy.failure_handoff("unacknowledged")
        if handoff is not None:
            then = f"hand off to {handoff.policy}"
        elif policy.triage is not None:
            then = f"triage by {_who(pack, policy.triage.ref, policy.triage.kind, at)}"
            then += " (post-mortem required)" if policy.triage.postmortem else ""
        else:
            then = "unacknowledged"
        rows.append({"at": schedule.exhausted_at, "level": "unacknowledged", "then": then})
    return rows


def explanation_json(
    pack: RulePack, event: dict[str, Any], ex: Explanation, state: Any, at: float
) -> dict[str, Any]:
    """The machine-readable form of an explanation."""
    owner = ex.owner
    return {
        "event": {"id": event.get("id"), "type": ex.event_type, "at": event.get("at")},
        "pack": {"version": pack.version, "content_hash": pack.content_hash},
        "owner": None if owner is None else owner.name,
        "reason": ex.reason,
        "starts_after": ex.delayed,
        "tie_broken_by_name": list(ex.tie_broken_by_name),
        "candidates": [
            {
                "policy": c.policy.name,
                "priority": c.policy.priority,
                "matched": c.matched,
                "note": c.note,
                "condition": format_condition(c.policy.when),
                "atoms": [{"atom": a, "holds": ok} for a, ok in c.atoms],
            }
            for c in ex.candidates
        ],
        "chain": [] if owner is None else chain_rows(pack, owner, at),
        "sla": {} if owner is None else sla_rows(pack, owner, int(at)),
        "exceptions": []
        if owner is None
        else [
            {
                "name": h.name,
                "when": format_condition(h.when) if h.when is not None else None,
                "failure": h.failure,
                "applies_now": evaluate(h.when, state) if h.when is not None else None,
                "handoff": h.policy,
            }
            for h in owner.handoffs
        ],
        "source": None if owner is None else owner.source,
    }


def render_explanation(doc: dict[str, Any]) -> str:
    """The text form of :func:`explanation_json`."""
    ev = doc["event"]
    lines = [
        f"event {ev['id']} · {ev['type']} · {ev['at']}",
        f"pack {doc['pack']['version']} ({doc['pack']['content_hash']})",
        "",
    ]
    if doc["owner"] is not None:
        lines.append(f"OWNER: {doc['owner']}  ({doc['source']})")
    else:
        lines.append("OWNER: none")
    lines.append(f"  {doc['reason']}")
    ignored = doc.get("ignored_fields") or []
    if ignored:
        lines.append(f"  ignored, not in the schema (a typo?): {', '.join(ignored)}")
    lines.append("")
    if doc["candidates"]:
        lines.append(f"candidates for {ev['type']} (highest priority first):")
        for c in doc["candidates"]:
            mark = "✓" if c["matched"] else "✗"
            lines.append(f"  {mark} {c['policy']} (priority {c['priority']}): {c['note']}")
            if not c["atoms"]:
                lines.append("      (no condition: every event of this kind)")
            for a in c["atoms"]:
                lines.append(f"      {'✓' if a['holds'] else '✗'} {a['atom']}")
    if doc["chain"]:
        lines += ["", "owner chain if nobody acknowledges:"]
        for row in doc["chain"]:
            at = duration_words(row["at"]).rjust(7)
            if row["level"] == "unacknowledged":
                lines.append(f"  {at}  unacknowledged → {row['then']}")
                continue
            ack = (
                f"ack within {duration_words(row['ack'])}" if row["ack"] is not None else "keeps it"
            )
            rep = f" (pass {row['pass']})" if row["pass"] > 1 else ""
            lines.append(f"  {at}  {row['level']}{rep}: {row['who']} — {ack}")
    if doc.get("sla"):
        lines += ["", f"SLAs if it starts at {ev['at']}:"]
        lines += [_sla_line(kind, row) for kind, row in doc["sla"].items()]
    if doc["exceptions"]:
        lines += ["", "exception paths:"]
        for e in doc["exceptions"]:
            if e["when"] is not None:
                now = "applies now" if e["applies_now"] else "does not apply now"
                lines.append(f"  {e['name']}: when {e['when']} → {e['handoff']} ({now})")
            else:
                lines.append(f"  {e['name']}: on {e['failure']} → {e['handoff']}")
    return "\n".join(lines) + "\n"


def _sla_line(kind: str, row: dict[str, Any]) -> str:
    """``resolve due 2026-12-08 11:00 Europe/Berlin (2026-12-08T10:00:00Z; 12h within
    support_hours)``."""
    target = format_duration(row["target"])
    if row.get("calendar") is None:
        return f"  {kind} due {row['due']} ({target})"
    local_time = f"{row['due_local'][:10]} {row['due_local'][11:16]} {row['zone']}"
    return f"  {kind} due {local_time} ({row['due']}; {target} within {row['calendar']})"


def read_event_json(raw: bytes | str, shown: str = "the event") -> dict[str, Any]:
    """Decode and parse one event's JSON text; :class:`ExplainError` says where it is wrong.

    Strict UTF-8 (a BOM is allowed), no NaN or Infinity, an object at the top."""
    try:
        obj = loads_json(raw, shown)
    except TextError as exc:
        raise ExplainError(str(exc)) from None
    text = raw if isinstance(raw, str) else raw.decode("utf-8-sig")
    if isinstance(obj, dict):
        return obj
    try:
        load_json(text)  # the runtime's words for what it got instead
    except EventError as exc:
        raise ExplainError(f"{shown}: {exc}") from None
    raise ExplainError(f"{shown}: an event is a JSON object")


def explain_event(pack: RulePack, raw: bytes | str, shown: str = "the event") -> dict[str, Any]:
    """Explain one event (JSON text) against ``pack``; raises ExplainError on bad input."""
    original = read_event_json(raw, shown)
    try:
        event = parse_event(original, pack)
    except EventError as exc:
        raise ExplainError(f"{shown}: invalid event: {exc}") from None
    ex = Matcher(pack).explain(event.type, event.data)
    doc = explanation_json(pack, original, ex, event.data, float(event.at))
    doc["ignored_fields"] = list(event.unknown)
    return doc
