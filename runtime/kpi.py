"""KPIs computed from the audit trail (never from mutable state).

Time to acknowledge and to resolve (median, p90), handoffs per escalation,
repeat escalations per account, SLA compliance per policy and the number of
escalations nobody acknowledged. Rendered as Markdown or JSON.

These are the definitions: :func:`compute` reads the whole trail and says what
each KPI is; :class:`~escalade.runtime.kpicache.KpiCache` keeps the same KPIs up to
date row by row, through the same :meth:`Life.apply`, :func:`sla_outcomes` and
:func:`sla_summary`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from escalade.runtime.clock import format_duration, format_time
from escalade.runtime.store import AuditRow, Store

HANDOFF_KINDS = ("handoff", "rerouted", "transfer")
SLA_KINDS = ("acknowledge", "resolve")


@dataclass(slots=True)
class Life:
    """One escalation as the trail tells it."""

    ticket: str
    policy: str
    started: int
    account: str | None = None
    acked: int | None = None
    resolved: int | None = None
    closed: int | None = None
    handoffs: int = 0
    unacknowledged: bool = False
    triage: bool = False
    breached: set[str] = field(default_factory=set)
    sla: dict[str, int | None] = field(default_factory=dict)
    sla_due: dict[str, int | None] = field(default_factory=dict)  # epoch seconds
    late: set[str] = field(default_factory=set)  # SLA kinds done after they fell due

    @classmethod
    def from_trigger(cls, row: AuditRow) -> Life:
        """The escalation a ``triggered`` row starts."""
        return cls(
            ticket=row.ticket or "",
            policy=row.policy or "",
            started=row.at,
            account=row.detail.get("account"),
            sla=dict(row.detail.get("sla") or {}),
            sla_due=dict(row.detail.get("sla_due") or {}),
        )

    def apply(self, kind: str, at: int, policy: str | None, detail: dict[str, Any]) -> None:
        """What one later audit row of this escalation tells."""
        if kind in HANDOFF_KINDS:
            self.handoffs += 1
            if kind != "transfer" and policy:
                self.policy = policy
                self.sla = dict(detail.get("sla") or {})
                self.sla_due = dict(detail.get("sla_due") or {})
        elif kind == "acknowledged" and self.acked is None:
            self.acked = at
            self._judge("acknowledge", at)
        elif kind == "resolved":
            self.resolved = at
            self._judge("resolve", at)
        elif kind == "closed":
            self.closed = at
        elif kind == "unacknowledged":
            self.unacknowledged = True
        elif kind == "triage":
            self.triage = True
        elif kind == "breach" and detail.get("sla") in SLA_KINDS:
            self.breached.add(str(detail["sla"]))

    def _judge(self, kind: str, at: int) -> None:
        """``kind`` was done at ``at``: late when that is past the due instant in effect
        then (a later re-route's targets do not judge it again)."""
        due = due_of(self, kind)
        if due is not None and at > due:
            self.late.add(kind)


def nearest_rank(ordered: Sequence[int], p: float) -> int | None:
    """Nearest-rank percentile (``p`` in 0..100) of values already sorted; None when empty."""
    if not ordered:
        return None
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def read_row(lives: dict[int, Life], row: AuditRow) -> Life | None:
    """Fold one audit row into ``lives``: a ``triggered`` row starts an escalation (in
    place of any before it under that id), a later row changes the one it names.
    The escalation the row told of; None for a row of no escalation the trail started."""
    if row.escalation_id is None:
        return None
    if row.kind == "triggered":
        started = lives[row.escalation_id] = Life.from_trigger(row)
        return started
    life = lives.get(row.escalation_id)
    if life is not None:
        life.apply(row.kind, row.at, row.policy, row.detail)
    return life


def read_lives(store: Store) -> tuple[dict[int, Life], int | None, int | None]:
    """Every escalation the trail tells of, with the trail's first and last times."""
    lives: dict[int, Life] = {}
    first_at: int | None = None
    last_at: int | None = None
    for row in store.audit_rows():
        first_at = row.at if first_at is None else first_at
        last_at = row.at
        read_row(lives, row)
    return lives, first_at, last_at


def due_of(life: Life, kind: str) -> int | None:
    """When the ``kind`` SLA falls due: the instant the engine armed its timer for, as
    the row that started the chain records it (``sla_due``, calendar time included).
    None for rows written before it was recorded: their breach rows alone judge them."""
    due = life.sla_due.get(kind)
    return None if due is None else int(due)


def sla_outcomes(life: Life) -> list[tuple[str, str]]:
    """(SLA kind, ``met`` | ``breached`` | ``open``) of each SLA the escalation has a
    target for: breached once a breach was recorded or when done after it fell due
    (:func:`due_of`, judged when done), else met once done."""
    out = []
    for kind, done in (("acknowledge", life.acked), ("resolve", life.resolved)):
        if life.sla.get(kind) is None:
            continue
        if kind in life.breached or kind in life.late:
            out.append((kind, "breached"))
        elif done is not None:
            out.append((kind, "met"))
        else:
            out.append((kind, "open"))
    return out


def sla_summary(escalations: int, outcomes: Mapping[str, Mapping[str, int]]) -> dict[str, Any]:
    """One policy's row of the SLA report: its escalations and, per SLA kind, how many
    met, breached or are open, with met / (met + breached) (None before any decision)."""
    summary: dict[str, Any] = {"escalations": escalations}
    for kind in SLA_KINDS:
        counts = outcomes.get(kind, {})
        met, breached = counts.get("met", 0), counts.get("breached", 0)
        summary[kind] = {
            "met": met,
            "breached": breached,
            "open": counts.get("open", 0),
            "compliance": None if met + breached == 0 else round(met / (met + breached), 4),
        }
    return summary


def sla_compliance(lives: Iterable[Life]) -> dict[str, Any]:
    """Per policy: escalations, and per SLA kind how many met, breached or are open."""
    escalations: Counter[str] = Counter()
    outcomes: dict[str, dict[str, Counter[str]]] = {}
    for life in lives:
        escalations[life.policy] += 1
        per_kind = outcomes.setdefault(life.policy, {kind: Counter() for kind in SLA_KINDS})
        for kind, outcome in sla_outcomes(life):
            per_kind[kind][outcome] += 1
    return {name: sla_summary(escalations[name], outcomes[name]) for name in sorted(escalations)}


def spread(ordered: Sequence[int]) -> dict[str, int | None]:
    """Count, median and p90 of durations already sorted."""
    return {
        "count": len(ordered),
        "median_s": nearest_rank(ordered, 50),
        "p90_s": nearest_rank(ordered, 90),
    }


def compute(store: Store) -> dict[str, Any]:
    """Every KPI, as a JSON-ready dict."""
    lives, first_at, last_at = read_lives(store)
    every = list(lives.values())
    handoffs = [life.handoffs for life in every]
    accounts = Counter(life.account for life in every if life.account)
    counters = store.counters()
    return {
        "period": {
            "from": format_time(first_at) if first_at is not None else None,
            "to": format_time(last_at) if last_at is not None else None,
        },
        "escalations": len(every),
        "open": sum(1 for life in every if life.closed is None),
        "closed": sum(1 for life in every if life.closed is not None),
        "time_to_acknowledge": spread(
            sorted(x.acked - x.started for x in every if x.acked is not None)
        ),
        "time_to_resolve": spread(
            sorted(x.resolved - x.started for x in every if x.resolved is not None)
        ),
        "handoffs_per_escalation": {
            "mean": round(sum(handoffs) / len(handoffs), 3) if handoffs else 0.0,
            "max": max(handoffs) if handoffs else 0,
            "total": sum(handoffs),
        },
        "repeat_escalations_per_account": {
            account: count for account, count in sorted(accounts.items()) if count > 1
        },
        "sla_compliance": sla_compliance(every),
        "unacknowledged": sum(1 for life in every if life.unacknowledged),
        "triaged": sum(1 for life in every if life.triage),
        "dead_letters": counters.get("dead_letters", 0),
        "unknown_fields_ignored": counters.get("unknown_fields", 0),
        **noise_kpis(counters),
    }


def noise_kpis(counters: Mapping[str, int]) -> dict[str, Any]:
    """Grouping and silences (#15), from the store's counters: events attached to an open
    escalation of their group by policy (``grouped_events``; each also counts among the
    escalations, held without pages), and notify/page messages a silence held."""
    prefix = "grouped:"  # escalade.runtime.engine.noise.GROUPED_COUNTER
    grouped = {k.removeprefix(prefix): n for k, n in counters.items() if k.startswith(prefix)}
    return {
        "grouped_events": dict(sorted(grouped.items())),
        "silenced_messages": counters.get("silenced_messages", 0),
    }


def _dur(seconds: int | None) -> str:
    return "—" if seconds is None else format_duration(seconds)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def render_markdown(kpis: dict[str, Any]) -> str:
    """The KPI report as Markdown."""
    period = kpis["period"]
    tta, ttr = kpis["time_to_acknowledge"], kpis["time_to_resolve"]
    handoffs = kpis["handoffs_per_escalation"]
    lines = [
        "# Escalation KPIs",
        "",
        f"Period: {period['from'] or '—'} to {period['to'] or '—'}",
        "",
        "| measure | value |",
        "|---|---|",
        f"| escalations | {kpis['escalations']} ({kpis['open']} open, {kpis['closed']} closed) |",
        f"| time to acknowledge, median / p90 | {_dur(tta['median_s'])} / {_dur(tta['p90_s'])}"
        f" (n={tta['count']}) |",
        f"| time to resolve, median / p90 | {_dur(ttr['median_s'])} / {_dur(ttr['p90_s'])}"
        f" (n={ttr['count']}) |",
        f"| handoffs per escalation, mean / max | {handoffs['mean']:.2f} / {handoffs['max']} |",
        f"| unacknowledged (chain ran out) | {kpis['unacknowledged']} |",
        f"| sent to Type B triage | {kpis['triaged']} |",
        f"| dead-lettered events | {kpis['dead_letters']} |",
        f"| unknown fields ignored | {kpis['unknown_fields_ignored']} |",
        f"| grouped events (attached, not paged) | {sum(kpis['grouped_events'].values())} |",
        f"| messages held by a silence | {kpis['silenced_messages']} |",
        "",
        "## SLA compliance by policy",
        "",
        "| policy | escalations | acknowledge met / breached | acknowledge | resolve met / breached"
        " | resolve |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, row in kpis["sla_compliance"].items():
        ack, res = row["acknowledge"], row["resolve"]
        lines.append(
            f"| {name} | {row['escalations']} | {ack['met']} / {ack['breached']}"
            f" | {_pct(ack['compliance'])} | {res['met']} / {res['breached']}"
            f" | {_pct(res['compliance'])} |"
        )
    lines += ["", "## Repeat escalations per account", ""]
    repeats = kpis["repeat_escalations_per_account"]
    if repeats:
        lines += ["| account | escalations |", "|---|---:|"]
        lines += [f"| {account} | {count} |" for account, count in repeats.items()]
    else:
        lines.append("No account escalated more than once.")
    return "\n".join(lines) + "\n"
