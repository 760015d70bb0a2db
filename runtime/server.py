"""``escalade serve``: what the runtime's HTTP front door answers (the ASGI app over it,
Starlette under uvicorn, is :mod:`escalade.runtime.web.api`).

Endpoints (JSON in and out; every error is ``{"error": "..."}`` with its status):

``POST /events``
    One event (JSON) or many (JSON Lines, ``Content-Type: application/x-ndjson``).
    Each event answers its outcome: ``applied`` or ``duplicate`` (200),
    ``dead_letter`` (422: malformed, kept in the dead-letter record with the
    reason, nothing else changed) or ``refused`` (409). One event answers with
    its own status; a batch answers 200 when every line is 200, else 207, with
    ``results`` line by line. Bodies over ``max_body`` bytes are 413.
``POST /receipts/<key>``
    A delivery receipt for the outbox row with idempotency key ``<key>`` (a
    channel that answered 202 confirms later), signed ``X-Escalade-Signature:
    t=<unix>,v1=<HMAC-SHA256 of "<t>.<key>">`` with the webhook's or the pager's
    secret (:mod:`escalade.runtime.receipts`). 401 for a bad or stale signature,
    409 for a message not awaiting a receipt on that channel (or an unknown key).
``GET /tickets/<id>``
    The ticket's status (as ``escalade status --format json``); 404 when none.
``POST /tickets/<id>/ack`` ``{"override": "why"}``, ``/resolve``, ``/close``,
``/transfer`` ``{"to": REF, "reason": "...", "sla": "2h"}``, ``/postmortem`` ``{"link": URL}``
    The operator commands of the CLI (``escalade ack`` ...), through the same
    engine methods: 200 with the outcome; 404 for a ticket with no escalation;
    409 when the engine refuses (a close check that does not hold, a ticket
    already acknowledged, ...: the engine's reason is the ``error``); 422 for a
    missing or malformed field (a transfer without a reason or an SLA, in the
    engine's words); 400 for a body that is not a JSON object (an empty body is ``{}``).
``GET /metrics``
    Prometheus exposition through prometheus_client (:mod:`escalade.runtime.metrics`).
``GET /healthz``
    200 with the active pack's version; 503 when no pack is active.

``/events`` and every ``/tickets`` route need ``Authorization: Bearer <token>``: an
API token (``escalade token create``, :mod:`escalade.runtime.tokens`), 401 with
``WWW-Authenticate`` for a missing, unknown or revoked one, 403 (naming the role
needed) when its role does not reach the route. ``ingest`` tokens post events; a
``responder`` reads and acts on the tickets it owns, a ``lead`` on any ticket (and
acknowledges with an ``override``), an ``admin`` too. The actor is the token's: a
person's token acts as that person (a body ``by`` naming someone else is 403); an
admin service acts as ``service:NAME`` and names, for an acknowledgement, the
person in ``by``. The deprecated ``runtime.server.token_env`` is one more
credential, ``service:token_env`` with ingest and admin. A store that never had
a token and no ``token_env``: no authentication (``escalade serve`` allows that
on loopback only). ``/metrics`` and ``/healthz`` stay open for scrapers and
probes, and receipts carry their own signature.

The engine is not thread-safe: every request and the ticker take one lock. The
events of concurrent ``POST /events`` requests share that lock and a transaction
(:mod:`escalade.runtime.groupcommit`): one commit for them all, each answered with
its own events' outcomes once they are committed. The ticker fires due timers every
``tick_interval`` seconds (``Engine.advance``).
SIGTERM and SIGINT stop the server gracefully: no new requests, the ticker
stops, the request holding the engine finishes, then the store closes.
Runtime-side: no compiler imports.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from escalade.runtime.clock import TimeError, format_time, parse_duration
from escalade.runtime.engine import ClockError, Engine, Outcome, PackError, Refused
from escalade.runtime.engine.commands import assignee_problem, transfer_problem
from escalade.runtime.groupcommit import MAX_BATCH, GroupCommit, ReadSide, event_result
from escalade.runtime.metrics import PackInfo, ServerMetrics, open_reader
from escalade.runtime.receipts import SecurityLog, verify_receipt
from escalade.runtime.tokens import (
    ANONYMOUS,
    PUBLIC,
    TOKEN_ENV,
    Principal,
    authenticate,
    needed_role,
    roles_with,
    token_id_of,
)
from escalade.runtime.web.answers import (
    MAX_BODY,
    REQUEST_TIMEOUT,
    Answer,
    HttpError,
    json_answer,
)

log = logging.getLogger("escalade.runtime.server")

TICK_INTERVAL = 1.0  # seconds between two ticks
LOCK_TIMEOUT = 30.0  # seconds a request waits for the engine before a 503
MAX_CONNECTIONS = 64  # concurrent connections and requests; 503 beyond
JSONL_TYPES = frozenset(
    {"application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines"}
)
JSON_TYPES = frozenset({"application/json", "text/json", ""})

Environ = Mapping[str, str]


class EscaladeServer:
    """The HTTP front door over one engine, with its timer thread.

    ``token_env`` names the environment variable of the bearer token (``None``:
    no token); ``receipt_secret_env`` and ``pager_secret_env`` those of the secrets that sign
    receipts (``None``: receipts are refused with 503). Both are read from
    ``environ`` (default ``os.environ``) at each request, like the notifiers do.
    """

    def __init__(
        self,
        engine: Engine,
        host: str = "127.0.0.1",
        port: int = 8080,
        *,
        token_env: str | None = None,
        receipt_secret_env: str | None = None,
        pager_secret_env: str | None = None,
        environ: Environ | None = None,
        tick_interval: float = TICK_INTERVAL,
        max_body: int = MAX_BODY,
        request_timeout: float = REQUEST_TIMEOUT,
        lock_timeout: float = LOCK_TIMEOUT,
        max_connections: int = MAX_CONNECTIONS,
        max_batch: int = MAX_BATCH,
    ) -> None:
        """Bind ``host:port`` (0: any free port, see :attr:`port`); :meth:`start` serves.

        ``max_connections`` bounds the concurrent connections and requests (503 beyond);
        ``max_batch`` the events of concurrent requests one transaction applies."""
        if tick_interval <= 0 or max_body < 1 or request_timeout <= 0 or lock_timeout <= 0:
            raise ValueError(
                "tick_interval, max_body, request_timeout and lock_timeout must be > 0"
            )
        self.engine = engine
        self.token_env = token_env
        self.receipt_secret_env = receipt_secret_env
        self.pager_secret_env = pager_secret_env
        self.security = SecurityLog()
        self.environ: Environ = os.environ if environ is None else environ
        self.tick_interval = tick_interval
        self.max_body = max_body
        self.request_timeout = request_timeout
        self.lock_timeout = lock_timeout
        self.lock = threading.Lock()
        self.group = GroupCommit(self.engine_lock, max_batch)
        self.reads = ReadSide(engine.store, self.engine_lock)  # credentials, off the engine
        self.received: Counter[str] = Counter()
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self._stats = threading.Lock()  # handler threads count concurrently
        self.ticks = 0
        self.timers_fired = 0
        self.last_tick_error: str | None = None
        # /metrics reads on a connection of its own, never taking the engine lock
        self._metrics = ServerMetrics(
            open_reader(engine.store),
            received=self.received,
            refused=self.security.counts,
            requests=self.requests,
        )
        self._tokens_seen = False  # see _has_tokens
        self._pack_seen = False  # see post_events
        self._closed = False
        self.ticker_task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self.max_connections = max_connections
        self._socket = socket.create_server((host, port))
        # Accepted connections inherit it: without it, Nagle's algorithm and the client's
        # delayed ACK hold every keep-alive answer ~40 ms (uvicorn sets it only on the
        # sockets it binds itself).
        self._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._uvicorn: Any = None

    # --- lifecycle -----------------------------------------------------------
    @property
    def host(self) -> str:
        """The bound address."""
        return str(self._socket.getsockname()[0])

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        return int(self._socket.getsockname()[1])

    @property
    def url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        """Serve the ASGI app (:func:`escalade.runtime.web.api.create_app`) under uvicorn in
        a thread of its own; the timer loop runs there as a background task."""
        import uvicorn

        from escalade.runtime.web.api import create_app

        if self._thread is not None:
            raise RuntimeError("the server is already started")
        config = uvicorn.Config(
            create_app(self),
            http="h11",  # rejects malformed HTTP, such as two different Content-Lengths
            lifespan="on",
            log_config=None,
            access_log=False,
            limit_concurrency=self.max_connections,
            timeout_keep_alive=5,
            timeout_graceful_shutdown=int(self.lock_timeout),
        )
        self._uvicorn = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._uvicorn.run,
            kwargs={"sockets": [self._socket]},
            name="escalade-http",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._uvicorn.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.01)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting requests, let those in flight finish, stop the timer loop, wait
        for the engine to be free. The caller closes the store afterwards."""
        if self._uvicorn is not None and self._thread is not None:
            self._uvicorn.should_exit = True
            self._thread.join(timeout)
        self.close_engine(timeout)
        self.reads.close()
        self._socket.close()

    def close_engine(self, timeout: float = 10.0) -> None:
        """Wait for the request holding the engine; later requests get 503."""
        if self.lock.acquire(timeout=timeout):
            self._closed = True
            self.lock.release()
        elif not self._closed:
            log.error("a request still holds the engine after %ss; closing anyway", timeout)
            self._closed = True

    @property
    def ticker_alive(self) -> bool:
        """True while the timer loop runs (False before start and after stop)."""
        task = self.ticker_task
        return task is not None and not task.done()

    def tick_once(self) -> None:
        """One turn of the timer loop: fire what is due (writing only then)."""
        try:
            with self.engine_lock():
                self.engine.refresh()  # see packs/rows other processes wrote
                fired = self.engine.advance(move_clock=False)
        except HttpError:
            return  # busy or closing: try again at the next tick
        except Exception as exc:  # the ticker must outlive a failing tick
            self.last_tick_error = f"{type(exc).__name__}: {exc}"
            log.exception("tick failed; trying again in %ss", self.tick_interval)
            return
        self.ticks += 1
        self.timers_fired += fired
        self.last_tick_error = None

    def count_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request (the transport calls this for every response)."""
        with self._stats:
            self._metrics.observe_request(method, route, status, seconds)

    @contextmanager
    def engine_lock(self) -> Iterator[Engine]:
        """The engine, held by this thread alone; 503 when busy too long or shutting down."""
        if not self.lock.acquire(timeout=self.lock_timeout):
            raise HttpError(503, f"the engine stayed busy for {self.lock_timeout:g}s; try again")
        try:
            if self._closed:
                raise HttpError(503, "the server is shutting down")
            yield self.engine
        finally:
            self.lock.release()

    # --- authentication and authorisation ------------------------------------
    def authorize(self, method: str, route: str, header: str | None) -> Principal:
        """Who the request speaks for, once its credential allows ``route``: 401 without a
        valid one, 403 when its role does not reach (:data:`~escalade.runtime.tokens.ROUTE_ROLES`).
        Open routes need no credential (:data:`~escalade.runtime.tokens.PUBLIC`)."""
        role = needed_role(route)
        if role is None:
            return PUBLIC
        principal = self.authenticate(header)
        if not principal.may(role):
            holders = " or ".join(roles_with(role))
            raise HttpError(
                403,
                f"{method} {route} needs the {role} role ({holders});"
                f" the token of {principal.describe()} does not have it",
            )
        return principal

    def authenticate(self, header: str | None) -> Principal:
        """The principal of ``Authorization: Bearer <secret>``: an API token of the store,
        else the deprecated ``token_env`` credential (``service:token_env``: ingest and
        admin), else, on a server with no credential at all, ``anonymous``. 401 otherwise."""
        scheme, _, given = (header or "").partition(" ")
        given = given.strip() if scheme.lower() == "bearer" else ""
        if token_id_of(given) is not None:
            with self.reads.store() as store:
                principal = authenticate(store, given)
            if principal is not None:
                return principal
        if self.token_env is not None:
            expected = self.environ.get(self.token_env)
            if not expected:
                raise HttpError(503, f"the server's token ${self.token_env} is not set")
            if hmac.compare_digest(given.encode(), expected.encode()):
                return TOKEN_ENV
            raise _unauthorized()
        if given or self._has_tokens():
            raise _unauthorized()
        return ANONYMOUS

    def _has_tokens(self) -> bool:
        """Whether the store ever held a token: from then on every guarded route needs one
        (tokens are revoked, never deleted, so revoking them all does not open the server)."""
        if not self._tokens_seen:
            with self.reads.store() as store:
                self._tokens_seen = bool(store.tokens())
        return self._tokens_seen

    @staticmethod
    def _check_owner(engine: Engine, principal: Principal, ticket: str) -> None:
        """403 unless ``principal`` may touch ``ticket``: a lead (or admin) any ticket, a
        responder only one it owns (its current owner, or a member of the owning team
        without rotation: the engine's own rule for who acknowledges)."""
        if principal.may("lead"):
            return
        esc = engine.store.open_escalation(ticket) or engine.store.latest_escalation(ticket)
        person = principal.person
        if esc is None:
            return  # nothing to own: the caller answers 404
        if person is None or assignee_problem(engine.pack(esc.pack_id), esc, person):
            raise HttpError(
                403,
                f"ticket {ticket} is owned by {esc.owner or 'nobody'}: {principal.describe()}"
                " acts only on tickets it owns (any ticket needs the lead role: lead or admin)",
            )

    # --- endpoints -----------------------------------------------------------
    def post_events(self, body: bytes, content_type: str) -> Answer:
        """Apply one event or a JSON Lines batch; each answers its outcome."""
        media = content_type.split(";", 1)[0].strip().lower()
        if media in JSONL_TYPES:
            lines = [(n, line) for n, line in enumerate(body.split(b"\n"), 1) if line.strip()]
            batch = True
        elif media in JSON_TYPES:
            lines = [(1, body)] if body.strip() else []
            batch = False
        else:
            raise HttpError(
                415,
                f"unsupported Content-Type {media!r}: send application/json (one event)"
                " or application/x-ndjson (one event per line)",
            )
        if not lines:
            raise HttpError(400, "the body holds no event")
        if not self._pack_seen:  # once a pack is active, one always is: no lock needed again
            with self.engine_lock() as engine:
                try:
                    engine.active()
                except PackError as exc:
                    raise HttpError(503, str(exc)) from None
            self._pack_seen = True
        try:  # the events of concurrent requests share a transaction (group commit)
            outcomes = self.group.submit([raw for _, raw in lines])
        except HttpError as exc:  # the engine stayed busy, or the server is closing
            outcomes = [Outcome("error", exc.error, error=exc) for _ in lines]
        numbered = zip(lines, outcomes, strict=True)
        results = [event_result(o, n if batch else None) for (n, _), o in numbered]
        with self._stats:
            self.received.update(o.status for o in outcomes)
        if not batch:
            return json_answer(results[0]["status"], results[0])
        every_ok = all(r["status"] == 200 for r in results)
        totals = Counter(str(r["outcome"]) for r in results)
        return json_answer(200 if every_ok else 207, {"results": results, "totals": totals})

    def post_receipt(self, key: str, body: bytes, signature: str | None) -> Answer:
        """A receiving system confirms message ``key``: the signature (``t=<unix>,v1=<hex>``
        over ``<t>.<key>`` with the webhook's or the pager's secret, at most 5 minutes
        old) says which channel; the message must await a receipt on it. A replay is
        idempotent; anything else is 401 or 409, logged (rate-limited) and counted."""
        del body  # the signature covers the key and the time; the body carries nothing more
        envs = {"webhook": self.receipt_secret_env, "pager": self.pager_secret_env}
        secrets = {kind: self.environ.get(env) for kind, env in envs.items() if env}
        if not any(secrets.values()):
            raise HttpError(
                503,
                "receipts are not configured: set runtime.notifiers.webhook (or pager)"
                " secret_env in escalade.yaml, and the variable it names",
            )
        now = time.time()
        channel, problem = None, "no secret is set"
        for kind, secret in secrets.items():
            if secret:
                problem = verify_receipt(secret, key, signature, now) or ""
                if not problem:
                    channel = kind
                    break
        if channel is None:
            self.security.refused("receipt_signature", f"receipt for {key!r}: {problem}")
            raise HttpError(401, f"receipt refused: {problem}")
        with self.engine_lock() as engine:
            outcome, why = engine.confirm_receipt(key, channel)
        if outcome == "refused":
            self.security.refused("receipt_state", f"{channel} receipt: {why}")
            raise HttpError(409, f"receipt refused: {why}")
        return json_answer(
            200,
            {"key": key, "status": "delivered", "channel": channel, "replay": outcome == "replay"},
        )

    def get_ticket(self, ticket: str, principal: Principal = ANONYMOUS) -> Answer:
        """The ticket's status JSON, or 404 (403 for a responder who does not own it)."""
        with self.engine_lock() as engine:
            status = engine.status(ticket)
            if status is not None:
                self._check_owner(engine, principal, ticket)
        if status is None:
            raise HttpError(404, f"ticket {ticket} has no escalation")
        return json_answer(200, status)

    def post_ticket_action(
        self, ticket: str, action: str, body: bytes, principal: Principal = ANONYMOUS
    ) -> Answer:
        """Run the operator command ``action`` on ``ticket`` as ``principal`` (see the module
        docstring): the actor comes from the token, never from the body."""
        doc = _json_object(body)
        by, override = _acting(principal, action, doc)
        run: Callable[[Engine], Outcome]
        malformed = False  # the engine refuses the request itself: 422, not 409
        if action == "ack":
            actor = principal.actor
            run = lambda engine: engine.ack(ticket, by, override=override, actor=actor)  # noqa: E731
        elif action == "resolve":
            run = lambda engine: engine.resolve(ticket, by=by)  # noqa: E731
        elif action == "close":
            run = lambda engine: engine.close(ticket, by=by)  # noqa: E731
        elif action == "transfer":
            hint = '{"to": REF, "reason": "...", "sla": "2h"}'
            to = _field(doc, "to", hint)
            reason = _field(doc, "reason", hint, required=False)
            sla_text = _field(doc, "sla", hint, required=False)
            sla: int | None = None
            if sla_text:
                try:
                    sla = parse_duration(sla_text)
                except TimeError as exc:
                    raise HttpError(422, f"sla: {exc}") from None
            malformed = transfer_problem(reason, sla) is not None
            run = lambda engine: engine.transfer(ticket, to, reason, sla, by=by)  # noqa: E731
        else:
            link = _field(doc, "link", '{"link": URL}', required=False)
            malformed = not link.strip()
            run = lambda engine: engine.postmortem(ticket, link, by=by)  # noqa: E731
        with self.engine_lock() as engine:
            if engine.store.open_escalation(ticket) is None and engine.status(ticket) is None:
                raise HttpError(404, f"ticket {ticket} has no escalation")
            self._check_owner(engine, principal, ticket)
            try:
                outcome = run(engine)
            except Refused as exc:
                raise HttpError(422 if malformed else 409, str(exc)) from None
            except ClockError as exc:
                raise HttpError(409, str(exc)) from None
            except PackError as exc:
                raise HttpError(503, str(exc)) from None
        return json_answer(
            200,
            {
                "ticket": ticket,
                "action": action,
                "outcome": outcome.status,
                "message": outcome.message,
                "escalation": outcome.escalation_id,
            },
        )

    @property
    def metrics(self) -> ServerMetrics:
        return self._metrics

    def get_metrics(self) -> Answer:
        """The Prometheus exposition (:mod:`escalade.runtime.metrics`), read on the metrics'
        own store connection: a scrape never waits for the engine."""
        return Answer(200, *self._metrics.exposition())

    def get_health(self) -> Answer:
        """200 with the active pack, 503 without one (or with the ticker down)."""
        with self.engine_lock() as engine:
            info = self._pack_info(engine)
            clock = engine.store.clock()
        if info is None:
            raise HttpError(503, "no rule pack is active")
        if self._thread is not None and not self.ticker_alive:
            raise HttpError(503, "the timer loop stopped")
        return json_answer(
            200,
            {
                "status": "ok",
                "pack_version": info.version,
                "pack_id": info.pack_id,
                "content_hash": info.content_hash,
                "clock": format_time(clock) if clock is not None else None,
                "last_tick_error": self.last_tick_error,
            },
        )

    @staticmethod
    def _pack_info(engine: Engine) -> PackInfo | None:
        try:
            pack = engine.active()
        except PackError:
            return None
        return PackInfo(pack.id, pack.version, engine.store.pack_hash(pack.id))


def _json_object(body: bytes) -> dict[str, Any]:
    """A request body that must be a JSON object; an empty body is ``{}``."""
    if not body.strip():
        return {}
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise HttpError(400, "the body must be a JSON object") from None
    if not isinstance(doc, dict):
        raise HttpError(400, "the body must be a JSON object")
    return doc


def _acting(principal: Principal, action: str, doc: Mapping[str, Any]) -> tuple[str, str | None]:
    """Who runs a ticket action, and the ack's override reason. A person's token acts as that
    person (a body ``by`` naming anyone else is 403); a service or an open server acts as
    itself, but an acknowledgement needs a person: the body's ``by`` names them."""
    person = principal.person
    claimed = doc.get("by")
    if person is not None and claimed is not None and claimed != person:
        raise HttpError(
            403, f"the token speaks for {person}; the body's `by` cannot name {claimed!r}"
        )
    if action != "ack":
        return principal.actor, None
    override = _field(doc, "override", '{"override": "why"}', required=False)
    if override.strip() and not principal.may("lead"):
        raise HttpError(
            403,
            f"acknowledging with an override needs the lead role (lead or admin);"
            f" {principal.describe()} does not have it",
        )
    by = person or _field(doc, "by", '{"by": PERSON}')
    return by, override or None


def _unauthorized() -> HttpError:
    return HttpError(
        401,
        "missing, unknown or revoked bearer token (Authorization: Bearer <token>)",
        {"WWW-Authenticate": 'Bearer realm="escalade"'},
    )


def _field(doc: Mapping[str, Any], name: str, hint: str, *, required: bool = True) -> str:
    """The string ``doc[name]`` (``""`` when absent and optional); 422 otherwise."""
    value = doc.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise HttpError(422, f"`{name}` must be a non-empty string: {hint}")
    return value


__all__ = ["EscaladeServer", "HttpError"]
