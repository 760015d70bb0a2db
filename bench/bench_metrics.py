"""/metrics scrape time with a 100k-row audit trail.

Baseline: the old path, ``kpi.compute`` over the whole trail (what every scrape
did whenever the trail had grown), measured in this run on the same store. Then
:class:`ServerMetrics` on its own read-only connection: the first scrape (its
:class:`KpiCache` reads the whole trail once), warm scrapes with nothing new, and
scrapes after a few escalations were appended (the cache reads only those rows).
The trail is written fast: realistic escalation lives appended through
``audit.append`` in one transaction, with their events, escalation and outbox
rows, so the store's count queries have tables to count too. Figures only, never
asserted (the machine is shared); the target is a warm scrape within 50 ms.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from escalade.runtime import audit, kpi
from escalade.runtime.engine import Engine
from escalade.runtime.metrics import ServerMetrics, open_reader
from escalade.runtime.pack import RulePack
from escalade.runtime.store import Escalation, OutboxMessage
from escalade.runtime.store.sqlite import SQLiteStore

PACK = Path(__file__).resolve().parents[1] / "generated" / "rulepack.json"
ROWS = 100_000
T0 = 1_795_000_000
POLICIES = ("enterprise_critical", "standard_high", "smb_normal", "vip_outage")
STATUSES = ("delivered", "delivered", "sent", "failed", "pending", "dry_run")


def escalation_life(store: SQLiteStore, pack_id: int, n: int) -> None:
    """One escalation, as the engine would leave it: its event, its row, its audit rows
    (triggered, assigned, notified, sometimes a breach or a handoff, ack, resolve, close)
    and two outbox messages. Most are closed; every tenth stays open."""
    start = T0 + n * 37
    ticket, policy = f"T-{n}", POLICIES[n % len(POLICIES)]
    store.add_event(f"e-{n}", "ticket.created", start, ticket, json.dumps({"id": f"e-{n}"}))
    closed = n % 10 != 0
    esc_id = store.insert_escalation(
        Escalation(
            ticket=ticket,
            policy=policy,
            pack_id=pack_id,
            priority=n % 4,
            started_at=start,
            state="closed" if closed else ("assigned", "acknowledged")[n % 2],
            owner="alice",
            account=f"acct-{n % 700}",
        )
    )
    sla = {"acknowledge": 900, "resolve": 14400}

    def note(at: int, kind: str, **detail: object) -> None:
        audit.append(
            store,
            at=at,
            kind=kind,
            actor="engine",
            reason=kind,
            ticket=ticket,
            escalation_id=esc_id,
            policy=policy,
            pack_version="1.0.0",
            detail=dict(detail),
        )

    note(start, "triggered", account=f"acct-{n % 700}", sla=sla)
    note(start, "assigned", owner="alice")
    note(start + 1, "notified", channel="slack")
    ack = start + 60 + (n * 7919) % 3600
    if ack - start > 900:
        note(start + 900, "breach", sla="acknowledge")
    if n % 9 == 0:
        note(start + 600, "handoff", to="bob", sla=sla)
    note(ack, "acknowledged", by="alice")
    if closed:
        resolved = ack + (n * 104729) % 30000
        note(resolved, "resolved", by="alice")
        note(resolved + 60, "closed", by="alice")
    for k in range(2):
        store.add_outbox(
            OutboxMessage(
                key=f"{esc_id}:{k}",
                escalation_id=esc_id,
                ticket=ticket,
                action="notify",
                target="alice",
                target_kind="person",
                payload={},
                created_at=start,
                status=STATUSES[(n + k) % len(STATUSES)],
            )
        )


def build(path: str) -> tuple[SQLiteStore, int]:
    """A store with at least ROWS audit rows; the store and the next escalation number."""
    store = SQLiteStore(path)
    engine = Engine(store)
    engine.activate(RulePack.load(PACK).raw, T0)
    pack_id = store.active_pack()
    assert pack_id is not None
    n = 0
    with store.transaction():
        while store.audit_head()[0] < ROWS:
            n += 1
            escalation_life(store, pack_id, n)
    return store, n + 1


def timed(work: Callable[[], object], times: int) -> list[float]:
    """Milliseconds per call of ``work``, ``times`` calls."""
    out = []
    for _ in range(times):
        start = time.perf_counter()
        work()
        out.append((time.perf_counter() - start) * 1000)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        store, n = build(str(Path(tmp) / "metrics.db"))
        rows = store.audit_head()[0]
        print(
            f"trail: {rows} audit rows, {n - 1} escalations, built in"
            f" {time.perf_counter() - start:.1f}s (SQLite, synchronous=NORMAL)"
        )
        pack_id = store.active_pack()
        assert pack_id is not None
        try:
            baseline = timed(lambda: kpi.compute(store), 3)
            metrics = ServerMetrics(open_reader(store))
            first = timed(metrics.exposition, 1)[0]
            size = len(metrics.exposition()[0])
            warm = timed(metrics.exposition, 30)

            def grow_then_scrape() -> None:
                nonlocal n
                with store.transaction():
                    for _ in range(5):
                        escalation_life(store, pack_id, n)
                        n += 1

            grown: list[float] = []
            for _ in range(10):
                grow_then_scrape()
                grown += timed(metrics.exposition, 1)
            metrics.close()
        finally:
            store.close()
    base = statistics.median(baseline)
    print(f"baseline kpi.compute (old path, full recompute): {base:8.1f} ms (median of 3)")
    print(f"first scrape (reads the whole trail once):        {first:8.1f} ms")
    print(
        f"warm scrape, nothing new:                         {statistics.median(warm):8.1f} ms"
        f" (median of 30, max {max(warm):.1f}; {base / statistics.median(warm):.0f}x faster"
        " than the baseline; target <= 50 ms)"
    )
    print(
        f"scrape after 5 new escalations (~50 rows):        {statistics.median(grown):8.1f} ms"
        f" (median of 10, max {max(grown):.1f})"
    )
    print(f"exposition: {size} bytes")
