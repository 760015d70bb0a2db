"""Lower on-call schedules (``layer``, ``override``) and business calendars (``calendar``).

The schedule semantics live in the runtime (:mod:`escalade.runtime.schedule`,
:mod:`escalade.runtime.calendars`), which the compiler shares so that what
``check`` proves is what the runtime does. This pass turns the written
declarations into those values and reports what is wrong with them, located:
an unknown time zone at the zone, a zero shift at the shift, an override
outside every shift of the member it replaces at the override (E106).

>>> parse_window_text("mon-fri", "09:00-18:00")
Window(days=(0, 1, 2, 3, 4), start=540, end=1080)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from escalade.compiler import model as m
from escalade.compiler import nodes as n
from escalade.compiler.diagnostics import Collector
from escalade.runtime.calendars import Calendar
from escalade.runtime.clock import FIRST_YEAR, LAST_YEAR, read_time
from escalade.runtime.localtime import Window, known_zone, read_date
from escalade.runtime.schedule import Layer, Override, Schedule, check, layer_from_rotation

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MIN_SHIFT, MAX_SHIFT = 3600, 52 * 7 * 86400  # an hour to a year of weeks
_HOURS = re.compile(r"([0-9]{2}):([0-9]{2})-([0-9]{2}):([0-9]{2})")
_CLOCK = re.compile(r"([0-9]{2}):([0-9]{2})")
_ZONE_HELP = 'an IANA zone such as "Europe/Berlin", "America/New_York" or "UTC"'


def parse_window_text(days: str, hours: str) -> Window | None:
    """``mon-fri`` and ``09:00-18:00`` as a :class:`Window`; None when the hours are not
    clock times (``24:00`` ends a day; a window ending at or before its start runs past
    midnight)."""
    first, _, last = days.partition("-")
    a, b = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
    span = range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)]
    match = _HOURS.fullmatch(hours)
    if match is None:
        return None
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    start, end = h1 * 60 + m1, h2 * 60 + m2
    if h1 > 23 or m1 > 59 or m2 > 59 or end > 1440:
        return None
    return Window(tuple(sorted(set(span))), start, end)


def _window(w: n.Window, diags: Collector) -> Window | None:
    window = parse_window_text(w.days.value, w.hours.value)
    if window is None:
        diags.report(
            "E106",
            w.hours.span,
            f"'{w.hours.value}' is not a window of clock times",
            help="write HH:MM-HH:MM between 00:00 and 24:00, e.g. 09:00-18:00 or 22:00-06:00",
        )
    elif window.start == window.end % 1440 and window.end != 1440:
        diags.report(
            "E106",
            w.span,
            f"the window {w.days.value} {w.hours.value} is empty",
            help="a window ends after it starts (00:00-24:00 is the whole day)",
        )
        return None
    return window


def _zone(text: n.Text, diags: Collector) -> str | None:
    if not known_zone(text.value):
        diags.report("E106", text.span, f"unknown time zone '{text.value}'", help=_ZONE_HELP)
        return None
    return text.value


def _date(text: n.Text, what: str, diags: Collector) -> str | None:
    if read_date(text.value) is None:
        diags.report(
            "E106",
            text.span,
            f"{what} '{text.value}' is not a date from {FIRST_YEAR} to {LAST_YEAR}",
            help='write the local date as "YYYY-MM-DD", e.g. "2026-01-05"',
        )
        return None
    return text.value


def _handoff(name: n.Name | None, diags: Collector) -> int | None:
    if name is None:
        return 0
    match = _CLOCK.fullmatch(name.value)
    if match is None or int(match.group(1)) > 23 or int(match.group(2)) > 59:
        diags.report(
            "E106",
            name.span,
            f"hand-off time '{name.value}' is not a clock time",
            help="write HH:MM between 00:00 and 23:59, e.g. 09:00",
        )
        return None
    return int(match.group(1)) * 60 + int(match.group(2))


def _layer(team: str, d: n.LayerDecl, diags: Collector) -> Layer | None:
    """One ``layer`` block, or None (after located errors) when it cannot run."""
    for span in d.extra:
        diags.report("E102", span, f"layer '{d.name.value}' of team '{team}' repeats an item")
    missing = [
        word
        for word, value in (("members", d.members), ("shift", d.shift), ("zone", d.zone))
        if not value
    ]
    if d.start is None:
        missing.append("start")
    if missing:
        diags.report(
            "E106",
            d.name.span,
            f"layer '{d.name.value}' of team '{team}' needs {', '.join(missing)}",
            help='e.g. members a, b  shift 1w  handoff 09:00  zone "Europe/Berlin"  '
            'start "2026-01-05"',
        )
        return None
    assert d.shift is not None and d.zone is not None and d.start is not None
    if not MIN_SHIFT <= d.shift.seconds <= MAX_SHIFT or d.shift.seconds % 60:
        diags.report(
            "E106",
            d.shift.span,
            f"a shift of {d.shift.text} is not between 1h and 52w in whole minutes",
            help="shifts are hours, days or weeks: e.g. 12h, 1d, 1w",
        )
        return None
    zone, start, handoff = (
        _zone(d.zone, diags),
        _date(d.start, "start", diags),
        _handoff(d.handoff, diags),
    )
    windows = [_window(w, diags) for w in d.restrict]
    if zone is None or start is None or handoff is None or None in windows:
        return None
    members = tuple(dict.fromkeys(m.value for m in d.members))
    layer = Layer(
        d.name.value,
        members,
        d.shift.seconds,
        handoff,
        zone,
        start,
        tuple(w for w in windows if w is not None),
    )
    for problem in check(layer):
        diags.report(
            "E106", d.span, f"layer '{d.name.value}': {problem.message}", help=problem.hint
        )
        return None
    return layer


def lower_schedule(
    d: n.TeamDecl, members: Sequence[str], period: str | None, start: str | None, diags: Collector
) -> Schedule | None:
    """The team's schedule: its layers, or its ``rotation`` as one layer; overrides on top.

    None for a team without either (every member is notified; any may act)."""
    team = d.name.value
    if d.rotation is not None and d.layers:
        diags.report(
            "E102",
            d.rotation.span,
            f"team '{team}' has both `rotation` and layers",
            help="`rotation` is shorthand for one layer: keep the layers and drop it",
        )
    layers: list[Layer] = []
    for decl in d.layers:
        layer = _layer(team, decl, diags)
        if layer is not None:
            layers.append(layer)
    if not d.layers and period in ("daily", "weekly") and start and read_time(start) is not None:
        layers.append(layer_from_rotation(members, period, start))
    if not layers:
        for o in d.overrides:
            diags.report(
                "E106",
                o.span,
                f"team '{team}' has no schedule to override",
                help="overrides replace who is on call: give the team layers or a rotation",
            )
        return None
    schedule = Schedule(tuple(layers))
    lowered = [_override(team, decl, schedule, diags) for decl in d.overrides]
    overrides = tuple(o for o in lowered if o is not None)
    return Schedule(tuple(layers), overrides)


def _window_times(
    start_text: n.Text, end_text: n.Text, what: str, diags: Collector
) -> tuple[int, int] | None:
    """``from "T" to "T"`` as epoch seconds; E106 on a bad or inverted window."""
    start, end = read_time(start_text.value), read_time(end_text.value)
    for text, value in ((start_text, start), (end_text, end)):
        if value is None:
            diags.report(
                "E106",
                text.span,
                f"{what} time '{text.value}' is not an ISO-8601 time with a zone",
                help='for example "2026-12-24T09:00:00+01:00"',
            )
    if start is None or end is None:
        return None
    if end <= start:
        diags.report(
            "E106",
            end_text.span,
            f"the {what} ends at or before it starts ({start_text.value} to {end_text.value})",
            help="swap the two times",
        )
        return None
    return int(start), int(end)


def _override(
    team: str, d: n.TeamOverride, schedule: Schedule, diags: Collector
) -> Override | None:
    window = _window_times(d.start, d.end, "override", diags)
    if window is None:
        return None
    start, end = window
    if d.replaces is not None:
        cover = [s for s in schedule.segments(int(start), int(end)) if s.person == d.replaces.value]
        if not cover:
            diags.report(
                "E106",
                d.span,
                f"override for '{d.replaces.value}' in team '{team}' falls outside every "
                f"shift of theirs ({d.start.value} to {d.end.value})",
                help="check the dates against `escalade oncall`, or drop `for` to take "
                "the whole team's on-call",
            )
            return None
    return Override(d.person.value, int(start), int(end), d.replaces.value if d.replaces else None)


def lower_calendar(d: n.CalendarDecl, root: str, diags: Collector) -> Calendar | None:
    """A ``calendar``: its open hours in one zone, minus holidays (dates or dated files)."""
    zones = {z.value for z in d.zones}
    if not d.zones:
        diags.report(
            "E106",
            d.name.span,
            f"calendar '{d.name.value}' has no time zone",
            help=f'add the zone after the hours: mon-fri 09:00-18:00 "Europe/Berlin" ({_ZONE_HELP})',
        )
        return None
    if len(zones) > 1:
        diags.report(
            "E106",
            d.zones[1].span,
            f"calendar '{d.name.value}' mixes time zones ({', '.join(sorted(zones))})",
            help="one calendar, one zone: split it into two calendars",
        )
        return None
    zone = _zone(d.zones[0], diags)
    windows = [_window(w, diags) for w in d.windows]
    holidays = [_date(h, "holiday", diags) for h in d.holidays]
    for f in d.holiday_files:
        holidays.extend(_holiday_file(f, root, diags))
    if zone is None or None in windows or None in holidays:
        return None
    calendar = Calendar(
        d.name.value,
        zone,
        tuple(w for w in windows if w is not None),
        tuple(sorted({h for h in holidays if h is not None})),
    )
    for problem in check(calendar):
        diags.report(
            "E106", d.name.span, f"calendar '{d.name.value}': {problem.message}", help=problem.hint
        )
        return None
    return calendar


MAX_HOLIDAY_FILE = 64 * 1024  # bytes: decades of holidays, never a log or a device


def _holiday_file(f: n.Text, root: str, diags: Collector) -> list[str | None]:
    """Dates from a holidays file (one ``YYYY-MM-DD`` a line; ``#`` comments), relative
    to the declaring file's folder, inside the policy set: a regular file, not absolute,
    not leaving the set, at most 64 KiB (its lines go into diagnostics and CI logs)."""
    folder = Path(f.span.file).parent  # the display path: relative to the working directory
    path = folder / f.value
    problem = _unsafe_path(f.value, folder, path, root)
    if problem is None:
        try:
            if path.stat().st_size > MAX_HOLIDAY_FILE:
                problem = f"is larger than {MAX_HOLIDAY_FILE // 1024} KiB"
            else:
                lines = path.read_text("utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            problem = f"cannot be read: {type(exc).__name__}"
    if problem is not None:
        diags.report(
            "E106",
            f.span,
            f"holidays file '{f.value}' {problem}",
            help="a text file of dates (YYYY-MM-DD, one a line) inside the policy folder",
        )
        return [None]
    found: list[str | None] = []
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        if read_date(text) is None:
            diags.report(
                "E106",
                f.span,
                f"{f.value}:{number}: not a date from {FIRST_YEAR} to {LAST_YEAR}",
                help="one local date a line, as YYYY-MM-DD; # starts a comment",
            )
            found.append(None)
            continue
        found.append(text)
    return found


def _unsafe_path(given: str, folder: Path, path: Path, root: str) -> str | None:
    """Why a holidays file may not be read (None: it may)."""
    if Path(given).is_absolute():
        return "is an absolute path"
    base = Path(root).resolve()
    base = base if base.is_dir() else base.parent
    try:
        real = path.resolve()
    except OSError:
        return "cannot be resolved"
    if not real.is_relative_to(base):
        return "is outside the policy set"
    if not real.is_file():
        return "is not a regular file" if real.exists() else "does not exist"
    return None


def lower_maintenance(decls: Sequence[n.Decl], diags: Collector) -> tuple[m.Maintenance, ...]:
    """Every ``maintenance`` window: one policy or one team, a window, a reason."""
    found: list[m.Maintenance] = []
    for d in decls:
        if not isinstance(d, n.MaintenanceDecl):
            continue
        for span in d.extra:
            diags.report(
                "E102",
                span,
                f"maintenance '{d.name.value}' repeats an item",
                help="one `policy` or `team`, one `from ... to ...`, one `reason`",
            )
        if (d.policy is None) == (d.team is None) and not d.extra:
            diags.report(
                "E105",
                d.name.span,
                f"maintenance '{d.name.value}' needs exactly one `policy NAME` or `team NAME`",
            )
            continue
        if d.start is None or d.end is None or d.reason is None:
            diags.report(
                "E105",
                d.name.span,
                f'maintenance \'{d.name.value}\' needs `from "T" to "T"` and `reason "..."`',
            )
            continue
        window = _window_times(d.start, d.end, "maintenance", diags)
        if window is None or (d.policy is None and d.team is None):
            continue
        found.append(
            m.Maintenance(
                d.name.value,
                d.policy.value if d.policy else None,
                d.team.value if d.team else None,
                window[0],
                window[1],
                d.reason.value,
                d.span,
            )
        )
    return tuple(found)
