"""``POST /sources/<name>``: a vendor's webhook, verified, mapped and handed to the engine.

The source's own authentication (:mod:`escalade.runtime.sources`) stands in for an API
token. A body whose signature does not verify, or whose signed timestamp is stale, is
401: one line in the rate-limited security log naming the source (never the body) and
the ``source_signature`` refusal counter — never a row of the hash-chained audit trail,
which unauthenticated callers must not be able to grow. A verified payload the map
cannot read (or that maps to an event the pack refuses) is 422 and a dead letter with
the source's raw payload and the reason. A mapped event answers as ``POST /events``
does (200 applied or duplicate, 409 refused), with the source and the event id.
A source whose secret variable is not set answers 503.

``POST /sources/<name>/heartbeat`` (authenticated as the source) says only that the
source is alive: with ``expect_every``, a source that sends nothing for that long is a
``source.silent`` event and ``source.recovered`` when it is back
(:mod:`escalade.runtime.heartbeats`). Each request is traced (``escalade.receive``, a
child of the caller's ``traceparent``), its mapped event's span a child of that.
"""

from __future__ import annotations

import json
import logging
import time
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from escalade.runtime import heartbeats, tracing
from escalade.runtime.clock import format_time
from escalade.runtime.engine import PackError
from escalade.runtime.events import EventError, parse_event, storable_text
from escalade.runtime.groupcommit import event_result
from escalade.runtime.sourcemaps import MapError, apply_map
from escalade.runtime.sources import SecretMissing, Source, read_secret, verify
from escalade.runtime.store import DeadLetter
from escalade.runtime.textio import TextError, loads_json
from escalade.runtime.web.answers import Answer, HttpError, json_answer
from escalade.runtime.web.bodies import read_body

if TYPE_CHECKING:
    from escalade.runtime.server import EscaladeServer

log = logging.getLogger("escalade.runtime.sources")

# Called with (source name, wall-clock seconds) for each verified request (heartbeats).
SeenHook = Callable[[str, float], None]


class SourceDesk:
    """The configured sources of one server, and what their requests become."""

    def __init__(
        self,
        server: EscaladeServer,
        sources: Mapping[str, Source],
        wall: Callable[[], float] = time.time,
    ) -> None:
        self.server = server
        self.sources = dict(sources)
        self.wall = wall
        self.on_seen: list[SeenHook] = [self.record_seen]
        self.watched = {n: s.expect_every for n, s in self.sources.items() if s.expect_every}

    def start_heartbeats(self) -> None:
        """Arm the timer of each source with ``expect_every`` that has none (a source that
        never sends goes silent too); what a previous process armed stays as it was."""
        if not self.watched:
            return
        now = int(self.wall())
        with self.server.engine_lock() as engine, engine.store.transaction():
            for name, every in self.watched.items():
                if every is not None:
                    heartbeats.arm(engine.store, name, every, now)

    def record_seen(self, name: str, now: float) -> None:
        """A sighting of a watched source; ``source.recovered`` when it was silent."""
        if name not in self.watched:
            return
        with self.server.engine_lock() as engine, engine.store.transaction():
            recovered = heartbeats.seen(engine.store, name, self.watched[name], int(now))
        if recovered is not None:
            tracing.hand_over(recovered["id"])
            outcome = self.server.group.submit([heartbeats.as_raw(recovered)])[0]
            if outcome.status not in ("applied", "duplicate"):
                log.warning("source %s is back; source.recovered: %s", name, outcome.message)

    def source(self, name: str) -> Source:
        found = self.sources.get(name)
        if found is None:
            known = ", ".join(sorted(self.sources)) or "none is configured (runtime.sources)"
            raise HttpError(404, f"no source named {name!r} (known: {known})")
        return found

    def authenticate(self, source: Source, headers: Mapping[str, str], body: bytes) -> None:
        """401 (logged and counted, never audited) unless the request verifies."""
        try:
            secret = read_secret(source.auth, self.server.environ)
        except SecretMissing as exc:
            raise HttpError(
                503, f"source {source.name}: its secret ${exc.args[0]} is not set"
            ) from None
        problem = verify(source.auth, headers, body, secret, self.wall())
        if problem is not None:
            self.server.security.refused("source_signature", f"source {source.name}: {problem}")
            raise HttpError(401, f"source {source.name}: {problem}")

    def post(self, name: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """Verify, map and apply one request of source ``name`` (see the module), in a span
        whose parent is the caller's ``traceparent``."""
        with tracing.span("escalade.receive", tracing.extract(headers), source=name):
            answer = self._post(name, headers, body)
            tracing.annotate(status=answer.status)
            return answer

    def heartbeat(self, name: str, headers: Mapping[str, str], body: bytes) -> Answer:
        """``POST /sources/<name>/heartbeat``: authenticated as the source; a sighting."""
        source = self.source(name)
        with tracing.span("escalade.heartbeat", tracing.extract(headers), source=name):
            self.authenticate(source, headers, body)
            self.seen(name)
        return json_answer(200, {"status": 200, "outcome": "seen", "source": name})

    def seen(self, name: str) -> float:
        now = self.wall()
        for hook in self.on_seen:
            hook(name, now)
        return now

    def _post(self, name: str, headers: Mapping[str, str], body: bytes) -> Answer:
        source = self.source(name)
        self.authenticate(source, headers, body)
        now = self.seen(name)
        try:
            with tracing.span("escalade.map", source=name):
                payload = loads_json(body, f"source {name}")
                event = apply_map(source.map, payload, format_time(int(now)))
        except (TextError, MapError) as exc:
            return self.dead_letter(source, body, str(exc))
        with self.server.engine_lock() as engine:
            try:
                pack = engine.active().pack
            except PackError as exc:
                raise HttpError(503, str(exc)) from None
        try:
            parse_event(event, pack)
        except EventError as exc:
            return self.dead_letter(source, body, f"the mapped event: {exc}")
        tracing.hand_over(str(event["id"]))  # the event's span is a child of this request's
        outcome = self.server.group.submit([json.dumps(event)])[0]
        result = event_result(outcome, None)
        with self.server._stats:
            self.server.received[outcome.status] += 1
        return json_answer(result["status"], {**result, "source": name, "event": event["id"]})

    def dead_letter(self, source: Source, body: bytes, reason: str) -> Answer:
        """Keep the source's raw payload with the reason; answer 422."""
        error = f"source {source.name}: {reason}"
        with self.server.engine_lock() as engine:
            store = engine.store
            with store.transaction():
                letter = store.add_dead_letter(
                    DeadLetter(raw=storable_text(body), error=error, received_at=int(self.wall()))
                )
                store.bump("dead_letters")
        with self.server._stats:
            self.server.received["dead_letter"] += 1
        return json_answer(
            422,
            {
                "status": 422,
                "outcome": "dead_letter",
                "message": f"rejected (dead letter #{letter}): {error}",
                "error": error,
                "source": source.name,
            },
        )


_DESKS: weakref.WeakKeyDictionary[Any, SourceDesk] = weakref.WeakKeyDictionary()


def attach_sources(
    server: EscaladeServer, sources: Mapping[str, Source], wall: Callable[[], float] = time.time
) -> SourceDesk:
    """Give ``server`` its sources (``escalade serve`` passes ``runtime.sources``)."""
    desk = SourceDesk(server, sources, wall)
    _DESKS[server] = desk
    server.metrics.watch_sources(desk.watched, wall)
    desk.start_heartbeats()
    return desk


def watched_sources(server: EscaladeServer) -> dict[str, int | None]:
    """The sources of ``server`` that send heartbeats (name -> expect_every); none until
    :func:`attach_sources` gave it its sources."""
    desk = _DESKS.get(server)
    return dict(desk.watched) if desk is not None else {}


def desk_of(server: EscaladeServer) -> SourceDesk:
    """The server's sources; without :func:`attach_sources`, ``runtime.sources`` of the
    nearest ``escalade.yaml`` (the one ``escalade serve`` read and validated)."""
    desk = _DESKS.get(server)
    if desk is None:
        from escalade.runtime.settings import SettingsError, load_settings

        try:
            sources = load_settings().sources
        except SettingsError:
            sources = {}  # serve refused invalid settings before it got here
        desk = attach_sources(server, sources)
    return desk


def source_routes(server: EscaladeServer) -> list[BaseRoute]:
    """``POST /sources/<name>``."""

    async def receive(request: Request) -> Response:
        name = request.path_params["name"]
        desk = desk_of(server)
        desk.source(name)  # 404 before reading the body
        body = await read_body(request, server.max_body, server.request_timeout)
        headers = {k.lower(): v for k, v in request.headers.items()}
        answer = await run_in_threadpool(desk.post, name, headers, body)
        return Response(answer.body, answer.status, media_type=answer.content_type)

    async def heartbeat(request: Request) -> Response:
        name = request.path_params["name"]
        desk = desk_of(server)
        desk.source(name)
        body = await read_body(request, server.max_body, server.request_timeout)
        headers = {k.lower(): v for k, v in request.headers.items()}
        answer = await run_in_threadpool(desk.heartbeat, name, headers, body)
        return Response(answer.body, answer.status, media_type=answer.content_type)

    return [
        Route("/sources/{name}", receive, methods=["POST"]),
        Route("/sources/{name}/heartbeat", heartbeat, methods=["POST"]),
    ]


__all__ = ["SourceDesk", "attach_sources", "desk_of", "source_routes"]
