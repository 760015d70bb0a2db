"""Runtime benchmark: events/s through the engine, durable, with SQL statements and
commits per event; tick cost vs open escalations; RSS.

Throughput runs on a 1,000-policy realistic pack (``bench/realistic.py`` compiled by
``escalade build``'s compiler; a stream where about a third of events no policy owns)
beside the repository's sample pack on its own stream, in the same run:

- one transaction per event (``Engine.receive``) and the batch API
  (``Engine.receive_many``, many events per commit), each with statements and commits
  per event as the store counts them (as SQLite traces them: a multi-row INSERT is one);
- the stream on its own (the processing clock after its last event: events only), and
  with the clock following the stream (each event processed at its own time, so the
  timers it armed fire in between: per event, their work included).

Figures name the SQLite settings (WAL + synchronous=NORMAL survives kill -9 of the
process; FULL also survives power loss), say wall and process CPU (the machine is
shared: wall includes waiting for a core), and compare runs measured in this same
process; target lines say "meets" or "BELOW", nothing asserts a timing.
"""

from __future__ import annotations

import copy
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).parent))

from realistic import events as realistic_events
from realistic import policy_files

from escalade.compiler import load_policy_set
from escalade.compiler.backends.rulepack import build_pack
from escalade.runtime.clock import VirtualClock, format_time, parse_time
from escalade.runtime.engine import Engine
from escalade.runtime.notify import Delivery
from escalade.runtime.store import Escalation, OutboxMessage, Timer
from escalade.runtime.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
T0 = parse_time("2026-11-27T10:00:00Z")
N = 3000  # events per run
POLICIES = 1000
TARGET_RATE = 2000  # events/s, one transaction per event (issue #12, target 5)
TARGET_BATCH_RATE = 10_000  # events/s through the batch API
TARGET_STATEMENTS = 12  # per event, on average
TARGET_COMMITS = 1.0  # per event, on average
TARGET_PG_RATE = 1000  # events/s on PostgreSQL with one worker (issue #12, target 6)


def repo_pack() -> dict[str, Any]:
    result = load_policy_set(str(ROOT / "policies"))
    assert result.pset is not None
    return build_pack(result.pset)


def realistic_pack(count: int) -> dict[str, Any]:
    """``count`` realistic policies compiled as ``escalade build`` compiles them."""
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in policy_files(count).items():
            (Path(tmp) / name).write_text(text)
        result = load_policy_set(tmp)
        assert result.pset is not None, "the realistic set does not compile"
        return build_pack(result.pset)


def events(n: int, start: int = 0) -> list[str]:
    """The sample pack's stream: a new enterprise critical ticket every 4th event, updates
    and low tickets between."""
    out = []
    for i in range(start, start + n):
        ticket = f"T{i // 4}"
        at = format_time(T0 + i // 50)
        if i % 4 == 0:
            data = {
                "ticket": {"id": ticket, "title": "Down", "severity": "critical", "status": "new"},
                "account": {"id": f"a{i % 97}", "name": "Acme", "tier": "enterprise"},
            }
            kind = "ticket.created"
        elif i % 4 == 1:
            data = {"ticket": {"id": ticket, "status": "escalated"}}
            kind = "ticket.updated"
        else:
            data = {
                "ticket": {"id": f"L{i}", "severity": "low"},
                "account": {"id": "a", "tier": "free"},
            }
            kind = "ticket.created"
        out.append(json.dumps({"id": f"e{i}", "type": kind, "at": at, "data": data}))
    return out


def realistic_stream(n: int) -> list[tuple[str, int]]:
    """The realistic stream (one event a second), each with its own time."""
    raw = realistic_events(POLICIES, n)
    return [(json.dumps(e), parse_time(e["at"])) for e in raw]


class AfterCommitNotifier:
    """Answers ``delivered`` at once but is not transactional, like the real channels:
    the engine sends with no transaction open and records the receipts after."""

    transactional = False

    def deliver(self, msg: OutboxMessage) -> Delivery:
        return Delivery("delivered", "bench")


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Run(NamedTuple):
    """One measured run: events/s (wall and process CPU), statements and commits per event."""

    rate: float
    cpu_rate: float
    statements: float
    commits: float
    outcomes: dict[str, int]

    def line(self) -> str:
        return (
            f"{self.rate:,.0f}/s wall ({self.cpu_rate:,.0f}/s of process CPU),"
            f" {self.statements:.1f} statements and {self.commits:.3f} commits per event"
        )


def measure(
    pack: dict[str, Any],
    lines: list[tuple[str, int]],
    *,
    batch: bool = False,
    synchronous: str = "NORMAL",
    after_commit: bool = False,
) -> Run:
    """Apply ``lines`` ((raw, processing time) pairs) to a fresh SQLite file."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(str(Path(tmp) / "bench.db"), synchronous=synchronous)
        engine = Engine(store, VirtualClock(T0), AfterCommitNotifier() if after_commit else None)
        engine.activate(pack, T0)
        engine.receive(lines[0][0], lines[0][1])  # what a first decision reads once
        rest = lines[1:]
        statements, commits = store.statements, store.commits
        start, cpu = time.perf_counter(), _cpu()
        if batch:
            outcomes = engine.receive_many(rest)
        else:
            outcomes = [engine.receive(raw, at) for raw, at in rest]
        elapsed, cpu = time.perf_counter() - start, _cpu() - cpu
        n = len(rest)
        run = Run(
            n / elapsed,
            n / cpu if cpu > 0 else float("inf"),
            (store.statements - statements) / n,
            (store.commits - commits) / n,
            {},
        )
        for outcome in outcomes:
            run.outcomes[outcome.status] = run.outcomes.get(outcome.status, 0) + 1
        store.close()
    return run


def pg_throughput(
    pack: dict[str, Any], dsn: str, lines: list[tuple[str, int]], batch: bool
) -> tuple[Run, str, float]:
    """A run on a PostgresStore in a fresh schema (dropped after); the server's
    durability settings, which the figure depends on; round trips per event."""
    import psycopg

    from escalade.runtime.store.postgres import PostgresStore

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(dsn, schema=schema)
    try:
        settings = ", ".join(
            f"{name}={store.execute(f'SHOW {name}').fetchone()[0]}"
            for name in ("fsync", "synchronous_commit")
        )
        engine = Engine(store, VirtualClock(T0))
        engine.activate(pack, T0)
        engine.receive(lines[0][0], lines[0][1])
        rest = lines[1:]
        statements, commits, trips = store.statements, store.commits, store.round_trips
        start, cpu = time.perf_counter(), _cpu()
        if batch:
            engine.receive_many(rest)
        else:
            for raw, at in rest:
                engine.receive(raw, at)
        elapsed, cpu = time.perf_counter() - start, _cpu() - cpu
        n = len(rest)
        trips = (store.round_trips - trips) / n
        run = Run(
            n / elapsed,
            n / cpu,
            (store.statements - statements) / n,
            (store.commits - commits) / n,
            {},
        )
    finally:
        store.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return run, settings, trips


def tick_cost(pack: dict[str, Any], open_total: int, due: int) -> tuple[float, int]:
    """Seconds to fire the timers of ``due`` escalations among ``open_total`` open ones."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(str(Path(tmp) / "tick.db"))
        engine = Engine(store, VirtualClock(T0))
        active = engine.activate(pack, T0)
        for i in range(due):
            data = {
                "ticket": {"id": f"D{i}", "severity": "critical", "status": "escalated"},
                "account": {"id": "a", "tier": "enterprise"},
            }
            engine.receive(
                {"id": f"d{i}", "type": "ticket.created", "at": format_time(T0), "data": data}
            )
        with store.transaction():  # idle escalations whose timers are far away
            for i in range(open_total - due):
                esc = Escalation(
                    ticket=f"I{i}",
                    policy="enterprise_critical",
                    pack_id=active.id,
                    priority=100,
                    started_at=T0,
                    state="assigned",
                    level="primary",
                    owner="alice",
                    owner_kind="person",
                )
                store.insert_escalation(esc)
                store.add_timer(
                    Timer(
                        due=T0 + 86400 * 30,
                        kind="ack",
                        ticket=esc.ticket,
                        escalation_id=esc.id,
                        payload={"index": 0, "cycle": 0, "policy": esc.policy},
                    )
                )
        assert store.count_open() == open_total
        start = time.perf_counter()
        fired = engine.advance(T0 + 300)  # every due escalation's primary ack timer and SLA
        elapsed = time.perf_counter() - start
        store.close()
    return elapsed, fired


# Peak RSS from /proc (VmHWM, in kB): ru_maxrss of a child started by a large parent
# (e.g. after bench_matcher in `make bench`) can report the parent's peak from before exec.
RSS_SCRIPT = """
import json, resource, sys
from escalade.runtime.clock import VirtualClock, format_time
from escalade.runtime.engine import Engine
from escalade.runtime.store.sqlite import SQLiteStore
def peak_kb():
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
pack = json.load(open(sys.argv[1]))
before = peak_kb()
engine = Engine(SQLiteStore(":memory:"), VirtualClock(0))
engine.activate(pack, 0)
for i in range(2000):
    data = {"ticket": {"id": f"T{i}", "severity": "critical", "status": "escalated"},
            "account": {"id": f"acct-{i % 1000}", "tier": "enterprise"}}
    engine.receive({"id": f"e{i}", "type": "ticket.created", "at": format_time(i), "data": data})
engine.advance(3600)
print(before, peak_kb(), engine.store.count_open())
"""


def big_pack(pack: dict[str, Any], count: int) -> dict[str, Any]:
    """``count`` policies cloned from enterprise_critical, one per account id."""
    template = next(p for p in pack["policies"] if p["name"] == "enterprise_critical")
    big = copy.deepcopy(pack)
    big["metadata"]["content_hash"] = ""
    for i in range(count):
        clone = copy.deepcopy(template)
        clone["name"] = f"account_{i:04d}"
        clone["priority"] = 200 + i
        clone["when"] = {
            "op": "and",
            "args": [
                template["when"],
                {"op": "cmp", "field": "account.id", "cmp": "==", "value": f"acct-{i}"},
            ],
        }
        clone["exceptions"] = []
        big["policies"].append(clone)
    return big


def _target(value: float, target: float, more_is_better: bool = True) -> str:
    ok = value >= target if more_is_better else value <= target
    return "meets" if ok else "BELOW"


def throughput_report(sample: dict[str, Any], big: dict[str, Any]) -> None:
    """Events/s, statements and commits per event: the realistic pack beside the sample."""
    stream = realistic_stream(N)
    done = len(stream) - 1  # the first event of a run is not timed
    after_last = stream[-1][1]
    events_only = [(raw, after_last) for raw, _ in stream]  # nothing falls due meanwhile
    sample_lines = [(raw, T0) for raw in events(N)]
    print(f"SQLite file, WAL + synchronous=NORMAL, {done} events per run:", flush=True)
    for label, pack, lines in (
        ("sample pack (7 policies), its stream", sample, sample_lines),
        (f"{POLICIES}-policy realistic pack, events only", big, events_only),
        (f"{POLICIES}-policy realistic pack, clock following the stream", big, stream),
    ):
        single = measure(pack, lines)
        many = measure(pack, lines, batch=True)
        print(f"  {label}: {single.outcomes}", flush=True)
        print(f"    one transaction per event: {single.line()}", flush=True)
        print(
            f"    batch API (receive_many): {many.line()} ({many.rate / single.rate:.1f}x)",
            flush=True,
        )
        if pack is big:
            print(
                f"    targets: {TARGET_RATE:,}/s one per transaction"
                f" {_target(single.rate, TARGET_RATE)}; <= {TARGET_STATEMENTS} statements"
                f" {_target(single.statements, TARGET_STATEMENTS, False)}; <= 1 commit"
                f" {_target(single.commits, TARGET_COMMITS, False)};"
                f" {TARGET_BATCH_RATE:,}/s batched {_target(many.rate, TARGET_BATCH_RATE)}",
                flush=True,
            )
    for sync in ("FULL",):
        full = measure(big, events_only, synchronous=sync)
        print(f"  realistic, events only, synchronous={sync}: {full.line()}", flush=True)
    after = measure(big, events_only, after_commit=True)
    print(
        "  realistic, events only, notifier outside the transaction (receipts recorded after"
        f" the commit, as the real channels): {after.line()}",
        flush=True,
    )


def postgres_report(big: dict[str, Any]) -> None:
    dsn = os.environ.get("ESCALADE_TEST_PG_DSN")
    if not dsn:
        print("PostgreSQL: skipped: no PostgreSQL (ESCALADE_TEST_PG_DSN unset)", flush=True)
        return
    stream = realistic_stream(N)
    events_only = [(raw, stream[-1][1]) for raw, _ in stream]
    single, settings, trips = pg_throughput(big, dsn, events_only, batch=False)
    many, _, batch_trips = pg_throughput(big, dsn, events_only, batch=True)
    print(f"PostgreSQL over TCP on 127.0.0.1 ({settings}), realistic pack, events only:")
    print(f"  one transaction per event: {single.line()}, {trips:.1f} round trips", flush=True)
    print(
        f"  batch API: {many.line()}, {batch_trips:.2f} round trips"
        f" ({many.rate / single.rate:.1f}x)",
        flush=True,
    )
    print(
        f"  target (one worker): {TARGET_PG_RATE:,}/s one per transaction"
        f" {_target(single.rate, TARGET_PG_RATE)}, batched {_target(many.rate, TARGET_PG_RATE)};"
        " several workers on one store: python bench/run.py pg_workers",
        flush=True,
    )


def tick_report(pack: dict[str, Any]) -> None:
    due = 1000
    small, fired_small = tick_cost(pack, 1_000, due)
    large, fired_large = tick_cost(pack, 100_000, due)
    print(
        f"tick with {due} due escalations among 1,000 open: {small * 1000:.0f} ms"
        f" ({fired_small} timers fired)",
        flush=True,
    )
    print(
        f"tick with {due} due escalations among 100,000 open: {large * 1000:.0f} ms"
        f" ({fired_large} timers fired)",
        flush=True,
    )
    print(
        f"ratio 100k/1k open at equal due timers: {large / small:.2f}x"
        " (proportional to due timers, not to open escalations)",
        flush=True,
    )


def rss_report(pack: dict[str, Any]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.json"
        path.write_text(json.dumps(big_pack(pack, 1000)))
        out = subprocess.run(
            [sys.executable, "-c", RSS_SCRIPT, str(path)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    before_kb, after_kb, open_count = int(out[0]), int(out[1]), int(out[2])
    print(
        f"RSS with a 1,000-policy pack after 2,000 events and 1h of timers: {after_kb / 1024:.1f} MB"
        f" (interpreter + imports alone: {before_kb / 1024:.1f} MB; target <= 100 MB;"
        f" {open_count} open escalations)",
        flush=True,
    )


def main() -> None:
    sample = repo_pack()
    big = realistic_pack(POLICIES)
    throughput_report(sample, big)
    postgres_report(big)
    tick_report(sample)
    rss_report(sample)


if __name__ == "__main__":
    main()
