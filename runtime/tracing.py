"""Traces of events, timers and deliveries (OpenTelemetry, when it is installed).

The runtime calls :func:`span` around what it does — receiving an event, deciding who
owns it, assigning, each delivery attempt, each timer fired — with attributes such as
``escalade.policy``, ``escalade.ticket``, ``escalade.escalation`` and
``escalade.pack_version``. Without the ``otel`` extra (``opentelemetry-api``) every call
here is a no-op and costs next to nothing; with the API but no SDK configured, the
API's own tracer is a no-op too. :func:`configure` (``runtime.tracing`` in
``escalade.yaml``, :mod:`escalade.runtime.tracespec`) installs the SDK's provider with an
OTLP/HTTP exporter.

Trace context crosses threads by hand: a web request :func:`extract`\\ s the caller's
``traceparent``, opens its receive span and :func:`hand_over`\\ s that span's context under
the event id; whichever thread applies the event (the group commit's leader) takes it
with :func:`taken` as the parent of the event's span. Outbox rows are handed over the
same way under their key, so a delivery sent after the commit is a child of the event
that queued it, and :func:`inject` writes the delivery span's ``traceparent`` onto the
outgoing request.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

try:  # the otel extra
    from opentelemetry import context as otel_context
    from opentelemetry import trace as otel_trace
    from opentelemetry.propagate import extract as otel_extract
    from opentelemetry.propagate import inject as otel_inject
except ImportError:  # pragma: no cover - the runtime-only install
    otel_trace = None  # type: ignore[assignment]
    otel_context = None  # type: ignore[assignment]

TRACER_NAME = "escalade.runtime"
HANDED_OVER_MAX = 10_000  # contexts waiting for their event or delivery (oldest dropped)

AttrValue = str | int | float | bool | list[str]


def available() -> bool:
    """Whether the OpenTelemetry API is installed."""
    return otel_trace is not None


class _Handover:
    """Span contexts waiting for another thread, by event id or outbox key (bounded)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: OrderedDict[str, Any] = OrderedDict()

    def put(self, key: str, ctx: Any) -> None:
        with self._lock:
            self._waiting[key] = ctx
            while len(self._waiting) > HANDED_OVER_MAX:
                self._waiting.popitem(last=False)

    def take(self, key: str) -> Any:
        with self._lock:
            return self._waiting.pop(key, None)


_HANDOVER = _Handover()
_INSTALLED: dict[str, Any] = {}  # "provider": what configure() installed (else the global)


def _active() -> bool:
    """Whether spans go anywhere: a provider :func:`configure` installed, or one the
    embedding process set globally. Otherwise :func:`span` skips OpenTelemetry altogether
    (its no-op spans still cost ~0.15 ms an event, measured on PostgreSQL's bench)."""
    if otel_trace is None:
        return False
    if "provider" in _INSTALLED:
        return True
    default = (otel_trace.ProxyTracerProvider, otel_trace.NoOpTracerProvider)
    return not isinstance(otel_trace.get_tracer_provider(), default)


def _tracer() -> Any:
    provider = _INSTALLED.get("provider")
    if provider is not None:
        return provider.get_tracer(TRACER_NAME)
    return otel_trace.get_tracer(TRACER_NAME)


def _attrs(attrs: Mapping[str, Any]) -> dict[str, AttrValue]:
    """Attributes as OpenTelemetry takes them: ``escalade.`` names, None left out."""
    out: dict[str, AttrValue] = {}
    for key, value in attrs.items():
        if value is None:
            continue
        name = key if "." in key else f"escalade.{key}"
        if isinstance(value, (str, bool, int, float)):
            out[name] = value
        elif isinstance(value, (list, tuple, set, frozenset)):
            out[name] = [str(v) for v in value]
        else:
            out[name] = str(value)
    return out


@contextmanager
def span(name: str, parent: Any = None, **attrs: Any) -> Iterator[Any]:
    """A span named ``name`` around the block (a child of ``parent``, a context from
    :func:`extract` or :func:`taken`, else of the current span); yields it (None without
    OpenTelemetry or without a provider). An exception escaping the block is recorded on it."""
    if not _active():
        yield None
        return
    with _tracer().start_as_current_span(name, context=parent, attributes=_attrs(attrs)) as current:
        yield current


def recording() -> bool:
    """Whether the current span records (worth the work of handing contexts over)."""
    return otel_trace is not None and otel_trace.get_current_span().is_recording()


def event_ids(body: bytes) -> list[str]:
    """The ``id`` of each event of a request body (one JSON object or JSON Lines), for
    :func:`hand_over`; what does not read is left to the intake to refuse."""
    import json

    def id_of(text: bytes) -> list[str]:
        try:
            found = json.loads(text)
        except ValueError:
            return []
        value = found.get("id") if isinstance(found, dict) else None
        return [value] if isinstance(value, str) else []

    whole = id_of(body)
    if whole or body.lstrip()[:1] != b"{":
        return whole
    return [i for line in body.splitlines() if line.strip() for i in id_of(line)]


def annotate(**attrs: Any) -> None:
    """Set attributes on the current span (what a decision learnt inside it)."""
    if otel_trace is not None:
        current = otel_trace.get_current_span()
        if current.is_recording():
            current.set_attributes(_attrs(attrs))


def event(name: str, **attrs: Any) -> None:
    """A timestamped event on the current span (a state change)."""
    if otel_trace is not None:
        current = otel_trace.get_current_span()
        if current.is_recording():
            current.add_event(name, _attrs(attrs))


def extract(headers: Mapping[str, str]) -> Any:
    """The trace context of an incoming request's ``traceparent`` (None without one)."""
    if otel_trace is None or "traceparent" not in {k.lower() for k in headers}:
        return None
    return otel_extract({k.lower(): v for k, v in headers.items()})


def inject(headers: MutableMapping[str, str]) -> None:
    """Add the current span's ``traceparent`` (and ``tracestate``) to outgoing ``headers``."""
    if otel_trace is not None:
        otel_inject(headers)


def hand_over(key: str) -> None:
    """Leave the current context for whichever thread handles ``key`` next."""
    if otel_trace is not None and otel_trace.get_current_span().get_span_context().is_valid:
        _HANDOVER.put(key, otel_context.get_current())


def taken(key: str) -> Any:
    """The context handed over under ``key`` (None: the current one is the parent)."""
    return None if otel_trace is None else _HANDOVER.take(key)


def current_ids() -> tuple[str, str] | None:
    """The current trace and span ids as hex (for log lines), or None outside a span."""
    if otel_trace is None:
        return None
    ctx = otel_trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return None
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


class TracingUnavailable(RuntimeError):
    """``runtime.tracing`` is set but the otel extra is not installed."""


def configure(endpoint: str | None, service_name: str, exporter: Any = None) -> Any:
    """Install the SDK's tracer provider exporting to ``endpoint`` (OTLP over HTTP), or to
    ``exporter`` (a test's in-memory one); returns the provider. Calling it again
    replaces the provider this module uses (the previous one is shut down)."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError:
        raise TracingUnavailable(
            "runtime.tracing needs the otel extra: pip install 'escalade[otel]'"
        ) from None
    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise TracingUnavailable(
                "runtime.tracing.otlp_endpoint needs opentelemetry-exporter-otlp-proto-http"
            ) from None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    previous = _INSTALLED.get("provider")
    if previous is not None:
        previous.shutdown()
    _INSTALLED["provider"] = provider
    return provider


__all__ = [
    "TracingUnavailable",
    "annotate",
    "available",
    "configure",
    "current_ids",
    "event",
    "event_ids",
    "extract",
    "hand_over",
    "inject",
    "recording",
    "span",
    "taken",
]
