"""The server-rendered pages of ``escalade serve`` (issue #10, "Single pane").

::

    GET  /signin  POST /signin  POST /signout       a session from a person's API token
    GET  /                                          Now: the open escalations
    GET  /tickets/<id>/view                         one escalation: timeline, deliveries, forms
    POST /tickets/<id>/view/<action>                ack, transfer, resolve, close, postmortem
    GET  /oncall                                    who is on call now and next; absences
    GET  /reports?from=&to=                         KPIs and charts (lead)
    GET  /packs  POST /packs/rollback               pack history (lead); rollback (admin)
    GET  /deadletters  POST /deadletters/replay     dead letters and their replay (lead)

A page needs a person: a session cookie (:mod:`escalade.runtime.web.sessions`)
opened on ``/signin`` with the person's API token, or ``Authorization: Bearer``
with it (scripts, tests). Without either a page redirects to ``/signin`` (303);
a service's token is refused (403). A responder sees and acts on the tickets
it owns, as in the JSON API; Reports, Packs and Dead letters need a lead.

Forms post ``application/x-www-form-urlencoded`` with a CSRF token (the HMAC
of the session, in a hidden field; 403 without it) and run what the JSON API
runs: ticket actions go through
:meth:`~escalade.runtime.server.EscaladeServer.post_ticket_action`, with its
role rules and the engine's reasons. A refused form is the page again with the
message beside its field (403, 409 or 422); a form that worked redirects (303)
back. Every error is a page with its message, never a traceback. Templates
autoescape everything they print (Jinja2, ``autoescape=True``).

The engine is used only inside ``server.engine_lock()``, from Starlette's
thread pool (endpoints read the form, then run in a worker thread).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from escalade.runtime.clock import format_duration, format_time
from escalade.runtime.engine import Engine, PackError
from escalade.runtime.heartbeats import health
from escalade.runtime.store import Escalation
from escalade.runtime.tokens import Principal, roles_with
from escalade.runtime.web.answers import HttpError
from escalade.runtime.web.forms import (
    FORM_ACTIONS,
    action_body,
    came_over_https,
    error_field,
    read_form,
    safe_next,
    same_origin,
)
from escalade.runtime.web.panes import (
    NOW_LIMIT,
    NowFilter,
    absences,
    dead_letter_rows,
    display_time,
    now_board,
    oncall_board,
    pack_history,
    ticket_href,
    ticket_view,
)
from escalade.runtime.web.reports import read_range, report
from escalade.runtime.web.sessions import COOKIE, LIFETIME, Session, SessionKeeper
from escalade.runtime.web.sources import watched_sources

if TYPE_CHECKING:
    from jinja2 import Environment

    from escalade.runtime.server import EscaladeServer

log = logging.getLogger("escalade.runtime.web.pages")

TEMPLATES = Path(__file__).resolve().parent / "templates"
REFRESH = 15  # seconds between two reloads of the Now page
DONE = {
    "ack": "Acknowledged.",
    "transfer": "Transferred.",
    "resolve": "Resolved.",
    "close": "Closed.",
    "postmortem": "Post-mortem recorded.",
    "rollback": "Rolled back: the chosen pack is active for new escalations.",
}
# (path, link text, role needed): the navigation, in order
NAV = (
    ("/", "Now", "responder"),
    ("/oncall", "On call", "responder"),
    ("/reports", "Reports", "lead"),
    ("/packs", "Packs", "lead"),
    ("/deadletters", "Dead letters", "lead"),
)
COLUMNS = (
    ("ticket", "Ticket"),
    ("policy", "Policy"),
    ("state", "State"),
    ("owner", "Owner"),
    ("started", "Level · started"),
    ("failover", "Next failover"),
    ("ack_sla", "Acknowledge SLA"),
    ("resolve_sla", "Resolve SLA"),
)


def page_routes(server: EscaladeServer) -> list[BaseRoute]:
    """The pages' routes over ``server``, with a per-process session key (every session
    ends when the process does). None without jinja2 (the ``server`` extra): the JSON API
    serves on, and the log says why the pages are missing."""
    try:
        import jinja2  # noqa: F401  (the pages' one dependency beyond the API's)
    except ImportError:
        log.warning("the web pages need jinja2 (pip install 'escalade[server]'): not served")
        return []
    return Pages(server).routes()


def page_templates() -> Environment:
    """The pages' templates: everything printed is escaped (titles and event values are
    text, never markup); an undefined name is an error, not an empty string."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    templates = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    templates.filters["duration"] = lambda seconds: format_duration(seconds, " ")
    templates.filters["ticket_href"] = ticket_href
    return templates


@dataclass(frozen=True, slots=True)
class Visit:
    """One request for a page by someone signed in: who, through which session (None for
    ``Authorization: Bearer``), the posted form, and the CSRF token its forms carry."""

    request: Request
    principal: Principal
    session: Session | None
    form: dict[str, str]
    csrf: str


Handler = Callable[[Visit], Response]
OpenHandler = Callable[[Request, dict[str, str]], Response]
Endpoint = Callable[[Request], Awaitable[Response]]


def wall_now() -> int:
    """The wall clock, for sessions (the engine's clock may be virtual)."""
    return int(time.time())


class Pages:
    """The pages over one server: their templates, session keeper and routes."""

    def __init__(self, server: EscaladeServer, keeper: SessionKeeper | None = None) -> None:
        self.server = server
        self.keeper = keeper or SessionKeeper()
        self.templates = page_templates()

    def routes(self) -> list[BaseRoute]:
        """Every page route (see the module docstring)."""
        guarded = self._guarded
        return [
            Route("/signin", self._open(self.signin_form), methods=["GET"]),
            Route("/signin", self._open(self.sign_in), methods=["POST"]),
            Route("/signout", guarded(self.sign_out), methods=["POST"]),
            Route("/", guarded(self.now), methods=["GET"]),
            Route("/tickets/{ticket}/view", guarded(self.ticket), methods=["GET"]),
            Route("/tickets/{ticket}/view/{action}", guarded(self.ticket_action), methods=["POST"]),
            Route("/oncall", guarded(self.oncall), methods=["GET"]),
            Route("/reports", guarded(self.reports, "lead"), methods=["GET"]),
            Route("/packs", guarded(self.packs, "lead"), methods=["GET"]),
            Route("/packs/rollback", guarded(self.rollback, "admin"), methods=["POST"]),
            Route("/deadletters", guarded(self.dead_letters, "lead"), methods=["GET"]),
            Route("/deadletters/replay", guarded(self.replay, "lead"), methods=["POST"]),
        ]

    # --- the request cycle ---------------------------------------------------------
    def _endpoint(self, run: Callable[[Request, dict[str, str]], Response]) -> Endpoint:
        """An endpoint that reads a POSTed form (within the limits), then runs ``run`` in the
        thread pool; a form that cannot be read is an error page."""

        async def endpoint(request: Request) -> Response:
            try:
                posted = request.method == "POST"
                form = await read_form(request, self.server.request_timeout) if posted else {}
            except HttpError as exc:
                return self._failure(request, None, exc)
            return await run_in_threadpool(run, request, form)

        return endpoint

    def _open(self, handler: OpenHandler) -> Endpoint:
        """An endpoint anyone may reach (the sign-in form)."""
        return self._endpoint(lambda request, form: self._run_open(handler, request, form))

    def _run_open(self, handler: OpenHandler, request: Request, form: dict[str, str]) -> Response:
        try:
            if request.method == "POST" and not same_origin(request):
                raise HttpError(403, "a form posted from another site is refused")
            return handler(request, form)
        except Exception as exc:
            return self._failure(request, None, _as_http_error(exc))

    def _guarded(self, handler: Handler, role: str = "responder") -> Endpoint:
        """An endpoint for a signed-in person whose role includes ``role``."""
        return self._endpoint(lambda request, form: self._run(handler, role, request, form))

    def _run(self, handler: Handler, role: str, request: Request, form: dict[str, str]) -> Response:
        visit = None
        try:
            visit = self._visit(request, form)
            if visit is None:
                path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                back = path if request.method == "GET" else "/"
                return RedirectResponse(f"/signin?next={quote(back, safe='')}", 303)
            if not visit.principal.may(role):
                holders = " or ".join(roles_with(role))
                raise HttpError(
                    403,
                    f"this page needs the {role} role ({holders});"
                    f" {visit.principal.describe()} does not have it",
                )
            if request.method == "POST":
                self._check_form(visit)
            return handler(visit)
        except Exception as exc:
            return self._failure(request, visit, _as_http_error(exc))

    def _visit(self, request: Request, form: dict[str, str]) -> Visit | None:
        """Who asks: a bearer token, else the session cookie (None: nobody signed in)."""
        header = request.headers.get("authorization")
        if header:
            principal = self.server.authenticate(header)
            if principal.person is None:
                raise HttpError(
                    403, f"pages are for people: {principal.describe()} is not a person's token"
                )
            return Visit(request, principal, None, form, "")
        session = self.keeper.read(request.cookies.get(COOKIE), wall_now())
        if session is None:
            return None
        with self.server.engine_lock() as engine:
            token = engine.store.token(session.token_id)
        if token is None or token.revoked_at is not None or token.principal != session.principal:
            return None  # revoking a token ends its sessions
        principal = Principal(token.principal, frozenset({token.role}), token.id)
        return Visit(request, principal, session, form, self.keeper.csrf(session))

    def _check_form(self, visit: Visit) -> None:
        """403 for a form from another site, or without its session's CSRF token."""
        if not same_origin(visit.request):
            raise HttpError(403, "a form posted from another site is refused")
        if visit.session is not None and not self.keeper.csrf_ok(
            visit.session, visit.form.get("csrf")
        ):
            raise HttpError(
                403, "the form's CSRF token is missing or wrong: reload the page and send it again"
            )

    # --- rendering -----------------------------------------------------------------
    def render(
        self,
        template: str,
        visit: Visit | None,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> Response:
        """``template`` with ``context``, the navigation and who is signed in."""
        principal = visit.principal if visit is not None else None
        current = visit.request.url.path if visit is not None else ""
        nav = [
            {"href": href, "text": text, "current": href == current}
            for href, text, role in NAV
            if principal is not None and principal.may(role)
        ]
        html = self.templates.get_template(template).render(
            who=principal,
            role=", ".join(sorted(principal.roles)) if principal is not None else "",
            csrf=visit.csrf if visit is not None else "",
            nav=nav,
            **context,
        )
        return HTMLResponse(html, status, headers={"Cache-Control": "no-store", **(headers or {})})

    def _failure(self, request: Request, visit: Visit | None, exc: HttpError) -> Response:
        """The error page: the status and its message (never a traceback)."""
        try:
            return self.render(
                "error.html", visit, exc.status, exc.headers, code=exc.status, message=exc.error
            )
        except Exception:  # the templates themselves failed: plain text still says why
            log.exception("rendering the error page failed")
            return PlainTextResponse(f"{exc.status}: {exc.error}\n", exc.status, exc.headers)

    # --- sign in and out ----------------------------------------------------------
    def signin_form(self, request: Request, _form: dict[str, str]) -> Response:
        """The sign-in form."""
        nxt = safe_next(request.query_params.get("next"))
        return self._signin_page(request, 200, nxt, "")

    def _signin_page(self, request: Request, status: int, nxt: str, error: str) -> Response:
        del request
        hours = LIFETIME // 3600
        return self.render("signin.html", None, status, next=nxt, error=error, hours=hours)

    def sign_in(self, request: Request, form: dict[str, str]) -> Response:
        """Check a person's API token and open a session (an HttpOnly, SameSite=Strict
        cookie, Secure over https)."""
        token = form.get("token", "").strip()
        nxt = safe_next(form.get("next"))
        if not token:
            return self._signin_page(request, 422, nxt, "paste your personal API token")
        try:
            principal = self.server.authenticate("Bearer " + token)
        except HttpError as exc:
            if exc.status != 401:
                raise
            return self._signin_page(request, 401, nxt, "this token is unknown or revoked")
        if principal.person is None or principal.token_id is None:
            why = f"only a person's token signs in; {principal.describe()} is not one"
            return self._signin_page(request, 403, nxt, why)
        role = min(principal.roles)  # a person's token has exactly one
        session = self.keeper.open(principal.token_id, principal.name, role, wall_now())
        response = RedirectResponse(nxt, 303)
        response.set_cookie(
            COOKIE,
            self.keeper.issue(session),
            max_age=LIFETIME,
            path="/",
            secure=came_over_https(request),
            httponly=True,
            samesite="strict",
        )
        return response

    def sign_out(self, visit: Visit) -> Response:
        """End the session (its cookie is refused from now on) and forget the cookie."""
        if visit.session is not None:
            self.keeper.end(visit.session, wall_now())
        response = RedirectResponse("/signin", 303)
        response.delete_cookie(
            COOKIE,
            path="/",
            secure=came_over_https(visit.request),
            httponly=True,
            samesite="strict",
        )
        return response

    # --- Now ------------------------------------------------------------------------
    def now(self, visit: Visit) -> Response:
        """The open escalations, filtered and sorted by the query."""
        wanted = NowFilter.of(visit.request.query_params)
        with self.server.engine_lock() as engine:
            now = display_time(engine)
            if visit.principal.may("lead"):
                found = engine.store.open_escalations(NOW_LIMIT)
                truncated = len(found) >= NOW_LIMIT
            else:
                found, truncated = self._owned(engine, visit.principal), False
            board = now_board(engine, found, wanted, now, truncated)
            sources = health(engine.store, watched_sources(self.server))
        sorts = {key: wanted.sorted_by(key) for key, _ in COLUMNS}
        return self.render(
            "now.html",
            visit,
            board=board,
            wanted=wanted,
            columns=COLUMNS,
            sorts=sorts,
            now=format_time(now),
            refresh=REFRESH,
            sources=[(found, found.since(now)) for found in sources],
        )

    def _owned(self, engine: Engine, principal: Principal) -> list[Escalation]:
        """The open escalations ``principal`` may act on: owned by them, or by a team of
        theirs without rotation (the rule of ``EscaladeServer._check_owner``)."""
        person = principal.person or ""
        teams = [name for name, t in engine.active().teams.items() if person in t.members]
        found: dict[int, Escalation] = {}
        for owner in (person, *teams):
            for esc in engine.store.open_escalations_owned_by(owner):
                try:
                    self.server._check_owner(engine, principal, esc.ticket)
                except HttpError:
                    continue
                found[esc.id] = esc
        return sorted(found.values(), key=lambda e: (e.started_at, e.id))

    # --- one ticket -----------------------------------------------------------------
    def ticket(self, visit: Visit) -> Response:
        """The ticket's escalation: timeline, deliveries, snapshot and the forms."""
        return self._ticket_page(visit, visit.request.path_params["ticket"], 200, {}, {})

    def _ticket_page(
        self,
        visit: Visit,
        ticket: str,
        status: int,
        errors: dict[str, str],
        values: dict[str, str],
    ) -> Response:
        with self.server.engine_lock() as engine:
            now = display_time(engine)
            view = ticket_view(engine, ticket, now)
            if view is not None:
                self.server._check_owner(engine, visit.principal, ticket)
        if view is None:
            raise HttpError(404, f"ticket {ticket} has no escalation")
        done = "" if errors else DONE.get(visit.request.query_params.get("done", ""), "")
        return self.render(
            "ticket.html",
            visit,
            status,
            view=view,
            errors=errors,
            values=values,
            done=done,
            now=format_time(now),
            href=ticket_href(ticket),
        )

    def ticket_action(self, visit: Visit) -> Response:
        """A ticket form: the JSON API's action as the signed-in person; refused, the page
        again with the reason beside the field; done, back to the ticket (303)."""
        ticket = visit.request.path_params["ticket"]
        action = visit.request.path_params["action"]
        if action not in FORM_ACTIONS:
            raise HttpError(404, f"no ticket action {action!r} (one of {', '.join(FORM_ACTIONS)})")
        body = action_body(action, visit.form)
        try:
            self.server.post_ticket_action(
                ticket, action, json.dumps(body).encode(), visit.principal
            )
        except HttpError as exc:
            if exc.status not in (403, 409, 422):
                raise
            values = {f"{action}-{name}": value for name, value in body.items()}
            errors = {error_field(action, exc.error): exc.error}
            return self._ticket_page(visit, ticket, exc.status, errors, values)
        return RedirectResponse(f"{ticket_href(ticket)}?done={action}", 303)

    # --- on call, reports, packs, dead letters --------------------------------------
    def oncall(self, visit: Visit) -> Response:
        """Per team: on call now and next, the week's calendar and overrides; absences."""
        with self.server.engine_lock() as engine:
            now = display_time(engine)
            teams = oncall_board(engine, now)
            away = absences(engine, now)
        return self.render("oncall.html", visit, teams=teams, away=away, now=format_time(now))

    def reports(self, visit: Visit) -> Response:
        """The KPIs and charts of the escalations started in the range."""
        query = visit.request.query_params
        start, end = query.get("from", ""), query.get("to", "")
        since, until, errors = read_range(start, end)
        found = None
        if not errors:
            with self.server.engine_lock() as engine:
                found = report(engine.store, since, until)
        return self.render(
            "reports.html",
            visit,
            422 if errors else 200,
            report=found,
            errors=errors,
            start=start,
            end=end,
        )

    def packs(self, visit: Visit) -> Response:
        """Pack history with actors and reasons; the rollback form for admins."""
        return self._packs_page(visit, 200, {}, {})

    def _packs_page(
        self, visit: Visit, status: int, errors: dict[str, str], values: dict[str, str]
    ) -> Response:
        with self.server.engine_lock() as engine:
            packs, events = pack_history(engine)
        done = "" if errors else DONE.get(visit.request.query_params.get("done", ""), "")
        return self.render(
            "packs.html",
            visit,
            status,
            packs=packs,
            events=events,
            errors=errors,
            values=values,
            done=done,
        )

    def rollback(self, visit: Visit) -> Response:
        """Re-activate an earlier pack for new escalations, with a reason (as ``escalade pack
        rollback``); in-flight escalations keep theirs."""
        reason = visit.form.get("reason", "").strip()
        target = visit.form.get("pack", "")
        values = {"rollback-reason": reason, "rollback-pack": target}
        errors: dict[str, str] = {}
        if not reason:
            errors["rollback-reason"] = "a rollback needs a reason (recorded in the audit trail)"
        with self.server.engine_lock() as engine:
            packs, _ = pack_history(engine)
            current = next((p for p in packs if p["active"]), None)
            chosen = next((p for p in packs if str(p["id"]) == target and not p["active"]), None)
            if current is None:
                errors["rollback"] = "no pack is active: nothing to roll back"
            elif chosen is None:
                errors["rollback-pack"] = "choose an earlier pack of this store"
            if not errors and current is not None and chosen is not None:
                compiled = engine.pack(int(chosen["id"]))
                engine.activate(
                    compiled.pack,
                    actor=visit.principal.actor,
                    reason=f"rollback from {current['version']} to {compiled.version}: {reason}",
                    kind="pack_rolled_back",
                )
        if errors:
            return self._packs_page(visit, 422, errors, values)
        return RedirectResponse("/packs?done=rollback", 303)

    def dead_letters(self, visit: Visit) -> Response:
        """The dead letters not replayed yet; the replay button."""
        query = visit.request.query_params
        replayed = [query.get(k, "") for k in ("replayed", "still")]
        counts = [int(v) for v in replayed if v.isdigit()]
        with self.server.engine_lock() as engine:
            letters = dead_letter_rows(engine)
        return self.render(
            "deadletters.html",
            visit,
            letters=letters,
            replayed=counts if len(counts) == 2 else None,
        )

    def replay(self, visit: Visit) -> Response:
        """Replay every dead letter through the active pack (as ``escalade deadletter replay``)."""
        with self.server.engine_lock() as engine:
            results = engine.replay_dead_letters(by=visit.principal.actor)
        still = sum(1 for _, outcome in results if outcome.status == "dead_letter")
        return RedirectResponse(f"/deadletters?replayed={len(results) - still}&still={still}", 303)


def _as_http_error(exc: Exception) -> HttpError:
    """What a page shows for an exception: its own status, 503 without an active pack,
    else 500 (logged with its traceback; the page names only its type)."""
    if isinstance(exc, HttpError):
        return exc
    if isinstance(exc, PackError):
        return HttpError(503, str(exc))
    log.exception("a page failed")
    return HttpError(500, f"internal error ({type(exc).__name__}); see the server log")
