"""`escalade serve` throughput: events/s over HTTP against the in-process engine.

Baseline: ``Engine.receive`` on the same pack and store settings in this run.
Then POST /events one event per request (one keep-alive connection), POST
/events as JSON Lines batches, 8 concurrent keep-alive clients (events/s and
the p50/p99 latency of a request) with group commit (the events of concurrent
requests share a transaction) and without it (``max_batch=1``: one transaction per
request, as before), with commits per event, and the cost of one /metrics scrape.
SQLite file, WAL + synchronous=NORMAL. Figures only, never asserted (the machine is
shared).
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from escalade.runtime.engine import Engine
from escalade.runtime.groupcommit import MAX_BATCH
from escalade.runtime.pack import RulePack
from escalade.runtime.server import EscaladeServer
from escalade.runtime.store.sqlite import SQLiteStore

PACK = Path(__file__).resolve().parents[1] / "generated" / "rulepack.json"
N = 1000
BATCH = 250
CLIENTS = 8


def event(n: int, tag: str) -> dict[str, Any]:
    """An enterprise critical ticket.created event for ticket ``{tag}-{n}``."""
    return {
        "id": f"{tag}-e{n}",
        "type": "ticket.created",
        "at": "2026-11-27T10:00:00Z",
        "data": {
            "ticket": {
                "id": f"{tag}-{n}",
                "title": "Down",
                "severity": "critical",
                "status": "new",
            },
            "account": {"id": f"a{n % 50}", "name": "Acme", "tier": "enterprise"},
        },
    }


def fresh_engine(directory: str, name: str) -> tuple[Engine, SQLiteStore]:
    store = SQLiteStore(str(Path(directory) / f"{name}.db"))
    engine = Engine(store)
    engine.activate(RulePack.load(PACK).raw)
    return engine, store


def in_process(directory: str) -> float:
    engine, store = fresh_engine(directory, "baseline")
    try:
        lines = [json.dumps(event(n, "base")) for n in range(N)]
        start = time.perf_counter()
        for line in lines:
            engine.receive(line)
        return N / (time.perf_counter() - start)
    finally:
        store.close()


def over_http(directory: str) -> tuple[float, float, float, int]:
    engine, store = fresh_engine(directory, "http")
    server = EscaladeServer(engine, "127.0.0.1", 0)
    server.start()
    conn = HTTPConnection(server.host, server.port, timeout=30)
    try:
        single = [json.dumps(event(n, "one")).encode() for n in range(N)]
        start = time.perf_counter()
        for body in single:
            conn.request("POST", "/events", body, {"Content-Type": "application/json"})
            answer = conn.getresponse()
            answer.read()
            assert answer.status == 200, answer.status
        per_request = N / (time.perf_counter() - start)

        lines = [json.dumps(event(n, "batch")) for n in range(N)]
        start = time.perf_counter()
        for i in range(0, N, BATCH):
            body = "\n".join(lines[i : i + BATCH]).encode()
            conn.request("POST", "/events", body, {"Content-Type": "application/x-ndjson"})
            answer = conn.getresponse()
            answer.read()
            assert answer.status == 200, answer.status
        batched = N / (time.perf_counter() - start)

        start = time.perf_counter()
        conn.request("GET", "/metrics")
        answer = conn.getresponse()
        size = len(answer.read())
        scrape = time.perf_counter() - start
        return per_request, batched, scrape, size
    finally:
        conn.close()
        server.stop()
        store.close()


def _client(host: str, port: int, bodies: list[bytes], latencies: list[float]) -> None:
    conn = HTTPConnection(host, port, timeout=60)
    try:
        for body in bodies:
            start = time.perf_counter()
            conn.request("POST", "/events", body, {"Content-Type": "application/json"})
            answer = conn.getresponse()
            answer.read()
            latencies.append(time.perf_counter() - start)
            assert answer.status == 200, answer.status
    finally:
        conn.close()


def concurrent(
    directory: str, clients: int = CLIENTS, max_batch: int = MAX_BATCH
) -> tuple[float, float, float, float, int]:
    """``clients`` keep-alive connections posting one event per request at once:
    events/s over all, the p50 and p99 latency of a request (seconds), commits per
    event and the group commits' batches."""
    engine, store = fresh_engine(directory, f"concurrent{max_batch}")
    server = EscaladeServer(engine, "127.0.0.1", 0, max_batch=max_batch)
    server.start()
    try:
        share = N // clients
        latencies: list[float] = []
        threads = [
            threading.Thread(
                target=_client,
                args=(
                    server.host,
                    server.port,
                    [json.dumps(event(c * share + n, f"c{c}")).encode() for n in range(share)],
                    latencies,
                ),
            )
            for c in range(clients)
        ]
        commits, batches = store.commits, server.group.batches
        start = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        rate = len(latencies) / (time.perf_counter() - start)
        per_event = (store.commits - commits) / len(latencies)
        ordered = sorted(latencies)
        p50 = ordered[len(ordered) // 2]
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        return rate, p50, p99, per_event, server.group.batches - batches
    finally:
        server.stop()
        store.close()


def main() -> None:
    with tempfile.TemporaryDirectory() as directory:
        base = in_process(directory)
        per_request, batched, scrape, size = over_http(directory)
        grouped = concurrent(directory)
        alone = concurrent(directory, max_batch=1)
    print(f"in-process Engine.receive: {base:,.0f} events/s over {N} events (baseline)")
    print(
        f"POST /events, one event per request, keep-alive: {per_request:,.0f} events/s"
        f" ({per_request / base:.2f}x the baseline)"
    )
    print(
        f"POST /events, JSON Lines batches of {BATCH}: {batched:,.0f} events/s"
        f" ({batched / base:.2f}x the baseline)"
    )
    for label, (rate, p50, p99, commits, batches) in (
        (f"group commit (max_batch {MAX_BATCH})", grouped),
        ("one transaction per request (max_batch 1)", alone),
    ):
        print(
            f"POST /events, one event per request, {CLIENTS} concurrent keep-alive clients,"
            f" {label}: {rate:,.0f} events/s ({rate / base:.2f}x the baseline);"
            f" request latency p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms;"
            f" {commits:.2f} commits per event, {N / max(batches, 1):.1f} events per batch"
        )
    print(f"  group commit: {grouped[0] / alone[0]:.2f}x the events/s of one per request")
    print(f"GET /metrics after {2 * N} escalations: {scrape * 1000:.0f} ms ({size:,} bytes)")


if __name__ == "__main__":
    main()
