"""The one time module: an injectable clock, instants, durations and their words.

The engine never reads the wall clock itself; it asks a :class:`Clock`. The
command line uses :class:`SystemClock` (or ``--at``), policy tests and the
simulator use :class:`VirtualClock`. Times are whole epoch seconds (UTC).
The compiler reads and writes policy literals with the same functions
(:func:`read_time`, :func:`read_duration`, :func:`format_duration`).

>>> parse_time("2026-11-27T10:00:00Z")
1795773600
>>> format_time(1795773600)
'2026-11-27T10:00:00Z'
>>> parse_duration("1h30m")
5400
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Protocol

_DURATION = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


class Clock(Protocol):
    """Anything that says what time it is, in epoch seconds."""

    def now(self) -> int: ...


class SystemClock:
    """The wall clock."""

    def now(self) -> int:
        return int(time.time())


class VirtualClock:
    """A clock that only moves when told to (policy tests, simulation)."""

    def __init__(self, start: int = 0) -> None:
        self._now = start

    def now(self) -> int:
        return self._now

    def set(self, at: int) -> None:
        """Move to ``at``; a virtual clock never goes backwards."""
        self._now = max(self._now, at)


class TimeError(ValueError):
    """A time or duration that cannot be read."""


FIRST_YEAR, LAST_YEAR = 1970, 2999  # the years a time may name


def read_time(text: str, *, bare_utc: bool = False) -> float | None:
    """Epoch seconds of an ISO-8601 time, or None when ``text`` is not one.

    The one ISO-8601 reader of the project. A trailing ``Z`` means UTC. A time
    without a zone is refused (None) unless ``bare_utc``; fractions of a second
    are kept. Policy and pack literals use it as is; runtime inputs go through
    :func:`parse_time`.

    >>> read_time("2026-11-27T10:00:00.5Z"), read_time("2026-11-27T10:00:00")
    (1795773600.5, None)
    """
    raw = text[:-1] + "+00:00" if text.endswith("Z") else text
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        return None
    if moment.tzinfo is None:
        if not bare_utc:
            return None
        moment = moment.replace(tzinfo=UTC)
    if not FIRST_YEAR <= moment.year <= LAST_YEAR:
        return None  # every time is computed on and shown; year 1 or 9999 is a typo
    return moment.timestamp()


def parse_time(text: str) -> int:
    """Read an ISO-8601 time given to the runtime (events, ``--at``, ``--until``).

    ``Z`` or an offset; a bare date-time counts as UTC; surrounding blanks and a
    lowercase ``z`` are tolerated. Whole seconds; :class:`TimeError` otherwise."""
    raw = text.strip()
    if raw.endswith("z"):
        raw = raw[:-1] + "Z"
    stamp = read_time(raw, bare_utc=True)
    if stamp is None:
        raise TimeError(
            f"{text!r} is not an ISO-8601 time from {FIRST_YEAR} to {LAST_YEAR}"
            " (e.g. 2026-11-27T10:00:00Z)"
        )
    return int(stamp)


def format_time(at: int | float) -> str:
    """Epoch seconds as ISO-8601 UTC with a ``Z``."""
    return datetime.fromtimestamp(int(at), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_duration(text: str) -> int | None:
    """Seconds of a duration such as ``1h30m``, or None when ``text`` is not one.

    The one duration reader of the project: units go from largest to smallest
    (``w``, ``d``, ``h``, ``m``, ``s``), each at most once, nothing around them. Policy
    literals use it as is; runtime inputs go through :func:`parse_duration`.

    >>> read_duration("1h30m"), read_duration("30m1h"), read_duration("1h1h")
    (5400, None, None)
    >>> read_duration("1w")
    604800
    """
    match = _DURATION.fullmatch(text)
    if match is None or not any(match.groups()):
        return None
    w, d, h, m, s = (int(g) if g else 0 for g in match.groups())
    return (((w * 7 + d) * 24 + h) * 60 + m) * 60 + s


def parse_duration(text: str) -> int:
    """Read a duration given to the runtime (events, ``--sla``, settings).

    ``30s``, ``5m``, ``12h``, ``2d`` or combinations in descending order;
    surrounding blanks are tolerated. :class:`TimeError` otherwise."""
    seconds = read_duration(text.strip())
    if seconds is None:
        raise TimeError(f"{text!r} is not a duration (e.g. 30s, 5m, 2h, 1h30m)")
    return seconds


def format_duration(seconds: int | float, sep: str = "") -> str:
    """Seconds as the largest units that fit: ``5400`` -> ``1h30m``; ``0`` -> ``0s``.

    ``sep`` goes between the units (``1h 30m`` for people)."""
    rest = int(seconds)
    if rest <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return sep.join(parts)


def duration_words(seconds: int) -> str:
    """``300`` -> ``5m``; ``5400`` -> ``1h 30m``; ``0`` -> ``0m`` (for people: runbooks, explain)."""
    return "0m" if seconds == 0 else format_duration(seconds, " ")
