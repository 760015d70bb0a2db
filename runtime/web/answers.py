"""What the endpoints answer, independent of the HTTP stack: an :class:`Answer` or an
:class:`HttpError`, and the route table of the JSON API."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_BODY = 1_000_000  # bytes per request
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request
TICKET_ACTIONS = ("ack", "resolve", "close", "transfer", "postmortem")
ROUTES = {
    "/events": ("POST",),
    "/receipts/{key}": ("POST",),
    "/tickets/{id}": ("GET",),
    **{f"/tickets/{{id}}/{action}": ("POST",) for action in TICKET_ACTIONS},
    "/tickets/{id}/postmortem": ("GET", "POST"),  # GET: the draft from the audit trail
    "/metrics": ("GET",),
    "/healthz": ("GET",),
}


class HttpError(Exception):
    """An answer other than success: the status and the ``error`` text of the JSON body."""

    def __init__(self, status: int, error: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.headers = dict(headers or {})


@dataclass(frozen=True, slots=True)
class Answer:
    """A response: status, body bytes and content type."""

    status: int
    body: bytes
    content_type: str = "application/json"


def json_answer(status: int, value: Any) -> Answer:
    """``value`` as an indented JSON response."""
    return Answer(status, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def error_body(error: str) -> bytes:
    """The JSON body of an error: ``{"error": "..."}``."""
    return (json.dumps({"error": error}) + "\n").encode()


PAGES = ("/", "/signin", "/signout", "/oncall", "/reports", "/packs", "/deadletters")


def route_of(path: str) -> str | None:
    """The route template of a request path (``/tickets/{id}``), or None for an unknown one.

    Templates name no ticket and no secret: they label metrics and stand in for the path
    in the access log where the path itself is a credential (``/ack/{token}``)."""
    if path in ("/events", "/metrics", "/healthz", "/slack/actions", *PAGES):
        return path
    for prefix, template in (
        ("/ack/", "/ack/{token}"),
        ("/static/", "/static/{file}"),
        ("/sources/", "/sources/{name}"),
    ):
        if path.startswith(prefix):
            return template
    if path.startswith("/tickets/") and "/view" in path:
        return "/tickets/{id}/view" + ("/{action}" if not path.endswith("/view") else "")
    if path.startswith("/tickets/"):
        ticket, _, action = path.removeprefix("/tickets/").rpartition("/")
        if ticket and action in TICKET_ACTIONS:
            return f"/tickets/{{id}}/{action}"
    for prefix, template in (("/receipts/", "/receipts/{key}"), ("/tickets/", "/tickets/{id}")):
        if path.startswith(prefix):
            return template
    return None
