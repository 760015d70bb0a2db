"""The coverage proof in time (E208, W209): when is nobody reachable at an owner level?

For every policy and every owner level this pass computes, exactly, the set of
instants at which the level reaches nobody, over the horizon of
:func:`escalade.runtime.schedule.plan_horizon`: from the latest schedule start
over max(the LCM of every cycle, 366 days) in whole weeks, so every
daylight-saving change and every listed holiday lies inside and the answer
never depends on the day the build runs. Everything is computed on interval
sets from the schedules' boundaries (hand-offs, restriction edges, overrides),
never sampled.

Who a level reaches at instant t:

- a person: always on call, reachable iff they have an email, slack or pager;
- a team without a schedule: every member is notified, so reachable iff any
  member has a contact point;
- a team with a schedule (a ``rotation`` is a one-layer schedule): reachable iff
  the person the schedule puts on call at t has a contact point. No layer
  active, or the member on call unreachable, is a gap: the runtime pages the
  member on call, not a lower layer. ``round_robin`` and ``all()`` pick among
  the members on call by the schedule, so their intervals are the same
  (:func:`team_gaps` takes the strategy to keep that decision in one place).

The runtime's last resort (triage) does not count as coverage.

E208 reports the windows where the whole chain reaches nobody (the intersection
of the levels' gaps), at the policy's name; W209 reports, per level, the
windows where that level reaches nobody but another level does (never the same
window twice). Each diagnostic carries a witness: an event the policy owns, at
the first instant of the gap, which ``escalade explain`` accepts.

Levels whose owner is already an error elsewhere (unknown names, a team whose
declaration has an error, a person without a contact point: E207) add no W209,
and a chain made only of such levels no E208: one defect, one diagnostic.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from escalade.compiler import model as m
from escalade.compiler import nodes as n
from escalade.compiler.algebra import DEFAULT_STEPS, Budget, Undecided, Witness
from escalade.compiler.algebra import find_outside_indexed as _find_outside
from escalade.compiler.diagnostics import Collector, Note
from escalade.runtime.intervals import Intervals, intersect, measure, subtract
from escalade.runtime.localtime import local
from escalade.runtime.localtime import zone as zone_info
from escalade.runtime.schedule import Horizon, Schedule, ScheduleError, check, plan_horizon
from escalade.runtime.schedule import summarize_gaps as _summarize

CONTACT_POINTS = frozenset({"email", "slack", "pager"})
MOST_PHRASES = 3  # windows named in a message; the rest are counted
DAY = 86400
STRATEGIES = (None, "round_robin", "all")  # how an owner level picks among a team


def has_contact(pset: m.PolicySet, person: str) -> bool:
    """Whether ``person`` is declared with an email, slack or pager ("timezone" is not one)."""
    p = pset.people.get(person)
    return p is not None and bool(CONTACT_POINTS & set(p.contacts))


def team_gaps(
    pset: m.PolicySet, team: m.Team, lo: int, hi: int, strategy: str | None = None
) -> Intervals:
    """Where ``team`` reaches nobody within ``[lo, hi)``.

    ``strategy`` (None, ``round_robin`` or ``all``) is how the level picks among the
    team: with a schedule, every strategy picks among the members the schedule puts on
    call, so the intervals are the same; without one, every member is a candidate."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown pick {strategy!r}")  # E105 reports it; never analysed
    if lo >= hi:
        return ()
    if team.schedule is None or not team.schedule.layers:
        reachable = any(has_contact(pset, p) for p in team.members)
        return () if reachable else ((lo, hi),)
    return team.schedule.gaps(lo, hi, reachable=lambda person: has_contact(pset, person))


@dataclass(frozen=True, slots=True)
class Level:
    """One owner level's gaps; ``reported`` when another check already names its defect."""

    owner: m.Owner
    gaps: Intervals
    zone: str
    reported: bool = False


@dataclass
class Reach:
    """The facts of one run of the pass: the horizon and each usable team's gaps."""

    pset: m.PolicySet
    horizon: Horizon
    usable: dict[str, m.Team]  # teams whose declaration has no error
    _team_gaps: dict[str, Intervals]

    @classmethod
    def build(cls, pset: m.PolicySet, diags: Collector) -> Reach:
        broken = _broken_teams(pset, diags)
        usable = {
            name: t
            for name, t in sorted(pset.teams.items())
            if name not in broken and t.members and _schedule_ok(t.schedule)
        }
        schedules = [t.schedule for t in usable.values() if t.schedule is not None]
        calendars = [pset.calendars[name] for name in sorted(pset.calendars)]
        return cls(pset, plan_horizon(schedules, calendars), usable, {})

    def level(self, owner: m.Owner) -> Level | None:
        """The level's gaps over the horizon; None when the owner cannot be analysed."""
        lo, hi = self.horizon.start, self.horizon.end
        if owner.ref_kind == "person" and owner.ref in self.pset.people:
            reachable = has_contact(self.pset, owner.ref)
            return Level(owner, () if reachable else ((lo, hi),), "UTC", not reachable)
        team = self.usable.get(owner.ref) if owner.ref_kind == "team" else None
        if team is None or owner.pick not in STRATEGIES:
            return None  # an unknown pick is E105
        key = f"{team.name}|{owner.pick}"  # round_robin | all | None
        if key not in self._team_gaps:
            self._team_gaps[key] = team_gaps(self.pset, team, lo, hi, owner.pick)
        return Level(owner, self._team_gaps[key], team.zone)


def _schedule_ok(schedule: Schedule | None) -> bool:
    if schedule is None:
        return True
    try:
        return not check(schedule)
    except ScheduleError:
        return False


def _broken_teams(pset: m.PolicySet, diags: Collector) -> set[str]:
    """Teams whose declaration contains an error (E106, E101, E205, ...)."""
    spans: dict[str, n.Span] = {}
    for f in pset.files:
        for decl in f.decls:
            if isinstance(decl, n.TeamDecl):
                spans.setdefault(decl.name.value, decl.span)
    errors = [d.span for d in diags.diagnostics() if d.severity == "error"]
    return {name for name, span in spans.items() if any(_inside(e, span) for e in errors)}


def _inside(at: n.Span, span: n.Span) -> bool:
    return at.file == span.file and (
        (span.line, span.col) <= (at.line, at.col) <= (span.end_line, span.end_col)
    )


# --------------------------------------------------------------------------- words


def iso(at: int) -> str:
    """An instant as ISO-8601 UTC with a ``Z``."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_PLURAL = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")


def windows_phrase(gaps: Intervals, zone: str, horizon: Horizon) -> str:
    """The gaps in words: windows at the same local times grouped (over the days of the
    week too, for windows of at most a night), the longest in all first, at most three
    phrases, then how many more there are."""
    if gaps == ((horizon.start, horizon.end),):
        return "at any time"
    tz = zone_info(zone)
    groups: dict[tuple[int, int, int, int], list[tuple[int, int]]] = {}
    for a, b in gaps:
        ls, le = local(tz, a), local(tz, b)
        days = (le.date() - ls.date()).days
        start, end = ls.hour * 60 + ls.minute, le.hour * 60 + le.minute
        groups.setdefault((ls.weekday() if days > 1 else -1, start, days, end), []).append((a, b))
    ranked = sorted(groups.values(), key=lambda spans: (-measure(tuple(spans)), spans[0][0]))
    phrases = [_phrase(spans, zone) for spans in ranked[:MOST_PHRASES]]
    rest = len(ranked) - len(phrases)
    more = f" and {rest} more window{'s' if rest > 1 else ''}" if rest > 0 else ""
    return ", ".join(phrases) + more


def _phrase(spans: list[tuple[int, int]], zone: str) -> str:
    """One group: a single window with its dates, one weekday's as ``summarize_gaps``
    says it, several weekdays' as ``Mondays-Thursdays 18:00-09:00`` (or ``daily``)."""
    tz = zone_info(zone)
    weekdays = sorted({local(tz, a).weekday() for a, _ in spans})
    if len(spans) == 1 or len(weekdays) == 1:
        return _summarize(spans, zone)[0]
    ls, le = local(tz, spans[0][0]), local(tz, spans[0][1])
    last = local(tz, spans[-1][0])
    first_utc = datetime.fromtimestamp(spans[0][0], UTC)
    utc = f" = {first_utc:%H:%M} UTC" if zone != "UTC" else ""
    return (
        f"{_days(weekdays)} {ls:%H:%M}\u2013{le:%H:%M} {zone} ({len(spans)} times, "
        f"{ls:%Y-%m-%d} to {last:%Y-%m-%d}; first {ls:%Y-%m-%d %H:%M} {zone}{utc})"
    )


def _days(weekdays: list[int]) -> str:
    if len(weekdays) == 7:
        return "daily"
    if len(weekdays) > 2 and weekdays[-1] - weekdays[0] == len(weekdays) - 1:
        return f"{_PLURAL[weekdays[0]]}\u2013{_PLURAL[weekdays[-1]]}"
    names = [_PLURAL[d] for d in weekdays]
    return ", ".join(names[:-1]) + f" and {names[-1]}"


def _horizon_words(h: Horizon) -> str:
    first = datetime.fromtimestamp(h.start, UTC).date()
    last = datetime.fromtimestamp(h.end - 1, UTC).date()
    weeks = (h.end - h.start) // (7 * DAY)
    return f"checked exactly from {first} to {last} ({weeks} weeks: every cycle, DST change and holiday)"


# --------------------------------------------------------------------------- witness


def owned_witness(pset: m.PolicySet, policy: m.Policy) -> tuple[str, Witness] | None:
    """(event kind, witness) of an event ``policy`` owns (no higher priority matches it
    first), else one it matches; None for a policy without trigger or an analysable
    condition."""
    from escalade.compiler.passes.analysis import analyse  # analysis imports this module

    result = analyse(pset)
    region = result.regions.get(policy.name)
    if not policy.triggers or region is None or region.is_empty():
        return None
    for kind in dict.fromkeys(policy.triggers):
        table = result.tables.get(kind)
        if table is None or not table.decidable_below(policy.priority):
            continue
        above = table.above(policy.priority)
        budget = Budget(DEFAULT_STEPS)
        try:
            for i in table.cubes_of.get(policy.name, []):
                cube = table.cubes[i]
                higher = table.index.touching(cube) & above
                rest = _find_outside(result.domains, cube, table.index, higher, budget)
                if rest is not None:
                    return kind, result.domains.witness(rest)
        except Undecided:
            continue
    witness = region.witness()
    return None if witness is None else (policy.triggers[0], witness)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What a gap finding shows: the event (or None) and a sentence saying when."""

    event: dict[str, Any] | None
    sentence: str


def evidence(pset: m.PolicySet, policy: m.Policy, at: int, zone: str) -> Evidence:
    """A witness at instant ``at`` (the first of a gap) for ``escalade explain``."""
    when = f"{iso(at)} ({datetime.fromtimestamp(at, UTC).astimezone(zone_info(zone)):%Y-%m-%d %H:%M} {zone})"
    found = owned_witness(pset, policy)
    if found is None:
        reason = "it is entered by handoff only" if not policy.triggers else "no witness event"
        return Evidence(None, f"first at {when} ({reason})")
    kind, witness = found
    event = witness.event(kind, id=f"gap-{policy.name}", at=iso(at))
    return Evidence(event, f"e.g. a {kind} event with {witness.describe()} at {when}")


# --------------------------------------------------------------------------- the pass


def check_reachability(pset: m.PolicySet, diags: Collector) -> None:
    """E208: the whole owner chain reaches nobody at some instant; W209: one level does
    not while another does. Exact over the horizon of ``plan_horizon``."""
    try:
        reach = Reach.build(pset, diags)
    except ScheduleError:  # pragma: no cover - lowering refuses schedules that raise
        return
    for p in sorted(pset.policies.values(), key=lambda q: (q.span, q.name)):
        if not p.owners:
            continue
        levels = [reach.level(o) for o in p.owners]
        if any(level is None for level in levels):
            continue  # an unknown owner: other checks report it
        _report_policy(reach, p, [lv for lv in levels if lv is not None], diags)


def _chain_zone(levels: Sequence[Level]) -> str:
    return next((lv.zone for lv in levels if lv.zone != "UTC"), "UTC")


def _report_policy(reach: Reach, p: m.Policy, levels: list[Level], diags: Collector) -> None:
    chain = levels[0].gaps
    for lv in levels[1:]:
        chain = intersect(chain, lv.gaps)
    if chain and not all(lv.reported for lv in levels):
        _report_chain(reach, p, levels, chain, diags)
    for lv in levels:
        own = subtract(lv.gaps, chain)
        if own and not lv.reported:
            _report_level(reach, p, lv, own, diags)


def _capped_notes(reach: Reach, span: n.Span) -> list[Note]:
    h = reach.horizon
    if not h.capped:
        return []
    days = h.cycle // DAY
    return [
        Note(
            span,
            f"the schedules repeat only every {days} days: the check stops after five years",
        )
    ]


def _report_chain(
    reach: Reach, p: m.Policy, levels: list[Level], chain: Intervals, diags: Collector
) -> None:
    zone = _chain_zone(levels)
    refs = " → ".join(lv.owner.ref for lv in levels)
    proof = evidence(reach.pset, p, chain[0][0], zone)
    notes = [
        Note(lv.owner.span, f"{lv.owner.level} '{lv.owner.ref}' reaches nobody then")
        for lv in levels
    ]
    diags.report(
        "E208",
        p.name_span,
        f"nobody in the owner chain of '{p.name}' ({refs}) is reachable "
        f"{windows_phrase(chain, zone, reach.horizon)}",
        help=f"{proof.sentence}; put someone on call in these windows (a layer, a wider "
        "`restrict`, an override) or add an owner who is always reachable; "
        f"{_horizon_words(reach.horizon)}",
        notes=[*notes, *_capped_notes(reach, p.name_span)],
        witness=proof.event,
    )


def _report_level(reach: Reach, p: m.Policy, lv: Level, own: Intervals, diags: Collector) -> None:
    o = lv.owner
    proof = evidence(reach.pset, p, own[0][0], lv.zone)
    who = f"nobody in {o.ref}" if o.ref_kind == "team" else o.ref
    diags.report(
        "W209",
        o.span,
        f"{who} is reachable {windows_phrase(own, lv.zone, reach.horizon)}; "
        f"used as {o.level} by {p.name}",
        help=f"{proof.sentence}; another level is reachable then, but the escalation first "
        "waits out this level's ack timeout; cover these windows (a layer, a wider "
        f"`restrict`, an override); {_horizon_words(reach.horizon)}",
        notes=_capped_notes(reach, o.span),
        witness=proof.event,
    )
