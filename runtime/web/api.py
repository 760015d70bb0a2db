"""The ASGI app of ``escalade serve``: Starlette routes over :class:`EscaladeServer`.

The JSON API keeps its paths, statuses and bodies; the pages, acknowledgment links
and Slack actions mount beside it. Every response carries a request id and strict
security headers; an unexpected failure is a JSON 500 in the log, never a traceback
to the client. Blocking work (the engine, the store) runs in the thread pool, and
the engine is taken only through ``server.engine_lock()``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from escalade.runtime import postmortem, tracing
from escalade.runtime.notify.channels import SIGNATURE_HEADER
from escalade.runtime.web.answers import (
    TICKET_ACTIONS,
    Answer,
    HttpError,
    error_body,
    route_of,
)
from escalade.runtime.web.bodies import read_body
from escalade.runtime.web.links import link_routes
from escalade.runtime.web.pages import page_routes
from escalade.runtime.web.sources import source_routes

if TYPE_CHECKING:
    from escalade.runtime.server import EscaladeServer

log = logging.getLogger("escalade.runtime.server")
STATIC = Path(__file__).resolve().with_name("static")  # resolve: the editable install links files
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
ACTION_ROUTES = frozenset(f"/tickets/{{id}}/{action}" for action in TICKET_ACTIONS)


def _respond(answer: Answer, headers: dict[str, str] | None = None) -> Response:
    return Response(answer.body, answer.status, headers=headers, media_type=answer.content_type)


def _error(status: int, error: str, headers: dict[str, str] | None = None) -> Response:
    return _respond(Answer(status, error_body(error)), headers)


def _traced_events(
    server: EscaladeServer, request: Request, kind: str
) -> Callable[[Any, bytes], Answer]:
    """``POST /events`` in a span whose parent is the caller's ``traceparent``."""
    parent = tracing.extract(request.headers)

    def receive(_principal: Any, data: bytes) -> Answer:
        with tracing.span("escalade.receive", parent, route="/events"):
            if tracing.recording():  # the events' spans are children of this one
                for event_id in tracing.event_ids(data):
                    tracing.hand_over(event_id)
            answer = server.post_events(data, kind)
            tracing.annotate(status=answer.status)
            return answer

    return receive


def postmortem_draft(server: EscaladeServer, ticket: str, fmt: str, principal: Any) -> Answer:
    """``GET /tickets/<id>/postmortem[?format=json]``: the ticket's post-mortem draft as
    stored when triage required it (else generated from the audit trail now, as ``escalade
    postmortem T --draft`` does; ``source`` says which), Markdown or JSON, read only; 404
    without an escalation, 403 for a responder who does not own the ticket (as ``GET
    /tickets/<id>``)."""
    if fmt not in ("markdown", "json"):
        raise HttpError(400, f"format is markdown or json, not {fmt!r}")
    with server.engine_lock() as engine:
        doc = postmortem.stored_or_generated(engine.store, ticket)
        if doc is not None:
            server._check_owner(engine, principal, ticket)
    if doc is None:
        raise HttpError(404, f"ticket {ticket} has no escalation")
    if fmt == "json":
        return Answer(200, postmortem.dumps(doc).encode())
    markdown = postmortem.render_markdown(doc).encode()
    return Answer(200, markdown, "text/markdown; charset=utf-8")


def _api_routes(server: EscaladeServer) -> list[BaseRoute]:
    async def call(
        request: Request, route: str, work: Callable[[Any, bytes], Answer], body: bool = True
    ) -> Response:
        header = request.headers.get("authorization")
        data = await read_body(request, server.max_body, server.request_timeout) if body else b""

        def authorized() -> Answer:  # one trip to the thread pool: the token, then the work
            return work(server.authorize(request.method, route, header), data)

        return _respond(await run_in_threadpool(authorized))

    async def events(request: Request) -> Response:
        kind = request.headers.get("content-type") or ""
        return await call(request, "/events", _traced_events(server, request, kind))

    async def receipt(request: Request) -> Response:
        key = request.path_params["key"]
        if not key:
            raise HttpError(404, "no key: POST /receipts/<idempotency key>")
        signature = request.headers.get(SIGNATURE_HEADER)
        return await call(
            request, "/receipts/{key}", lambda _p, data: server.post_receipt(key, data, signature)
        )

    def action_endpoint(action: str) -> Callable[[Request], Awaitable[Response]]:
        async def act(request: Request) -> Response:
            ticket = request.path_params["ticket"]
            return await call(
                request,
                f"/tickets/{{id}}/{action}",
                lambda p, data: server.post_ticket_action(ticket, action, data, p),
            )

        return act

    async def ticket(request: Request) -> Response:
        name = request.path_params["ticket"]
        if route_of(request.url.path) in ACTION_ROUTES:
            raise HttpError(405, "GET is not allowed here", {"Allow": "POST"})
        if not name:
            raise HttpError(404, "no ticket: GET /tickets/<id>")
        return await call(
            request, "/tickets/{id}", lambda p, _d: server.get_ticket(name, p), body=False
        )

    async def draft(request: Request) -> Response:
        name, fmt = request.path_params["ticket"], request.query_params.get("format", "markdown")
        route = "/tickets/{id}/postmortem"

        def work(principal: Any, _data: bytes) -> Answer:
            return postmortem_draft(server, name, fmt, principal)

        return await call(request, route, work, body=False)

    async def metrics(request: Request) -> Response:
        return await call(request, "/metrics", lambda _p, _d: server.get_metrics(), body=False)

    async def health(request: Request) -> Response:
        return await call(request, "/healthz", lambda _p, _d: server.get_health(), body=False)

    return [
        Route("/events", events, methods=["POST"]),
        Route("/receipts/{key:path}", receipt, methods=["POST"]),
        *[
            Route(f"/tickets/{{ticket:path}}/{action}", action_endpoint(action), methods=["POST"])
            for action in TICKET_ACTIONS
        ],
        Route("/tickets/{ticket:path}/postmortem", draft, methods=["GET"]),
        Route("/tickets/{ticket:path}", ticket, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/healthz", health, methods=["GET"]),
        *source_routes(server),
    ]


def _mounted_routes(server: EscaladeServer) -> list[BaseRoute]:
    """The pages (when jinja2 is there), the acknowledgment links and the static files."""
    found = [*page_routes(server), *link_routes(server)]
    if STATIC.is_dir():
        found.append(Mount("/static", app=StaticFiles(directory=STATIC), name="static"))
    return found


class Edge:
    """Pure ASGI middleware: a request id, the security headers, the access log and the
    request counters on every HTTP response."""

    def __init__(self, app: ASGIApp, server: EscaladeServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else secrets.token_hex(8)
        started = time.perf_counter()
        status = 500

        async def stamped(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = {**SECURITY_HEADERS, "x-request-id": request_id}
                if b"cache-control" not in present:
                    extra["cache-control"] = "no-store"
                headers += [(k.encode(), v.encode()) for k, v in extra.items()]
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, stamped)
        finally:
            path = scope.get("path", "")
            route = route_of(path) or "other"
            seconds = time.perf_counter() - started
            self.server.count_request(scope["method"], route, status, seconds)
            shown = route if route.startswith("/ack/") else path  # a link is a credential
            log.info(
                "%s %s %s %d %.1fms", request_id, scope["method"], shown, status, seconds * 1e3
            )


def create_app(server: EscaladeServer) -> Starlette:
    """The whole service: the JSON API, the pages and links, the timer loop as a task."""

    @asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        ticker = asyncio.create_task(_tick_forever(server), name="escalade-ticker")
        server.ticker_task = ticker
        try:
            yield
        finally:
            ticker.cancel()
            with suppress(asyncio.CancelledError):
                await ticker
            await run_in_threadpool(server.close_engine)

    async def http_error(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HttpError)
        return _error(exc.status, exc.error, exc.headers)

    async def starlette_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return _error(404, f"no such endpoint: {request.url.path}")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            return _error(405, f"{request.method} is not allowed here", headers)
        return _error(exc.status_code, str(exc.detail), headers)

    async def crash(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return _error(500, f"internal error ({type(exc).__name__})")

    app = Starlette(
        routes=[*_mounted_routes(server), *_api_routes(server)],
        exception_handlers={
            HttpError: http_error,
            HTTPException: starlette_error,
            Exception: crash,
        },
        lifespan=lifespan,
    )
    app.add_middleware(Edge, server=server)
    return app


async def _tick_forever(server: EscaladeServer) -> None:
    """Fire due timers every ``tick_interval`` seconds, in the thread pool (the engine
    blocks); a failing tick is logged and the next one tries again."""
    while True:
        await asyncio.sleep(server.tick_interval)
        await run_in_threadpool(server.tick_once)
