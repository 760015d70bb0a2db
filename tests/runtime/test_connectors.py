"""Action connectors against a local HTTP server that answers like Jira's REST API v2 in the
parts the connector uses: search by label, create, comment, transitions; 429 with
Retry-After; 400 with Jira's errorMessages/errors body."""

from __future__ import annotations

import json
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from escalade.runtime.clock import VirtualClock
from escalade.runtime.connectorspec import ConnectorSpec
from escalade.runtime.engine import Engine
from escalade.runtime.notify.connectors import JiraConnector
from escalade.runtime.notify.router import ChannelNotifier
from escalade.runtime.settings import parse_settings
from escalade.runtime.store import OutboxMessage
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0, critical

TOKEN = "jira-api-token-xyz"


@dataclass
class FakeJira:
    """Issues in memory; ``busy`` answers that many requests 429, ``refuse`` every create 400."""

    issues: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, str, Any]] = field(default_factory=list)
    busy: int = 0
    refuse: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(
        self, method: str, path: str, body: Any, auth: str
    ) -> tuple[int, Any, dict[str, str]]:
        with self.lock:
            self.requests.append((method, path, body))
            if auth != f"Bearer {TOKEN}":
                return 401, {"errorMessages": ["You are not authenticated."]}, {}
            if self.busy:
                self.busy -= 1
                return 429, {"message": "Rate limit exceeded."}, {"Retry-After": "120"}
            url = urllib.parse.urlsplit(path)
            if method == "GET" and url.path == "/rest/api/2/search":
                jql = urllib.parse.parse_qs(url.query)["jql"][0]
                label = jql.split('"')[1]
                found = [i for i in self.issues if label in i["fields"]["labels"]]
                return 200, {"issues": [{"id": i["id"], "key": i["key"]} for i in found]}, {}
            if method == "POST" and url.path == "/rest/api/2/issue":
                if self.refuse:
                    return (
                        400,
                        {"errorMessages": [], "errors": {"project": "project is required"}},
                        {},
                    )
                made = {"id": str(10000 + len(self.issues)), "key": f"OPS-{len(self.issues) + 1}"}
                self.issues.append(
                    {**made, "fields": body["fields"], "comments": [], "status": "open"}
                )
                return 201, {**made, "self": f"http://jira/rest/api/2/issue/{made['id']}"}, {}
            parts = url.path.removeprefix("/rest/api/2/issue/").split("/")
            issue: Any = next((i for i in self.issues if i["key"] == parts[0]), None)
            if issue is None:
                return 404, {"errorMessages": ["Issue does not exist"]}, {}
            if parts[1:] == ["comment"]:
                issue["comments"].append(body["body"])
                return 201, {"id": "1"}, {}
            if parts[1:] == ["transitions"]:
                issue["status"] = "done"
                return 204, None, {}
            return 405, {"errorMessages": ["not here"]}, {}


@pytest.fixture
def jira() -> Iterator[tuple[FakeJira, str]]:
    fake = FakeJira()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            status, doc, headers = fake.answer(
                self.command, self.path, body, self.headers.get("Authorization", "")
            )
            raw = b"" if doc is None else json.dumps(doc).encode()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def connector(url: str) -> JiraConnector:
    spec = ConnectorSpec("jira", url=url, project="OPS", token_env="JIRA_TOKEN")
    return JiraConnector(spec, {"JIRA_TOKEN": TOKEN})


def message(
    action: str, key: str = "esc-1/1", text: str = "Escalation: Checkout down"
) -> OutboxMessage:
    return OutboxMessage(key, 1, "T-1", action, None, None, {"text": text}, int(T0))


def test_a_retry_after_a_crash_between_send_and_record_creates_one_issue(
    jira: tuple[FakeJira, str],
) -> None:
    fake, url = jira
    first = connector(url).send(message("create_ticket"), None)
    again = connector(url).send(message("create_ticket"), None)  # the same outbox key
    assert (first.receipt, first.remote) == ("delivered", "OPS-1")
    assert (again.receipt, again.remote) == ("delivered", "OPS-1")
    assert len(fake.issues) == 1
    assert fake.issues[0]["fields"]["summary"] == "Escalation: Checkout down"
    assert "escalade-esc-1-1" in fake.issues[0]["fields"]["labels"]
    other = connector(url).send(message("create_ticket", key="esc-1/2"), None)
    assert other.remote == "OPS-2" and len(fake.issues) == 2


def test_comment_and_close_act_on_the_tickets_issue(jira: tuple[FakeJira, str]) -> None:
    fake, url = jira
    connector(url).send(message("create_ticket"), None)
    said = connector(url).send(message("comment", "esc-1/3", "Vendor confirmed"), None)
    closed = connector(url).send(message("close", "esc-1/4"), None)
    assert said.receipt == closed.receipt == "delivered", (said, closed)
    assert fake.issues[0]["comments"] == ["Vendor confirmed"]
    assert fake.issues[0]["status"] == "done"


def test_429_is_pending_with_retry_after_and_400_fails_with_the_remotes_message(
    jira: tuple[FakeJira, str],
) -> None:
    fake, url = jira
    fake.busy = 1
    limited = connector(url).send(message("create_ticket"), None)
    assert (limited.receipt, limited.retry_after) == ("pending", 120)
    assert "Rate limit exceeded" in limited.reason
    fake.refuse = True
    refused = connector(url).send(message("create_ticket"), None)
    assert refused.receipt == "failed" and "project: project is required" in refused.reason
    missing = JiraConnector(connector(url).spec, {}).send(message("create_ticket"), None)
    assert missing.receipt == "failed" and "JIRA_TOKEN is not set" in missing.reason
    assert not fake.issues


def test_the_engine_creates_the_remote_issue_and_status_shows_it(
    jira: tuple[FakeJira, str], tmp_path: Path, pack: dict[str, Any]
) -> None:
    fake, url = jira
    text = (
        "runtime:\n  notifiers:\n    connectors:\n      create_ticket:\n"
        f"        {{kind: jira, url: '{url}', project: OPS, token_env: JIRA_TOKEN}}\n"
    )
    settings = parse_settings(text, tmp_path)
    assert settings.notifiers is not None
    notifier = ChannelNotifier.from_settings(settings.notifiers, {"JIRA_TOKEN": TOKEN})
    store = SQLiteStore(str(tmp_path / "db.sqlite"))
    try:
        engine = Engine(store, VirtualClock(T0), notifier)
        engine.activate(pack, T0)
        fake.busy = 1  # the first attempt is rate-limited: retried after Retry-After
        engine.receive(critical("T-9", "e1"))
        (limited,) = [m for m in store.outbox() if m.action == "create_ticket"]
        assert limited.status == "sent" and "HTTP 429" in (limited.reason or "")
        timers = store.due_timers(int(T0) + 10**6, 100)
        (retry,) = [t for t in timers if t.kind == "redeliver" and t.key == limited.key]
        assert retry.due - int(T0) >= 120
        engine.advance(int(T0) + 120)
        status = engine.status("T-9")
        assert status is not None
        (action,) = [a for a in status["actions"] if a["action"] == "create_ticket"]
        assert action["status"] == "delivered" and "created OPS-1" in action["reason"]
        assert len(fake.issues) == 1
    finally:
        store.close()
