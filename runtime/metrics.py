"""Prometheus metrics of ``escalade serve``, written by ``prometheus_client``.

:class:`ServerMetrics` is a collector in a registry of its own (never the
process-wide default, so two servers in one process do not clash); ``GET
/metrics`` answers :meth:`ServerMetrics.exposition`, the text and its content type.
``prometheus_client`` (the ``server`` extra, as for the rest of ``escalade serve``)
is imported only when metrics are made, so the runtime and its CLI import without it.
The families come from three places:

- the store's tables, read with its few count methods (events applied, open
  escalations by state and policy, outbox rows by status, timers, audit rows);
- the KPIs of :mod:`escalade.runtime.kpi` (escalations, acknowledged, resolved, SLA
  breaches and compliance by policy, time to acknowledge and to resolve as
  histograms), kept by a :class:`~escalade.runtime.kpicache.KpiCache` that reads
  only the audit rows appended since the previous scrape;
- the serving process itself (events received by outcome, requests refused for
  security reasons, HTTP requests and their latency), which count from zero when
  the process starts, as Prometheus counters do.

A scrape never takes the engine lock: it reads on a connection of its own
(:func:`open_reader`). SQLite in WAL mode lets that connection read the last
committed state while the engine writes, and the audit trail is append-only, so
the rows after the last one read are all the news. The connection is read-only,
and scrapes take turns on it under a lock of the metrics' own. An in-memory
store, which no second connection can see, gives the process's families only.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from escalade.runtime.kpi import SLA_KINDS
from escalade.runtime.kpicache import Durations, KpiCache
from escalade.runtime.store import Store

if TYPE_CHECKING:
    from prometheus_client.metrics_core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )

OUTBOX_STATUSES = (
    "pending",
    "sent",
    "delivered",
    "failed",
    "undeliverable",
    "dry_run",
    "silenced",
)
# Time to acknowledge and to resolve: a minute to a day, in seconds (+Inf beyond).
DURATION_BUCKETS: tuple[float, ...] = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400)
# Request latency: prometheus_client's default buckets, 5 ms to 10 s (+Inf beyond).
REQUEST_BUCKETS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)


@dataclass(frozen=True, slots=True)
class PackInfo:
    """The active pack, for the info-style gauge."""

    pack_id: int
    version: str
    content_hash: str


def active_pack_info(store: Store) -> PackInfo | None:
    """The store's active pack, its version written as the engine writes it
    (:attr:`~escalade.runtime.engine.loaded.LoadedPack.version`: the pack's version and
    the first 12 digits of its hash); None when no pack was ever activated."""
    pack_id = store.active_pack()
    if pack_id is None:
        return None
    for row in store.packs():
        if row["id"] == pack_id:
            digest = str(row["content_hash"])
            version = f"{row['version']}+{digest.removeprefix('sha256:')[:12]}"
            return PackInfo(pack_id, version, digest)
    return None


def open_reader(store: Store) -> Store | None:
    """A second, read-only connection to the database of ``store``, for scrapes that must
    not wait for the engine: SQLite (WAL) or PostgreSQL. None for an in-memory SQLite
    store, which no other connection can see."""
    from escalade.runtime.store.postgres import PostgresStore
    from escalade.runtime.store.sqlite import SQLiteStore

    if isinstance(store, SQLiteStore) and store.path not in ("", ":memory:"):
        return SQLiteStore(store.path, read_only=True)
    if isinstance(store, PostgresStore):
        return PostgresStore(store.dsn, store.schema, read_only=True)
    return None


class Latencies:
    """Request durations by label values: per-bucket counts (not cumulative), sum, count."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.series: dict[tuple[str, ...], tuple[list[int], list[float]]] = {}

    def observe(self, labels: tuple[str, ...], seconds: float) -> None:
        """Count one duration under ``labels``."""
        buckets, total = self.series.setdefault(labels, ([0] * (len(self.bounds) + 1), [0.0]))
        index = next((i for i, b in enumerate(self.bounds) if seconds <= b), len(self.bounds))
        buckets[index] += 1
        total[0] += seconds

    def family(self, name: str, help_: str, label_names: Sequence[str]) -> HistogramMetricFamily:
        """The histogram family, one series per label values."""
        fam = _histogram(name, help_, labels=label_names)
        for labels, (buckets, total) in sorted(self.series.items()):
            running, cumulative = 0, []
            for bound, count in zip((*self.bounds, float("inf")), buckets, strict=True):
                running += count
                cumulative.append((_le(bound), float(running)))
            fam.add_metric(labels, cumulative, total[0])
        return fam


class ServerMetrics:
    """The metrics of one server: a ``prometheus_client`` collector (``collect``) in a
    registry of its own (:attr:`registry`).

    ``reader``: a connection that only reads (:func:`open_reader`), never the
    engine's (None: the process's families only). ``received``: the server's
    events received by outcome; ``refused``: its requests refused for security
    reasons, by reason (both counted by the server, read at each scrape). The
    transport reports each answered request to :meth:`observe_request`, which
    counts it in ``requests`` (by method, route and status: a Counter of its own
    unless given one) and its latency in a histogram."""

    def __init__(
        self,
        reader: Store | None,
        *,
        received: Mapping[str, int] | None = None,
        refused: Mapping[str, int] | None = None,
        requests: Counter[tuple[str, str, int]] | None = None,
    ) -> None:
        self.reader = reader
        self.received: Mapping[str, int] = received if received is not None else {}
        self.refused: Mapping[str, int] = refused if refused is not None else {}
        self.cache = KpiCache()
        self.requests: Counter[tuple[str, str, int]] = (
            requests if requests is not None else Counter()
        )
        self.latency = Latencies(REQUEST_BUCKETS)
        self.watched: Mapping[str, int | None] = {}  # sources with expect_every (heartbeats)
        self.wall: Callable[[], float] = time.time
        self._scrape = threading.Lock()  # one scrape at a time on the reader
        self._stats = threading.Lock()  # requests are observed from many threads
        self._close = None if reader is None else weakref.finalize(self, reader.close)
        from prometheus_client import CollectorRegistry

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request: ``route`` is its template (``/tickets/{id}``, never
        the path), ``seconds`` how long the answer took."""
        with self._stats:
            self.requests[(method, route, status)] += 1
            self.latency.observe((route, method), seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text exposition of every family, and its content type."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def close(self) -> None:
        """Close the reader (also done when this object is collected)."""
        if self._close is not None:
            self._close()

    def collect(self) -> Iterable[Metric]:
        """Every family, read now (the registry calls this at each scrape)."""
        if self.reader is None:
            return self._process()
        with self._scrape:
            self.cache.refresh(self.reader)
            families = [
                *self._events(self.reader),
                self._open_escalations(self.reader),
                *self._kpis(),
                self._outbox(self.reader),
                *self._store(self.reader),
                self._pack_info(self.reader),
                *self._sources(self.reader),
            ]
        return [*families, *self._process()]

    def _events(self, reader: Store) -> list[Metric]:
        counters = reader.counters()
        received = _counter(
            "escalade_events_received_total",
            "Events this server received since it started, by outcome"
            " (applied, duplicate, dead_letter, refused, error).",
            labels=["outcome"],
        )
        for outcome, n in sorted(dict(self.received).items()):
            received.add_metric([outcome], n)
        return [
            _counter(
                "escalade_events_applied_total",
                "Events applied to the store (all time).",
                value=reader.count_events(),
            ),
            _counter(
                "escalade_events_dead_lettered_total",
                "Malformed events sent to the dead-letter record (all time).",
                value=counters.get("dead_letters", 0),
            ),
            _gauge(
                "escalade_dead_letters_waiting",
                "Dead letters not replayed yet.",
                value=reader.count_dead_letters(),
            ),
            _counter(
                "escalade_unknown_fields_ignored_total",
                "Unknown event fields ignored (all time).",
                value=counters.get("unknown_fields", 0),
            ),
            received,
            *_noise(counters),
        ]

    def _open_escalations(self, reader: Store) -> Metric:
        fam = _gauge(
            "escalade_escalations_open",
            "Escalations not closed, by state and policy.",
            labels=["state", "policy"],
        )
        for state, policy, n in reader.open_by_state_and_policy():
            fam.add_metric([state, policy], n)
        return fam

    def _kpis(self) -> list[Metric]:
        cache = self.cache
        counters = [
            _counter(name, help_, value=value)
            for name, help_, value in (
                (
                    "escalade_escalations_total",
                    "Escalations started (from the audit trail).",
                    cache.escalations,
                ),
                (
                    "escalade_escalations_acknowledged_total",
                    "Escalations acknowledged at least once (from the audit trail).",
                    len(cache.to_acknowledge.ordered),
                ),
                (
                    "escalade_escalations_resolved_total",
                    "Escalations resolved (from the audit trail).",
                    len(cache.to_resolve.ordered),
                ),
                (
                    "escalade_escalations_closed_total",
                    "Escalations closed (from the audit trail).",
                    cache.closed,
                ),
                (
                    "escalade_escalations_unacknowledged_total",
                    "Escalations whose failover chain ran out without an ack.",
                    cache.unacknowledged,
                ),
                (
                    "escalade_escalations_triaged_total",
                    "Escalations sent to Type B triage.",
                    cache.triaged,
                ),
                ("escalade_handoffs_total", "Handoffs, re-routes and transfers.", cache.handoffs),
            )
        ]
        return [
            *counters,
            *self._sla(),
            _duration_histogram(
                "escalade_time_to_acknowledge_seconds",
                "Seconds from the start of an escalation to its first acknowledgement.",
                cache.to_acknowledge,
            ),
            _duration_histogram(
                "escalade_time_to_resolve_seconds",
                "Seconds from the start of an escalation to its (latest) resolution.",
                cache.to_resolve,
            ),
        ]

    def _sla(self) -> list[Metric]:
        labels = ["policy", "sla"]
        breached = _counter(
            "escalade_sla_breaches_total",
            "SLA breaches by policy and SLA (acknowledge, resolve).",
            labels=labels,
        )
        met = _counter("escalade_sla_met_total", "SLAs met by policy and SLA.", labels=labels)
        ratio = _gauge(
            "escalade_sla_compliance_ratio",
            "Met / (met + breached) by policy and SLA; no sample before the first decision.",
            labels=labels,
        )
        for policy, row in self.cache.sla_compliance().items():
            for sla in SLA_KINDS:
                breached.add_metric([policy, sla], row[sla]["breached"])
                met.add_metric([policy, sla], row[sla]["met"])
                if row[sla]["compliance"] is not None:
                    ratio.add_metric([policy, sla], row[sla]["compliance"])
        return [breached, met, ratio]

    def _outbox(self, reader: Store) -> Metric:
        counts = dict.fromkeys(OUTBOX_STATUSES, 0)
        counts.update(reader.outbox_by_status())
        fam = _gauge(
            "escalade_outbox_messages",
            "Outbox rows by status: pending (to send), sent (no receipt yet), delivered, failed,"
            " undeliverable (no channel configured), dry_run (recorded, nothing sent),"
            " silenced (held by a silence, never sent).",
            labels=["status"],
        )
        for status, n in sorted(counts.items()):
            fam.add_metric([status], n)
        return fam

    def _store(self, reader: Store) -> list[Metric]:
        return [
            _gauge(
                "escalade_timers_pending",
                "Timer rows waiting to fire.",
                value=reader.count_timers(),
            ),
            _gauge(
                "escalade_audit_rows",
                "Rows in the hash-chained audit trail.",
                value=self.cache.rows,
            ),
            _gauge(
                "escalade_clock_seconds",
                "The store's clock (Unix seconds): the latest moment the runtime acted at.",
                value=reader.clock() or 0,
            ),
        ]

    def _pack_info(self, reader: Store) -> Metric:
        fam = _gauge(
            "escalade_pack_info",
            "The active rule pack (value 1; no sample when no pack is active).",
            labels=["version", "content_hash", "pack_id"],
        )
        pack = active_pack_info(reader)
        if pack is not None:
            fam.add_metric([pack.version, pack.content_hash, str(pack.pack_id)], 1)
        return fam

    def watch_sources(
        self, watched: Mapping[str, int | None], wall: Callable[[], float] = time.time
    ) -> None:
        """Report the heartbeat of each source in ``watched`` (name -> expect_every)."""
        self.watched, self.wall = dict(watched), wall

    def _sources(self, reader: Store) -> list[Metric]:
        if not self.watched:
            return []
        from escalade.runtime.heartbeats import health

        since = _gauge(
            "escalade_source_seconds_since_seen",
            "Seconds since each watched source last sent something (absent: never seen)",
            labels=["source"],
        )
        silent = _gauge(
            "escalade_source_silent",
            "1 while a watched source is silent past its expect_every, else 0",
            labels=["source"],
        )
        now = int(self.wall())
        for found in health(reader, self.watched):
            seconds = found.since(now)
            if seconds is not None:
                since.add_metric([found.name], seconds)
            silent.add_metric([found.name], 1 if found.silent else 0)
        return [since, silent]

    def _process(self) -> list[Metric]:
        refusals = _counter(
            "escalade_security_refusals_total",
            "Requests this server refused for security reasons, by reason"
            " (receipt_signature, receipt_state).",
            labels=["reason"],
        )
        for reason, n in sorted(dict(self.refused).items()):
            refusals.add_metric([reason], n)
        requests = _counter(
            "escalade_http_requests_total",
            "HTTP requests this server answered since it started, by method, route and code.",
            labels=["method", "route", "code"],
        )
        with self._stats:
            for (method, route, status), n in sorted(dict(self.requests).items()):
                requests.add_metric([method, route, str(status)], n)
            latency = self.latency.family(
                "escalade_http_request_duration_seconds",
                "Seconds this server took to answer a request, by route and method.",
                ["route", "method"],
            )
        return [refusals, requests, latency]


def _noise(counters: Mapping[str, int]) -> list[Metric]:
    """Grouping and silences (#15), from the store's counters."""
    from escalade.runtime.engine.noise import GROUPED_COUNTER, SILENCED_COUNTER

    grouped = _counter(
        "escalade_grouped_events_total",
        "Events attached to an open escalation of their group (`group by`) instead of"
        " paging again, by policy (all time).",
        labels=["policy"],
    )
    for name, n in sorted(counters.items()):
        if name.startswith(GROUPED_COUNTER):
            grouped.add_metric([name.removeprefix(GROUPED_COUNTER)], n)
    silenced = _counter(
        "escalade_silenced_messages_total",
        "Notify and page messages a silence or maintenance window held (all time).",
        value=counters.get(SILENCED_COUNTER, 0),
    )
    return [grouped, silenced]


def _duration_histogram(name: str, help_: str, durations: Durations) -> HistogramMetricFamily:
    """A histogram of durations (cumulative ``le`` buckets in seconds, their sum and count)."""
    bounds = (*DURATION_BUCKETS, float("inf"))
    buckets = [
        (_le(bound), float(n))
        for bound, n in zip(bounds, durations.cumulative(bounds), strict=True)
    ]
    return _histogram(name, help_, buckets=buckets, sum_value=durations.sum)


def _le(bound: float) -> str:
    """A bucket's ``le`` label as Prometheus clients write it: ``60.0``, ``0.005``, ``+Inf``."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def _counter(
    name: str, help_: str, value: float | None = None, labels: Sequence[str] | None = None
) -> CounterMetricFamily:
    from prometheus_client.metrics_core import CounterMetricFamily

    return CounterMetricFamily(name, help_, value=value, labels=labels)


def _gauge(
    name: str, help_: str, value: float | None = None, labels: Sequence[str] | None = None
) -> GaugeMetricFamily:
    from prometheus_client.metrics_core import GaugeMetricFamily

    return GaugeMetricFamily(name, help_, value=value, labels=labels)


def _histogram(
    name: str,
    help_: str,
    buckets: Sequence[tuple[str, float]] | None = None,
    sum_value: float | None = None,
    labels: Sequence[str] | None = None,
) -> HistogramMetricFamily:
    from prometheus_client.metrics_core import HistogramMetricFamily

    return HistogramMetricFamily(name, help_, buckets=buckets, sum_value=sum_value, labels=labels)
