"""The Reports page: the KPIs of ``escalade report`` over a date range, and its SVG charts.

The range keeps the escalations that *started* in it, told by the audit rows
up to its end (:class:`Window`): an escalation started before ``from`` is left
out, one resolved after ``to`` counts as open. The KPIs themselves are
:func:`escalade.runtime.kpi.compute`'s, over that window. Charts are plain
data (:class:`Chart`, bars with their coordinates) drawn as SVG by the
template: no script, no style attribute.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

from escalade.runtime import kpi
from escalade.runtime.clock import TimeError, format_duration, format_time, parse_time
from escalade.runtime.store import AuditRow, Store

DAY = 86400
# Upper edges (seconds) of the time-to-acknowledge and time-to-resolve buckets.
EDGES = (60, 300, 900, 1800, 3600, 4 * 3600, 8 * 3600, DAY)
MAX_COLUMNS = 120  # per-day columns; a longer range is drawn per week
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class Window:
    """A store seen through a time window: its audit rows at ``since <= at < until`` only
    (None: unbounded); everything else is the store's own."""

    def __init__(self, store: Store, since: int | None, until: int | None) -> None:
        self._store = store
        self.since = since
        self.until = until

    def audit_rows(self, escalation_id: int | None = None) -> Iterator[AuditRow]:
        """The store's audit rows inside the window, in order."""
        for row in self._store.audit_rows(escalation_id):
            if (self.since is None or row.at >= self.since) and (
                self.until is None or row.at < self.until
            ):
                yield row

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def store(self) -> Store:
        """This window where a :class:`Store` is expected (it reads like one)."""
        return cast(Store, self)


def read_range(start: str, end: str) -> tuple[int | None, int | None, dict[str, str]]:
    """``(since, until, errors)`` of the ``from`` and ``to`` fields: a date (``to``: its
    whole day) or an ISO-8601 time; blank is unbounded. ``errors`` is keyed by field."""
    errors: dict[str, str] = {}
    bounds: list[int | None] = []
    for name, given, extra in (("from", start, 0), ("to", end, DAY)):
        text = given.strip()
        if not text:
            bounds.append(None)
            continue
        try:
            if _DATE.fullmatch(text):
                bounds.append(parse_time(text + "T00:00:00Z") + extra)
            else:
                bounds.append(parse_time(text))
        except TimeError as exc:
            errors[name] = f"{exc} (give a date such as 2026-11-27, or an ISO-8601 time)"
            bounds.append(None)
    since, until = bounds
    if since is not None and until is not None and until <= since and not errors:
        errors["to"] = "`to` must come after `from`"
    return since, until, errors


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: its label, the value shown, and where it is drawn."""

    label: str
    text: str
    x: float
    y: float
    width: float
    height: float
    highlight: bool = False


@dataclass(frozen=True, slots=True)
class Chart:
    """An SVG bar chart: ``rows`` (horizontal bars, each under its label) or ``columns``
    (vertical bars over time, a label under every few)."""

    id: str
    title: str
    description: str
    kind: str
    bars: tuple[Bar, ...]
    width: int
    height: int

    @property
    def empty(self) -> bool:
        return not self.bars


WIDTH = 480  # the SVG's own units; the page scales it to the column
MAX_COLUMN = 40  # the widest a day's column gets (one day alone is not the whole chart)
ROW_HEIGHT = 38  # a label line, then its bar
BAR_HEIGHT = 14
VALUE_ROOM = 96  # right of the longest bar, for its figure


def rows_chart(
    chart_id: str,
    title: str,
    description: str,
    values: Sequence[tuple[str, float | None, str]],
    scale: float | None = None,
    highlight_below: float | None = None,
) -> Chart:
    """Horizontal bars of ``(label, value, text)``, each label above its bar (long policy
    names fit a phone); a None value draws no bar. Bars are scaled to ``scale`` (default:
    the largest value); values under ``highlight_below`` are highlighted."""
    room = WIDTH - VALUE_ROOM
    top = scale or max((v for _, v, _ in values if v), default=0) or 1
    bars = tuple(
        Bar(
            label=label,
            text=text,
            x=0,
            y=i * ROW_HEIGHT + 18,
            width=round(room * (value or 0) / top, 1),
            height=BAR_HEIGHT,
            highlight=highlight_below is not None and value is not None and value < highlight_below,
        )
        for i, (label, value, text) in enumerate(values)
    )
    return Chart(chart_id, title, description, "rows", bars, WIDTH, len(bars) * ROW_HEIGHT)


def columns_chart(
    chart_id: str, title: str, description: str, values: Sequence[tuple[str, int]]
) -> Chart:
    """Vertical bars of ``(label, count)`` in order; every few carry their label."""
    plot, below = 160, 22
    top = max((v for _, v in values), default=0) or 1
    step = min(WIDTH / max(len(values), 1), MAX_COLUMN)  # a few days stay narrow columns
    every = max(1, math.ceil(len(values) / 8))
    bars = tuple(
        Bar(
            label=label if i % every == 0 else "",
            text=f"{label}: {count}",
            x=round(i * step, 1),
            y=round(plot - plot * count / top, 1),
            width=round(max(step - 2, 1), 1),
            height=round(plot * count / top, 1),
        )
        for i, (label, count) in enumerate(values)
    )
    return Chart(chart_id, title, description, "columns", bars, WIDTH, plot + below)


def bucket_label(i: int) -> str:
    """The label of bucket ``i`` of :data:`EDGES` (``< 1m``, ``1m to 5m``, ..., ``≥ 1d``)."""
    if i == 0:
        return f"< {format_duration(EDGES[0])}"
    if i == len(EDGES):
        return f"≥ {format_duration(EDGES[-1])}"
    return f"{format_duration(EDGES[i - 1])} to {format_duration(EDGES[i])}"


def distribution(chart_id: str, title: str, seconds: Sequence[int]) -> Chart:
    """How many durations fall in each bucket of :data:`EDGES`."""
    counts = Counter(next((i for i, e in enumerate(EDGES) if s < e), len(EDGES)) for s in seconds)
    values = [(bucket_label(i), float(counts[i]), str(counts[i])) for i in range(len(EDGES) + 1)]
    described = f"{len(seconds)} escalations by duration bucket"
    return rows_chart(chart_id, title, described, values)


def compliance_chart(sla: dict[str, Any]) -> Chart:
    """SLA compliance by policy, one bar per policy and SLA kind (below 90% highlighted)."""
    values: list[tuple[str, float | None, str]] = []
    for policy, row in sla.items():
        for kind in ("acknowledge", "resolve"):
            counts = row[kind]
            share = counts["compliance"]
            text = "—" if share is None else f"{share * 100:.1f}%"
            values.append(
                (
                    f"{policy} · {kind}",
                    share,
                    f"{text} ({counts['met']}/{counts['met'] + counts['breached']})",
                )
            )
    return rows_chart(
        "chart-sla",
        "SLA compliance by policy",
        "share of decided SLAs that were met, per policy and SLA kind",
        values,
        scale=1.0,
        highlight_below=0.9,
    )


def per_day_chart(starts: Sequence[int], since: int | None, until: int | None) -> Chart:
    """Escalations started per day (per week over long ranges), zero days included."""
    if not starts and (since is None or until is None):
        return columns_chart("chart-days", "Escalations per day", "no escalation", [])
    first = (since if since is not None else min(starts)) // DAY
    last = ((until - 1) if until is not None else max(starts)) // DAY
    width = 1 if last - first + 1 <= MAX_COLUMNS else 7
    counts = Counter((s // DAY - first) // width for s in starts)
    values = [
        (format_time((first + n * width) * DAY)[:10], counts[n])
        for n in range((last - first) // width + 1)
    ]
    unit = "day" if width == 1 else "week"
    return columns_chart(
        "chart-days",
        f"Escalations per {unit}",
        f"escalations started per {unit}, {len(values)} {unit}s",
        values,
    )


@dataclass(slots=True)
class Report:
    """The Reports page: the KPIs of the window and its charts."""

    kpis: dict[str, Any]
    charts: list[Chart]


def report(store: Store, since: int | None, until: int | None) -> Report:
    """The KPIs and charts of the escalations that started in ``[since, until)``."""
    window = Window(store, since, until).store()
    kpis = kpi.compute(window)
    lives = list(kpi.read_lives(window)[0].values())
    acked = [life.acked - life.started for life in lives if life.acked is not None]
    resolved = [life.resolved - life.started for life in lives if life.resolved is not None]
    charts = [
        distribution("chart-tta", "Time to acknowledge", acked),
        distribution("chart-ttr", "Time to resolve", resolved),
        compliance_chart(kpis["sla_compliance"]),
        per_day_chart([life.started for life in lives], since, until),
    ]
    return Report(kpis, charts)
