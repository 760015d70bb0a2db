"""`escalade serve`: the real HTTP server on 127.0.0.1:0, a temporary SQLite store and the
committed generated/rulepack.json, driven with urllib (every wait bounded)."""

from __future__ import annotations

import json
import math
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from escalade.runtime.cli.serve import serve_command
from escalade.runtime.clock import VirtualClock
from escalade.runtime.engine import Engine
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.notify.channels import SIGNATURE_HEADER
from escalade.runtime.pack import RulePack
from escalade.runtime.receipts import sign_receipt
from escalade.runtime.server import EscaladeServer
from escalade.runtime.settings import SettingsError, parse_settings
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0, critical

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "generated" / "rulepack.json"
ENTERPRISE = REPO / "examples" / "events" / "enterprise_critical.json"
TIMEOUT = 10.0  # seconds for any one HTTP call or wait


# --- a strict parser for the Prometheus text exposition format ---------------

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass
class Parsed:
    kind: str
    help: str = ""
    samples: dict[tuple[tuple[str, str], ...], float] = field(default_factory=dict)

    def value(self, **labels: str) -> float:
        return self.samples[tuple(sorted(labels.items()))]


def _labels(text: str, where: str) -> tuple[tuple[str, str], ...]:
    """``a="x",b="y\\"z"`` -> (("a", "x"), ("b", 'y"z')), refusing anything malformed."""
    out: dict[str, str] = {}
    i = 0
    while i < len(text):
        name = LABEL.match(text, i)
        assert name, f"{where}: bad label name at {text[i:]!r}"
        i = name.end()
        assert text[i : i + 2] == '="', f'{where}: expected =" after {name.group()}'
        i += 2
        value = []
        while True:
            assert i < len(text), f"{where}: unterminated label value"
            ch = text[i]
            if ch == "\\":
                nxt = text[i + 1 : i + 2]
                assert nxt in ("\\", '"', "n"), f"{where}: bad escape \\{nxt}"
                value.append("\n" if nxt == "n" else nxt)
                i += 2
            elif ch == '"':
                i += 1
                break
            else:
                assert ch != "\n", f"{where}: raw newline in a label value"
                value.append(ch)
                i += 1
        assert name.group() not in out, f"{where}: label {name.group()} twice"
        out[name.group()] = "".join(value)
        if i < len(text):
            assert text[i] == ",", f"{where}: expected , at {text[i:]!r}"
            i += 1
    return tuple(sorted(out.items()))


def _series_of(families: dict[str, Parsed], name: str) -> Parsed | None:
    """A histogram's ``_bucket``, ``_sum`` and ``_count`` series, each kept as a family of
    its own (``x_count``) once its histogram ``x`` has been declared."""
    base, _, suffix = name.rpartition("_")
    parent = families.get(base)
    if parent is None or parent.kind != "histogram" or suffix not in ("bucket", "sum", "count"):
        return None
    return families.setdefault(name, Parsed("histogram", parent.help))


def parse_exposition(text: str) -> dict[str, Parsed]:
    """Every family of an exposition; any deviation from the format fails the test."""
    assert text.endswith("\n"), "the exposition ends with a newline"
    families: dict[str, Parsed] = {}
    helps: dict[str, str] = {}
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {n}: {line!r}"
        if line.startswith("# HELP "):
            name, _, doc = line[7:].partition(" ")
            assert NAME.fullmatch(name), where
            assert name not in helps, f"{where}: HELP twice"
            helps[name] = doc.replace("\\n", "\n").replace("\\\\", "\\")
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            assert NAME.fullmatch(name), where
            assert kind in ("counter", "gauge", "summary", "histogram", "untyped"), where
            assert name not in families, f"{where}: TYPE twice"
            families[name] = Parsed(kind, helps.get(name, ""))
        elif line.startswith("#"):
            continue
        else:
            found = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?", line)
            assert found, f"{where}: not a sample"
            name, labels, value = found.groups()
            fam = families.get(name) or _series_of(families, name)
            assert fam is not None, f"{where}: sample before its TYPE"
            key = _labels(labels or "", where)
            assert key not in fam.samples, f"{where}: the same series twice"
            number = float(value)  # accepts NaN, +Inf, -Inf too
            if fam.kind == "counter":
                assert number >= 0 and not math.isnan(number), f"{where}: a negative counter"
            fam.samples[key] = number
    return families


# --- the server under test ---------------------------------------------------


@dataclass
class Running:
    server: EscaladeServer
    engine: Engine
    clock: VirtualClock
    notifier: RecordingNotifier

    @property
    def url(self) -> str:
        return self.server.url


def http(
    url: str,
    *,
    method: str = "GET",
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """One request; (status, headers, body) for errors too. Header names are matched
    case-insensitively, as HTTP says (the keys are in Title-Case)."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
            return resp.status, _titled(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, _titled(exc.headers.items()), exc.read()


class Headers(dict[str, str]):
    """Response headers, looked up case-insensitively as HTTP says."""

    def __getitem__(self, key: str) -> str:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(key.lower(), default)


def _titled(items: Any) -> Headers:
    return Headers((k.lower(), v) for k, v in items)


def post_json(url: str, value: Any, **headers: str) -> tuple[int, Any]:
    status, _, body = http(
        url,
        method="POST",
        body=json.dumps(value).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    return status, json.loads(body)


def get_json(url: str, **headers: str) -> tuple[int, Any]:
    status, _, body = http(url, headers=headers)
    return status, json.loads(body)


def metrics(url: str) -> dict[str, Parsed]:
    status, headers, body = http(url + "/metrics")
    assert status == 200
    assert headers["Content-Type"] == CONTENT_TYPE_LATEST
    return parse_exposition(body.decode())


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    """Start servers on free ports; every one is stopped and its store closed afterwards."""
    started: list[tuple[EscaladeServer, SQLiteStore]] = []
    body = RulePack.load(PACK).raw

    def factory(*, activate: bool = True, **options: Any) -> Running:
        store = SQLiteStore(str(tmp_path / f"serve{len(started)}.db"))
        clock = VirtualClock(T0)
        notifier = RecordingNotifier(
            silent=set(options.pop("silent", ())), failing=set(options.pop("failing", ()))
        )
        engine = Engine(store, clock, notifier)
        if activate:
            engine.activate(body, T0)
        options.setdefault("tick_interval", 0.05)
        server = EscaladeServer(engine, "127.0.0.1", 0, **options)
        started.append((server, store))
        server.start()
        return Running(server, engine, clock, notifier)

    yield factory
    for server, store in started:
        server.stop(timeout=TIMEOUT)
        store.close()


# --- events and tickets ------------------------------------------------------


def test_an_enterprise_critical_event_opens_an_escalation_readable_by_ticket(
    serve: Callable[..., Running],
) -> None:
    run = serve()
    status, _, body = http(
        run.url + "/events",
        method="POST",
        body=ENTERPRISE.read_bytes(),
        headers={"Content-Type": "application/json"},
    )
    answer = json.loads(body)
    assert status == 200
    assert answer["outcome"] == "applied" and answer["ticket"] == "T-1001"
    status, ticket = get_json(run.url + "/tickets/T-1001")
    assert status == 200
    assert ticket["policy"] == "enterprise_critical"
    assert ticket["state"] == "assigned" and ticket["level"] == "primary"
    assert ticket["escalation"] == answer["escalation"]
    with run.server.lock:
        assert ticket == json.loads(json.dumps(run.engine.status("T-1001")))
    status, missing = get_json(run.url + "/tickets/T-404")
    assert status == 404 and "T-404" in missing["error"]


def test_a_jsonl_batch_applies_good_lines_and_dead_letters_the_malformed_one(
    serve: Callable[..., Running],
) -> None:
    run = serve()
    lines = [
        json.dumps(critical("T-1", "e-1")).encode(),
        json.dumps({"id": "e-bad", "type": "ticket.created", "data": {}}).encode(),  # no `at`
        b"",
        json.dumps(critical("T-2", "e-2")).encode() + b"\r",
        b"\xff\xfe not UTF-8",
    ]
    status, _, body = http(
        run.url + "/events",
        method="POST",
        body=b"\n".join(lines),
        headers={"Content-Type": "application/x-ndjson"},
    )
    answer = json.loads(body)
    assert status == 207
    results = answer["results"]
    assert [(r["line"], r["status"], r["outcome"]) for r in results] == [
        (1, 200, "applied"),
        (2, 422, "dead_letter"),
        (4, 200, "applied"),
        (5, 422, "dead_letter"),
    ]
    assert "missing `at`" in results[1]["error"]
    assert "UTF-8" in results[3]["error"]
    assert answer["totals"] == {"applied": 2, "dead_letter": 2}
    with run.server.lock:
        letters = run.engine.store.dead_letters()
        assert [d.event_id for d in letters] == ["e-bad", None]
        assert "missing `at`" in letters[0].error and "UTF-8" in letters[1].error
        assert run.engine.store.has_event("e-1") and run.engine.store.has_event("e-2")
        assert not run.engine.store.has_event("e-bad")
    assert get_json(run.url + "/tickets/T-2")[0] == 200


def test_a_single_malformed_event_is_422_and_changes_nothing_else(
    serve: Callable[..., Running],
) -> None:
    run = serve()
    before = metrics(run.url)
    status, _, body = http(
        run.url + "/events",
        method="POST",
        body=b'{"id": "x", "type": "ticket.created", "at": "2026-11-27T10:00:00Z",',
        headers={"Content-Type": "application/json"},
    )
    assert status == 422
    assert json.loads(body)["outcome"] == "dead_letter"
    after = metrics(run.url)
    assert after["escalade_events_dead_lettered_total"].value() == 1
    for name in ("escalade_events_applied_total", "escalade_escalations_total"):
        assert after[name].samples == before[name].samples
    assert after["escalade_escalations_open"].samples == {}


def test_the_same_event_id_twice_is_a_duplicate_that_changes_nothing(
    serve: Callable[..., Running],
) -> None:
    run = serve()
    event = critical("T-9", "e-9")
    assert post_json(run.url + "/events", event)[1]["outcome"] == "applied"
    status, answer = post_json(run.url + "/events", event)
    assert status == 200 and answer["outcome"] == "duplicate"
    parsed = metrics(run.url)
    assert parsed["escalade_events_applied_total"].value() == 1
    assert parsed["escalade_escalations_total"].value() == 1
    assert parsed["escalade_events_received_total"].value(outcome="duplicate") == 1


def test_without_an_active_pack_events_and_health_are_503(serve: Callable[..., Running]) -> None:
    run = serve(activate=False)
    status, answer = get_json(run.url + "/healthz")
    assert status == 503 and "no rule pack" in answer["error"]
    status, answer = post_json(run.url + "/events", critical("T-1", "e-1"))
    assert status == 503 and "no rule pack" in answer["error"]
    assert "escalade_pack_info" in metrics(run.url)


def test_health_names_the_active_pack(serve: Callable[..., Running]) -> None:
    run = serve()
    status, answer = get_json(run.url + "/healthz")
    assert status == 200
    with run.server.lock:
        assert answer["pack_version"] == run.engine.active().version
    assert answer["pack_version"].startswith(RulePack.load(PACK).version)
    parsed = metrics(run.url)
    [(labels, value)] = parsed["escalade_pack_info"].samples.items()
    assert dict(labels)["version"] == answer["pack_version"] and value == 1


# --- operator commands -------------------------------------------------------


def test_operator_commands_run_through_the_engine_with_its_refusals(
    serve: Callable[..., Running],
) -> None:
    run = serve()
    url = run.url + "/tickets/T-7"
    assert post_json(run.url + "/events", critical("T-7", "e-7", root_cause="disk"))[0] == 200
    status, answer = post_json(run.url + "/tickets/T-404/ack", {"by": "alice"})
    assert status == 404 and "T-404" in answer["error"]
    status, answer = post_json(url + "/ack", {})
    assert status == 422 and "`by`" in answer["error"]
    status, answer = post_json(url + "/ack", {"by": "nobody"})
    assert status == 409 and "'nobody' is not a person" in answer["error"]
    status, answer = post_json(url + "/ack", {"by": "alice"})
    assert status == 200 and answer["outcome"] == "applied"
    assert "acknowledged by alice" in answer["message"]
    assert get_json(url)[1]["state"] == "acknowledged"
    status, answer = post_json(url + "/ack", {"by": "alice"})
    assert status == 409 and "already acknowledged" in answer["error"]
    # a close check that does not hold: refused with the engine's reason, and audited
    status, answer = post_json(url + "/close", {})
    assert status == 409 and "close of ticket T-7 refused" in answer["error"]
    assert "not resolved" in answer["error"]
    with run.server.lock:
        assert [r.kind for r in run.engine.store.audit_rows()][-1] == "close_refused"
    # a transfer needs a reason and an SLA: 422 in the engine's words, nothing changes
    status, answer = post_json(url + "/transfer", {"to": "bob", "sla": "2h"})
    assert status == 422 and "a transfer needs a reason" in answer["error"]
    status, answer = post_json(url + "/transfer", {"to": "bob", "reason": "db team"})
    assert status == 422 and "a transfer needs an expected SLA" in answer["error"]
    status, answer = post_json(url + "/transfer", {"to": "bob", "reason": "x", "sla": "soon"})
    assert status == 422 and "'soon' is not a duration" in answer["error"]
    assert get_json(url)[1]["owner"] == "alice"
    body = {"to": "bob", "reason": "database expertise", "sla": "2h"}
    status, answer = post_json(url + "/transfer", body)
    assert status == 200 and "transferred to bob" in answer["message"]
    ticket = get_json(url)[1]
    assert ticket["owner"] == "bob" and ticket["level"] == "transfer"
    assert any(t["kind"] == "transfer" for t in ticket["timers"])
    assert post_json(url + "/resolve", {})[0] == 200
    assert get_json(url)[1]["state"] == "resolved"
    status, answer = post_json(url + "/postmortem", {})
    assert status == 422 and "a post-mortem needs a link" in answer["error"]
    status, answer = post_json(url + "/postmortem", {"link": "https://wiki.example.com/pm/7"})
    assert status == 200 and "post-mortem recorded" in answer["message"]
    status, answer = post_json(url + "/close", {})
    assert status == 200 and answer["message"] == "ticket T-7 closed"
    assert get_json(url)[1]["state"] == "closed"
    status, answer = post_json(url + "/resolve", {})
    assert status == 409 and "no open escalation" in answer["error"]


def test_operator_commands_need_the_token_a_json_object_and_post(
    serve: Callable[..., Running],
) -> None:
    run = serve(token_env="SERVE_TOKEN", environ={"SERVE_TOKEN": "s3cret"})
    auth = {"Authorization": "Bearer s3cret"}
    assert post_json(run.url + "/events", critical("T-1", "e-1"), **auth)[0] == 200
    status, answer = post_json(run.url + "/tickets/T-1/ack", {"by": "alice"})
    assert status == 401 and "bearer token" in answer["error"]
    with run.server.lock:
        assert run.engine.status("T-1")["state"] == "assigned"  # type: ignore[index]
    for raw in (b"[1, 2]", b"{not json", b"\xff"):
        status, _, body = http(
            run.url + "/tickets/T-1/ack",
            method="POST",
            body=raw,
            headers={"Content-Type": "application/json", **auth},
        )
        assert status == 400 and "JSON object" in json.loads(body)["error"]
    status, headers, body = http(run.url + "/tickets/T-1/ack", headers=auth)
    assert status == 405 and headers["Allow"] == "POST" and "error" in json.loads(body)
    status, answer = post_json(run.url + "/tickets/T-1/ack", {"by": "alice"}, **auth)
    assert status == 200 and answer["ticket"] == "T-1"
    # the request counter names the route template, not the ticket
    parsed = metrics(run.url)
    requests = parsed["escalade_http_requests_total"].samples
    routes = {dict(labels)["route"] for labels in requests}
    assert "/tickets/{id}/ack" in routes and not any("T-1" in r for r in routes)


# --- limits, authentication, errors ------------------------------------------


def test_a_configured_token_is_required_on_events_and_tickets(
    serve: Callable[..., Running],
) -> None:
    run = serve(token_env="SERVE_TOKEN", environ={"SERVE_TOKEN": "s3cret"})
    event = critical("T-1", "e-1")
    status, answer = post_json(run.url + "/events", event)
    assert status == 401 and "bearer token" in answer["error"]
    assert post_json(run.url + "/events", event, Authorization="Bearer nope")[0] == 401
    status, headers, _ = http(run.url + "/tickets/T-1")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    with run.server.lock:
        assert not run.engine.store.has_event("e-1")  # refused before anything was applied
    status, answer = post_json(run.url + "/events", event, Authorization="Bearer s3cret")
    assert status == 200 and answer["outcome"] == "applied"
    assert get_json(run.url + "/tickets/T-1", Authorization="Bearer s3cret")[0] == 200
    assert get_json(run.url + "/healthz")[0] == 200  # probes and scrapers need no token


def test_a_token_variable_that_is_not_set_fails_closed(serve: Callable[..., Running]) -> None:
    run = serve(token_env="SERVE_TOKEN", environ={})
    status, answer = post_json(run.url + "/events", critical("T-1", "e-1"), Authorization="Bearer ")
    assert status == 503 and "SERVE_TOKEN" in answer["error"]


def test_a_body_over_the_limit_is_413_and_nothing_is_applied(
    serve: Callable[..., Running],
) -> None:
    run = serve()
    line = json.dumps(critical("T-big", "e-big")).encode() + b"\n"
    body = line * (1_000_000 // len(line) + 1)
    assert len(body) > 1_000_000
    status, _, answer = http(
        run.url + "/events",
        method="POST",
        body=body,
        headers={"Content-Type": "application/x-ndjson"},
    )
    assert status == 413 and "limit is 1000000" in json.loads(answer)["error"]
    with run.server.lock:
        assert not run.engine.store.has_event("e-big")


def test_expect_100_continue_refuses_an_oversize_body_before_it_is_sent(
    serve: Callable[..., Running],
) -> None:
    run = serve()
    head = (
        "POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Expect: 100-continue\r\nContent-Length: {}\r\n\r\n"
    )
    with socket.create_connection((run.server.host, run.server.port), timeout=TIMEOUT) as sock:
        sock.sendall(head.format(5_000_000).encode())  # and never the body
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    status_line, _, rest = data.partition(b"\r\n")
    assert status_line == b"HTTP/1.1 413 Request Entity Too Large"
    assert "limit" in json.loads(rest.partition(b"\r\n\r\n")[2])["error"]

    event = json.dumps(critical("T-1", "e-1")).encode()
    with socket.create_connection((run.server.host, run.server.port), timeout=TIMEOUT) as sock:
        sock.sendall(head.format(len(event)).encode())
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(event)
        data = sock.recv(65536)
    assert data.startswith(b"HTTP/1.1 200 ")


def test_a_keep_alive_connection_serves_several_requests(serve: Callable[..., Running]) -> None:
    run = serve()
    conn = HTTPConnection(run.server.host, run.server.port, timeout=TIMEOUT)
    sockets = []
    try:
        for n in (1, 2):
            conn.request(
                "POST",
                "/events",
                body=json.dumps(critical(f"T-{n}", f"e-{n}")),
                headers={"Content-Type": "application/json"},
            )
            answer = conn.getresponse()
            assert answer.status == 200 and json.loads(answer.read())["outcome"] == "applied"
            sockets.append(conn.sock)
        assert sockets[0] is not None and sockets[0] is sockets[1]  # one connection for both
    finally:
        conn.close()


@pytest.mark.parametrize(
    ("method", "path", "content_type", "body", "status"),
    [
        ("GET", "/nowhere", None, None, 404),
        ("GET", "/events", None, None, 405),
        ("POST", "/metrics", "application/json", b"{}", 405),
        ("POST", "/events", "text/html", b"<p>", 415),
        ("POST", "/events", "application/json", b"  ", 400),
        ("POST", "/events", "application/x-ndjson", b"\n\n", 400),
        ("GET", "/tickets/", None, None, 404),
        ("POST", "/receipts/", "application/json", b"{}", 404),
    ],
)
def test_every_error_is_a_json_body_with_its_status(
    serve: Callable[..., Running],
    method: str,
    path: str,
    content_type: str | None,
    body: bytes | None,
    status: int,
) -> None:
    run = serve()
    headers = {"Content-Type": content_type} if content_type else {}
    got, answer_headers, answer = http(run.url + path, method=method, body=body, headers=headers)
    assert got == status
    assert answer_headers["Content-Type"] == "application/json"
    assert set(json.loads(answer)) == {"error"}


def test_a_malformed_request_line_gets_a_json_400_not_a_hang(
    serve: Callable[..., Running],
) -> None:
    run = serve(request_timeout=2.0)

    def exchange(request: bytes) -> bytes:
        with socket.create_connection((run.server.host, run.server.port), timeout=TIMEOUT) as sock:
            sock.sendall(request)
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
        return data

    # malformed HTTP is refused by the server's HTTP layer (h11), before the app
    head, _, _ = exchange(b"GET /a b HTTP/1.1\r\n\r\n").partition(b"\r\n\r\n")
    assert head.split(b" ")[1] == b"400"
    assert exchange(b"NONSENSE\r\n\r\n").split(b" ")[1] == b"400"
    # two different Content-Length headers: request smuggling (RFC 9112 says reject)
    smuggle = (
        b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nContent-Length: 40\r\n\r\n{}"
    )
    assert exchange(smuggle).split(b" ")[1] == b"400"
    with run.server.lock:
        assert run.engine.store.count_events() == 0


def test_a_client_that_never_sends_its_body_is_cut_off(serve: Callable[..., Running]) -> None:
    run = serve(request_timeout=0.3)
    with socket.create_connection((run.server.host, run.server.port), timeout=TIMEOUT) as sock:
        sock.sendall(
            b"POST /events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n{"
        )
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data.split(b" ")[1] == b"408"
    assert get_json(run.url + "/healthz")[0] == 200  # the server still answers others


def test_a_client_that_resets_its_connection_leaves_no_traceback(
    serve: Callable[..., Running], capfd: pytest.CaptureFixture[str]
) -> None:
    run = serve()
    for request in (b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", b"GET /heal"):
        sock = socket.create_connection((run.server.host, run.server.port), timeout=TIMEOUT)
        sock.sendall(request)
        time.sleep(0.1)  # the server reads, then waits for more
        # Close with a reset (linger 0) while the server waits for the rest.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
    time.sleep(0.3)  # let the handler threads notice the resets
    assert get_json(run.url + "/healthz")[0] == 200
    assert "Traceback" not in capfd.readouterr().err


# --- receipts ----------------------------------------------------------------


def test_a_signed_receipt_confirms_a_message_awaiting_one_once_and_a_bad_one_is_refused(
    serve: Callable[..., Running],
) -> None:
    secret = "receipt-secret"
    run = serve(
        silent={"alice", "create_ticket"},
        failing={"carol"},
        receipt_secret_env="HOOK_SECRET",
        environ={"HOOK_SECRET": secret},
    )
    assert post_json(run.url + "/events", critical("T-1", "e-1"))[0] == 200
    with run.server.lock:
        rows = run.engine.store.outbox()
        [ticket] = [m for m in rows if m.action == "create_ticket"]  # the signed webhook's
        [alice] = [m for m in rows if m.target == "alice"]  # slack/email: no receipts
        audit_rows = len(list(run.engine.store.audit_rows()))
    assert (ticket.status, alice.status) == ("sent", "sent")

    def post(key: str, signature: str | None) -> tuple[int, Any]:
        headers = {} if signature is None else {SIGNATURE_HEADER: signature}
        url = run.url + "/receipts/" + urllib.request.quote(key, safe="")
        status, _, answer = http(url, method="POST", body=b"", headers=headers)
        return status, json.loads(answer)

    now = int(time.time())
    assert post(ticket.key, sign_receipt("wrong secret", ticket.key, now))[0] == 401
    assert post(ticket.key, None)[0] == 401
    assert post(ticket.key, f"sha256={'0' * 64}")[0] == 401  # the old body signature
    stale = sign_receipt(secret, ticket.key, now - 600)  # captured ten minutes ago
    assert post(ticket.key, stale)[0] == 401
    other = sign_receipt(secret, "esc-1/999", now)  # signed for another key
    assert post(ticket.key, other)[0] == 401
    # a message no receipt channel carries, and an unknown key: 409
    status, answer = post(alice.key, sign_receipt(secret, alice.key, now))
    assert status == 409 and "cannot be confirmed by the webhook" in answer["error"]
    assert post("no-such-key", sign_receipt(secret, "no-such-key", now))[0] == 409
    with run.server.lock:
        assert run.engine.store.outbox_by_key(ticket.key).status == "sent"  # type: ignore[union-attr]
        # refusals never grow the hash-chained trail
        assert len(list(run.engine.store.audit_rows())) == audit_rows

    status, answer = post(ticket.key, sign_receipt(secret, ticket.key, now))
    assert (status, answer["status"], answer["channel"], answer["replay"]) == (
        200,
        "delivered",
        "webhook",
        False,
    )
    status, answer = post(ticket.key, sign_receipt(secret, ticket.key, now + 1))
    assert (status, answer["replay"]) == (200, True)  # a replay changes nothing
    with run.server.lock:
        assert run.engine.store.outbox_by_key(ticket.key).status == "delivered"  # type: ignore[union-attr]
        confirmed = [r for r in run.engine.store.audit_rows() if r.kind == "delivery_confirmed"]
        failed = [m for m in run.engine.store.outbox() if m.status == "failed"]
    assert len(confirmed) == 1 and confirmed[0].detail["channel"] == "webhook"
    assert failed, "carol refuses deliveries in this test"
    # a message that failed is not awaiting a receipt
    status, answer = post(failed[0].key, sign_receipt(secret, failed[0].key, now))
    assert status in (401, 409)  # 409 for a webhook message, 401 when no channel signs it
    refusals = metrics(run.url)["escalade_security_refusals_total"]
    assert refusals.value(reason="receipt_signature") == 5
    assert refusals.value(reason="receipt_state") >= 2


def test_receipts_without_a_configured_secret_are_503(serve: Callable[..., Running]) -> None:
    run = serve()
    body = b'{"key": "k"}'
    status, _, answer = http(
        run.url + "/receipts/k",
        method="POST",
        body=body,
        headers={SIGNATURE_HEADER: sign_receipt("x", "k", int(time.time()))},
    )
    assert status == 503 and "secret_env" in json.loads(answer)["error"]


# --- metrics -----------------------------------------------------------------


def test_metrics_parse_and_count_what_happened(serve: Callable[..., Running]) -> None:
    run = serve()
    before = metrics(run.url)
    assert before["escalade_events_applied_total"].kind == "counter"
    assert before["escalade_events_applied_total"].value() == 0
    assert before["escalade_outbox_messages"].value(status="pending") == 0
    audit_before = before["escalade_audit_rows"].value()

    assert post_json(run.url + "/events", critical("T-1", "e-1"))[0] == 200
    assert post_json(run.url + "/events", {"id": "junk", "type": "nope"})[0] == 422
    after = metrics(run.url)
    assert after["escalade_events_applied_total"].value() == 1
    assert after["escalade_events_dead_lettered_total"].value() == 1
    assert after["escalade_events_received_total"].value(outcome="applied") == 1
    assert after["escalade_events_received_total"].value(outcome="dead_letter") == 1
    assert (
        after["escalade_escalations_open"].value(state="assigned", policy="enterprise_critical")
        == 1
    )
    assert after["escalade_escalations_total"].value() == 1
    assert after["escalade_escalations_acknowledged_total"].value() == 0
    # the recording notifier sends nothing: its messages are dry_run, never "delivered"
    assert after["escalade_outbox_messages"].value(status="dry_run") > 0
    assert after["escalade_outbox_messages"].value(status="delivered") == 0
    assert after["escalade_audit_rows"].value() > audit_before
    assert after["escalade_timers_pending"].value() > 0
    assert (
        after["escalade_http_requests_total"].value(method="POST", route="/events", code="422") == 1
    )


def test_label_values_and_help_are_escaped() -> None:
    nasty = 'a "quoted" \\ back\nslash'
    counter = CounterMetricFamily("x_total", "Help with \\ and\nnewline.", labels=["v"])
    counter.add_metric([nasty], 3)
    gauge = GaugeMetricFamily("y", "Fractions.", labels=["k"])
    gauge.add_metric([], 0.25)
    gauge.add_metric(["nan"], math.nan)

    class Fixed:
        def collect(self) -> list[Metric]:
            return [counter, gauge]

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())
    text = generate_latest(registry).decode()
    parsed = parse_exposition(text)
    assert parsed["x_total"].value(v=nasty) == 3
    assert parsed["x_total"].help == "Help with \\ and\nnewline."
    assert parsed["y"].value() == 0.25
    assert math.isnan(parsed["y"].value(k="nan"))
    assert text.count("\n") == 7  # no raw newline leaked from a label or the help


# --- the ticker and shutdown -------------------------------------------------


def test_the_ticker_fires_due_timers_without_any_request(serve: Callable[..., Running]) -> None:
    run = serve()
    assert post_json(run.url + "/events", critical("T-1", "e-1"))[0] == 200

    def history() -> list[str]:
        with run.server.lock:
            status = run.engine.status("T-1")
        assert status is not None
        return [h["kind"] for h in status["history"]]

    time.sleep(0.2)  # a few ticks at T0: nothing is due yet
    assert "breach" not in history()
    run.clock.set(T0 + 5 * 60 + 1)  # past the 5m acknowledge SLA and ack timeout
    wait_for(lambda: "breach" in history(), "the ticker to fire the acknowledge SLA timer")
    parsed = metrics(run.url)
    assert (
        parsed["escalade_sla_breaches_total"].value(policy="enterprise_critical", sla="acknowledge")
        == 1
    )
    assert run.server.timers_fired >= 1


def test_stop_ends_both_threads_and_closes_the_port(serve: Callable[..., Running]) -> None:
    run = serve()
    port = run.server.port
    assert run.server.ticker_alive
    run.server.stop(timeout=TIMEOUT)
    assert not run.server.ticker_alive
    assert not any(t.is_alive() for t in threading.enumerate() if t.name == "escalade-http")
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


# `python -m escalade.runtime` with the compiler's side blocked: serving needs none of it.
RUNTIME_ONLY = """
import sys

BLOCKED = ("lark", "jinja2", "escalade.compiler", "escalade.grammar")

class Block:
    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"blocked in this test: {name}")
        return None

sys.meta_path.insert(0, Block())
from escalade.runtime.__main__ import main

main(prog_name="escalade-runtime")
"""


def test_serve_command_stops_gracefully_on_sigterm(tmp_path: Path) -> None:
    """The runtime-only entry point serves, applies an event, and exits 0 on SIGTERM."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESCALADE_")}
    (tmp_path / "escalade.yaml").write_text("runtime:\n  notifiers: {dry_run: true}\n")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            RUNTIME_ONLY,
            "serve",
            "--port",
            "0",
            "--db",
            str(tmp_path / "s.db"),
            "--pack",
            str(PACK),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(
        target=lambda: [lines.put(line) for line in proc.stdout or []], daemon=True
    ).start()
    try:
        url = None
        deadline = time.monotonic() + 30
        while url is None and time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert proc.poll() is None, "serve exited before listening"
                continue
            found = re.search(r"listening on (http://\S+)", line)
            url = found.group(1) if found else None
        assert url is not None, "serve never said where it listens"
        status, answer = get_json(url + "/healthz")
        assert status == 200
        assert answer["pack_version"].startswith(RulePack.load(PACK).version)
        assert post_json(url + "/events", critical("T-1", "e-1"))[0] == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=TIMEOUT) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=TIMEOUT)
    rest = []
    while not lines.empty():
        rest.append(lines.get())
    assert any("stopped on SIGTERM" in line for line in rest)
    store = SQLiteStore(str(tmp_path / "s.db"))
    try:
        assert store.has_event("e-1")  # committed before the process stopped
    finally:
        store.close()


def test_serve_refuses_to_start_when_its_token_variable_is_not_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "escalade.yaml").write_text("runtime:\n  server:\n    token_env: NOT_SET_TOKEN\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NOT_SET_TOKEN", raising=False)
    result = CliRunner().invoke(serve_command, ["--port", "0", "--pack", str(PACK)])
    assert result.exit_code == 1
    assert "NOT_SET_TOKEN" in result.output and "refusing to serve" in result.output
    assert not (tmp_path / "escalade.db").exists()


def test_server_settings_are_read_and_an_inline_token_is_a_located_error(tmp_path: Path) -> None:
    text = "runtime:\n  server:\n    host: 0.0.0.0\n    port: 9000\n    token_env: API_TOKEN\n"
    server = parse_settings(text, tmp_path).server
    assert (server.host, server.port, server.token_env) == ("0.0.0.0", 9000, "API_TOKEN")
    assert parse_settings("runtime: {}\n", tmp_path).server.port == 8080
    with pytest.raises(SettingsError) as inline:
        parse_settings("runtime:\n  server:\n    token: hunter2\n", tmp_path)
    assert str(inline.value).startswith("escalade.yaml:3:5: runtime.server.token:")
    assert "token_env" in str(inline.value) and "hunter2" not in str(inline.value)
    with pytest.raises(SettingsError) as port:
        parse_settings("runtime:\n  server:\n    port: 70000\n", tmp_path)
    assert "escalade.yaml:3:11: runtime.server.port" in str(port.value)


def test_serve_refuses_to_start_when_the_pack_addresses_channels_it_cannot_reach(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No notifier configured: serving would mark every page undeliverable, so it refuses."""
    (tmp_path / "escalade.yaml").write_text("runtime: {}\n")  # not one further up the tree
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        serve_command, ["--port", "0", "--db", str(tmp_path / "s.db"), "--pack", str(PACK)]
    )
    assert result.exit_code == 2, result.output
    assert "refusing to serve" in result.output and "dry_run" in result.output
    # owners and channels need Slack or email and the automated steps the webhook; a page
    # to a person who also has Slack or email does not need the pager
    for kind in ("email", "slack", "webhook"):
        assert kind in result.output


# --- hostile events (issue #9): 422 with the reason and a dead letter, never a 500 -----


def raw_event(**fields: str) -> bytes:
    """An event as JSON text, with ``fields`` spliced in verbatim (escapes stay escapes)."""
    text = json.dumps(critical("T-1", "e-1"))
    for name, value in fields.items():
        text = text.replace(f'"{name}": "{critical("T-1", "e-1")[name]}"', f'"{name}": {value}')
    return text.encode()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (raw_event(id=r'"s\ud800"'), "unpaired surrogate"),
        (raw_event(id=r'"e\u0000"'), "id"),
        (raw_event(at="12345"), "at"),
        (raw_event(at='"2026-11-27T10:00:00"'), "zone"),
        (b'{"id": "e-1", "id": "e-2", "type": "ticket.created"}', "repeated"),
    ],
)
def test_a_hostile_event_is_422_and_dead_lettered_over_http(
    serve: Callable[..., Running], body: bytes, reason: str
) -> None:
    run = serve()
    status, _, answer = http(
        run.url + "/events",
        method="POST",
        body=body,
        headers={"Content-Type": "application/json"},
    )
    doc: Any = json.loads(answer)
    assert status == 422, doc
    assert doc["outcome"] == "dead_letter" and reason in doc["error"], doc
    with run.server.lock:
        store = run.engine.store
        assert len(store.dead_letters()) == 1
        assert store.count_events() == 0 and store.open_escalation("T-1") is None
