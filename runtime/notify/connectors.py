"""Action connectors: steps that act on another system (``create_ticket``, ``comment``,
``set``, ``label``, ``close``) carried out there, behind one interface.

Configured per action under ``runtime.notifiers.connectors`` in ``escalade.yaml``::

    notifiers:
      connectors:
        create_ticket: {kind: jira, url: "https://example.atlassian.net", project: OPS,
                        token_env: JIRA_API_TOKEN, user: bot@example.com}
        comment:       {kind: jira, url: "https://example.atlassian.net", project: OPS,
                        token_env: JIRA_API_TOKEN}
        close:         {kind: jira, ..., close_transition: "31"}
        set:           {kind: webhook}       # the generic signed webhook (runtime.notifiers.webhook)

An action with no connector goes to the generic webhook, as before.

The ``jira`` connector speaks the parts of Jira's REST API v2 it needs: a search by
label (``GET /rest/api/2/search?jql=...``), ``POST /rest/api/2/issue`` (create),
``POST .../issue/<key>/comment``, ``PUT .../issue/<key>`` (a field, a label) and
``POST .../issue/<key>/transitions`` (close). It is idempotent: every issue it creates
carries the label ``escalade-<outbox key>`` and the ticket's label, and a create first
looks for an issue with that label, so a retry after a crash between the send and the
record finds the issue instead of creating a second one. The other actions find the
ticket's issue by its label. ``429`` (and 5xx, no answer) is ``pending`` with the
remote's ``Retry-After`` (the outbox waits at least that long before the next attempt);
another 4xx fails the delivery with the remote's message. A receipt names the remote
issue (``jira: created OPS-7``), which ``status`` shows with the action.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from http.client import HTTPException
from typing import Any, Protocol

from escalade.runtime import tracing
from escalade.runtime.connectorspec import ConnectorSpec
from escalade.runtime.notify import Delivery
from escalade.runtime.notify.channels import Environ, summary
from escalade.runtime.store import OutboxMessage

API = "/rest/api/2"


class Connector(Protocol):
    """Carries out one action in another system; never raises."""

    def send(self, msg: OutboxMessage, target: str | None) -> Delivery: ...


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass(frozen=True, slots=True)
class Reply:
    """One HTTP exchange: ``status`` None when nothing came back (``error`` says why)."""

    status: int | None
    doc: Any = None
    text: str = ""
    retry_after: int | None = None
    error: str = ""


def label_of(text: str) -> str:
    """A Jira label (no blanks) naming ``text``: ``escalade-esc-1-3`` for ``esc-1/3``."""
    return "escalade-" + re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def _retry_after(value: str | None) -> int | None:
    if value and value.strip().isdigit():
        return int(value.strip())
    return None


@dataclass(frozen=True, slots=True)
class JiraConnector:
    """The Jira-style REST connector (see the module)."""

    spec: ConnectorSpec
    environ: Environ

    def _auth(self) -> str | None:
        token = self.environ.get(self.spec.token_env or "")
        if not token:
            return None
        if self.spec.user:
            pair = base64.b64encode(f"{self.spec.user}:{token}".encode()).decode()
            return f"Basic {pair}"
        return f"Bearer {token}"

    def call(self, method: str, path: str, body: Any = None, auth: str = "") -> Reply:
        url = self.spec.url.rstrip("/") + path
        data = None if body is None else json.dumps(body).encode()
        headers = {"Accept": "application/json", "User-Agent": "escalade", "Authorization": auth}
        if data is not None:
            headers["Content-Type"] = "application/json"
        tracing.inject(headers)  # traceparent of the delivery's span
        request = urllib.request.Request(url, data=data, method=method, headers=headers)  # noqa: S310
        try:
            with _OPENER.open(request, timeout=self.spec.timeout) as response:
                return _reply(response.status, response.read(65536), response.headers)
        except urllib.error.HTTPError as exc:
            try:
                raw = exc.read(65536)
            except (OSError, HTTPException):
                raw = b""
            return _reply(exc.code, raw, exc.headers)
        except (urllib.error.URLError, OSError, HTTPException, ValueError) as exc:
            return Reply(None, error=f"cannot reach {self.spec.url}: {exc}")

    def send(self, msg: OutboxMessage, target: str | None) -> Delivery:
        auth = self._auth()
        if auth is None:
            return Delivery(
                "failed", f"jira: environment variable {self.spec.token_env} is not set"
            )
        if msg.action == "create_ticket":
            return self._create(msg, auth)
        found = self._find(label_of(f"ticket-{msg.ticket}"), auth)
        if isinstance(found, Delivery):
            return found
        if found is None:
            return Delivery("failed", f"jira: no issue carries the label of ticket {msg.ticket}")
        key = str(found.get("key"))
        text = summary(msg)
        if msg.action == "comment":
            reply = self.call("POST", f"{API}/issue/{key}/comment", {"body": text}, auth)
        elif msg.action == "label":
            update = {"update": {"labels": [{"add": label_of(str(target or text))[9:]}]}}
            reply = self.call("PUT", f"{API}/issue/{key}", update, auth)
        elif msg.action == "set":
            field = self.spec.fields.get(str(target), str(target).rpartition(".")[2])
            reply = self.call("PUT", f"{API}/issue/{key}", {"fields": {field: text}}, auth)
        elif msg.action == "close":
            move = {"transition": {"id": self.spec.close_transition}}
            reply = self.call("POST", f"{API}/issue/{key}/transitions", move, auth)
        else:
            return Delivery("failed", f"jira: the connector cannot {msg.action}")
        return _outcome(reply, f"jira: {msg.action} on {key}")

    def _find(self, label: str, auth: str) -> dict[str, Any] | Delivery | None:
        jql = urllib.parse.quote(f'labels = "{label}"')
        reply = self.call("GET", f"{API}/search?jql={jql}&fields=key&maxResults=1", auth=auth)
        if reply.status != 200:
            return _outcome(reply, "jira: search")
        issues = reply.doc.get("issues") if isinstance(reply.doc, dict) else None
        return issues[0] if isinstance(issues, list) and issues else None

    def _create(self, msg: OutboxMessage, auth: str) -> Delivery:
        dedupe = label_of(msg.key)
        found = self._find(dedupe, auth)
        if isinstance(found, Delivery):
            return found
        if found is not None:  # sent before, the record was lost: the same issue
            key = found.get("key")
            return Delivery("delivered", f"jira: created {key} (found by {dedupe})", remote=key)
        text = summary(msg)
        fields = {
            "project": {"key": self.spec.project},
            "summary": text[:250],
            "description": f"{text}\n\nEscalade ticket {msg.ticket}, action {msg.key}.",
            "issuetype": {"name": self.spec.issue_type},
            "labels": [dedupe, label_of(f"ticket-{msg.ticket}")],
        }
        reply = self.call("POST", f"{API}/issue", {"fields": fields}, auth)
        done = _outcome(reply, "jira: create")
        if done.receipt != "delivered":
            return done
        key = reply.doc.get("key") if isinstance(reply.doc, dict) else None
        return Delivery("delivered", f"jira: created {key}", remote=str(key))


def _reply(status: int, raw: bytes, headers: Any) -> Reply:
    text = raw.decode("utf-8", "replace")
    try:
        doc = json.loads(text) if text.strip() else None
    except ValueError:
        doc = None
    after = _retry_after(headers.get("Retry-After") if headers is not None else None)
    return Reply(status, doc, text, after)


def _remote_message(reply: Reply) -> str:
    doc = reply.doc
    if isinstance(doc, dict):
        said = [*map(str, doc.get("errorMessages") or [])]
        said += [f"{k}: {v}" for k, v in (doc.get("errors") or {}).items()]
        said += [str(doc["message"])] if doc.get("message") else []
        if said:
            return "; ".join(said)[:300]
    return " ".join(reply.text.split())[:300]


def _outcome(reply: Reply, what: str) -> Delivery:
    """2xx delivered; 429, 408, 5xx and no answer pending (with ``Retry-After``); other
    answers fail with the remote's own message."""
    status = reply.status
    if status is None:
        return Delivery("pending", f"{what}: {reply.error}")
    if 200 <= status < 300:
        return Delivery("delivered", f"{what}: HTTP {status}")
    message = _remote_message(reply)
    detail = f"{what}: HTTP {status}" + (f": {message}" if message else "")
    if status in (408, 429) or status >= 500:
        return Delivery("pending", detail, retry_after=reply.retry_after)
    return Delivery("failed", detail)


def connectors_of(specs: Mapping[str, ConnectorSpec], environ: Environ) -> dict[str, Connector]:
    """The REST connectors of ``runtime.notifiers.connectors`` by action (a ``webhook``
    connector is the generic webhook: no entry here)."""
    return {
        action: JiraConnector(spec, environ)
        for action, spec in specs.items()
        if spec.kind == "jira"
    }


__all__ = ["Connector", "JiraConnector", "connectors_of", "label_of"]
