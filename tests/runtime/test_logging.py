"""Structured logs: JSON lines carry the trace and span ids; secrets configured through
the environment never appear in any log line, whatever the requests (a bad signature,
a wrong token, a good request)."""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from escalade.runtime import tracing
from escalade.runtime.engine import Engine
from escalade.runtime.logfmt import JsonLines, formatter
from escalade.runtime.server import EscaladeServer
from escalade.runtime.sources import sign
from escalade.runtime.web.sources import attach_sources
from tests.runtime.test_sources import SECRETS, TIMEOUT, example, post


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonLines())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


def test_a_json_line_has_the_trace_and_span_ids(captured: io.StringIO) -> None:
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tracing.configure(None, "escalade-test", exporter=InMemorySpanExporter())
    with tracing.span("escalade.receive"):
        ids = tracing.current_ids()
        logging.getLogger("escalade.runtime.test").warning("inside %s", "a span", extra={"k": 1})
    line = json.loads(captured.getvalue().splitlines()[-1])
    assert ids is not None and (line["trace_id"], line["span_id"]) == ids
    assert line["message"] == "inside a span" and line["level"] == "warning" and line["k"] == 1


def test_the_text_format_stays_and_an_unknown_one_is_refused() -> None:
    assert not isinstance(formatter("text"), JsonLines)
    with pytest.raises(ValueError, match="json"):
        formatter("xml")


def test_secrets_are_never_logged(
    make_engine: Callable[..., tuple[Engine, Any, Any]], captured: io.StringIO
) -> None:
    engine, _clock, _notifier = make_engine()
    server = EscaladeServer(engine, "127.0.0.1", 0, environ=SECRETS, tick_interval=3600)
    settings, body = example("zendesk")
    attach_sources(server, settings.sources)
    server.start()
    try:
        auth = settings.sources["zendesk"].auth
        headers = sign(auth, body, SECRETS[auth.env], int(time.time()))
        url = f"{server.url}/sources/zendesk"
        assert post(url, body[:-2] + b" }", headers)[0] == 401  # a bad signature
        assert post(url, body, {**headers, auth.header or "": "x"})[0] == 401
        assert post(url, body, headers)[0] == 200
        assert post(f"{server.url}/sources/zendesk/heartbeat", b"", headers)[0] == 401
        assert post(f"{server.url}/events", b"{", {"Authorization": "Bearer leak"})[0] == 401
    finally:
        server.stop(timeout=TIMEOUT)
    logged = captured.getvalue()
    assert "source zendesk" in logged  # the refusals were logged
    for secret in SECRETS.values():
        assert secret not in logged
