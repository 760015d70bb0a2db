"""Business calendars: weekly open hours in a zone, minus whole-day holidays.

A calendar answers two questions exactly, on interval sets (never minute by minute):
when ``seconds`` of open time have passed since an instant (:meth:`Calendar.due`), and
the longest wall-clock time that can take for any start in a horizon
(:meth:`Calendar.longest`).

>>> cal = Calendar("office", "Europe/Berlin", (Window((0, 1, 2, 3, 4), 540, 1080),))
>>> fri_17h = 1796400000  # Friday 2026-12-04 17:00 Berlin
>>> cal.due(fri_17h, 12 * 3600) - fri_17h == (3 * 24 + 18) * 3600  # Tuesday 11:00
True
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from datetime import date

from escalade.runtime.intervals import Intervals, subtract
from escalade.runtime.localtime import (
    WEEK,
    ScheduleError,
    Window,
    day_spans,
    instant,
    read_date,
    window_spans,
    zone,
)


@dataclass(frozen=True, slots=True)
class Calendar:
    """Open hours (`windows`, local time in `zone`) minus `holidays` (local dates, closed
    all day; a window running past midnight into a holiday closes at that midnight).

    >>> Calendar("support", "UTC", (Window((5, 6), 0, 1440),), ("2026-12-26",)).name
    'support'
    """

    name: str
    zone: str
    windows: tuple[Window, ...]  # open hours
    holidays: tuple[str, ...] = ()  # local dates "YYYY-MM-DD" that are closed all day

    def holiday_dates(self) -> tuple[date, ...]:
        """The holidays as dates; :class:`ScheduleError` for one that is not a date."""
        days = []
        for text in self.holidays:
            day = read_date(text)
            if day is None:
                raise ScheduleError(f"calendar {self.name!r}: holiday {text!r} is not a date")
            days.append(day)
        return tuple(sorted(days))

    def holiday_spans(self) -> Intervals:
        """The holidays as instants (local midnight to the next local midnight)."""
        return day_spans(self.holiday_dates(), zone(self.zone))

    def open(self, start: int, end: int) -> Intervals:
        """Open time within ``[start, end)``: the windows' union minus the holidays."""
        return subtract(
            window_spans(self.windows, zone(self.zone), start, end), self.holiday_spans()
        )

    def _weekly(self) -> int:
        """Nominal open seconds per week (:class:`ScheduleError` when none)."""
        weekly = sum(
            w.minutes * 60 * len({d for d in w.days if d in range(7)}) for w in self.windows
        )
        if weekly <= 0:
            raise ScheduleError(f"calendar {self.name!r} is never open: a due time never comes")
        return weekly

    def _give_up_after(self, start: int) -> int:
        """An instant past which a calendar that has not opened never will."""
        holidays = self.holiday_spans()
        return max(start, holidays[-1][1] if holidays else start) + 2 * WEEK

    def due(self, start: int, seconds: int) -> int:
        """The first instant at which ``seconds`` of open time have passed since ``start``.

        Counting starts at ``start`` when it is open, else at the next opening; the
        answer is the smallest such instant, so it may be a closing time exactly
        (``seconds`` <= 0: ``start`` itself). :class:`ScheduleError` when the calendar
        never opens.

        >>> cal = Calendar("c", "UTC", (Window((0, 1, 2, 3, 4), 540, 1080),))
        >>> cal.due(4 * 86400 + 17 * 3600, 3600) == 4 * 86400 + 18 * 3600  # Mon 17:00 + 1h
        True
        """
        if seconds <= 0:
            return start
        weekly = self._weekly()
        chunk = (seconds // weekly + 2) * WEEK
        remaining, cursor = seconds, start
        give_up = self._give_up_after(start)
        while True:
            spans = self.open(cursor, cursor + chunk)
            for a, b in spans:
                if b - a >= remaining:
                    return a + remaining
                remaining -= b - a
            cursor += chunk
            if not spans and cursor > give_up:
                raise ScheduleError(f"calendar {self.name!r} is never open: a due time never comes")

    def timeline(self, start: int, end: int, seconds: int) -> Timeline:
        """Open time from ``start`` on, far enough past ``end`` to answer :meth:`due`
        for ``seconds`` from any start before ``end``."""
        weekly = self._weekly()
        hi = end + (seconds // weekly + 2) * WEEK
        spans = self.open(start, hi)
        give_up = self._give_up_after(end)
        while sum(b - a for a, b in spans if b > end) < seconds:
            more = self.open(hi, hi + 4 * WEEK)
            if not more and hi > give_up:
                raise ScheduleError(f"calendar {self.name!r} is never open: a due time never comes")
            spans, hi = spans + more, hi + 4 * WEEK
        return Timeline(spans)

    def longest(self, seconds: int, horizon: tuple[int, int]) -> int:
        """The longest wall-clock time ``due(s, seconds) - s`` takes for a start ``s`` in
        ``horizon`` (``[lo, hi)``), exactly.

        Why the breakpoints suffice: let O(t) be the open seconds before t, so due(s) is
        the first t with O(t) = O(s) + seconds, and f(s) = due(s) - s. While s moves
        through closed time O(s) stays put, due(s) too, and f falls by one each second.
        While s moves through open time O(s) rises one a second; due(s) rises one too
        while it moves through open time and jumps over a closed stretch when it leaves
        a window end, so f stays or jumps up: it never falls. So f is at its highest at
        the start of each closed stretch (each window end, where due has already jumped
        at every start whose due lands on a window end), or at the horizon's ends: ``lo``
        (if it is closed) and ``hi - 1`` (if it is open). Those are the only instants
        evaluated.

        >>> cal = Calendar("c", "UTC", (Window((0, 1, 2, 3, 4), 540, 1080),))
        >>> cal.longest(3600, (0, 4 * 604800)) == 3600 + 63 * 3600  # Fri 17:00 -> Mon 10:00
        True
        """
        lo, hi = horizon
        if seconds <= 0 or lo >= hi:
            return 0
        line = self.timeline(lo, hi, seconds)
        candidates = {lo, hi - 1, *(b for _, b in line.spans if lo < b < hi)}
        return max(line.due(s, seconds) - s for s in candidates)


class Timeline:
    """Open spans with running totals: :meth:`due` by binary search.

    >>> Timeline(((0, 10), (20, 30))).due(5, 10)
    25
    """

    __slots__ = ("_before", "_ends", "_starts", "_totals", "spans")

    def __init__(self, spans: Intervals) -> None:
        self.spans = spans
        self._starts = [a for a, _ in spans]
        self._ends = [b for _, b in spans]
        self._totals: list[int] = []  # open seconds up to each span's end
        total = 0
        for a, b in spans:
            total += b - a
            self._totals.append(total)
        self._before = [t - (b - a) for t, (a, b) in zip(self._totals, spans, strict=True)]

    def opened(self, at: int) -> int:
        """Open seconds between the timeline's start and ``at``."""
        i = bisect_right(self._starts, at) - 1
        if i < 0:
            return 0
        return self._before[i] + min(at, self._ends[i]) - self._starts[i]

    def due(self, start: int, seconds: int) -> int:
        """As :meth:`Calendar.due`, for a start inside the timeline."""
        if seconds <= 0:
            return start
        target = self.opened(start) + seconds
        j = bisect_left(self._totals, target)
        if j == len(self._totals):
            raise ScheduleError("the timeline ends before the due time")
        return self._ends[j] - (self._totals[j] - target)


def calendar_instant(calendar: Calendar, day: date, minutes: int) -> int:
    """The instant of local ``day`` at ``minutes`` after midnight in the calendar's zone."""
    return instant(zone(calendar.zone), day, minutes * 60)
