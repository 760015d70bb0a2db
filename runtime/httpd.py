"""The HTTP/1.1 layer of ``escalade serve`` on the standard library's ``http.server``.

It parses requests (Content-Length bodies only, ``Expect: 100-continue``,
keep-alive), maps paths to route templates and hands each request to the
application (:class:`~escalade.runtime.server.EscaladeServer`), whose answers
and :class:`HttpError` it writes back as JSON. It knows nothing of escalations.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
from collections.abc import Mapping
from contextlib import suppress
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from escalade.runtime.notify.channels import SIGNATURE_HEADER

if TYPE_CHECKING:
    from escalade.runtime.server import EscaladeServer

log = logging.getLogger("escalade.runtime.server")

MAX_BODY = 1_000_000  # bytes per request
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request
DRAIN_LIMIT = 16 * MAX_BODY  # an unread body up to this size is read and dropped before an error
TICKET_ACTIONS = ("ack", "resolve", "close", "transfer", "postmortem")
ROUTES = {
    "/events": ("POST",),
    "/receipts/{key}": ("POST",),
    "/tickets/{id}": ("GET",),
    **{f"/tickets/{{id}}/{action}": ("POST",) for action in TICKET_ACTIONS},
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


def route_of(path: str) -> str | None:
    """The route template of a request path (``/tickets/{id}``), or None for an unknown one."""
    if path in ("/events", "/metrics", "/healthz"):
        return path
    if path.startswith("/tickets/"):
        ticket, _, action = path.removeprefix("/tickets/").rpartition("/")
        if ticket and action in TICKET_ACTIONS:
            return f"/tickets/{{id}}/{action}"
    for prefix, template in (("/receipts/", "/receipts/{key}"), ("/tickets/", "/tickets/{id}")):
        if path.startswith(prefix):
            return template
    return None


class HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    app: EscaladeServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hangs up is routine; anything else goes to the log, not to stderr."""
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            log.debug("%s: connection ended: %s", client_address, error)
        else:
            log.exception("serving %s failed", client_address)


class Handler(BaseHTTPRequestHandler):
    server: HTTPServer
    server_version = "escalade"
    # HTTP/1.1: keep-alive for clients that post often, and ``Expect: 100-continue`` so an
    # oversize body is refused before it is sent. Every answer has a Content-Length.
    protocol_version = "HTTP/1.1"
    _body_read = False
    error_content_type = "application/json"

    def setup(self) -> None:
        super().setup()
        self.connection.settimeout(self.server.app.request_timeout)  # no slow client holds a thread
        # Headers and body are two writes: without this, Nagle's algorithm and the client's
        # delayed ACK add ~40 ms to every answer on a keep-alive connection.
        with suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        log.info("%s %s", self.address_string(), format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors of the HTTP layer itself (bad request line, 501, ...) as JSON too."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self.close_connection = True
        self._send(Answer(code, error_body(message or phrase)), {})

    def handle_expect_100(self) -> bool:
        """Refuse an oversize body before the client sends it; else ``100 Continue``."""
        limit = self.server.app.max_body
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0  # the handler reports the invalid header
        if length > limit:
            self._body_read = True  # never sent: nothing to drain
            self.close_connection = True
            with self.server.app._stats:
                self.server.app.requests[(self.command, route_of(self.path) or "other", 413)] += 1
            self._send(
                Answer(413, error_body(f"the body is {length} bytes; the limit is {limit}")), {}
            )
            return False
        return super().handle_expect_100()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        app = self.server.app
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        route = route_of(path)
        headers: dict[str, str] = {}
        self._body_read = False
        try:
            answer = self._answer(app, method, path, route)
        except HttpError as exc:
            answer = Answer(exc.status, error_body(exc.error))
            headers = exc.headers
        except Exception as exc:
            log.exception("%s %s failed", method, path)
            answer = Answer(500, error_body(f"internal error ({type(exc).__name__})"))
        if not self._body_read:
            self._discard_body()
        with app._stats:
            app.requests[(method, route or "other", answer.status)] += 1
        self._send(answer, headers)

    def _answer(self, app: EscaladeServer, method: str, path: str, route: str | None) -> Answer:
        if route is None:
            raise HttpError(404, f"no such endpoint: {path}")
        allowed = ROUTES[route]
        if method not in allowed:
            raise HttpError(405, f"{method} is not allowed here", {"Allow": ", ".join(allowed)})
        principal = app.authorize(method, route, self.headers.get("Authorization"))
        if route == "/events":
            body = self._body()
            return app.post_events(body, self.headers.get("Content-Type") or "")
        if route == "/receipts/{key}":
            key = unquote(path.removeprefix("/receipts/"))
            if not key:
                raise HttpError(404, "no key: POST /receipts/<idempotency key>")
            body = self._body()
            return app.post_receipt(key, body, self.headers.get(SIGNATURE_HEADER))
        if route.startswith("/tickets/{id}/"):
            action = route.rpartition("/")[2]
            ticket = unquote(path.removeprefix("/tickets/").removesuffix("/" + action))
            body = self._body()
            return app.post_ticket_action(ticket, action, body, principal)
        if route == "/tickets/{id}":
            ticket = unquote(path.removeprefix("/tickets/"))
            if not ticket:
                raise HttpError(404, "no ticket: GET /tickets/<id>")
            return app.get_ticket(ticket, principal)
        if route == "/metrics":
            return app.get_metrics()
        return app.get_health()

    def _length(self) -> int:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            self.close_connection = True
            raise HttpError(411, "send the body with a Content-Length (chunked is not supported)")
        raw = self.headers.get("Content-Length")
        if raw is None:
            return 0
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            self.close_connection = True
            raise HttpError(400, f"invalid Content-Length {raw!r}")
        return length

    def _body(self) -> bytes:
        """The request body, at most ``max_body`` bytes (413 beyond, without reading it)."""
        length = self._length()
        limit = self.server.app.max_body
        if length > limit:
            raise HttpError(413, f"the body is {length} bytes; the limit is {limit}")
        self._body_read = True
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self.close_connection = True
            raise HttpError(408, "the body did not arrive in time") from None
        if len(body) < length:
            self.close_connection = True
            raise HttpError(400, f"the body ended after {len(body)} of {length} bytes")
        return body

    def _discard_body(self) -> None:
        """Read and drop a body the answer did not need (an error came first), so the client
        reads the answer instead of a connection reset; a huge one just closes."""
        self._body_read = True
        self.close_connection = True
        try:
            left = self._length()
        except HttpError:
            return
        if left > DRAIN_LIMIT:
            return
        try:
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    return
                left -= len(chunk)
        except OSError:
            return

    def _send(self, answer: Answer, headers: Mapping[str, str]) -> None:
        try:
            self.send_response(answer.status)
            self.send_header("Content-Type", answer.content_type)
            self.send_header("Content-Length", str(len(answer.body)))
            self.send_header("Cache-Control", "no-store")
            for name, value in headers.items():
                self.send_header(name, value)
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)
        except OSError:
            self.close_connection = True  # the client went away; nothing to tell it


def error_body(error: str) -> bytes:
    return (json.dumps({"error": error}) + "\n").encode()
