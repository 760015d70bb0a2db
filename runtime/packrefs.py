"""The cross-references of a rule pack that its JSON Schema cannot express.

Every name resolves (owners, triage, handoff targets, channels, step targets,
triggers, condition fields) and policies are sorted by name; each problem is
reported with its JSON pointer (``/policies/2/owners/0/ref``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from escalade.runtime.clock import read_time
from escalade.runtime.conditions import atoms, split_field
from escalade.runtime.schedule import problems
from escalade.runtime.schedulecodec import read_calendar
from escalade.runtime.teams import read_team


def _conditions(p: Mapping[str, Any], at: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    if p["when"] is not None:
        yield f"{at}/when", p["when"]
    for i, c in enumerate(p["checks"]["state"]):
        yield f"{at}/checks/state/{i}/when", c["when"]
    for i, c in enumerate(p["checks"]["close"]):
        if "when" in c:
            yield f"{at}/checks/close/{i}/when", c["when"]
    for i, e in enumerate(p["exceptions"]):
        if e["when"] is not None:
            yield f"{at}/exceptions/{i}/when", e["when"]


@dataclass(frozen=True, slots=True)
class _Names:
    """What a pack's references may name, read once for every policy."""

    kinds: Mapping[str, Mapping[str, Any]]  # person, team, channel -> the directory's
    policies: frozenset[str]
    events: frozenset[str]
    objects: Mapping[str, Mapping[str, Any]]


def reference_problems(raw: Mapping[str, Any]) -> list[str]:
    """Cross-references the schema cannot express: names resolve, policies are sorted."""
    out: list[str] = []
    directory = raw["directory"]
    people, teams = directory["people"], directory["teams"]
    names = [p["name"] for p in raw["policies"]]
    if names != sorted(set(names)):
        out.append("/policies: policies must be sorted by name, each name once")
    for team, t in sorted(teams.items()):
        for i, member in enumerate(t["members"]):
            if member not in people:
                out.append(f"/directory/teams/{team}/members/{i}: no person {member!r}")
    known = _Names(
        kinds={"person": people, "team": teams, "channel": directory["channels"]},
        policies=frozenset(names),
        events=frozenset(raw["schema"]["events"]),
        objects=raw["schema"]["objects"],
    )
    out += _roster_problems(directory)
    for j, w in enumerate(directory.get("maintenance", ())):
        if w["policy"] is not None and w["policy"] not in names:
            out.append(f"/directory/maintenance/{j}/policy: no policy {w['policy']!r}")
        if w["team"] is not None and w["team"] not in teams:
            out.append(f"/directory/maintenance/{j}/team: no team {w['team']!r}")
        for key in ("from", "to"):
            if read_time(w[key]) is None:
                out.append(f"/directory/maintenance/{j}/{key}: {w[key]!r} is not an ISO-8601 time")
    calendars = directory.get("calendars", {})
    for i, p in enumerate(raw["policies"]):
        out += _policy_references(p, f"/policies/{i}", known)
        for kind, name in sorted(((p["sla"] or {}).get("calendar") or {}).items()):
            if name is not None and name not in calendars:
                out.append(f"/policies/{i}/sla/calendar/{kind}: no calendar {name!r}")
    return out


def _roster_problems(directory: Mapping[str, Any]) -> list[str]:
    """Schedules and calendars that could not run: unknown zones, unreadable times,
    people who are not in the directory."""
    out: list[str] = []
    people = directory["people"]
    for name, raw in sorted(directory["teams"].items()):
        at = f"/directory/teams/{name}"
        try:
            team = read_team(name, raw)
        except ValueError as exc:  # ScheduleError and unreadable times
            out.append(f"{at}: {exc}")
            continue
        if team.schedule is None:
            continue
        out += [f"{at}/schedule: {p}" for p in problems(team.schedule)]
        out += [f"{at}/schedule: no person {p!r}" for p in team.people() if p not in people]
    for name, raw in sorted(directory.get("calendars", {}).items()):
        out += [f"/directory/calendars/{name}: {p}" for p in problems(read_calendar(name, raw))]
    return out


def _policy_references(p: Mapping[str, Any], at: str, known: _Names) -> list[str]:
    """One policy's references: triggers, owners, triage, handoffs, channels, fields."""
    kinds = known.kinds
    out = [
        f"{at}/triggers/{j}: event {trig!r} is not in /schema/events"
        for j, trig in enumerate(p["triggers"])
        if trig not in known.events
    ]
    out += [
        f"{at}/owners/{j}/ref: no {o['kind']} {o['ref']!r} in the directory"
        for j, o in enumerate(p["owners"])
        if o["ref"] not in kinds[o["kind"]]
    ]
    if p["triage"] is not None and p["triage"]["ref"] not in kinds[p["triage"]["kind"]]:
        out.append(f"{at}/triage/ref: no {p['triage']['kind']} {p['triage']['ref']!r}")
    for j, e in enumerate(p["exceptions"]):
        if e["handoff"] not in known.policies:
            out.append(f"{at}/exceptions/{j}/handoff: no policy {e['handoff']!r}")
        if (e["when"] is None) == (e["failure"] is None):
            out.append(f"{at}/exceptions/{j}: give exactly one of `when` and `failure`")
    out += [
        f"{at}/checks/delivery/{j}/then: no channel {c['then']!r}"
        for j, c in enumerate(p["checks"]["delivery"])
        if c["then"] is not None and c["then"] not in kinds["channel"]
    ]
    moments = [("steps", p["steps"])] + [(f"on/{k}", v) for k, v in p["on"].items()]
    for where, steps in moments:
        for j, s in enumerate(steps):
            undo = [(f"undo/args/{k}", a) for k, a in enumerate(s.get("undo", {}).get("args", ()))]
            for k, a in [*((f"args/{k}", a) for k, a in enumerate(s["args"])), *undo]:
                if "ref" in a and a["ref"] not in kinds[a["kind"]]:
                    out.append(f"{at}/{where}/{j}/{k}: no {a['kind']} {a['ref']!r}")
    pm = p.get("postmortem")
    if pm is not None and pm["owner"] not in kinds[pm["kind"]]:
        out.append(f"{at}/postmortem/owner: no {pm['kind']} {pm['owner']!r}")
    objects = known.objects
    for where, cond in _conditions(p, at):
        for atom in atoms(cond):
            obj, name = split_field(atom["field"])
            if name not in objects.get(obj, {}):
                out.append(f"{where}: field {atom['field']!r} is not in /schema/objects")
    return out
