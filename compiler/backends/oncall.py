"""Schedules and calendars in words: for runbooks, ``escalade graph`` and ``escalade diff``
(and how a ``round_robin(T)``/``all(T)`` level picks, for runbooks and ``explain``).

Everything here reads the runtime's own :class:`~escalade.runtime.schedule.Schedule`
and :class:`~escalade.runtime.calendars.Calendar`, so what a page says is what the
runtime answers: layers (members in order, shift, hand-off, zone, restrictions,
start), overrides, who is on call over one week, and a calendar's hours with the
longest wall-clock time an SLA counted in it can take (:meth:`Calendar.longest`).

>>> from escalade.runtime.localtime import Window
>>> window_text(Window((0, 1, 2, 3, 4), 540, 1080))
'mon-fri 09:00-18:00'
>>> days_text((0, 5, 6))
'sat-mon'
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from escalade.runtime.calendars import Calendar
from escalade.runtime.clock import duration_words
from escalade.runtime.localtime import WEEK, Window, instant, local, zone
from escalade.runtime.schedule import Layer, Override, Schedule, plan_horizon
from escalade.runtime.schedulecodec import DAYS, clock_text

__all__ = [
    "DayRow",
    "calendar_text",
    "days_text",
    "layer_text",
    "local_text",
    "longest_wall_clock",
    "override_text",
    "overrides_text",
    "pick_text",
    "schedule_label",
    "shift_text",
    "table_start",
    "week_rows",
    "window_text",
]

Display = Callable[[str], str]

_MAX_HOLIDAYS = 6  # holidays named on a page; the rest are counted
_MAX_OVERRIDES = 8


def days_text(days: Sequence[int]) -> str:
    """Weekdays as the language writes them: one cyclic run ``mon-fri``, else a list."""
    chosen = sorted({d for d in days if d in range(7)})
    if len(chosen) == 7:
        return "mon-sun"
    if len(chosen) == 1:
        return DAYS[chosen[0]]
    first = next((d for d in chosen if (d - 1) % 7 not in chosen), None)
    if first is not None:
        run = [(first + i) % 7 for i in range(len(chosen))]
        if sorted(run) == chosen:
            return f"{DAYS[run[0]]}-{DAYS[run[-1]]}"
    return ", ".join(DAYS[d] for d in chosen)


def window_text(w: Window) -> str:
    """``mon-fri 09:00-18:00`` (an end at or before the start runs past midnight)."""
    return f"{days_text(w.days)} {clock_text(w.start)}-{clock_text(w.end)}"


def shift_text(seconds: int) -> str:
    """``604800`` -> ``1w``; ``43200`` -> ``12h``."""
    if seconds % WEEK == 0:
        return f"{seconds // WEEK}w"
    return duration_words(seconds)


def local_text(at: int, zone_name: str, *, date: bool = True) -> str:
    """``Sat 2026-01-10 19:00 Europe/Berlin`` (``date=False``: ``Sat 19:00 Europe/Berlin``)."""
    moment = local(zone(zone_name), at)
    day = moment.strftime("%a %Y-%m-%d" if date else "%a")
    return f"{day} {moment.strftime('%H:%M')} {zone_name}"


def layer_text(layer: Layer, display: Display) -> str:
    """One layer: members in order with their first shift, shift, hand-off, restrictions."""
    tz = zone(layer.zone)
    order = ", ".join(
        f"{display(member)} (from {local(tz, layer.boundary(k)).date().isoformat()})"
        for k, member in enumerate(layer.members)
    )
    again = ", then round again" if len(layer.members) > 1 else ""
    text = (
        f"{shift_text(layer.shift)} shifts handed off at {clock_text(layer.handoff)} "
        f"{layer.zone}, starting {layer.start}: {order}{again}"
    )
    if layer.restrict:
        text += "; only " + ", ".join(window_text(w) for w in layer.restrict)
    return text


def override_text(o: Override, zone_name: str, display: Display) -> str:
    """``Marc Dubois instead of Lena Fischer, from Thu 2026-12-24 09:00 to ... Europe/Berlin``."""
    who = display(o.person)
    who += f" instead of {display(o.replaces)}" if o.replaces else " for the whole team"
    start = local_text(o.start, zone_name)
    end = local_text(o.end, zone_name).removesuffix(f" {zone_name}")
    return f"{who}, from {start.removesuffix(f' {zone_name}')} to {end} {zone_name}"


def overrides_text(schedule: Schedule, zone_name: str, display: Display) -> list[str]:
    """The policy-declared overrides in words (the first few, then how many more)."""
    declared = [o for o in schedule.overrides if o.source == "policy"]
    lines = [override_text(o, zone_name, display) for o in declared[:_MAX_OVERRIDES]]
    if len(declared) > _MAX_OVERRIDES:
        lines.append(f"and {len(declared) - _MAX_OVERRIDES} more")
    return lines


@dataclass(frozen=True, slots=True)
class DayRow:
    """One local day of the on-call week: ``HH:MM who (layer)`` at each change."""

    day: str
    changes: str


def table_start(schedule: Schedule, zone_name: str) -> int:
    """The first local midnight after every layer has started (the week's first day)."""
    start = plan_horizon([schedule], []).start
    tz = zone(zone_name)
    day = local(tz, start).date() + timedelta(days=1)
    return instant(tz, day, 0)


def week_rows(schedule: Schedule, zone_name: str, display: Display) -> list[DayRow]:
    """Who is on call over the first full week of the schedule, day by day in local time
    (a run of days with the same hand-overs is one row)."""
    tz = zone(zone_name)
    first = local(tz, table_start(schedule, zone_name)).date()
    rows: list[DayRow] = []
    for i in range(7):
        day = first + timedelta(days=i)
        lo, hi = instant(tz, day, 0), instant(tz, day + timedelta(days=1), 0)
        parts = []
        for seg in schedule.segments(lo, hi):
            who = display(seg.person) if seg.person else "nobody"
            why = f" ({seg.layer})" if seg.layer and seg.source == "layer" else ""
            why = " (override)" if seg.source != "layer" and seg.person else why
            parts.append(f"{local(tz, seg.start).strftime('%H:%M')} {who}{why}")
        changes = " · ".join(parts)
        if rows and rows[-1].changes == changes:  # the same day again: one row for the run
            first_day = rows[-1].day.split(" to ")[0]
            rows[-1] = DayRow(f"{first_day} to {day.strftime('%a %m-%d')}", changes)
        else:
            rows.append(DayRow(day.strftime("%a %Y-%m-%d"), changes))
    return rows


def schedule_label(name: str, schedule: Schedule | None, rotation: str | None = None) -> str:
    """A team as a diagram node: ``support_oncall · europe (Europe/Berlin) + americas (...)``."""
    if schedule is None or not schedule.layers:
        return f"team {name}"
    if rotation:
        label = f"{name} · {rotation} rotation ({schedule.layers[0].zone})"
    else:
        label = f"{name} · " + " + ".join(f"{x.name} ({x.zone})" for x in schedule.layers)
    if schedule.overrides:
        count = len(schedule.overrides)
        label += f" · {count} override{'s' if count != 1 else ''}"
    return label


def pick_text(pick: str, team: str, among: str, scheduled: bool = False) -> str:
    """How an owner level ``round_robin(team)`` or ``all(team)`` picks, in the words runbooks
    and ``explain`` share; ``among`` names the candidates: the members, or for a team with
    a schedule (``scheduled``) its on-call member, the only one a pick chooses from.

    >>> pick_text("round_robin", "q", "a, b")
    'round robin among q (a, b): the next available member after the last one assigned'
    >>> pick_text("all", "sdr_queue", "ines, lena")
    'every member of sdr_queue (ines, lena) is paged; the first ack owns it'
    """
    if scheduled:
        if pick == "round_robin":
            return f"round robin among {team}: the member on call by its schedule ({among})"
        return (
            f"the member of {team} on call by its schedule ({among}) is paged; any member's"
            " ack owns it"
        )
    if pick == "round_robin":
        return (
            f"round robin among {team} ({among}): the next available member after the last"
            " one assigned"
        )
    return f"every member of {team} ({among}) is paged; the first ack owns it"


def calendar_text(calendar: Calendar) -> str:
    """``mon-fri 09:00-18:00 Europe/Berlin, closed 2026-12-24, 2026-12-25 and 3 more``."""
    text = ", ".join(window_text(w) for w in calendar.windows) + f" {calendar.zone}"
    holidays = sorted(calendar.holidays)
    if holidays:
        named = ", ".join(holidays[:_MAX_HOLIDAYS])
        more = len(holidays) - _MAX_HOLIDAYS
        text += f", closed {named}" + (f" and {more} more" if more > 0 else "")
    return text


@lru_cache(maxsize=256)  # every page with an SLA in the calendar asks the same question
def longest_wall_clock(calendar: Calendar, seconds: int) -> int:
    """The longest wall-clock time ``seconds`` of open time take, for any start in the
    calendar's analysis horizon (a year or more, every holiday inside)."""
    planned = plan_horizon([], [calendar])
    return calendar.longest(seconds, (planned.start, planned.end))
