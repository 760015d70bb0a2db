"""Schedules and calendars in the semantic diff: witness instants, not text comparisons.

A team's schedule changed in behaviour when some instant of the analysis horizon
(:func:`~escalade.runtime.schedule.plan_horizon` over every schedule and calendar of
both revisions, from the earliest first hand-off on) has a different on-call answer
on the two sides: the two sides' exact :meth:`Schedule.segments` are walked together
and the first instant where the person differs is the witness. A layer renamed, or a
restriction rewritten to the same hours, changes nothing and is not reported.

An SLA counted in a calendar changed in behaviour when some escalation start gets a
different due time. Both sides' due functions (``due(s) = s + seconds`` without a
calendar) rise by one a second or stay put between breakpoints: the edges of the
open spans, and the starts whose due lands exactly on a span's end. Two such
functions that agree at a breakpoint and a minute (or a second) after it agree up to
the next one, so only those instants are evaluated, in order: the first start that
differs is the witness.

>>> from escalade.runtime.schedule import Layer
>>> a = Schedule((Layer("d", ("ann", "bob"), 86400, 0, "UTC", "2026-01-05"),))
>>> b = Schedule((Layer("d", ("bob", "ann"), 86400, 0, "UTC", "2026-01-05"),))
>>> first_oncall_difference(a, b, (1767571200, 1767571200 + 7 * 86400))
(1767571200, 'ann', 'bob')
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from escalade.compiler import model as m
from escalade.compiler import nodes as n
from escalade.compiler.backends.oncall import local_text
from escalade.runtime.calendars import Calendar
from escalade.runtime.clock import format_time
from escalade.runtime.intervals import Intervals
from escalade.runtime.localtime import ScheduleError
from escalade.runtime.schedule import Schedule, Segment, plan_horizon
from escalade.runtime.schedulecodec import calendar_json, schedule_json

__all__ = ["Clocks", "first_due_difference", "first_oncall_difference", "paged_teams"]

Span = tuple[int, int]


def paged_teams(pset: m.PolicySet, p: m.Policy) -> list[str]:
    """The teams a policy pages: owner levels, triage, and step targets, each once."""
    refs = [o.ref for o in p.owners]
    if p.triage is not None:
        refs.append(p.triage.ref)
    for step in [*p.steps, *(s for moment in p.on.values() for s in moment)]:
        for arg in step.args:
            if isinstance(arg, n.Pick):
                refs.append(arg.team.value)
            elif isinstance(arg, n.Name):
                refs.append(arg.value)
    return [r for r in dict.fromkeys(refs) if r in pset.teams]


def first_oncall_difference(
    base: Schedule | None, head: Schedule | None, span: Span, *, everyone: str = "everyone"
) -> tuple[int, str, str] | None:
    """The first instant of ``span`` where the two schedules put different people on
    call, with both answers (``nobody``; ``everyone`` for a side without a schedule)."""
    lo, hi = span
    a, b = _answers(base, lo, hi, everyone), _answers(head, lo, hi, everyone)
    i = j = 0
    while i < len(a) and j < len(b):
        if a[i][2] != b[j][2]:
            return max(a[i][0], b[j][0]), a[i][2], b[j][2]
        end_a, end_b = a[i][1], b[j][1]
        i += end_a <= end_b
        j += end_b <= end_a
    return None


def _answers(s: Schedule | None, lo: int, hi: int, everyone: str) -> list[tuple[int, int, str]]:
    if s is None:
        return [(lo, hi, everyone)]
    segments: list[Segment] = s.segments(lo, hi)
    return [(g.start, g.end, g.person or "nobody") for g in segments]


@dataclass(frozen=True, slots=True)
class _Due:
    """One side's due function over a horizon: its open spans (none: wall-clock), the
    open seconds before each span and up to each span's end."""

    seconds: int
    wall_clock: bool
    spans: Intervals = ()
    starts: tuple[int, ...] = ()
    before: tuple[int, ...] = ()
    totals: tuple[int, ...] = ()

    @classmethod
    def of(cls, seconds: int, calendar: Calendar | None, span: Span) -> _Due:
        if calendar is None:
            return cls(seconds, True)
        spans = calendar.timeline(span[0], span[1], seconds).spans
        before, totals, total = [], [], 0
        for a, b in spans:
            before.append(total)
            total += b - a
            totals.append(total)
        starts = tuple(a for a, _ in spans)
        return cls(seconds, False, spans, starts, tuple(before), tuple(totals))

    def due(self, start: int) -> int:
        """As :meth:`Calendar.due` (``start`` inside the horizon)."""
        if self.wall_clock:
            return start + self.seconds
        i = bisect_right(self.starts, start) - 1
        opened = 0 if i < 0 else self.before[i] + min(start, self.spans[i][1]) - self.starts[i]
        target = opened + self.seconds
        j = bisect_left(self.totals, target)
        return self.spans[j][1] - (self.totals[j] - target)

    def breakpoints(self) -> set[int]:
        """Span edges, and the starts whose due lands on a span end."""
        points: set[int] = set()
        for k, (a, b) in enumerate(self.spans):
            points.update((a, b))
            target = self.totals[k] - self.seconds
            if target >= 0:
                i = bisect_right(self.before, target) - 1
                points.add(self.starts[i] + target - self.before[i])
        return points


def first_due_difference(
    base: tuple[int, Calendar | None], head: tuple[int, Calendar | None], span: Span
) -> tuple[int, int, int] | None:
    """The first start in ``span`` whose due time differs: (start, base due, head due)."""
    sides = [_Due.of(seconds, cal, span) for seconds, cal in (base, head)]
    lo, hi = span
    points = {lo, *sides[0].breakpoints(), *sides[1].breakpoints()}
    fine = any(side.seconds % 60 for side in sides)
    candidates = sorted({p + d for p in points for d in (0, 60, 1 if fine else 0)})
    for start in candidates:
        if not lo <= start < hi:
            continue
        b_due, h_due = sides[0].due(start), sides[1].due(start)
        if b_due != h_due:
            return start, b_due, h_due
    return None


@dataclass
class Clocks:
    """The schedule and calendar witnesses of one diff, computed once per team and SLA."""

    base: m.PolicySet
    head: m.PolicySet
    _span: Span | None = None
    _teams: dict[str, str | None] = field(default_factory=dict)

    def span(self) -> Span:
        """The analysis horizon over both revisions, from the earliest first hand-off."""
        if self._span is None:
            schedules = [
                t.schedule
                for s in (self.base, self.head)
                for t in s.teams.values()
                if t.schedule is not None and t.schedule.layers
            ]
            calendars = [c for s in (self.base, self.head) for c in s.calendars.values()]
            planned = plan_horizon(schedules, calendars)
            lo = min([planned.start, *(x.earliest_start() for x in schedules)])
            self._span = (lo, planned.end)
        return self._span

    def lines(self, bp: m.Policy, hp: m.Policy) -> list[str]:
        """Witness lines for the teams ``bp``/``hp`` page and the calendars of their SLAs."""
        teams = dict.fromkeys([*paged_teams(self.base, bp), *paged_teams(self.head, hp)])
        found = [line for line in (self.team(t) for t in teams) if line is not None]
        for kind, b_sec, h_sec in (
            ("acknowledge", bp.sla_acknowledge, hp.sla_acknowledge),
            ("resolve", bp.sla_resolve, hp.sla_resolve),
        ):
            if b_sec is None or h_sec is None:
                continue  # an SLA added or removed: the timeline says so
            base = (b_sec, self._cal(self.base, bp, kind))
            line = self.due(kind, base, (h_sec, self._cal(self.head, hp, kind)))
            if line is not None:
                found.append(line)
        return found

    def team(self, name: str) -> str | None:
        """``support_oncall: at ... base pages marc, head pages nora`` (None: same)."""
        if name not in self._teams:
            self._teams[name] = self._team(name)
        return self._teams[name]

    def _team(self, name: str) -> str | None:
        b, h = self.base.teams.get(name), self.head.teams.get(name)
        bs, hs = (b.schedule if b else None), (h.schedule if h else None)
        if bs is None and hs is None:
            return None  # members only: the directory entry says so
        if bs is not None and hs is not None and schedule_json(bs) == schedule_json(hs):
            return None
        try:
            found = first_oncall_difference(bs, hs, self.span(), everyone=f"everyone in {name}")
        except ScheduleError as exc:
            return f"{name}: its schedule changed (not compared: {exc})"
        if found is None:
            return None
        at, before, after = found
        shown = h if h is not None else b
        zone = shown.zone if shown is not None else "UTC"
        return (
            f"{name}: at {format_time(at)} ({local_text(at, zone, date=False)}) "
            f"base pages {before}, head pages {after}"
        )

    @staticmethod
    def _cal(pset: m.PolicySet, p: m.Policy, kind: str) -> Calendar | None:
        name = p.sla_calendars.get(kind)
        return pset.calendars.get(name) if name else None

    def due(
        self, kind: str, base: tuple[int, Calendar | None], head: tuple[int, Calendar | None]
    ) -> str | None:
        """``resolve due X (base) vs Y (head) for a ticket opened Z`` (None: same)."""
        if base[1] is None and head[1] is None:
            return None  # wall-clock on both sides: the SLA line says it
        if _same_sla(base, head):
            return None
        try:
            found = first_due_difference(base, head, self.span())
        except ScheduleError as exc:
            return f"{kind} SLA calendar changed (not compared: {exc})"
        if found is None:
            return None
        start, before, after = found
        where = _calendar_names(base[1], head[1])
        return (
            f"{kind} SLA ({where}): due {format_time(before)} (base) vs {format_time(after)} "
            f"(head) for a ticket opened {format_time(start)}"
        )


def _same_sla(base: tuple[int, Calendar | None], head: tuple[int, Calendar | None]) -> bool:
    def sig(side: tuple[int, Calendar | None]) -> object:
        return side[0], calendar_json(side[1]) if side[1] is not None else None

    return sig(base) == sig(head)


def _calendar_names(base: Calendar | None, head: Calendar | None) -> str:
    b = base.name if base else "wall-clock"
    h = head.name if head else "wall-clock"
    return f"within {b}" if b == h else f"within {b} → {h}"
