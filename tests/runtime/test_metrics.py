"""/metrics through prometheus_client: the incremental KPIs equal kpi.compute, the
histograms come from them, and a scrape reads on its own connection, never the engine's."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from escalade.runtime import audit, kpi
from escalade.runtime.engine import Engine
from escalade.runtime.kpicache import KpiCache
from escalade.runtime.metrics import ServerMetrics, open_reader
from escalade.runtime.pack import RulePack
from escalade.runtime.server import EscaladeServer
from escalade.runtime.simulate import replay
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0, critical

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "generated" / "rulepack.json"
DAY = REPO / "examples" / "day.jsonl"


def samples(text: bytes) -> dict[str, list[Sample]]:
    """The samples of an exposition by family name, read by prometheus_client's parser."""
    return {fam.name: fam.samples for fam in text_string_to_metric_families(text.decode())}


def scrape(metrics: ServerMetrics) -> dict[str, list[Sample]]:
    text, content_type = metrics.exposition()
    assert content_type == CONTENT_TYPE_LATEST
    return samples(text)


def value(found: dict[str, list[Sample]], family: str, sample: str, **labels: str) -> float:
    [match] = [s.value for s in found[family] if s.name == sample and s.labels == labels]
    return match


# --- the incremental KPIs equal the full recompute ----------------------------


@pytest.mark.parametrize("shards", [1, 16])
def test_the_cache_equals_compute_all_through_a_replayed_day(tmp_path: Path, shards: int) -> None:
    """Also on a trail in shards (PostgreSQL's default): each shard's cursor moves alone."""
    store = SQLiteStore(str(tmp_path / "day.db"), audit_shards=shards)
    cache = KpiCache()
    refreshes: list[int] = []
    lines = DAY.read_text().splitlines()
    seen = 0

    def compare() -> None:
        nonlocal seen
        seen += 1
        if seen % 25 == 0:
            refreshes.append(cache.refresh(store))
            assert cache.kpis(store.counters()) == kpi.compute(store), f"before line {seen}"

    try:
        replay(RulePack.load(PACK), lines, store=store, on_line=compare)
        refreshes.append(cache.refresh(store))
        final = kpi.compute(store)
        assert cache.kpis(store.counters()) == final
        trail = list(store.audit_rows())
        assert cache.rows == len(trail)
        assert cache.cursor == {k: store.audit_head(k)[0] for k in {r.shard for r in trail}}
        assert len(cache.cursor) == 1 if shards == 1 else len(cache.cursor) > 1
    finally:
        store.close()
    assert sum(1 for n in refreshes if n) >= 10, refreshes  # many increments, each with rows
    # the day has what the totals take apart and put back: acks, resolutions, handoffs, breaches
    assert final["time_to_acknowledge"]["count"] and final["time_to_resolve"]["count"]
    assert final["handoffs_per_escalation"]["total"] and final["closed"]
    assert any(row["acknowledge"]["breached"] for row in final["sla_compliance"].values())


SLA = st.fixed_dictionaries(
    {"acknowledge": st.sampled_from([None, 300]), "resolve": st.sampled_from([None, 3600])}
)
ROW = st.one_of(
    st.tuples(
        st.just("triggered"),
        st.integers(1, 4),
        st.sampled_from(["p1", "p2"]),
        st.fixed_dictionaries({"account": st.sampled_from([None, "a", "b"]), "sla": SLA}),
    ),
    st.tuples(
        st.sampled_from(["handoff", "rerouted", "transfer"]),
        st.integers(1, 5),
        st.sampled_from([None, "p1", "p2", "p3"]),
        st.fixed_dictionaries({"sla": SLA}),
    ),
    st.tuples(
        st.sampled_from(
            ["acknowledged", "resolved", "closed", "unacknowledged", "triage", "notified"]
        ),
        st.one_of(st.none(), st.integers(1, 5)),
        st.none(),
        st.just({}),
    ),
    st.tuples(
        st.just("breach"),
        st.integers(1, 5),
        st.none(),
        st.fixed_dictionaries({"sla": st.sampled_from(["acknowledge", "resolve", "other"])}),
    ),
)


TARGETS = {"acknowledge": 300, "resolve": None}


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(ROW, st.integers(0, 5000)), max_size=60),
    st.lists(st.integers(1, 12), min_size=1, max_size=8),
)
@example(  # a policy's only escalation is re-routed to another in a later read
    [
        (("triggered", 1, "p1", {"account": "a", "sla": TARGETS}), 0),
        (("rerouted", 1, "p2", {"sla": TARGETS}), 60),
        (("triggered", 1, "p1", {"account": "a", "sla": TARGETS}), 60),
    ],
    [1],
)
def test_the_cache_equals_compute_after_every_increment(
    rows: list[tuple[tuple[str, int | None, str | None, dict[str, Any]], int]],
    chunks: list[int],
) -> None:
    """Random trails (re-triggered ids, second resolutions, policies moved by handoffs,
    rows of unknown escalations), read in random increments."""
    store = SQLiteStore(":memory:")
    cache = KpiCache()
    at, done = T0, 0
    sizes = itertools.cycle(chunks)
    try:
        while done < len(rows):
            size = next(sizes)
            with store.transaction():
                for (kind, esc, policy, detail), step in rows[done : done + size]:
                    at += step
                    audit.append(
                        store,
                        at=at,
                        kind=kind,
                        actor="test",
                        reason="generated",
                        ticket=None if esc is None else f"T-{esc}",
                        escalation_id=esc,
                        policy=policy,
                        detail=detail,
                    )
            done += size
            cache.refresh(store)
            assert cache.kpis(store.counters()) == kpi.compute(store)
    finally:
        store.close()


def test_audit_rows_after_reads_only_the_rows_appended_since(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "a.db"))
    try:
        with store.transaction():
            for n in range(6):
                audit.append(
                    store, at=T0 + n, kind="note", actor="t", reason="r", escalation_id=n % 2
                )
        assert [r.seq for r in store.audit_rows()] == [1, 2, 3, 4, 5, 6]
        assert [r.seq for r in store.audit_rows(after=4)] == [5, 6]
        assert [r.seq for r in store.audit_rows(after=6)] == []
        assert [r.seq for r in store.audit_rows(1, after=2)] == [4, 6]
    finally:
        store.close()


# --- the exposition -------------------------------------------------------------


def _escalation(store: SQLiteStore, esc: int, start: int, acked_after: int | None) -> None:
    sla = {"acknowledge": 300, "resolve": None}
    audit.append(
        store,
        at=start,
        kind="triggered",
        actor="engine",
        reason="matched",
        escalation_id=esc,
        policy="enterprise_critical",
        detail={"sla": sla},
    )
    if acked_after is not None:
        audit.append(
            store,
            at=start + acked_after,
            kind="acknowledged",
            actor="alice",
            reason="ack",
            escalation_id=esc,
        )


def test_time_to_acknowledge_is_a_histogram_of_the_cached_durations(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "h.db"))
    metrics = ServerMetrics(open_reader(store))
    try:
        with store.transaction():
            _escalation(store, 1, T0, 30)
            _escalation(store, 2, T0, 400)
        first = scrape(metrics)
        with store.transaction():
            _escalation(store, 3, T0 + 10, 100_000)
            _escalation(store, 4, T0 + 20, None)
        found = scrape(metrics)
    finally:
        metrics.close()
        store.close()
    name = "escalade_time_to_acknowledge_seconds"
    assert value(first, name, name + "_count") == 2
    buckets = {s.labels["le"]: s.value for s in found[name] if s.name == name + "_bucket"}
    assert buckets["60.0"] == 1 and buckets["300.0"] == 1 and buckets["900.0"] == 2
    assert buckets["86400.0"] == 2 and buckets["+Inf"] == 3
    assert value(found, name, name + "_sum") == 30 + 400 + 100_000
    assert value(found, name, name + "_count") == 3
    acknowledged = "escalade_escalations_acknowledged"
    assert value(found, acknowledged, acknowledged + "_total") == 3
    assert value(found, "escalade_escalations", "escalade_escalations_total") == 4
    assert value(found, "escalade_audit_rows", "escalade_audit_rows") == 7
    assert (
        value(found, "escalade_time_to_resolve_seconds", "escalade_time_to_resolve_seconds_count")
        == 0
    )
    breaches = "escalade_sla_met"
    assert (
        value(found, breaches, breaches + "_total", policy="enterprise_critical", sla="acknowledge")
        == 3
    )


def test_requests_are_counted_and_timed_by_route_and_method() -> None:
    metrics = ServerMetrics(None)  # no store to read: the process's families only
    metrics.observe_request("POST", "/events", 200, 0.003)
    metrics.observe_request("POST", "/events", 422, 0.2)
    metrics.observe_request("GET", "/tickets/{id}", 200, 12.0)
    found = scrape(metrics)
    assert "escalade_escalations" not in found and "escalade_events_applied" not in found
    total = "escalade_http_requests_total"
    assert (
        value(found, "escalade_http_requests", total, method="POST", route="/events", code="422")
        == 1
    )
    name = "escalade_http_request_duration_seconds"
    events = {"route": "/events", "method": "POST"}
    assert value(found, name, name + "_count", **events) == 2
    assert value(found, name, name + "_sum", **events) == 0.203
    assert value(found, name, name + "_bucket", le="0.005", **events) == 1
    assert value(found, name, name + "_bucket", le="0.25", **events) == 2
    slow = {"route": "/tickets/{id}", "method": "GET"}
    assert value(found, name, name + "_bucket", le="10.0", **slow) == 0
    assert value(found, name, name + "_bucket", le="+Inf", **slow) == 1


def test_each_server_has_a_registry_of_its_own() -> None:
    one, two = ServerMetrics(None), ServerMetrics(None)
    one.observe_request("GET", "/healthz", 200, 0.001)
    assert one.registry is not two.registry and one.registry is not REGISTRY
    assert b'route="/healthz"' in one.exposition()[0]
    assert b'route="/healthz"' not in two.exposition()[0]
    assert REGISTRY.get_sample_value("escalade_http_requests_total") is None


# --- never the engine's lock, never its connection ------------------------------


def test_a_scrape_never_takes_the_engine_lock(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "s.db"))
    engine = Engine(store)
    engine.activate(RulePack.load(PACK).raw, T0)
    engine.receive(json.dumps(critical("T-1", "e-1")), T0)
    server = EscaladeServer(engine, "127.0.0.1", 0, lock_timeout=0.2)
    try:
        with server.lock:  # the engine is busy: a scrape that waited for it would be a 503
            answer = server.get_metrics()
        assert answer.status == 200
        found = samples(answer.body)
        assert value(found, "escalade_escalations", "escalade_escalations_total") == 1
        [info] = found["escalade_pack_info"]
        assert info.labels["version"] == engine.active().version
    finally:
        server.stop(timeout=1)
        store.close()


def test_a_scrape_sees_what_the_engine_committed_not_what_it_is_writing(tmp_path: Path) -> None:
    store = SQLiteStore(str(tmp_path / "w.db"))
    metrics = ServerMetrics(open_reader(store))
    audit_rows = "escalade_audit_rows"
    try:
        with store.transaction():
            _escalation(store, 1, T0, 30)
        with store.transaction():  # the engine is mid-decision (SQLite holds its write lock)
            _escalation(store, 2, T0, 60)
            during = scrape(metrics)
        after = scrape(metrics)
    finally:
        metrics.close()
        store.close()
    assert value(during, audit_rows, audit_rows) == 2  # the committed rows only
    assert value(after, audit_rows, audit_rows) == 4  # then the rest, none skipped
    assert value(after, "escalade_escalations", "escalade_escalations_total") == 2


def test_the_runtime_and_its_cli_import_without_prometheus_client() -> None:
    """prometheus_client comes with the ``server`` extra: only making metrics needs it."""
    script = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] == 'prometheus_client':\n"
        "            raise ImportError('blocked: ' + name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "import escalade.runtime.metrics, escalade.runtime.server, escalade.runtime.cli\n"
        "print(sorted(n for n in sys.modules if n.startswith('prometheus_client')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
