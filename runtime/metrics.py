"""Prometheus metrics (text exposition format 0.0.4) from the store and the KPIs.

The families come from three places:

- the store's tables, read with its few count methods (events applied, open
  escalations by state and policy, outbox rows by status, timers, audit rows);
- the KPIs of :mod:`escalade.runtime.kpi` (acknowledged, resolved, SLA breaches
  and compliance by policy, ...), recomputed only when the audit trail grew;
- the serving process itself (events received by outcome, HTTP requests), which
  count from zero when the process starts, as Prometheus counters do.

For example ``render([Family("demo_total", "counter", "A demo.", [({"k": "v"}, 2)])])``
gives::

    # HELP demo_total A demo.
    # TYPE demo_total counter
    demo_total{k="v"} 2
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from escalade.runtime import kpi
from escalade.runtime.store import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTBOX_STATUSES = ("pending", "sent", "delivered", "failed", "undeliverable", "dry_run")
SLA_KINDS = ("acknowledge", "resolve")

Labels = Mapping[str, str]


@dataclass(slots=True)
class Family:
    """One metric family: its name, type (``counter`` or ``gauge``), help and samples."""

    name: str
    kind: str
    help: str
    samples: list[tuple[Labels, float]] = field(default_factory=list)


def escape_label_value(value: str) -> str:
    """A label value as the exposition format writes it: ``\\``, ``"`` and newline escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def escape_help(text: str) -> str:
    """HELP text as the exposition format writes it: ``\\`` and newline escaped."""
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def format_value(value: float) -> str:
    """A sample value: integers without a decimal point, ``NaN``, ``+Inf``, ``-Inf``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def render(families: list[Family]) -> str:
    """The families as exposition text (every family with HELP and TYPE, even when empty)."""
    lines: list[str] = []
    for fam in families:
        lines.append(f"# HELP {fam.name} {escape_help(fam.help)}")
        lines.append(f"# TYPE {fam.name} {fam.kind}")
        for labels, value in fam.samples:
            if labels:
                inner = ",".join(f'{k}="{escape_label_value(v)}"' for k, v in labels.items())
                lines.append(f"{fam.name}{{{inner}}} {format_value(value)}")
            else:
                lines.append(f"{fam.name} {format_value(value)}")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class PackInfo:
    """The active pack, for the info-style gauge."""

    pack_id: int
    version: str
    content_hash: str


class MetricsCollector:
    """Builds the metric families of one store; keeps the KPIs until the audit trail grows."""

    def __init__(self, store: Store) -> None:
        """``store``: the store the engine runs on (read with its count methods)."""
        self.store = store
        self._kpi_seq = -1
        self._kpis: dict[str, Any] = {}

    def kpis(self) -> dict[str, Any]:
        """The KPIs, recomputed only when an audit row was appended since the last call."""
        seq = self.store.audit_head()[0]
        if seq != self._kpi_seq:
            self._kpis = kpi.compute(self.store)
            self._kpi_seq = seq
        return self._kpis

    def collect(
        self,
        pack: PackInfo | None,
        received: Mapping[str, int] | None = None,
        requests: Mapping[tuple[str, str, int], int] | None = None,
        refused: Mapping[str, int] | None = None,
    ) -> list[Family]:
        """Every family. ``received``: events this process received, by outcome;
        ``requests``: HTTP requests this process answered, by (method, route, code);
        ``refused``: requests refused for security reasons (bad receipts), by reason."""
        kpis = self.kpis()
        return [
            *self._event_families(received),
            self._open_escalations(),
            *[_one(name, "counter", help_, value(kpis)) for name, help_, value in KPI_COUNTERS],
            *self._sla(kpis),
            *self._durations(kpis),
            self._outbox(),
            *self._store_families(),
            _pack_info(pack),
            Family(
                "escalade_security_refusals_total",
                "counter",
                "Requests this server refused for security reasons, by reason"
                " (receipt_signature, receipt_state).",
                [({"reason": k}, v) for k, v in sorted((refused or {}).items())],
            ),
            Family(
                "escalade_http_requests_total",
                "counter",
                "HTTP requests this server answered since it started, by method, route and code.",
                [
                    ({"method": m, "route": r, "code": str(c)}, n)
                    for (m, r, c), n in sorted((requests or {}).items())
                ],
            ),
        ]

    def _event_families(self, received: Mapping[str, int] | None) -> list[Family]:
        store = self.store
        counters = store.counters()
        return [
            _one(
                "escalade_events_applied_total",
                "counter",
                "Events applied to the store (all time).",
                store.count_events(),
            ),
            _one(
                "escalade_events_dead_lettered_total",
                "counter",
                "Malformed events sent to the dead-letter record (all time).",
                counters.get("dead_letters", 0),
            ),
            _one(
                "escalade_dead_letters_waiting",
                "gauge",
                "Dead letters not replayed yet.",
                store.count_dead_letters(),
            ),
            _one(
                "escalade_unknown_fields_ignored_total",
                "counter",
                "Unknown event fields ignored (all time).",
                counters.get("unknown_fields", 0),
            ),
            Family(
                "escalade_events_received_total",
                "counter",
                "Events this server received since it started, by outcome"
                " (applied, duplicate, dead_letter, refused, error).",
                [({"outcome": k}, v) for k, v in sorted((received or {}).items())],
            ),
        ]

    def _store_families(self) -> list[Family]:
        store = self.store
        return [
            _one(
                "escalade_timers_pending",
                "gauge",
                "Timer rows waiting to fire.",
                store.count_timers(),
            ),
            _one(
                "escalade_audit_rows",
                "gauge",
                "Rows in the hash-chained audit trail.",
                store.audit_head()[0],
            ),
            _one(
                "escalade_clock_seconds",
                "gauge",
                "The store's clock (Unix seconds): the latest moment the runtime acted at.",
                store.clock() or 0,
            ),
        ]

    def _open_escalations(self) -> Family:
        rows = self.store.open_by_state_and_policy()
        return Family(
            "escalade_escalations_open",
            "gauge",
            "Escalations not closed, by state and policy.",
            [({"state": str(s), "policy": str(p)}, int(n)) for s, p, n in rows],
        )

    def _outbox(self) -> Family:
        counts = {status: 0 for status in OUTBOX_STATUSES}
        counts.update(self.store.outbox_by_status())
        return Family(
            "escalade_outbox_messages",
            "gauge",
            "Outbox rows by status: pending (to send), sent (no receipt yet), delivered, failed,"
            " undeliverable (no channel configured), dry_run (recorded, nothing sent).",
            [({"status": s}, n) for s, n in sorted(counts.items())],
        )

    @staticmethod
    def _sla(kpis: Mapping[str, Any]) -> list[Family]:
        breached = Family(
            "escalade_sla_breaches_total",
            "counter",
            "SLA breaches by policy and SLA (acknowledge, resolve).",
        )
        met = Family("escalade_sla_met_total", "counter", "SLAs met by policy and SLA.")
        ratio = Family(
            "escalade_sla_compliance_ratio",
            "gauge",
            "Met / (met + breached) by policy and SLA; no sample before the first decision.",
        )
        for policy, row in kpis["sla_compliance"].items():
            for sla in SLA_KINDS:
                labels = {"policy": policy, "sla": sla}
                breached.samples.append((labels, row[sla]["breached"]))
                met.samples.append((labels, row[sla]["met"]))
                if row[sla]["compliance"] is not None:
                    ratio.samples.append((labels, row[sla]["compliance"]))
        return [breached, met, ratio]

    @staticmethod
    def _durations(kpis: Mapping[str, Any]) -> list[Family]:
        out = []
        for name, key in (
            ("escalade_time_to_acknowledge_seconds", "time_to_acknowledge"),
            ("escalade_time_to_resolve_seconds", "time_to_resolve"),
        ):
            what = key.replace("_", " ")
            fam = Family(name, "gauge", f"The {what} in seconds: percentile 50 (median) and 90.")
            for percentile, field_name in (("50", "median_s"), ("90", "p90_s")):
                value = kpis[key][field_name]
                if value is not None:
                    fam.samples.append(({"percentile": percentile}, value))
            out.append(fam)
        return out


def _one(name: str, kind: str, help_: str, value: float) -> Family:
    """A family with one unlabelled sample."""
    return Family(name, kind, help_, [({}, value)])


def _pack_info(pack: PackInfo | None) -> Family:
    samples: list[tuple[Labels, float]] = []
    if pack is not None:
        labels = {
            "version": pack.version,
            "content_hash": pack.content_hash,
            "pack_id": str(pack.pack_id),
        }
        samples.append((labels, 1))
    return Family(
        "escalade_pack_info",
        "gauge",
        "The active rule pack (value 1; no sample when no pack is active).",
        samples,
    )


# Counters read off the KPIs: (name, help, the value in the KPI dict).
KPI_COUNTERS: tuple[tuple[str, str, Callable[[Mapping[str, Any]], float]], ...] = (
    (
        "escalade_escalations_total",
        "Escalations started (from the audit trail).",
        lambda k: k["escalations"],
    ),
    (
        "escalade_escalations_acknowledged_total",
        "Escalations acknowledged at least once (from the audit trail).",
        lambda k: k["time_to_acknowledge"]["count"],
    ),
    (
        "escalade_escalations_resolved_total",
        "Escalations resolved (from the audit trail).",
        lambda k: k["time_to_resolve"]["count"],
    ),
    (
        "escalade_escalations_closed_total",
        "Escalations closed (from the audit trail).",
        lambda k: k["closed"],
    ),
    (
        "escalade_escalations_unacknowledged_total",
        "Escalations whose failover chain ran out without an ack.",
        lambda k: k["unacknowledged"],
    ),
    (
        "escalade_escalations_triaged_total",
        "Escalations sent to Type B triage.",
        lambda k: k["triaged"],
    ),
    (
        "escalade_handoffs_total",
        "Handoffs, re-routes and transfers.",
        lambda k: k["handoffs_per_escalation"]["total"],
    ),
)
