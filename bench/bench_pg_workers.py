"""PostgreSQL workers: events/s with one and with two worker processes on ONE store, the
share of their time spent waiting for locks, and that nothing was decided twice (issue
#12, target 6).

Each worker is a process with its own connection and Engine; the realistic stream
(``bench/realistic.py``, the 1,000-policy pack compiled as ``escalade build`` does,
processed at the time of its last event) is cut by the audit shard of each event's
ticket (``shard % workers``), so the events of one ticket go to one worker in order.
Both runs apply the same stream: one worker alone, then two at once; then once more
through the batch API (``receive_many``). Figures:

- events/s over the wall time from the common start to the last worker's end, and the
  ratio of two workers to one (target >= 1.5x) — with the server on this same machine;
- lock waits: ``pg_stat_activity`` sampled every few milliseconds; the share of samples
  in which a worker's backend waits for a lock (``wait_event_type = 'Lock'``: advisory
  locks of shards, rows), of workers x samples (target <= 10% of wall time);
- CPU per event of the workers and of their server backends (``/proc``), so the cores
  four workers would need can be read off;
- checks: no ticket with two open escalations, the same decisions as one worker, and
  ``audit verify`` intact.

Needs ``ESCALADE_TEST_PG_DSN`` (``scripts/postgres-for-tests.sh``); skipped without it.
Timings are printed beside the same run's baseline; nothing asserts a timing.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from bench_runtime import POLICIES, realistic_pack
from realistic import events as realistic_events

from escalade.runtime import audit
from escalade.runtime.clock import VirtualClock, parse_time
from escalade.runtime.engine import Engine
from escalade.runtime.store.trail import shard_of

N = 6000  # events per run
WORKERS = (1, 2)
WARM_UP = 1000  # events of an unreported first run
BATCH = 500  # events per commit through the batch API
SAMPLE_EVERY = 0.005  # seconds between two looks at pg_stat_activity
TARGET_RATE = 1000  # events/s with one worker
TARGET_RATIO = 1.5  # two workers / one, server on the same machine
TARGET_LOCK_WAITS = 0.10  # share of the workers' wall time


class Result:
    """One run: ``workers`` processes applying the stream (a plain class: bench/run.py
    loads this module without registering it, which dataclasses need)."""

    def __init__(
        self,
        workers: int,
        rate: float,
        worker_cpu: float,
        server_cpu: float,
        statements: float,
        round_trips: float,
        lock_waits: float,
        outcomes: Counter[str],
    ) -> None:
        self.workers = workers
        self.rate = rate
        self.worker_cpu = worker_cpu  # seconds per event, the workers' processes
        self.server_cpu = server_cpu  # seconds per event, their server backends
        self.statements = statements
        self.round_trips = round_trips
        self.lock_waits = lock_waits  # share of worker x samples waiting for a lock
        self.outcomes = outcomes
        self.decisions: list[tuple[Any, ...]] = []
        self.double = 0  # tickets with more than one open escalation
        self.verdict: Any = None


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _backend_cpu(pid: int) -> float:
    """CPU seconds of the server backend ``pid`` (the server runs on this machine)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ticket(raw: str) -> str:
    return str(json.loads(raw)["data"]["ticket"]["id"])


def _work(
    dsn: str,
    schema: str,
    pack: dict[str, Any],
    lines: list[tuple[str, int]],
    batch: bool,
    gates: Any,
    out: Any,
) -> None:
    """One worker process: its own store connection and engine, started with the others."""
    from escalade.runtime.store.postgres import PostgresStore

    store = PostgresStore(dsn, schema=schema)
    engine = Engine(store, VirtualClock(parse_time("2026-11-27T10:00:00Z")))
    engine.activate(pack)  # active already: nothing changes
    pid = store.execute("SELECT pg_backend_pid()").fetchone()[0]
    out.put(("ready", pid))
    gates[0].wait()
    statements, trips = store.statements, store.round_trips
    start, cpu = time.monotonic(), _cpu()
    if batch:
        outcomes = engine.receive_many(lines, batch=BATCH)
    else:
        outcomes = [engine.receive(raw, at) for raw, at in lines]
    end = time.monotonic()
    counted = Counter(o.status for o in outcomes)
    spent = (_cpu() - cpu, store.statements - statements, store.round_trips - trips)
    out.put(("done", start, end, *spent, counted))
    gates[1].wait()  # the parent reads the backend's CPU while it is still there
    store.close()


def _sampler(dsn: str, pids: list[int], stop: threading.Event, seen: list[int]) -> None:
    """Count samples and, per sample, the workers' backends waiting for a lock."""
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        while not stop.is_set():
            row = conn.execute(
                "SELECT COUNT(*) FILTER (WHERE wait_event_type = 'Lock') FROM pg_stat_activity"
                " WHERE pid = ANY(%s)",
                (pids,),
            ).fetchone()
            seen[0] += 1
            seen[1] += int(row[0]) if row else 0
            stop.wait(SAMPLE_EVERY)


def _checked(dsn: str, schema: str, result: Result) -> None:
    """The store after a run: decisions, double assignments, the audit trail."""
    from escalade.runtime.store.postgres import PostgresStore

    store = PostgresStore(dsn, schema=schema)
    result.decisions = [
        tuple(r)
        for r in store.execute(
            "SELECT ticket, policy, state, owner FROM escalations ORDER BY ticket, started_at"
        ).fetchall()
    ]
    row = store.execute(
        "SELECT COUNT(*) FROM (SELECT ticket FROM escalations WHERE state <> 'closed'"
        " GROUP BY ticket HAVING COUNT(*) > 1) AS twice"
    ).fetchone()
    result.double = int(row[0])
    result.verdict = audit.verify(store)
    store.close()


def run(
    dsn: str, pack: dict[str, Any], lines: list[tuple[str, int]], workers: int, batch: bool
) -> Result:
    """Apply ``lines`` with ``workers`` processes on a fresh schema (dropped after)."""
    import psycopg

    from escalade.runtime.store.postgres import PostgresStore

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(dsn, schema=schema)
    Engine(store, VirtualClock(lines[0][1])).activate(pack, lines[0][1])
    shards = store.audit_shards()
    store.close()  # no connection of the parent's crosses the fork
    slices: list[list[tuple[str, int]]] = [[] for _ in range(workers)]
    for raw, at in lines:
        slices[shard_of(_ticket(raw), shards) % workers].append((raw, at))
    ctx = multiprocessing.get_context("fork")
    gates, out = (ctx.Barrier(workers + 1), ctx.Barrier(workers + 1)), ctx.Queue()
    procs = [
        ctx.Process(target=_work, args=(dsn, schema, pack, part, batch, gates, out))
        for part in slices
    ]
    for proc in procs:
        proc.start()
    pids = [out.get()[1] for _ in procs]
    stop, seen = threading.Event(), [0, 0]
    sampler = threading.Thread(target=_sampler, args=(dsn, pids, stop, seen))
    before = sum(_backend_cpu(p) for p in pids)
    sampler.start()
    gates[0].wait()
    done = [out.get() for _ in procs]
    stop.set()
    server = sum(_backend_cpu(p) for p in pids) - before
    gates[1].wait()
    for proc in procs:
        proc.join()
    sampler.join()
    wall = max(d[2] for d in done) - min(d[1] for d in done)
    n = len(lines)
    result = Result(
        workers,
        n / wall,
        sum(d[3] for d in done) / n,
        server / n,
        sum(d[4] for d in done) / n,
        sum(d[5] for d in done) / n,
        seen[1] / (seen[0] * workers) if seen[0] else 0.0,
        sum((d[6] for d in done), Counter()),
    )
    try:
        _checked(dsn, schema, result)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return result


def _target(ok: bool) -> str:
    return "meets" if ok else "BELOW"


def _line(r: Result) -> str:
    return (
        f"{r.workers} worker{'s' if r.workers > 1 else ''}: {r.rate:,.0f}/s (per event: worker"
        f" CPU {r.worker_cpu * 1000:.2f} ms, server CPU {r.server_cpu * 1000:.2f} ms,"
        f" {r.statements:.1f} statements in {r.round_trips:.2f} round trips);"
        f" lock waits {r.lock_waits:.1%} of wall"
    )


def _checks(r: Result, one: Result) -> str:
    v = r.verdict
    trail = (
        f"audit verify {'ok' if v.ok else 'BROKEN: ' + str(v.problem)} ({v.rows:,} rows in"
        f" {v.shards} shards, {v.checkpoints} checkpoints)"
    )
    same = "same decisions as one worker" if r.decisions == one.decisions else "DECISIONS DIFFER"
    twice = "no ticket assigned twice" if r.double == 0 else f"{r.double} TICKETS ASSIGNED TWICE"
    return f"{dict(r.outcomes)}; {twice}; {same}; {trail}"


def report(dsn: str, pack: dict[str, Any], lines: list[tuple[str, int]], batch: bool) -> Result:
    label = (
        f"batch API (receive_many, {BATCH} per commit)" if batch else "one transaction per event"
    )
    print(f"  {label} (load average {os.getloadavg()[0]:.1f}):", flush=True)
    results = {w: run(dsn, pack, lines, w, batch) for w in WORKERS}
    one = results[1]
    for w in WORKERS:
        r = results[w]
        print(f"    {_line(r)}", flush=True)
        print(f"      checks: {_checks(r, one)}", flush=True)
    two = results[2]
    ratio = two.rate / one.rate
    print(
        f"    2 workers / 1 worker: {ratio:.2f}x (target >= {TARGET_RATIO}x:"
        f" {_target(ratio >= TARGET_RATIO)}); lock waits with 2 workers {two.lock_waits:.1%}"
        f" (target <= {TARGET_LOCK_WAITS:.0%}: {_target(two.lock_waits <= TARGET_LOCK_WAITS)});"
        f" one worker {one.rate:,.0f}/s (target >= {TARGET_RATE:,}/s:"
        f" {_target(one.rate >= TARGET_RATE)})",
        flush=True,
    )
    cores = 4 * one.rate * (one.worker_cpu + one.server_cpu)
    print(
        f"    4 workers at one worker's rate ({4 * one.rate:,.0f}/s) would need about"
        f" {cores:.1f} cores for the workers and their server backends, disjoint shards"
        f" ({two.verdict.shards} shards: 4 each) and no more locking than 2 workers",
        flush=True,
    )
    return one


def main() -> None:
    dsn = os.environ.get("ESCALADE_TEST_PG_DSN")
    if not dsn:
        print("PostgreSQL workers: skipped: no PostgreSQL (ESCALADE_TEST_PG_DSN unset)")
        return
    pack = realistic_pack(POLICIES)
    raw = realistic_events(POLICIES, N)
    last = parse_time(raw[-1]["at"])
    lines = [(json.dumps(e), last) for e in raw]  # events only: processed after the last
    print(
        f"PostgreSQL workers on one store ({N:,} realistic events, {POLICIES:,} policies;"
        f" server on this machine, {os.cpu_count()} cores; workers fed by audit shard):",
        flush=True,
    )
    run(dsn, pack, lines[:WARM_UP], 2, False)  # the server's caches warm, not reported
    for batch in (False, True):
        report(dsn, pack, lines, batch)


if __name__ == "__main__":
    main()
