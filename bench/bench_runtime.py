"""Runtime benchmark: events/s end-to-end on SQLite (and PostgreSQL when
ESCALADE_TEST_PG_DSN is set), tick cost vs open escalations, RSS.

Figures name the SQLite settings (WAL + synchronous=NORMAL survives kill -9 of
the process; FULL also survives power loss). Ratios compare runs measured in
this same process, never a fixed number.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from escalade.compiler import load_policy_set
from escalade.compiler.backends.rulepack import build_pack
from escalade.runtime.clock import VirtualClock, format_time, parse_time
from escalade.runtime.engine import Engine
from escalade.runtime.notify import Delivery
from escalade.runtime.store import Escalation, OutboxMessage, Timer
from escalade.runtime.store.sqlite import SQLiteStore

ROOT = Path(__file__).resolve().parent.parent
T0 = parse_time("2026-11-27T10:00:00Z")


def repo_pack() -> dict[str, Any]:
    result = load_policy_set(str(ROOT / "policies"))
    assert result.pset is not None
    return build_pack(result.pset)


def events(n: int, start: int = 0) -> list[str]:
    """A mix: a new enterprise critical ticket every 4th event, updates and low tickets between."""
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


class AfterCommitNotifier:
    """Answers ``delivered`` at once but is not transactional, like the real channels:
    the engine sends with no transaction open and commits each receipt on its own."""

    transactional = False

    def deliver(self, msg: OutboxMessage) -> Delivery:
        return Delivery("delivered", "bench")


def throughput(pack: dict[str, Any], synchronous: str, n: int, after_commit: bool = False) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        store = SQLiteStore(str(Path(tmp) / "bench.db"), synchronous=synchronous)
        engine = Engine(store, VirtualClock(T0), AfterCommitNotifier() if after_commit else None)
        engine.activate(pack, T0)
        lines = events(n)
        start = time.perf_counter()
        for line in lines:
            engine.receive(line)
        elapsed = time.perf_counter() - start
        store.close()
    return n / elapsed


def pg_throughput(pack: dict[str, Any], dsn: str, n: int) -> tuple[float, str]:
    """Events/s on a PostgresStore in a fresh schema (dropped after); and the server's
    durability settings, which the figure depends on."""
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
        lines = events(n)
        start = time.perf_counter()
        for line in lines:
            engine.receive(line)
        elapsed = time.perf_counter() - start
    finally:
        store.close()
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return n / elapsed, settings


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


def main() -> None:
    pack = repo_pack()
    n = 3000
    for sync in ("NORMAL", "FULL"):
        rate = throughput(pack, sync, n)
        target = "meets" if rate >= 2000 else "BELOW"
        print(
            f"events/s end-to-end, SQLite file, WAL + synchronous={sync}: {rate:,.0f}/s"
            f" over {n} events ({target} the 2,000/s target)",
            flush=True,
        )
        after = throughput(pack, sync, n, after_commit=True)
        print(
            f"  same, notifier outside the transaction (one commit per receipt, as the"
            f" real channels): {after:,.0f}/s ({after / rate:.2f}x the in-process notifier)",
            flush=True,
        )
    dsn = os.environ.get("ESCALADE_TEST_PG_DSN")
    if dsn:
        sqlite_rate = throughput(pack, "NORMAL", n)
        pg_rate, settings = pg_throughput(pack, dsn, n)
        print(
            f"events/s end-to-end, PostgreSQL over TCP on 127.0.0.1 ({settings}): {pg_rate:,.0f}/s"
            f" over {n} events ({pg_rate / sqlite_rate:.2f}x SQLite WAL + NORMAL in this run)",
            flush=True,
        )
    else:
        print(
            "events/s end-to-end, PostgreSQL: skipped: no PostgreSQL (ESCALADE_TEST_PG_DSN unset)"
        )
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


if __name__ == "__main__":
    main()
