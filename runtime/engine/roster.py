"""On call at run time: the pack's schedules with the store's overrides and absences (#13).

The effective schedule of a team is its pack schedule with the overrides recorded in the
store (``escalade override``) appended, the most recently recorded last (a later override
wins where two overlap). Every answer about who is on call goes through
:func:`effective_team`: assignment (:mod:`.ownership`), ``escalade oncall``, the single
pane and the gap check below.

The gap check (:func:`gaps_left`) tells whether an absence or an override about to be
recorded leaves a team, or a policy's whole chain, with nobody for some window of the
change, on top of every absence and override already stored. Only the windows the change
adds are named (a gap already there is not the change's doing). A team without a schedule
has nobody when every member is away at once; a person in a chain is unreachable while
away. An override's person who is away while the override is meant to apply leaves the
override with nobody (the schedule would give the on-call back to whom it replaces).

Read-only: nothing here writes to the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any
from weakref import WeakKeyDictionary

from escalade.runtime.clock import format_time
from escalade.runtime.engine.context import Moment, Refused, Runtime
from escalade.runtime.engine.loaded import LoadedPack
from escalade.runtime.intervals import (
    Intervals,
    clip,
    intersect,
    normalize,
    subtract,
)
from escalade.runtime.schedule import Override, Schedule, Segment, describe_gap, summarize_gaps
from escalade.runtime.store import Store
from escalade.runtime.store.records import OverrideRow
from escalade.runtime.teams import Team

Windows = Mapping[str, Sequence[tuple[int, int]]]
DAY = 86400


def as_override(row: OverrideRow) -> Override:
    """A stored override as the schedule runs it."""
    return Override(row.person, row.since, row.until, row.replaces, "store")


def stored_overrides(store: Store | None, team: str, start: int, end: int) -> list[OverrideRow]:
    """The store's overrides of ``team`` overlapping ``[start, end)``, in recording order."""
    if store is None:
        return []
    return sorted(store.overrides(start, end, team), key=lambda row: row.id)


def with_overrides(team: Team, overrides: Iterable[Override]) -> Team:
    """``team`` with ``overrides`` on top of its schedule's (unchanged without a schedule)."""
    extra = tuple(overrides)
    if team.schedule is None or not extra:
        return team
    schedule = replace(team.schedule, overrides=(*team.schedule.overrides, *extra))
    return replace(team, schedule=schedule)


def effective_team(store: Store | None, team: Team, start: int, end: int) -> Team:
    """``team`` with the store's overrides overlapping ``[start, end)`` applied."""
    if team.schedule is None:
        return team
    rows = stored_overrides(store, team.name, start, end)
    return with_overrides(team, (as_override(r) for r in rows))


# Per store: (roster version, the earliest instant the rows answer for, every override
# not over by then).
_KEPT: WeakKeyDictionary[Any, tuple[int, int, list[OverrideRow]]] = WeakKeyDictionary()
_FOREVER = 2**62


def team_at(store: Store | None, team: Team, at: int) -> Team:
    """``team`` with the store's overrides running at instant ``at`` applied.

    The assignment path asks this for every escalation, so inside a transaction the
    overrides are read once and kept per store while the store's roster version (raised
    by every override and absence, by any process) is unchanged; :func:`forget` drops
    them too."""
    if team.schedule is None or store is None:
        return team
    version = store.roster_version()
    kept = _KEPT.get(store)
    if version is None or kept is None or kept[0] != version or at < kept[1]:
        rows_now = sorted(store.overrides(at, _FOREVER), key=lambda r: r.id)
        kept = (version if version is not None else -1, at, rows_now)
        if version is not None:
            _KEPT[store] = kept
    rows = (r for r in kept[2] if r.team == team.name and r.since <= at < r.until)
    return with_overrides(team, (as_override(r) for r in rows))


def forget(store: Store) -> None:
    """Read the store's overrides again at the next :func:`team_at`."""
    _KEPT.pop(store, None)


def team_zone(team: Team) -> str:
    """The zone a team's windows are named in: its first layer's (UTC without one)."""
    if team.schedule is None or not team.schedule.layers:
        return "UTC"
    return team.schedule.layers[0].zone


def away_spans(away: Windows, person: str) -> Intervals:
    return normalize(away.get(person, ()))


def team_gaps(team: Team, start: int, end: int, away: Windows) -> Intervals:
    """Where nobody of ``team`` (its effective schedule) is there within ``[start, end)``:
    the schedule's gaps, or, without a schedule, where every member is away at once."""
    if team.schedule is not None:
        return team.schedule.gaps(start, end, away)
    spans: Intervals = ((start, end),)
    for member in team.members:
        spans = intersect(spans, away_spans(away, member))
    return spans


def available_runs(team: Team, start: int, end: int, away: Windows) -> list[Segment]:
    """An unscheduled team's calendar: runs of who is available (any of them may act)."""
    edges = {start, end}
    for member in team.members:
        for a, b in away_spans(away, member):
            edges.update(e for e in (a, b) if start < e < end)
    runs: list[Segment] = []
    points = sorted(edges)
    for a, b in pairwise(points):
        there = [m for m in team.members if not _inside(away_spans(away, m), a)]
        who = ", ".join(there) if there else None
        if runs and runs[-1].person == who:
            runs[-1] = replace(runs[-1], end=b)
        else:
            runs.append(Segment(a, b, who, None, "members" if who else "none"))
    return runs


def _inside(spans: Intervals, at: int) -> bool:
    return any(a <= at < b for a, b in spans)


# --- the calendar ------------------------------------------------------------------


def calendar(
    store: Store, pack: LoadedPack, name: str, start: int, end: int
) -> list[dict[str, Any]]:
    """``name``'s on-call calendar over ``[start, end)``: one entry per segment with
    ``from``, ``to``, ``person`` (None: nobody), ``layer``, ``source`` (``layer``,
    ``policy``, ``store``, ``members`` or ``none``) and ``note`` (which layer, whose
    override and why, who is absent)."""
    spec = pack.teams[name]
    away = store.absence_windows(start, end)
    if spec.schedule is None:
        segments = available_runs(spec, start, end, away)
        rows: list[OverrideRow] = []
    else:
        rows = stored_overrides(store, name, start, end)
        team = with_overrides(spec, (as_override(r) for r in rows))
        assert team.schedule is not None
        segments = team.schedule.segments(start, end, away)
    return [
        {
            "from": format_time(s.start),
            "to": format_time(s.end),
            "start": s.start,
            "end": s.end,
            "person": s.person,
            "layer": s.layer,
            "source": s.source,
            "note": segment_note(spec, s, rows, away),
        }
        for s in segments
    ]


def segment_note(team: Team, s: Segment, rows: Sequence[OverrideRow], away: Windows) -> str:
    """Why ``s.person`` is on call: the layer (and who is absent), or whose override."""
    if s.source == "none":
        return "nobody on call"
    if s.source == "members":
        return "no schedule: any available member"
    if s.source == "store":
        found = [r for r in rows if r.person == s.person and r.since <= s.start < r.until]
        if found:
            row = found[-1]
            instead = f" for {row.replaces}" if row.replaces else ""
            return f"override{instead} by {row.actor}: {row.reason}"
        return "override"
    if s.source == "policy":
        return "override (in the policy)"
    note = f"layer {s.layer}"
    layers = team.schedule.layers if team.schedule else ()
    layer = next((x for x in layers if x.name == s.layer), None)
    scheduled = layer.member_at(s.start) if layer else None
    if scheduled is not None and scheduled != s.person:
        note += f" | {scheduled} absent \u2192 next member"
    return note


def oncall_now_next(
    store: Store, pack: LoadedPack, name: str, now: int, days: int = 7
) -> dict[str, Any]:
    """Who is on call at ``now`` and the next change of person within ``days`` days, with
    the calendar of those days (see :func:`calendar`)."""
    entries = calendar(store, pack, name, now, now + days * DAY)
    current = entries[0]["person"] if entries else None
    later = next((e for e in entries if e["person"] != current), None)
    return {
        "now": current,
        "next": later["person"] if later else None,
        "next_at": later["from"] if later else None,
        "calendar": entries,
    }


# --- the gap check -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """What is about to be recorded: an absence window, or an override of a team."""

    start: int
    end: int
    absent: str | None = None  # the person marked absent over [start, end)
    team: str | None = None  # the team overridden
    override: Override | None = None


@dataclass(frozen=True, slots=True)
class Gap:
    """Windows (``spans``) a change leaves ``name`` (a team, a policy's chain or the
    override itself) with nobody, named in ``zone``; ``used_by`` says where a team is used."""

    kind: str  # team | chain | override
    name: str
    spans: Intervals
    zone: str
    used_by: str = ""
    why: str = ""

    def windows(self) -> list[str]:
        """Each window in words, in the zone and in UTC."""
        return [describe_gap(a, b, self.zone) for a, b in self.spans]

    def describe(self) -> str:
        lines = summarize_gaps(self.spans, self.zone)
        more = len(lines) - 1
        text = lines[0] + (f" and {more} more window{'s' if more > 1 else ''}" if more else "")
        what = {
            "team": self.name,
            "chain": f"policy {self.name}'s chain",
            "override": "the override",
        }[self.kind]
        out = f"leaves {what} with nobody {text}"
        if self.why:
            out += f" ({self.why})"
        if self.used_by:
            out += f"; {self.used_by}"
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "zone": self.zone,
            "windows": [{"from": format_time(a), "to": format_time(b)} for a, b in self.spans],
            "described": self.windows(),
        }


@dataclass
class _World:
    """The rosters before and after the change, over the change's window."""

    store: Store
    pack: LoadedPack
    change: Change
    before: dict[str, list[tuple[int, int]]]
    after: dict[str, list[tuple[int, int]]]
    teams: dict[str, tuple[Team, Team]] = field(default_factory=dict)
    holes: dict[str, tuple[Intervals, Intervals]] = field(default_factory=dict)

    def team(self, name: str) -> tuple[Team, Team]:
        """(before, after) effective team ``name``."""
        if name not in self.teams:
            c = self.change
            base = effective_team(self.store, self.pack.teams[name], c.start, c.end)
            added = [c.override] if c.override is not None and c.team == name else []
            self.teams[name] = (base, with_overrides(base, added))
        return self.teams[name]

    def gaps(self, name: str) -> tuple[Intervals, Intervals]:
        """(before, after) gaps of team ``name`` within the change's window."""
        if name not in self.holes:
            before, after = self.team(name)
            c = self.change
            self.holes[name] = (
                team_gaps(before, c.start, c.end, self.before),
                team_gaps(after, c.start, c.end, self.after),
            )
        return self.holes[name]

    def unreachable(self, ref: str, kind: str) -> tuple[Intervals, Intervals]:
        """(before, after) windows where chain reference ``ref`` reaches nobody."""
        c = self.change
        if ref in self.pack.teams:
            return self.gaps(ref)
        if kind == "team":  # not in this directory: nobody, before and after
            return ((c.start, c.end),), ((c.start, c.end),)
        return (
            clip(away_spans(self.before, ref), c.start, c.end),
            clip(away_spans(self.after, ref), c.start, c.end),
        )


def gaps_left(store: Store, pack: LoadedPack, change: Change) -> list[Gap]:
    """The windows ``change`` leaves a team, a policy's chain or the override with nobody
    (none: the change leaves everyone covered as before)."""
    before = {p: list(w) for p, w in store.absence_windows(change.start, change.end).items()}
    after = {p: list(w) for p, w in before.items()}
    if change.absent is not None:
        after.setdefault(change.absent, []).append((change.start, change.end))
    world = _World(store, pack, change, before, after)
    touched = _touched_teams(world)
    found: list[Gap] = []
    for name in touched:
        old, new = world.gaps(name)
        added = subtract(new, old)
        if added:
            zone = team_zone(world.team(name)[1])
            found.append(Gap("team", name, added, zone, used_by(pack, name)))
    found += _chain_gaps(world, touched)
    if change.override is not None and change.team is not None:
        found += _override_gap(world)
    return found


def _touched_teams(world: _World) -> list[str]:
    """The teams the change may leave with nobody: those it overrides or the absent
    person is in (as a member or an override's person)."""
    c = world.change
    names = []
    for name in sorted(world.pack.teams):
        if name == c.team or (c.absent is not None and c.absent in world.team(name)[1].people()):
            names.append(name)
    return names


def used_by(pack: LoadedPack, ref: str) -> str:
    """``used as primary by a, b and as backup by c`` for a chain reference."""
    levels: dict[str, list[str]] = {}
    for name, rules in sorted(pack.rules.items()):
        for owner in rules.policy.owners:
            if owner.ref == ref:
                levels.setdefault(owner.level, []).append(name)
    parts = [f"as {level} by {', '.join(names)}" for level, names in levels.items()]
    return f"used {' and '.join(parts)}" if parts else ""


def _chain_gaps(world: _World, touched: Sequence[str]) -> list[Gap]:
    """Policies whose chain includes a touched team or the absent person and that the
    change leaves with nobody at all."""
    c = world.change
    refs = {*touched, *((c.absent,) if c.absent else ())}
    found = []
    for name, rules in sorted(world.pack.rules.items()):
        owners = rules.policy.owners
        if not owners or not any(o.ref in refs for o in owners):
            continue
        old: Intervals = ((c.start, c.end),)
        new: Intervals = ((c.start, c.end),)
        for owner in owners:
            b, a = world.unreachable(owner.ref, owner.kind)
            old, new = intersect(old, b), intersect(new, a)
        added = subtract(new, old)
        if added:
            zone = next(
                (team_zone(world.pack.teams[o.ref]) for o in owners if o.ref in world.pack.teams),
                "UTC",
            )
            chain = ", ".join(o.ref for o in owners)
            found.append(Gap("chain", name, added, zone, why=f"{chain} all unavailable"))
    return found


def _override_gap(world: _World) -> list[Gap]:
    """Where the override is meant to apply but its person is away."""
    c, o = world.change, world.change.override
    assert o is not None and c.team is not None
    _, team = world.team(c.team)
    if team.schedule is None:
        return []
    meant: Intervals = ((o.start, o.end),)
    if o.replaces is not None:
        layered = Schedule(team.schedule.layers).segments(o.start, o.end, world.after)
        meant = normalize((s.start, s.end) for s in layered if s.person == o.replaces)
    missing = intersect(meant, away_spans(world.after, o.person))
    if not missing:
        return []
    instead = o.replaces or "the schedule"
    why = f"{o.person} is absent then; {instead} would stay on call"
    return [Gap("override", c.team, missing, team_zone(team), why=why)]


# --- what an operator asks -----------------------------------------------------------


def window_words(start: int, end: int) -> str:
    return f"{format_time(start)} \u2192 {format_time(end)}"


def refusal(what: str, gaps: Sequence[Gap]) -> str:
    """Why a change is refused: the windows it leaves with nobody, and the way out."""
    named = "; ".join(g.describe() for g in gaps)
    return f"{what} {named}. Give --accept-gap REASON to record it anyway."


def check_override(
    store: Store,
    pack: LoadedPack,
    change: Change,
    now: int,
) -> None:
    """:class:`Refused` unless ``change`` is an override that can be recorded: a team with a
    schedule, a person of the directory, a window ending after it starts and after now,
    and (with ``replaces``) a member of the team on call at some time of the window."""
    o, name = change.override, change.team
    assert o is not None and name is not None
    spec = pack.teams.get(name)
    if spec is None:
        raise Refused(f"no team {name!r} in the directory")
    if spec.schedule is None:
        raise Refused(
            f"team {name} has no schedule (every available member is reached): an override"
            " needs a schedule"
        )
    if o.person not in pack.people:
        raise Refused(f"{o.person!r} is not a person in the directory")
    if o.end <= o.start:
        raise Refused(f"--until {format_time(o.end)} is not after --from {format_time(o.start)}")
    if o.end <= now:
        raise Refused(f"--until {format_time(o.end)} is not in the future")
    if o.replaces is None:
        return
    team = effective_team(store, spec, o.start, o.end)
    if o.replaces not in team.people():
        raise Refused(f"{o.replaces!r} is not a member of {name}")
    away = store.absence_windows(o.start, o.end)
    assert team.schedule is not None
    layered = Schedule(team.schedule.layers).segments(o.start, o.end, away)
    if not any(s.person == o.replaces for s in layered):
        raise Refused(
            f"{o.replaces} is not on call for {name} at any time {window_words(o.start, o.end)}"
            " (outside any shift, or absent throughout)"
        )


def checked_gaps(
    store: Store, pack: LoadedPack, change: Change, what: str, accept_gap: str | None
) -> list[Gap]:
    """The windows ``change`` leaves with nobody; :class:`Refused` when there are any and
    ``accept_gap`` gives no reason (``""``: not checked at all)."""
    if accept_gap == "":
        return []
    gaps = gaps_left(store, pack, change)
    if gaps and not (accept_gap or "").strip():
        raise Refused(refusal(what, gaps))
    return gaps


def audit_accepted(
    rt: Runtime, m: Moment, pack: LoadedPack, what: str, gaps: Sequence[Gap], why: str | None
) -> None:
    """Audit the gaps an operator accepted (``gap_accepted``, with their reason)."""
    if gaps:
        named = "; ".join(g.describe() for g in gaps)
        rt.audit(
            m,
            "gap_accepted",
            None,
            pack,
            None,
            reason=f"{what} {named}; accepted: {why}",
            detail={"gaps": [g.as_json() for g in gaps], "why": why},
        )


def record_override(
    rt: Runtime,
    pack: LoadedPack,
    change: Change,
    what: str,
    reason: str,
    accept_gap: str | None,
    m: Moment,
) -> tuple[int, str | None, str | None]:
    """Write and audit an override checked by :func:`check_override` (and the gaps
    accepted, checked again in this transaction): (its id, who was on call now before,
    who is after)."""
    o, team, store = change.override, change.team, rt.store
    assert o is not None and team is not None
    gaps = checked_gaps(store, pack, change, what, accept_gap)
    before = team_at(store, pack.teams[team], m.now).on_call(m.now, store.absences(m.now))
    ident = store.add_override(team, o.person, o.start, o.end, o.replaces, reason, m.actor)
    forget(store)
    detail = {"id": ident, "team": team, "person": o.person, "replaces": o.replaces}
    detail |= {"since": o.start, "until": o.end, "why": reason}
    rt.audit(m, "override", None, pack, None, reason=f"{what}: {reason}", detail=detail)
    audit_accepted(rt, m, pack, what, gaps, accept_gap)
    after = team_at(store, pack.teams[team], m.now).on_call(m.now, store.absences(m.now))
    return ident, before, after
