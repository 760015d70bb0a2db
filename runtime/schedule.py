"""On-call schedules: rotation layers in local time, overrides and absences, exactly.

A :class:`Layer` hands off every ``shift`` seconds of local wall-clock time from
``start`` + ``handoff`` in its ``zone``: hand-off k is the local time
``start 00:00 + handoff + k * shift`` read with ``fold=0`` (see
:mod:`escalade.runtime.localtime`: a daily 09:00 hand-off stays at 09:00 across
clock changes, that day's shift lasting 23 or 25 hours; a hand-off inside a skipped
hour lands as far after the change as it was after the last valid time). The member
of shift k is ``members[k % len(members)]``; at an instant the shift is the latest
hand-off that has happened (the largest k with hand-off k <= t). A layer answers
from its first hand-off on (``before_start`` keeps the old rotation shorthand's
shifts before it) and, with ``restrict``, only inside those weekly windows.

Resolution at t: layers from last to first; the first active layer whose shift member
or, in order, a next member of that layer who is not away answers; a layer whose
members are all away passes to the layers below. Then overrides, the later first: one
active at t whose person is not away takes over the team (``replaces=None``) or only
while the layered answer is ``replaces``.

>>> day = Layer("day", ("ann", "bob"), 86400, 9 * 60, "Europe/Berlin", "2026-03-02")
>>> Schedule((day,)).who(1772438400)  # 2026-03-02 09:00 Berlin: the first shift
'ann'
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from itertools import pairwise

from escalade.runtime.calendars import Calendar
from escalade.runtime.clock import read_time
from escalade.runtime.intervals import Intervals, contains, normalize
from escalade.runtime.localtime import (
    DAY,
    DAYS,
    WEEK,
    ScheduleError,
    Window,
    describe_gap,
    instant,
    known_zone,
    offset,
    read_date,
    summarize_gaps,
    window_problems,
    window_spans,
    zone,
)

__all__ = [
    "DAYS",
    "Calendar",
    "Horizon",
    "Layer",
    "Override",
    "Problem",
    "Schedule",
    "ScheduleError",
    "Segment",
    "Slot",
    "Window",
    "check",
    "describe_gap",
    "horizon",
    "layer_from_rotation",
    "plan_horizon",
    "problems",
    "summarize_gaps",
]

Away = Mapping[str, Sequence[tuple[int, int]]]
NO_ONE_AWAY: Away = {}
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_MAX_OFFSET = 14 * 3600  # the largest UTC offset of any zone


@lru_cache(maxsize=1024)
def _start_day(text: str) -> date:
    day = read_date(text)
    if day is None:
        raise ScheduleError(f"layer start {text!r} is not a date (YYYY-MM-DD)")
    return day


@dataclass(frozen=True, slots=True)
class Layer:
    """One rotation: ``members`` take ``shift``-long turns (local wall-clock seconds).

    >>> Layer("day", ("ann", "bob"), 86400, 540, "UTC", "1970-01-01").member_at(86400 + 32400)
    'bob'
    """

    name: str
    members: tuple[str, ...]
    shift: int  # shift length in seconds of LOCAL wall-clock time (e.g. 43200 = 12h)
    handoff: int  # minutes after local midnight of the first hand-off
    zone: str  # IANA zone, e.g. "Europe/Berlin"; "UTC" allowed
    start: str  # local date "YYYY-MM-DD" of the first hand-off
    restrict: tuple[Window, ...] = ()  # empty: active whenever the layer has started
    before_start: bool = False  # True: shifts also run before the first hand-off (old shorthand)

    def _naive(self, k: int) -> int:
        """Hand-off k's local wall-clock time as if it were UTC seconds."""
        return (_start_day(self.start).toordinal() - _EPOCH_ORDINAL) * DAY + self._offset(k)

    def _offset(self, k: int) -> int:
        if self.shift <= 0:
            raise ScheduleError(f"layer {self.name!r}: the shift must be positive")
        return self.handoff * 60 + k * self.shift

    def boundary(self, k: int) -> int:
        """Instant of hand-off ``k`` (k = 0: the first)."""
        return instant(zone(self.zone), _start_day(self.start), self._offset(k))

    def first_start(self) -> int:
        """The instant the layer starts answering (its first hand-off)."""
        span = max(1, min(DAY // max(self.shift, 1), 64))
        return min(self.boundary(k) for k in range(span + 1))

    def shift_at(self, at: int) -> int | None:
        """The shift at ``at``: the largest k whose hand-off is at or before ``at``
        (None before the first unless ``before_start``)."""
        tz = zone(self.zone)
        # Hand-off k is its naive time minus an offset in force within the last two days.
        top = max(offset(tz, at - d) for d in (0, DAY, 2 * DAY))
        k = (at + top - self._naive(0)) // self.shift
        while True:
            if k < 0 and not self.before_start:
                return None
            if self.boundary(k) <= at:
                return k
            k -= 1

    def allowed(self, at: int) -> bool:
        """Whether the restriction windows (if any) hold at ``at``."""
        return not self.restrict or contains(
            window_spans(self.restrict, zone(self.zone), at, at + 1), at
        )

    def member_at(self, at: int) -> str | None:
        """The scheduled member at ``at`` regardless of absences (None when inactive)."""
        k = self.shift_at(at) if self.members else None
        if k is None or not self.allowed(at):
            return None
        return self.members[k % len(self.members)]

    def pieces(self, lo: int, hi: int) -> list[tuple[int, int, int]]:
        """(start, end, k): where shift k answers within ``[lo, hi)``, restrictions applied."""
        if lo >= hi or not self.members:
            return []
        k = self.shift_at(lo)
        k = 0 if k is None else k
        ks, bounds = [], []
        while True:
            ks.append(k)
            bounds.append(self.boundary(k))
            if self._naive(k) - _MAX_OFFSET > hi:
                break
            k += 1
        for i in range(len(bounds) - 2, -1, -1):  # hand-offs inside a skipped hour
            bounds[i] = min(bounds[i], bounds[i + 1])
        spans = [
            (max(a, lo), min(b, hi), k)
            for a, b, k in zip(bounds, bounds[1:], ks, strict=False)
            if max(a, lo) < min(b, hi)
        ]
        if not self.restrict:
            return spans
        return _restrict(spans, window_spans(self.restrict, zone(self.zone), lo, hi))

    def cycle(self) -> int:
        """Local seconds after which the layer repeats (a week's multiple when restricted)."""
        turn = self.shift * max(len(self.members), 1)
        return math.lcm(turn, WEEK) if self.restrict else turn


def _restrict(spans: list[tuple[int, int, int]], allowed: Intervals) -> list[tuple[int, int, int]]:
    """The parts of labelled ``spans`` inside ``allowed`` (a linear merge)."""
    out: list[tuple[int, int, int]] = []
    i = j = 0
    while i < len(spans) and j < len(allowed):
        a, b = max(spans[i][0], allowed[j][0]), min(spans[i][1], allowed[j][1])
        if a < b:
            out.append((a, b, spans[i][2]))
        if spans[i][1] < allowed[j][1]:
            i += 1
        else:
            j += 1
    return out


@dataclass(frozen=True, slots=True)
class Override:
    """``person`` on call over ``[start, end)``, for the whole team or instead of ``replaces``.

    >>> Override("cat", 0, 3600, replaces="ann").replaces
    'ann'
    """

    person: str
    start: int  # epoch seconds
    end: int
    replaces: str | None = None  # None: the whole team's on-call; else only while they would be
    source: str = "policy"  # "policy" (declared in the language) or "store" (run time)


@dataclass(frozen=True, slots=True)
class Slot:
    """Who is on call and why: the layer that answered ("" when only an override did)."""

    person: str
    layer: str
    override: bool


@dataclass(frozen=True, slots=True)
class Segment:
    """A maximal run ``[start, end)`` of one answer; source is "layer", an override's
    source ("policy" or "store"), or "none" when nobody is on call."""

    start: int
    end: int
    person: str | None
    layer: str | None
    source: str


Answer = tuple[str, str, str]  # person, layer ("" for none), source


def _away_sets(away: Away) -> dict[str, Intervals]:
    return {p: normalize(spans) for p, spans in away.items() if spans}


def _is_away(away: dict[str, Intervals], person: str, at: int) -> bool:
    spans = away.get(person)
    return spans is not None and contains(spans, at)


def _pick(members: tuple[str, ...], k: int, at: int, away: dict[str, Intervals]) -> str | None:
    """Shift k's member or the next one (cyclically) who is not away at ``at``."""
    n = len(members)
    for step in range(n):
        person = members[(k + step) % n]
        if not _is_away(away, person, at):
            return person
    return None


def _overridden(
    overrides: Sequence[Override], at: int, layered: Answer | None, away: dict[str, Intervals]
) -> Answer | None:
    """The answer at ``at`` once overrides (the later first) are applied to ``layered``."""
    for o in reversed(overrides):
        if not o.start <= at < o.end or _is_away(away, o.person, at):
            continue
        if o.replaces is None or (layered is not None and layered[0] == o.replaces):
            return o.person, layered[1] if layered else "", o.source
    return layered


@dataclass(frozen=True, slots=True)
class Schedule:
    """Layers (later ones cover earlier ones where active) and overrides on top.

    >>> s = Schedule((Layer("d", ("ann", "bob"), 86400, 0, "UTC", "1970-01-01"),))
    >>> [(g.start, g.person) for g in s.segments(0, 2 * 86400)]
    [(0, 'ann'), (86400, 'bob')]
    """

    layers: tuple[Layer, ...]
    overrides: tuple[Override, ...] = ()

    def _layered(self, at: int, away: dict[str, Intervals]) -> Answer | None:
        for layer in reversed(self.layers):
            k = layer.shift_at(at) if layer.members else None
            if k is None or not layer.allowed(at):
                continue
            person = _pick(layer.members, k, at, away)
            if person is not None:
                return person, layer.name, "layer"
        return None

    def on_call(self, at: int, away: Away = NO_ONE_AWAY) -> Slot | None:
        """Who is on call at ``at`` and why (None: nobody)."""
        sets = _away_sets(away)
        answer = _overridden(self.overrides, at, self._layered(at, sets), sets)
        if answer is None:
            return None
        return Slot(answer[0], answer[1], answer[2] != "layer")

    def who(self, at: int, away: Away = NO_ONE_AWAY) -> str | None:
        """The person on call at ``at``, or None."""
        slot = self.on_call(at, away)
        return slot.person if slot else None

    def segments(self, start: int, end: int, away: Away = NO_ONE_AWAY) -> list[Segment]:
        """The exact calendar of ``[start, end)``: maximal runs of one answer, contiguous.

        Built from boundaries only (hand-offs, restriction window edges, override and
        absence edges): the answer is constant between two consecutive edges."""
        if start >= end:
            return []
        sets = _away_sets(away)
        plans = [layer.pieces(start, end) for layer in self.layers]
        overrides = [o for o in self.overrides if o.start < end and o.end > start]
        edges = _edges(start, end, plans, overrides, sets)
        cursors = [0] * len(plans)
        runs: list[tuple[int, int, Answer | None]] = []
        for a, b in pairwise(edges):
            answer = _overridden(overrides, a, self._layered_from(a, plans, cursors, sets), sets)
            if runs and runs[-1][2] == answer:
                runs[-1] = (runs[-1][0], b, answer)
            else:
                runs.append((a, b, answer))
        return [
            Segment(a, b, who[0], who[1] or None, who[2])
            if who
            else Segment(a, b, None, None, "none")
            for a, b, who in runs
        ]

    def _layered_from(
        self,
        at: int,
        plans: list[list[tuple[int, int, int]]],
        cursors: list[int],
        away: dict[str, Intervals],
    ) -> Answer | None:
        """As :meth:`_layered`, from precomputed pieces walked forward by ``cursors``."""
        for i in range(len(plans) - 1, -1, -1):
            plan, c = plans[i], cursors[i]
            while c < len(plan) and plan[c][1] <= at:
                c += 1
            cursors[i] = c
            if c < len(plan) and plan[c][0] <= at:
                layer = self.layers[i]
                person = _pick(layer.members, plan[c][2], at, away)
                if person is not None:
                    return person, layer.name, "layer"
        return None

    def gaps(
        self,
        start: int,
        end: int,
        away: Away = NO_ONE_AWAY,
        reachable: Callable[[str], bool] = lambda _p: True,
    ) -> Intervals:
        """Where nobody reachable is on call within ``[start, end)``."""
        return normalize(
            (s.start, s.end)
            for s in self.segments(start, end, away)
            if s.person is None or not reachable(s.person)
        )

    def earliest_start(self) -> int:
        """The first hand-off of the earliest layer."""
        if not self.layers:
            raise ScheduleError("a schedule needs at least one layer")
        return min(layer.first_start() for layer in self.layers)

    def latest_start(self) -> int:
        """The first hand-off of the latest layer: from then on every layer runs."""
        if not self.layers:
            raise ScheduleError("a schedule needs at least one layer")
        return max(layer.first_start() for layer in self.layers)

    def cycle(self) -> int:
        """Seconds after which the layers repeat: the LCM of their cycles."""
        return math.lcm(*(layer.cycle() for layer in self.layers))


def _edges(
    lo: int,
    hi: int,
    plans: list[list[tuple[int, int, int]]],
    overrides: list[Override],
    away: dict[str, Intervals],
) -> list[int]:
    """Every instant in ``[lo, hi]`` where the answer may change, sorted."""
    edges = {lo, hi}
    for plan in plans:
        for a, b, _ in plan:
            edges.update((a, b))
    for o in overrides:
        edges.update((o.start, o.end))
    for spans in away.values():
        for a, b in spans:
            edges.update((a, b))
    return sorted(e for e in edges if lo <= e <= hi)


def layer_from_rotation(
    members: Sequence[str],
    period: str,
    start_iso: str,
    *,
    name: str = "rotation",
    before_start: bool = True,
) -> Layer:
    """The old ``rotation daily|weekly from "ISO"`` shorthand as one UTC layer.

    Shift k runs from ``start + k * period``, exactly the old ``(at - start) // period``;
    ``before_start`` (the default, as the old shorthand) keeps the shifts before it.

    >>> layer_from_rotation(["ann", "bob"], "weekly", "2026-01-05T09:00:00Z")
    ... # doctest: +NORMALIZE_WHITESPACE
    Layer(name='rotation', members=('ann', 'bob'), shift=604800, handoff=540, zone='UTC',
          start='2026-01-05', restrict=(), before_start=True)
    """
    shifts = {"daily": DAY, "weekly": WEEK}
    if period not in shifts:
        raise ScheduleError(f"rotation period {period!r} is not daily or weekly")
    at = read_time(start_iso)
    if at is None:
        raise ScheduleError(f"rotation start {start_iso!r} is not an ISO-8601 time")
    if at % 60:
        raise ScheduleError(f"rotation start {start_iso!r} is not on a whole minute")
    moment = datetime.fromtimestamp(int(at), UTC)
    return Layer(
        name,
        tuple(members),
        shifts[period],
        moment.hour * 60 + moment.minute,
        "UTC",
        moment.date().isoformat(),
        before_start=before_start,
    )


YEAR = 366 * DAY
MAX_HORIZON = 5 * 365 * DAY + 2 * DAY  # five years, leap days included
DEFAULT_ANCHOR = 1767571200  # 2026-01-05T00:00:00Z, a Monday: for calendars without schedules


@dataclass(frozen=True, slots=True)
class Horizon:
    """The analysis window ``[start, end)``, the cycle it was sized on, and whether
    that cycle was longer than five years (the window then stops at five years)."""

    start: int
    end: int
    cycle: int
    capped: bool


def plan_horizon(schedules: Iterable[Schedule], calendars: Iterable[Calendar]) -> Horizon:
    """The analysis window: from the latest schedule start over max(LCM of every cycle,
    366 days) in whole weeks (at most five years), widened by whole weeks until every
    holiday and every override lies inside. Never reads the clock.

    >>> h = plan_horizon([Schedule((layer_from_rotation(["a"], "daily", "2026-01-05T09:00:00Z"),))], [])
    >>> (h.end - h.start) // 604800, h.capped
    (53, False)
    """
    schedules, calendars = list(schedules), list(calendars)
    starts = [s.latest_start() for s in schedules if s.layers]
    inside = [(o.start, o.end) for s in schedules for o in s.overrides if o.end > o.start]
    inside += [span for c in calendars for span in c.holiday_spans()]
    if starts:
        start = max(starts)
    elif inside:
        first = min(a for a, _ in inside)
        start = first - (first - DEFAULT_ANCHOR) % WEEK
    else:
        start = DEFAULT_ANCHOR
    cycles = [s.cycle() for s in schedules if s.layers] + [WEEK for _ in calendars]
    cycle = math.lcm(*cycles) if cycles else WEEK
    length = min(max(cycle, YEAR), MAX_HORIZON)
    end = start + -(-length // WEEK) * WEEK
    capped = cycle > MAX_HORIZON
    for a, b in inside:
        if a < start and not starts:  # before the schedules start, nobody is on call anyway
            start -= -(-(start - a) // WEEK) * WEEK
        if b > end:
            end += -(-(b - end) // WEEK) * WEEK
    limit = start + -(-MAX_HORIZON // WEEK) * WEEK
    if end > limit:  # a holiday or an override years ahead: the window stops at five years
        end, capped = limit, True
    return Horizon(start, end, cycle, capped)


def horizon(schedules: Iterable[Schedule], calendars: Iterable[Calendar]) -> tuple[int, int]:
    """``(start, end)`` of :func:`plan_horizon` (see there for whether it was capped)."""
    planned = plan_horizon(schedules, calendars)
    return planned.start, planned.end


@dataclass(frozen=True, slots=True)
class Problem:
    """A stable short message (``code`` for tools) and a fix hint."""

    code: str
    message: str
    hint: str

    def __str__(self) -> str:
        return f"{self.message} (fix: {self.hint})"


def _zone_problems(name: str) -> list[Problem]:
    if known_zone(name):
        return []
    return [
        Problem(
            "zone", f"unknown time zone {name!r}", "use an IANA name such as Europe/Berlin or UTC"
        )
    ]


def _windows(windows: Sequence[Window], what: str) -> list[Problem]:
    return [Problem("window", m, h) for m, h in window_problems(windows, what)]


def _layer_problems(layer: Layer) -> list[Problem]:
    found = _zone_problems(layer.zone)
    if not layer.members:
        found.append(Problem("members", "the layer has no members", "name at least one member"))
    if layer.shift <= 0:
        found.append(Problem("shift", "the shift length must be positive", "use e.g. 12h or 1w"))
    if layer.handoff not in range(1440):
        found.append(Problem("handoff", "the hand-off time is out of range", "use 00:00..23:59"))
    if read_date(layer.start) is None:
        found.append(Problem("start", f"start {layer.start!r} is not a date", "write YYYY-MM-DD"))
    return found + _windows(layer.restrict, "restriction window")


def _calendar_problems(calendar: Calendar) -> list[Problem]:
    found = _zone_problems(calendar.zone)
    if not calendar.windows:
        found.append(Problem("never-open", "the calendar has no open hours", "add a window"))
    found += _windows(calendar.windows, "open-hours window")
    for text in calendar.holidays:
        if read_date(text) is None:
            found.append(Problem("holiday", f"holiday {text!r} is not a date", "write YYYY-MM-DD"))
    return found


def _override_problems(override: Override) -> list[Problem]:
    if override.end > override.start:
        return []
    return [Problem("override", "the override ends before it starts", "swap or fix the times")]


def check(item: Layer | Calendar | Override | Schedule) -> list[Problem]:
    """Problems of a layer, calendar, override or whole schedule (empty: fine).

    >>> [p.code for p in check(Layer("x", (), 0, 0, "Mars/Base", "2026-13-01"))]
    ['zone', 'members', 'shift', 'start']
    """
    if isinstance(item, Layer):
        return _layer_problems(item)
    if isinstance(item, Calendar):
        return _calendar_problems(item)
    if isinstance(item, Override):
        return _override_problems(item)
    found = [] if item.layers else [Problem("layers", "the schedule has no layers", "add one")]
    names = [layer.name for layer in item.layers]
    for name in sorted({n for n in names if names.count(n) > 1}):
        found.append(Problem("layer-name", f"two layers are named {name!r}", "rename one"))
    for layer in item.layers:
        found += [
            Problem(p.code, f"layer {layer.name!r}: {p.message}", p.hint)
            for p in _layer_problems(layer)
        ]
    for o in item.overrides:
        found += _override_problems(o)
    return found


def problems(item: Layer | Calendar | Override | Schedule) -> list[str]:
    """:func:`check` as ``"message (fix: hint)"`` lines."""
    return [str(p) for p in check(item)]
