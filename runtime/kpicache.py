"""The KPIs of :mod:`escalade.runtime.kpi`, kept up to date as the audit trail grows.

:func:`escalade.runtime.kpi.compute` reads the whole trail each time; a
:class:`KpiCache` reads only the rows appended since its last read
(``store.audit_rows(after=cursor)``, a seq per shard) and folds them into running totals: the
:class:`Share` of the totals that each escalation those rows tell of had before
them is taken out, and its share after them is put back. A refresh so costs the
rows it reads, not the length of the trail, and :meth:`KpiCache.kpis` equals ``kpi.compute``
on the same trail (tests/runtime/test_metrics.py proves it on random trails and
on a replayed day). Durations are kept sorted, so percentiles and histogram
buckets are read without sorting anything.

For example::

    cache = KpiCache()
    cache.refresh(store)  # the whole trail, once
    cache.refresh(store)  # then only the rows appended since
    cache.kpis(store.counters()) == kpi.compute(store)

Not thread-safe: one reader at a time (the metrics hold a lock of their own).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from escalade.runtime.clock import format_time
from escalade.runtime.kpi import (
    SLA_KINDS,
    Life,
    noise_kpis,
    read_row,
    sla_outcomes,
    sla_summary,
    spread,
)
from escalade.runtime.store import AuditRow, Store


@dataclass(frozen=True, slots=True)
class Share:
    """What one escalation adds to the totals, as the rows read so far tell it."""

    policy: str
    closed: bool
    to_acknowledge: int | None  # seconds from start to the first acknowledgement
    to_resolve: int | None  # seconds from start to the latest resolution
    handoffs: int
    unacknowledged: bool
    triaged: bool
    account: str | None
    sla: tuple[tuple[str, str], ...]  # (SLA kind, met | breached | open)

    @classmethod
    def of(cls, life: Life) -> Share:
        """The share of ``life`` (see :mod:`escalade.runtime.kpi` for each definition)."""
        return cls(
            policy=life.policy,
            closed=life.closed is not None,
            to_acknowledge=None if life.acked is None else life.acked - life.started,
            to_resolve=None if life.resolved is None else life.resolved - life.started,
            handoffs=life.handoffs,
            unacknowledged=life.unacknowledged,
            triaged=life.triage,
            account=life.account,
            sla=tuple(sla_outcomes(life)),
        )


class Durations:
    """Durations in seconds, kept sorted, with their sum."""

    def __init__(self) -> None:
        self.ordered: list[int] = []
        self.sum = 0

    def add(self, seconds: int) -> None:
        """Count one more duration."""
        bisect.insort(self.ordered, seconds)
        self.sum += seconds

    def remove(self, seconds: int) -> None:
        """Forget one duration counted before."""
        del self.ordered[bisect.bisect_left(self.ordered, seconds)]
        self.sum -= seconds

    def cumulative(self, bounds: Iterable[float]) -> list[int]:
        """How many durations are at most each bound (a histogram's ``le`` buckets)."""
        return [bisect.bisect_right(self.ordered, bound) for bound in bounds]


@dataclass(slots=True)
class PolicyTotals:
    """One policy's escalations and, per SLA kind, how many met, breached or are open."""

    escalations: int = 0
    outcomes: dict[str, Counter[str]] = field(
        default_factory=lambda: {kind: Counter() for kind in SLA_KINDS}
    )


class KpiCache:
    """The KPIs as running totals over the audit rows read so far (up to :attr:`cursor`)."""

    def __init__(self) -> None:
        self.cursor: dict[int, int] = {}  # shard -> the last seq read there
        self.rows = 0  # audit rows read so far
        self.first_at: int | None = None
        self.last_at: int | None = None
        self.lives: dict[int, Life] = {}
        self.escalations = 0
        self.closed = 0
        self.unacknowledged = 0
        self.triaged = 0
        self.handoffs = 0
        self.to_acknowledge = Durations()
        self.to_resolve = Durations()
        self.policies: dict[str, PolicyTotals] = {}
        self._handoff_counts: Counter[int] = Counter()  # handoffs -> escalations
        self._accounts: Counter[str] = Counter()

    def refresh(self, store: Store) -> int:
        """Read the rows appended since the last refresh; how many there were."""
        return self.read(store.audit_rows(after=self.cursor))

    def read(self, rows: Iterable[AuditRow]) -> int:
        """Count ``rows``, the next ones after :attr:`cursor` in order; how many there were.

        Each escalation's share is taken once before its first row and put back once
        after the last, so a batch costs one share per escalation, not per row."""
        before: dict[int, Share | None] = {}
        count = 0
        for row in rows:
            count += 1
            self.cursor[row.shard] = row.seq  # each shard's rows come in seq order
            self.first_at = row.at if self.first_at is None else self.first_at
            self.last_at = row.at
            esc = row.escalation_id
            if esc is not None and esc not in before:
                life = self.lives.get(esc)
                before[esc] = None if life is None else Share.of(life)
            read_row(self.lives, row)
        self.rows += count
        for esc, old in before.items():
            life = self.lives.get(esc)
            new = None if life is None else Share.of(life)
            if old == new:
                continue  # most rows (notified, assigned, ...) change no KPI
            if old is not None:
                self._count(old, -1)
            if new is not None:
                self._count(new, +1)
        return count

    def _count(self, share: Share, sign: int) -> None:
        self.escalations += sign
        self.closed += sign * share.closed
        self.unacknowledged += sign * share.unacknowledged
        self.triaged += sign * share.triaged
        self.handoffs += sign * share.handoffs
        self._handoff_counts[share.handoffs] += sign
        if share.account:
            self._accounts[share.account] += sign
        for durations, seconds in (
            (self.to_acknowledge, share.to_acknowledge),
            (self.to_resolve, share.to_resolve),
        ):
            if seconds is not None:
                (durations.add if sign > 0 else durations.remove)(seconds)
        totals = self.policies.setdefault(share.policy, PolicyTotals())
        totals.escalations += sign
        for kind, outcome in share.sla:
            totals.outcomes[kind][outcome] += sign
        if totals.escalations == 0:  # its last escalation moved to another policy
            del self.policies[share.policy]

    def sla_compliance(self) -> dict[str, Any]:
        """Per policy, as :func:`escalade.runtime.kpi.sla_compliance` reports it."""
        return {
            name: sla_summary(totals.escalations, totals.outcomes)
            for name, totals in sorted(self.policies.items())
        }

    def kpis(self, counters: Mapping[str, int]) -> dict[str, Any]:
        """Every KPI, the dict :func:`escalade.runtime.kpi.compute` gives for the same
        trail; ``counters``: the store's counters (dead letters, unknown fields)."""
        handoffs = [n for n, lives in self._handoff_counts.items() if lives > 0]
        return {
            "period": {
                "from": None if self.first_at is None else format_time(self.first_at),
                "to": None if self.last_at is None else format_time(self.last_at),
            },
            "escalations": self.escalations,
            "open": self.escalations - self.closed,
            "closed": self.closed,
            "time_to_acknowledge": spread(self.to_acknowledge.ordered),
            "time_to_resolve": spread(self.to_resolve.ordered),
            "handoffs_per_escalation": {
                "mean": round(self.handoffs / self.escalations, 3) if self.escalations else 0.0,
                "max": max(handoffs, default=0),
                "total": self.handoffs,
            },
            "repeat_escalations_per_account": {
                account: count for account, count in sorted(self._accounts.items()) if count > 1
            },
            "sla_compliance": self.sla_compliance(),
            "unacknowledged": self.unacknowledged,
            "triaged": self.triaged,
            "dead_letters": counters.get("dead_letters", 0),
            "unknown_fields_ignored": counters.get("unknown_fields", 0),
            **noise_kpis(counters),
        }
