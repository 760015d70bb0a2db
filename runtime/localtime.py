"""Local wall-clock time for schedules and calendars: zones, weekly windows, gap words.

Instants are whole epoch seconds (UTC). A local wall-clock time becomes an instant with
``zoneinfo`` and ``fold=0``: an ambiguous time (the repeated hour in autumn) is its
first occurrence; a time that does not exist (the skipped hour in spring) is read with
the offset in force before the change, so it lands as far after the change as it
was after the last valid time: 02:30 on 2026-03-29 in Europe/Berlin is 01:30 UTC
(03:30 CEST). That is what Python's ``datetime(..., tzinfo=ZoneInfo(z)).timestamp()``
gives; everything here goes through :func:`instant`.

>>> instant(zone("Europe/Berlin"), date(2026, 3, 29), 150 * 60)
1774747800
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache, lru_cache
from itertools import pairwise
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from escalade.runtime.clock import FIRST_YEAR, LAST_YEAR, duration_words
from escalade.runtime.intervals import Intervals, Span, normalize

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DAY = 86400
WEEK = 7 * DAY
_UTC = ZoneInfo("UTC")
_PLURAL = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")


class ScheduleError(ValueError):
    """A schedule or calendar that cannot be evaluated (unknown zone, no open time...)."""


@lru_cache(maxsize=256)
def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; :class:`ScheduleError` when there is none.

    >>> zone("UTC").key
    'UTC'
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as err:
        raise ScheduleError(f"unknown time zone {name!r}") from err


def known_zone(name: str) -> bool:
    """Whether ``name`` is an IANA zone this machine knows (``localtime`` and other names
    outside the IANA list are not: what they mean depends on the machine)."""
    if name not in _iana_zones():
        return False
    try:
        zone(name)
    except ScheduleError:
        return False
    return True


# Files of the zone database that are not zones of the world: the host's own setting
# and the database's internals.
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@cache
def _iana_zones() -> frozenset[str]:
    return frozenset(
        z
        for z in available_timezones()
        if z not in _NOT_ZONES and not z.startswith(("posix/", "right/"))
    )


def read_date(text: str) -> date | None:
    """A strict ``YYYY-MM-DD`` date, or None.

    >>> read_date("2026-02-29"), read_date("2026-03-01")
    (None, datetime.date(2026, 3, 1))
    """
    if len(text) != 10:
        return None
    try:
        found = date.fromisoformat(text)
    except ValueError:
        return None
    return found if FIRST_YEAR <= found.year <= LAST_YEAR else None


def instant(tz: ZoneInfo, day: date, seconds: int) -> int:
    """Epoch seconds of local midnight of ``day`` plus ``seconds`` of wall-clock time (fold=0).

    >>> instant(zone("America/New_York"), date(2026, 3, 8), 9 * 3600)
    1772974800
    """
    naive = datetime(day.year, day.month, day.day) + timedelta(seconds=seconds)
    return int(naive.replace(tzinfo=tz).timestamp())


def local(tz: ZoneInfo, at: int) -> datetime:
    """The aware local time of instant ``at`` in ``tz``."""
    return datetime.fromtimestamp(at, tz)


def offset(tz: ZoneInfo, at: int) -> int:
    """The UTC offset in seconds in force at instant ``at``."""
    delta = datetime.fromtimestamp(at, tz).utcoffset()
    return int(delta.total_seconds()) if delta is not None else 0


@dataclass(frozen=True, slots=True)
class Window:
    """A weekly local-time window: starts on each of `days` (0=Mon..6=Sun) at `start`
    minutes after local midnight and ends at `end` minutes; end <= start means it spans
    midnight and ends the next day. (0, 1440) is the whole day.

    >>> Window((0, 1, 2, 3, 4), 9 * 60, 18 * 60)  # weekdays 09:00-18:00
    Window(days=(0, 1, 2, 3, 4), start=540, end=1080)
    """

    days: tuple[int, ...]
    start: int
    end: int

    @property
    def minutes(self) -> int:
        """Wall-clock length in minutes (1440 when start == end)."""
        return self.end - self.start if self.end > self.start else self.end + 1440 - self.start


def window_spans(windows: Sequence[Window], tz: ZoneInfo, lo: int, hi: int) -> Intervals:
    """The union of ``windows`` in ``tz`` within ``[lo, hi)``, evaluated per local day.

    Each occurrence runs from its local start to its local end (fold=0 both): a
    window spanning a clock change is an hour shorter or longer in real time.

    >>> w = Window((3,), 9 * 60, 10 * 60)  # Thursdays 09:00-10:00
    >>> window_spans([w], zone("UTC"), 0, 8 * 86400)  # 1970-01-01 was a Thursday
    ((32400, 36000), (637200, 640800))
    """
    if not windows or lo >= hi:
        return ()
    first = local(tz, lo).date() - timedelta(days=1)
    last = local(tz, hi).date()
    spans: list[Span] = []
    day = first
    while day <= last:
        weekday = day.weekday()
        for w in windows:
            if weekday in w.days:
                start = instant(tz, day, w.start * 60)
                end = instant(tz, day, (w.start + w.minutes) * 60)
                if end > lo and start < hi:
                    spans.append((max(start, lo), min(end, hi)))
        day += timedelta(days=1)
    return normalize(spans)


def day_spans(days: Iterable[date], tz: ZoneInfo) -> Intervals:
    """Whole local days (midnight to midnight) as instants."""
    return normalize((instant(tz, d, 0), instant(tz, d, DAY)) for d in days)


def window_problems(windows: Sequence[Window], what: str) -> list[tuple[str, str]]:
    """(problem, fix hint) pairs for a set of windows: bad days/minutes, empty, overlaps."""
    found: list[tuple[str, str]] = []
    for w in windows:
        if not w.days or any(d not in range(7) for d in w.days):
            found.append((f"{what} has no valid days", "name days mon..sun"))
        if w.start not in range(1440) or w.end not in range(1441):
            found.append((f"{what} time is out of range", "use times 00:00..24:00"))
        elif w.start == w.end:
            found.append((f"{what} starts and ends at the same time", "use 00:00-24:00"))
    if found:
        return found
    occupied = sorted(
        (d * 1440 + w.start, d * 1440 + w.start + w.minutes) for w in windows for d in set(w.days)
    )
    wrapped = [(a - 7 * 1440, b - 7 * 1440) for a, b in occupied if b > 7 * 1440]
    spans = sorted(occupied + wrapped)
    if any(b[0] < a[1] for a, b in pairwise(spans)):
        found.append((f"{what}s overlap", "merge the overlapping windows into one"))
    return found


def _clock(moment: datetime) -> str:
    return moment.strftime("%H:%M:%S" if moment.second else "%H:%M")


def _pair(start: datetime, end: datetime, with_date: bool) -> str:
    head = f"{start:%Y-%m-%d} {_clock(start)}" if with_date else _clock(start)
    tail = f"{end:%Y-%m-%d} {_clock(end)}" if end.date() != start.date() else _clock(end)
    return f"{head}\u2013{tail}"


def describe_gap(start: int, end: int, zone_name: str) -> str:
    """A gap ``[start, end)`` in words, in the team's zone and in UTC.

    >>> describe_gap(1774738800, 1774742400, "Europe/Berlin")
    '2026-03-29 00:00\u201301:00 Europe/Berlin (2026-03-28 23:00\u20132026-03-29 00:00 UTC)'
    >>> describe_gap(1774746000, 1774749600, "Europe/Berlin")
    '2026-03-29 03:00\u201304:00 Europe/Berlin (01:00\u201302:00 UTC)'
    """
    tz = zone(zone_name)
    ls, le = local(tz, start), local(tz, end)
    us, ue = local(_UTC, start), local(_UTC, end)
    utc = _pair(us, ue, us.date() != ls.date())
    return f"{_pair(ls, le, True)} {zone_name} ({utc} UTC)"


def _key(tz: ZoneInfo, span: Span) -> tuple[int, int, int, int]:
    """A gap's weekly shape: local start (weekday, second of day) and length in local days+s."""
    ls, le = local(tz, span[0]), local(tz, span[1])
    day_s = ls.hour * 3600 + ls.minute * 60 + ls.second
    end_s = le.hour * 3600 + le.minute * 60 + le.second
    return ls.weekday(), day_s, (le.date() - ls.date()).days, end_s


def _weekly_phrase(tz: ZoneInfo, zone_name: str, spans: list[Span]) -> str:
    weekday, _, days, _ = _key(tz, spans[0])
    ls, le = local(tz, spans[0][0]), local(tz, spans[0][1])
    if days >= 6:  # "Wednesdays 12:00-Wednesdays 00:00" would read as inverted
        until = f" for {duration_words(spans[0][1] - spans[0][0])}"
    else:
        end_day = f"{_PLURAL[(weekday + days) % 7]} " if days else ""
        until = f"\u2013{end_day}{_clock(le)}"
    weekly = all(
        (local(tz, b[0]).date() - local(tz, a[0]).date()).days == 7 for a, b in pairwise(spans)
    )
    often = f"every week, {len(spans)} times" if weekly else f"{len(spans)} weeks"
    first = f"{ls:%Y-%m-%d} {_clock(ls)} {zone_name}"
    if zone_name != "UTC":
        first += f" = {_clock(local(_UTC, spans[0][0]))} UTC"
    return f"{_PLURAL[weekday]} {_clock(ls)}{until} {zone_name} ({often}; first {first})"


def summarize_gaps(gaps: Iterable[Span], zone_name: str) -> list[str]:
    """Gaps in words: those recurring at the same local weekday and times grouped into one
    phrase, the others one by one, in the order of their first occurrence.

    >>> weekends = [(d + 2 * 86400 + 18 * 3600, d + 4 * 86400 + 9 * 3600) for d in (0, 604800)]
    >>> summarize_gaps(weekends, "UTC")[0]  # 1970-01-01 was a Thursday
    'Saturdays 18:00\u2013Mondays 09:00 UTC (every week, 2 times; first 1970-01-03 18:00 UTC)'
    """
    tz = zone(zone_name)
    groups: dict[tuple[int, int, int, int], list[Span]] = {}
    for span in sorted(gaps):
        groups.setdefault(_key(tz, span), []).append(span)
    lines: list[tuple[int, str]] = []
    for spans in groups.values():
        if len(spans) > 1:
            lines.append((spans[0][0], _weekly_phrase(tz, zone_name, spans)))
        else:
            lines.append((spans[0][0], describe_gap(*spans[0], zone_name)))
    return [text for _, text in sorted(lines)]


def utc_date(at: int) -> date:
    """The UTC date of instant ``at``."""
    return datetime.fromtimestamp(at, UTC).date()
