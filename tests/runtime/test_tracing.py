"""Traces with the SDK's in-memory exporter: one event through POST /events is a span
tree receive -> event -> decide/assign -> deliver in the trace of the caller's
``traceparent``; a source's request likewise; webhooks carry the delivery's traceparent."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from escalade.runtime import tracing
from escalade.runtime.engine import Engine
from escalade.runtime.server import EscaladeServer
from escalade.runtime.tracespec import observability_of
from tests.runtime.conftest import critical

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
TIMEOUT = 10.0


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.configure(None, "escalade-test", exporter=exporter)
    yield exporter
    tracing.configure(None, "escalade-test", exporter=InMemorySpanExporter())


@pytest.fixture
def server(make_engine: Callable[..., tuple[Engine, Any, Any]]) -> Iterator[EscaladeServer]:
    engine, _clock, _notifier = make_engine()
    served = EscaladeServer(engine, "127.0.0.1", 0, environ={}, tick_interval=3600)
    served.start()
    yield served
    served.stop(timeout=TIMEOUT)


def by_name(exporter: InMemorySpanExporter) -> dict[str, list[ReadableSpan]]:
    found: dict[str, list[ReadableSpan]] = {}
    for span in exporter.get_finished_spans():
        found.setdefault(span.name, []).append(span)
    return found


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def test_one_event_is_a_span_tree_in_the_callers_trace(
    server: EscaladeServer, spans: InMemorySpanExporter
) -> None:
    body = json.dumps(critical("T-TRACE", "evt-trace-1")).encode()
    request = urllib.request.Request(f"{server.url}/events", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("traceparent", TRACEPARENT)
    with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
        assert answer.status == 200
    found = by_name(spans)
    (receive,) = found["escalade.receive"]
    (event,) = found["escalade.event"]
    (decide,) = found["escalade.decide"]
    assigns = found["escalade.assign"]
    delivers = found["escalade.deliver"]
    assert {f"{s.context.trace_id:032x}" for s in spans.get_finished_spans()} == {TRACE}
    assert parent_of(receive) == int("00f067aa0ba902b7", 16)
    assert parent_of(event) == receive.context.span_id
    assert parent_of(decide) == event.context.span_id
    assert all(parent_of(a) == event.context.span_id for a in assigns)
    assert attrs(event)["escalade.ticket"] == "T-TRACE"
    with server.lock:
        version = server.engine.active().version
    assert attrs(event)["escalade.pack_version"] == version
    assert attrs(decide)["escalade.policy"] == "enterprise_critical"
    candidates = set(attrs(decide)["escalade.candidates"])
    assert {"enterprise_critical", "critical_default"} <= candidates
    assert attrs(assigns[0])["escalade.owner"]
    assign_ids = {a.context.span_id for a in assigns}
    # A step's message is a child of the event, the owner's notice of its assignment.
    assert all(parent_of(d) in assign_ids | {event.context.span_id} for d in delivers)
    assert any(parent_of(d) in assign_ids for d in delivers)
    first = attrs(delivers[0])
    assert first["escalade.attempt"] == 1 and first["escalade.outcome"] == "dry_run"
    assert first["escalade.escalation"] == attrs(assigns[0])["escalade.escalation"]
    changes = [e for a in assigns for e in a.events if e.name == "escalade.state"]
    assert changes and dict(changes[0].attributes or {})["escalade.state"] == "assigned"


def test_without_a_provider_spans_are_no_ops() -> None:
    with tracing.span("escalade.nothing", ticket="T1") as span:
        tracing.annotate(policy="p")
        tracing.event("escalade.state", state="assigned")
    assert span is None or not span.is_recording()


def test_inject_writes_the_current_traceparent(spans: InMemorySpanExporter) -> None:
    headers: dict[str, str] = {}
    with tracing.span("escalade.deliver", tracing.extract({"Traceparent": TRACEPARENT})):
        tracing.inject(headers)
    assert headers["traceparent"].split("-")[1] == TRACE
    assert tracing.extract({}) is None


def test_event_ids_read_one_object_or_json_lines() -> None:
    assert tracing.event_ids(b'{"id": "a", "type": "x"}') == ["a"]
    assert tracing.event_ids(b'{"id": "a"}\n{"id": "b"}\n') == ["a", "b"]
    assert tracing.event_ids(b"not json") == []


def test_tracing_settings_read_the_section() -> None:
    spec = observability_of({"tracing": {"otlp_endpoint": "http://c:4318/v1/traces"}})
    assert spec.otlp_endpoint == "http://c:4318/v1/traces" and spec.service_name == "escalade"
    assert observability_of({"logging": {"format": "json"}}).log_format == "json"
