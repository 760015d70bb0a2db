"""Schedules and calendars as rule-pack JSON, both ways: the compiler writes with
:func:`schedule_json` / :func:`calendar_json`, the runtime reads with
:func:`read_schedule` / :func:`read_calendar`, so the two cannot drift.

Times of day are ``"HH:MM"`` (a window may end at ``"24:00"``), days are
``mon`` .. ``sun``, shifts are seconds of local wall-clock time, override
windows ISO-8601 instants.

>>> from escalade.runtime.localtime import Window
>>> window_json(Window((0, 1, 2, 3, 4), 540, 1080))
{'days': ['mon', 'tue', 'wed', 'thu', 'fri'], 'from': '09:00', 'to': '18:00'}
>>> read_window(window_json(Window((5,), 1320, 360)))
Window(days=(5,), start=1320, end=360)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from escalade.runtime.calendars import Calendar
from escalade.runtime.clock import format_time, parse_time
from escalade.runtime.localtime import Window
from escalade.runtime.schedule import Layer, Override, Schedule

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def clock_text(minutes: int) -> str:
    """``540`` -> ``"09:00"``."""
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def read_clock(text: str) -> int:
    """``"09:00"`` -> ``540``."""
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def window_json(w: Window) -> dict[str, Any]:
    return {"days": [DAYS[d] for d in w.days], "from": clock_text(w.start), "to": clock_text(w.end)}


def read_window(raw: Mapping[str, Any]) -> Window:
    days = tuple(DAYS.index(d) for d in raw["days"])
    return Window(days, read_clock(raw["from"]), read_clock(raw["to"]))


def schedule_json(s: Schedule) -> dict[str, Any]:
    """A schedule's pack form: its layers in order and its overrides."""
    return {
        "layers": [
            {
                "name": layer.name,
                "members": list(layer.members),
                "shift": layer.shift,
                "handoff": clock_text(layer.handoff),
                "zone": layer.zone,
                "start": layer.start,
                "restrict": [window_json(w) for w in layer.restrict],
            }
            for layer in s.layers
        ],
        "overrides": [
            {
                "person": o.person,
                "for": o.replaces,
                "from": format_time(o.start),
                "to": format_time(o.end),
            }
            for o in s.overrides
        ],
    }


def read_schedule(raw: Mapping[str, Any]) -> Schedule:
    layers = tuple(
        Layer(
            x["name"],
            tuple(x["members"]),
            x["shift"],
            read_clock(x["handoff"]),
            x["zone"],
            x["start"],
            tuple(read_window(w) for w in x["restrict"]),
        )
        for x in raw["layers"]
    )
    overrides = tuple(
        Override(o["person"], parse_time(o["from"]), parse_time(o["to"]), o["for"])
        for o in raw["overrides"]
    )
    return Schedule(layers, overrides)


def calendar_json(c: Calendar) -> dict[str, Any]:
    return {
        "zone": c.zone,
        "hours": [window_json(w) for w in c.windows],
        "except": list(c.holidays),
    }


def read_calendar(name: str, raw: Mapping[str, Any]) -> Calendar:
    windows = tuple(read_window(w) for w in raw["hours"])
    return Calendar(name, raw["zone"], windows, tuple(raw["except"]))
