"""Semantic diff of two revisions of a policy set: what a change *does*.

For each event kind, each side's routing is a partition of all events into
"owned by policy P" regions (highest priority first, ties by name, as the
runtime decides) plus "owned by nobody". The diff intersects every region of
the base with every region of the head, exactly, with the condition algebra
the analyzer uses: each non-empty intersection whose owner differs is a
routing change, with a witness event. For policies on both sides whose
escalation timeline changed (owners, ack timeouts, repeat, SLAs, steps,
checks, exceptions — including the directory entries they name), the events
they own on both sides are reported with a witness.

Schedules and calendars are compared by what they do (:mod:`escalade.compiler.diff_clocks`):
a policy that pages a team whose on-call answer differs at some instant of the
analysis horizon, or whose SLA is counted in a calendar that gives some start a
different due time, runs on a different timeline; the line names the first such
instant (``support_oncall: at 2026-01-10T18:00:00Z (Sat 19:00 Europe/Berlin) base
pages marc, head pages nora``).

A pure reformat, a file rename or a policy renamed without other change is
"no behaviour change" (exit 0).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from escalade.compiler import CheckResult
from escalade.compiler import model as m
from escalade.compiler import nodes as n
from escalade.compiler.algebra import (
    Budget,
    Domains,
    Region,
    Undecided,
    Witness,
    implies,
    overlap,
)
from escalade.compiler.diff_clocks import Clocks
from escalade.compiler.passes.checks import policy_conditions
from escalade.compiler.printer import format_arg, format_cond
from escalade.runtime.clock import format_duration

NOBODY = "(nobody)"


# --------------------------------------------------------------------------- signatures


def _step_sig(step: m.Step) -> list[Any]:
    return [step.action, [format_arg(a) for a in step.args], step.guide]


def _ref_sig(pset: m.PolicySet, ref: str) -> dict[str, Any]:
    """A reference with the directory entry it resolves to, so directory edits show."""
    if ref in pset.people:
        p = pset.people[ref]
        return {"person": ref, "name": p.display, "contacts": dict(sorted(p.contacts.items()))}
    if ref in pset.teams:
        t = pset.teams[ref]
        members = [_ref_sig(pset, mem) for mem in t.members]
        return {"team": ref, "members": members, "rotation": [t.rotation, t.rotation_start]}
    if ref in pset.channels:
        c = pset.channels[ref]
        return {"channel": ref, "kind": c.kind, "target": c.target}
    return {"ref": ref}


def timeline_signature(pset: m.PolicySet, p: m.Policy) -> dict[str, Any]:
    """Everything that shapes an escalation once a policy owns it, in canonical form."""
    return {
        "owners": {o.level: {"owner": _ref_sig(pset, o.ref), "ack": o.ack} for o in p.owners},
        "repeat": p.repeat,
        "sla": {"acknowledge": p.sla_acknowledge, "resolve": p.sla_resolve},
        "after": p.after,
        "cooldown": p.cooldown,
        "steps": [_step_sig(s) for s in p.steps],
        "on": {k: [_step_sig(s) for s in v] for k, v in sorted(p.on.items())},
        "checks": {
            "delivery": [[c.within, c.retry, c.then] for c in p.delivery_checks],
            "state": [[format_cond(c.cond), c.within] for c in p.state_checks],
            "close": [format_cond(c.cond) if c.cond else "postmortem" for c in p.close_checks],
        },
        "exceptions": sorted(
            [h.name, format_cond(h.cond) if h.cond else h.failure, h.policy] for h in p.handoffs
        ),
        "triage": (
            {"owner": _ref_sig(pset, p.triage.ref), "postmortem": p.triage.postmortem}
            if p.triage
            else None
        ),
    }


def routing_signature(p: m.Policy) -> dict[str, Any]:
    return {
        "triggers": sorted(p.triggers),
        "priority": p.priority,
        "when": format_cond(p.when) if p.when is not None else None,
    }


def info_signature(p: m.Policy) -> dict[str, Any]:
    return {"title": p.title, "description": p.description, "approvers": sorted(p.approvers)}


# --------------------------------------------------------------------------- results


@dataclass
class RoutingChange:
    kinds: list[str]
    before: str
    after: str
    witness: Witness
    event: dict[str, Any]


@dataclass
class TimelineChange:
    policy: str
    changes: list[str]
    kinds: list[str]
    witness: Witness | None
    event: dict[str, Any] | None


@dataclass
class PolicyDiff:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    renamed: list[tuple[str, str]] = field(default_factory=list)
    changed: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class DiffResult:
    base_label: str
    head_label: str
    policies: PolicyDiff
    routing: list[RoutingChange]
    timelines: list[TimelineChange]
    undecided: list[str]

    @property
    def behaviour_changed(self) -> bool:
        return bool(self.routing or self.timelines or self.undecided)


# --------------------------------------------------------------------------- routing


def _merged_schema(a: m.Schema, b: m.Schema) -> m.Schema:
    """One schema both sides' conditions can be cut by: fields united, enum values united."""
    objects: dict[str, dict[str, m.FieldInfo]] = {}
    for schema in (a, b):
        for obj, fields in schema.objects.items():
            into = objects.setdefault(obj, {})
            for name, info in fields.items():
                prior = into.get(name)
                if prior is not None and prior.kind == info.kind == "enum":
                    values = tuple(dict.fromkeys((*prior.values, *info.values)))
                    into[name] = m.FieldInfo(obj, name, "enum", values, info.span)
                else:
                    into[name] = info
    return m.Schema(events={**a.events, **b.events}, objects=objects)


def _owned_regions(
    domains: Domains, pset: m.PolicySet, kind: str, budget: Budget
) -> list[tuple[str, Region]]:
    """The partition of events of ``kind``: (owner, region), ``NOBODY`` last."""
    candidates = sorted(
        (p for p in pset.policies.values() if kind in p.triggers),
        key=lambda p: (-p.priority, p.name),
    )
    taken = domains.nothing()
    out: list[tuple[str, Region]] = []
    for p in candidates:
        region = domains.compile(p.when)
        owned = region.minus(taken, budget)
        if not owned.is_empty():
            out.append((p.name, owned))
        taken = taken.union(region)
    out.append((NOBODY, domains.everything().minus(taken, budget)))
    return out


def _routing_changes(
    base: m.PolicySet, head: m.PolicySet, renamed: Mapping[str, str]
) -> tuple[
    list[RoutingChange], dict[str, dict[str, Region]], dict[str, dict[str, Region]], list[str]
]:
    schema = _merged_schema(base.schema, head.schema)
    conds = [c for s in (base, head) for p in s.policies.values() for c in policy_conditions(p)]
    domains = Domains.build(schema, conds)
    kinds = sorted({k for s in (base, head) for p in s.policies.values() for k in p.triggers})
    grouped: dict[tuple[str, str], RoutingChange] = {}
    base_owned: dict[str, dict[str, Region]] = {}
    head_owned: dict[str, dict[str, Region]] = {}
    undecided: list[str] = []
    for kind in kinds:
        budget = Budget()
        try:
            before = _owned_regions(domains, base, kind, budget)
            after = _owned_regions(domains, head, kind, budget)
            base_owned[kind] = dict(before)
            head_owned[kind] = dict(after)
            for b_name, b_region in before:
                for h_name, h_region in after:
                    if b_name == h_name or renamed.get(b_name) == h_name:
                        continue
                    w = overlap(b_region, h_region, budget)
                    if w is None:
                        continue
                    key = (b_name, h_name)
                    if key in grouped:
                        grouped[key].kinds.append(kind)
                    else:
                        grouped[key] = RoutingChange([kind], b_name, h_name, w, w.event(kind))
        except Undecided as exc:
            undecided.append(f"routing of {kind} events: {exc.reason}")
    return list(grouped.values()), base_owned, head_owned, undecided


# --------------------------------------------------------------------------- describing


def _who(sig: Mapping[str, Any] | None) -> str:
    if not sig:
        return "nobody"
    owner = sig.get("owner", sig)
    for key in ("person", "team", "channel", "ref"):
        if key in owner:
            name = owner.get("name")
            return f"{name} ({owner[key]})" if name else owner[key]
    return "?"


def _ack(sig: Mapping[str, Any] | None) -> str:
    if not sig or sig.get("ack") is None:
        return "no timeout"
    return f"ack {format_duration(int(sig['ack']))}"


def describe_timeline(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Readable lines for what changed between two timeline signatures."""
    lines: list[str] = []
    levels = list(dict.fromkeys([*before["owners"], *after["owners"]]))
    for level in levels:
        b, a = before["owners"].get(level), after["owners"].get(level)
        if b == a:
            continue
        if b and a and b["owner"] == a["owner"]:
            lines.append(f"{level} {_who(a)}: {_ack(b)} → {_ack(a)}")
        elif b and a and _who(b) == _who(a):
            lines.append(f"{level} {_who(a)}: its directory entry changed")
        else:
            lines.append(f"{level}: {_who(b)}, {_ack(b)} → {_who(a)}, {_ack(a)}")
    simple = {
        "repeat": "repeat",
        "after": "trigger delay",
        "cooldown": "cooldown",
    }
    for key, label in simple.items():
        if before[key] != after[key]:
            lines.append(f"{label}: {_plain(before[key])} → {_plain(after[key])}")
    for kind in ("acknowledge", "resolve"):
        b, a = before["sla"][kind], after["sla"][kind]
        if b != a:
            lines.append(f"{kind} SLA: {_plain(b, True)} → {_plain(a, True)}")
    for key, label in (
        ("steps", "steps"),
        ("on", "lifecycle steps (on ...)"),
        ("checks", "QA checks"),
        ("exceptions", "exceptions"),
    ):
        if before[key] != after[key]:
            lines.append(f"{label} changed")
    if before["triage"] != after["triage"]:
        lines.append(f"triage: {_who(before['triage'])} → {_who(after['triage'])}")
    return lines


def _plain(value: Any, duration: bool = False) -> str:
    if value is None:
        return "none"
    if duration or (isinstance(value, int) and value >= 60):
        return format_duration(int(value))
    return str(value)


def _same_events(base: m.PolicySet, head: m.PolicySet, a: n.Cond | None, b: n.Cond | None) -> bool:
    """True when two conditions accept exactly the same events (undecided counts as not)."""
    domains = Domains.build(_merged_schema(base.schema, head.schema), [a, b])
    try:
        ra, rb = domains.compile(a), domains.compile(b)
        return implies(ra, rb, Budget()) and implies(rb, ra, Budget())
    except Undecided:
        return False


def _info_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    return [key for key in ("title", "description", "approvers") if before[key] != after[key]]


# --------------------------------------------------------------------------- diff


def diff_sets(base: m.PolicySet, head: m.PolicySet, base_label: str, head_label: str) -> DiffResult:
    """Compare two checked policy sets."""
    pdiff = PolicyDiff()
    b_names, h_names = set(base.policies), set(head.policies)
    removed = sorted(b_names - h_names)
    added = sorted(h_names - b_names)
    renamed = _renames(base, head, removed, added)
    pdiff.renamed = sorted(renamed.items())
    pdiff.removed = [r for r in removed if r not in renamed]
    pdiff.added = [a for a in added if a not in renamed.values()]

    routing, base_owned, head_owned, undecided = _routing_changes(base, head, renamed)

    timelines: list[TimelineChange] = []
    clocks = Clocks(base, head)
    for name in sorted(b_names & h_names) + [old for old, _ in pdiff.renamed]:
        new_name = renamed.get(name, name)
        bp, hp = base.policies[name], head.policies[new_name]
        b_tl, h_tl = timeline_signature(base, bp), timeline_signature(head, hp)
        retimed = describe_timeline(b_tl, h_tl) if b_tl != h_tl else []
        retimed += clocks.lines(bp, hp)  # schedules and calendars, with a witness instant
        changes = retimed + _trigger_changes(base, head, bp, hp)
        changes += [
            f"{key} changed" for key in _info_changes(info_signature(bp), info_signature(hp))
        ]
        if changes:
            pdiff.changed[new_name] = changes
        if not retimed:
            continue
        b_owned = _owned_by(base_owned, bp.triggers, name)
        h_owned = _owned_by(head_owned, hp.triggers, new_name)
        kinds, witness = _retimed_events(new_name, b_owned, h_owned, undecided)
        if kinds or not hp.triggers:
            event = witness.event(kinds[0]) if witness is not None else None
            timelines.append(TimelineChange(new_name, retimed, kinds, witness, event))
    return DiffResult(base_label, head_label, pdiff, routing, timelines, undecided)


def _renames(
    base: m.PolicySet, head: m.PolicySet, removed: Sequence[str], added: Sequence[str]
) -> dict[str, str]:
    """Old name → new name for each removed policy that an added one repeats exactly
    (same timeline and routing): a rename, not a removal and an addition."""

    def full_sig(s: m.PolicySet, p: m.Policy) -> str:
        return json.dumps(
            [timeline_signature(s, p), routing_signature(p)], sort_keys=True, default=str
        )

    renamed: dict[str, str] = {}
    for old in removed:
        for new in added:
            if new not in renamed.values() and full_sig(base, base.policies[old]) == full_sig(
                head, head.policies[new]
            ):
                renamed[old] = new
                break
    return renamed


def _trigger_changes(base: m.PolicySet, head: m.PolicySet, bp: m.Policy, hp: m.Policy) -> list[str]:
    """How the trigger of a policy changed: not at all, a condition rewritten to accept
    the same events, or really."""
    b_route, h_route = routing_signature(bp), routing_signature(hp)
    if b_route == h_route:
        return []
    if {**b_route, "when": None} == {**h_route, "when": None} and _same_events(
        base, head, bp.when, hp.when
    ):
        return ["condition rewritten (it accepts the same events)"]
    return ["trigger (events, condition or priority) changed"]


def _owned_by(
    owned: Mapping[str, Mapping[str, Region]], kinds: Iterable[str], policy: str
) -> dict[str, Region]:
    """Event kind → the events ``policy`` owns of that kind, for the kinds it triggers on."""
    return {kind: owned[kind][policy] for kind in kinds if policy in owned.get(kind, {})}


def _retimed_events(
    name: str,
    base_owned: Mapping[str, Region],
    head_owned: Mapping[str, Region],
    undecided: list[str],
) -> tuple[list[str], Witness | None]:
    """The event kinds on which a policy whose timeline changed owns events on both sides,
    with a witness for the first; questions too hard to decide go to ``undecided``.

    ``base_owned`` and ``head_owned`` are its regions, by event kind, on either side."""
    kinds: list[str] = []
    witness: Witness | None = None
    for kind in sorted(set(base_owned) & set(head_owned)):
        try:
            w = overlap(base_owned[kind], head_owned[kind], Budget())
        except Undecided as exc:
            undecided.append(f"timeline of {name} on {kind}: {exc.reason}")
            continue
        if w is not None:
            kinds.append(kind)
            if witness is None:
                witness = w
    return kinds, witness


# --------------------------------------------------------------------------- rendering


def render_markdown(d: DiffResult) -> str:
    """A compact PR comment: summary first, long lists and witness events folded away."""
    out = [f"## Escalade: behaviour of `{d.head_label}` against `{d.base_label}`", ""]
    if not d.behaviour_changed:
        out.append(
            "**No behaviour change**: every event is owned by the same policy and "
            "escalates on the same timeline."
        )
    else:
        out.append(
            f"**Behaviour changed**: {len(d.routing)} routing change(s), "
            f"{len(d.timelines)} timeline change(s)"
            + (f", {len(d.undecided)} question(s) undecided" if d.undecided else "")
            + "."
        )
    p = d.policies
    summary = []
    if p.added:
        summary.append("added " + ", ".join(f"`{x}`" for x in p.added))
    if p.removed:
        summary.append("removed " + ", ".join(f"`{x}`" for x in p.removed))
    if p.renamed:
        summary.append("renamed " + ", ".join(f"`{a}` → `{b}`" for a, b in p.renamed))
    if p.changed:
        summary.append("changed " + ", ".join(f"`{x}`" for x in sorted(p.changed)))
    if summary:
        out += ["", "Policies: " + "; ".join(summary) + "."]
    if d.routing:
        out += [
            "",
            "### Events that now route differently",
            "",
            "| events | before | after | for example |",
            "|---|---|---|---|",
        ]
        for r in d.routing:
            out.append(
                f"| {', '.join(r.kinds)} | {_owner_cell(r.before)} | {_owner_cell(r.after)} "
                f"| {_md(r.witness.describe())} |"
            )
    if d.timelines:
        out += ["", "### Escalations that now run on a different timeline", ""]
        for t in d.timelines:
            where = (
                f"{', '.join(t.kinds)} events it owns, e.g. {_md(t.witness.describe())}"
                if t.witness
                else "escalations handed off to it"
            )
            out.append(f"- `{t.policy}` ({where}):")
            out.extend(f"  - {_md(line)}" for line in t.changes)
    if p.changed:
        out += ["", "<details><summary>Every policy change</summary>", ""]
        for name in sorted(p.changed):
            out.append(f"- `{name}`: " + "; ".join(_md(c) for c in p.changed[name]))
        out += ["", "</details>"]
    events = [r.event for r in d.routing] + [t.event for t in d.timelines if t.event]
    if events:
        out += [
            "",
            "<details><summary>Witness events (for <code>escalade explain</code>)</summary>",
            "",
            "```json",
        ]
        out.extend(json.dumps(e, sort_keys=True) for e in events)
        out += ["```", "", "</details>"]
    if d.undecided:
        out += ["", "### Undecided", ""]
        out.extend(f"- {_md(u)}" for u in d.undecided)
    return "\n".join(out) + "\n"


def _owner_cell(name: str) -> str:
    return "*nobody*" if name == NOBODY else f"`{name}`"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def render_json(d: DiffResult) -> str:
    """The diff as JSON (stable keys)."""
    doc = {
        "base": d.base_label,
        "head": d.head_label,
        "behaviour_changed": d.behaviour_changed,
        "policies": {
            "added": d.policies.added,
            "removed": d.policies.removed,
            "renamed": [list(x) for x in d.policies.renamed],
            "changed": d.policies.changed,
        },
        "routing": [
            {
                "kinds": r.kinds,
                "before": None if r.before == NOBODY else r.before,
                "after": None if r.after == NOBODY else r.after,
                "witness": r.witness.describe(),
                "event": r.event,
            }
            for r in d.routing
        ],
        "timelines": [
            {
                "policy": t.policy,
                "changes": t.changes,
                "kinds": t.kinds,
                "witness": t.witness.describe() if t.witness else None,
                "event": t.event,
            }
            for t in d.timelines
        ],
        "undecided": d.undecided,
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


# --------------------------------------------------------------------------- loading


def errors_of(result: CheckResult) -> Iterable[str]:
    for d in result.diagnostics:
        if d.severity == "error":
            yield f"{d.span}: {d.code} {d.message}"
