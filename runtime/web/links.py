"""Acknowledging from the message: ``GET``/``POST /ack/<token>`` and ``POST /slack/actions``.

``GET /ack/<token>``
    A one-click confirmation page for the link's person; it writes nothing, so a
    mail scanner or a chat unfurler that follows the link acknowledges nothing.
``POST /ack/<token>``
    Fires the timers due first (a failover that is due refuses the link), checks the
    link (:func:`escalade.runtime.links.link_refusal`) and acknowledges as its person,
    audited with ``via: link``. A page says what happened: 200 acknowledged, 403 for a
    forged or altered link, 410 for one that expired, was used, or whose person no
    longer holds the ticket, 409 when the engine refuses, 503 without the link key.
``POST /slack/actions``
    The Acknowledge button of a Slack message. The request must carry Slack's v0
    signature (``X-Slack-Signature: v0=<hex HMAC-SHA256 of "v0:<timestamp>:<body>">``
    with ``runtime.notifiers.slack.signing_secret_env``) and a timestamp within five
    minutes of the wall clock: 401 otherwise. The clicking Slack user is mapped to a
    person of the directory by their ``slack`` contact (a Slack user id ``U...``, else
    ``@handle`` against the user's ``username``); that person must be the link's, and
    the acknowledgment is audited with ``via: slack``. Slack gets 200 and ``{"text":
    ...}`` saying what happened (acknowledged, or why not) for every signed action.

Pages are plain HTML with every value escaped, no script and no style (the app's
content security policy forbids inline ones). The engine is taken only through
``server.engine_lock()``, in the thread pool.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Route

from escalade.runtime.engine import Engine, Refused
from escalade.runtime.links import AckLink, LinkConfig, Refusal, link_refusal, read_token
from escalade.runtime.notify.channels import SLACK_ACK_ACTION
from escalade.runtime.pack import Person
from escalade.runtime.store import Escalation
from escalade.runtime.web.answers import HttpError
from escalade.runtime.web.bodies import read_body

if TYPE_CHECKING:
    from escalade.runtime.server import EscaladeServer

SLACK_TOLERANCE = 300  # seconds between Slack's timestamp and the wall clock
SLACK_MAX_BODY = 64 * 1024  # an interaction payload is a few kilobytes
REFUSAL_STATUS = {"forged": 403, "expired": 410, "used": 410, "not_assignee": 410}


@dataclass(frozen=True, slots=True)
class LinkAnswer:
    """What a use of a link came to: an HTTP status, a title and the reason in words."""

    status: int
    title: str
    message: str


@dataclass(frozen=True, slots=True)
class SlackUser:
    """Who clicked in Slack: the user id and the names Slack gave."""

    id: str
    names: tuple[str, ...]


def _refused(refusal: Refusal) -> LinkAnswer:
    titles = {"forged": "Not a valid link", "used": "Already acknowledged"}
    title = titles.get(refusal.kind, "This link no longer works")
    return LinkAnswer(REFUSAL_STATUS[refusal.kind], title, refusal.reason)


def _processing_time(engine: Engine) -> int:
    """The engine's clock for a command now: the wall clock, never before the store's."""
    stored = engine.store.clock()
    wall = engine.clock.now()
    return wall if stored is None else max(stored, wall)


def check_link(
    engine: Engine, config: LinkConfig, token: str
) -> tuple[AckLink, Escalation] | LinkAnswer:
    """The link and its escalation when ``token`` may acknowledge now, else the answer that
    says why not. Reads only: nothing is written (``GET`` uses it as it is)."""
    key = config.key()
    if isinstance(key, str):
        return LinkAnswer(
            503, "Links are not configured", f"acknowledgment links need a key: {key}"
        )
    link = read_token(key, token)
    if isinstance(link, Refusal):
        return _refused(link)
    esc = engine.store.escalation(link.escalation_id)
    pack = engine.pack(esc.pack_id).pack if esc is not None else None
    refusal = link_refusal(link, esc, pack, _processing_time(engine))
    if refusal is not None:
        return _refused(refusal)
    assert esc is not None  # link_refusal refuses a missing escalation
    return link, esc


def use_link(
    engine: Engine, config: LinkConfig, token: str, via: str, clicker: SlackUser | None = None
) -> LinkAnswer:
    """Acknowledge with ``token`` as its person, audited ``via`` (``link``, ``slack``);
    ``clicker`` (Slack) must be that person. A refused link writes nothing; a valid one
    first fires the timers due, so a failover that is due refuses it instead of being
    overtaken by it."""
    found = check_link(engine, config, token)
    if isinstance(found, LinkAnswer):
        return found
    link, esc = found
    if clicker is not None:
        person = slack_person(engine.pack(esc.pack_id).people, clicker)
        if isinstance(person, str) and person != link.person:
            why = f"this is {link.person}'s link, and Slack user {clicker.id} is {person}"
            person = LinkAnswer(403, "Not your link", why)
        if isinstance(person, LinkAnswer):
            return person
    engine.advance(move_clock=False)
    found = check_link(engine, config, token)
    if isinstance(found, LinkAnswer):
        return found
    link, esc = found
    try:
        outcome = engine.ack(esc.ticket, link.person, actor=link.person, via=via)
    except Refused as exc:
        return LinkAnswer(409, "Not acknowledged", str(exc))
    return LinkAnswer(200, "Acknowledged", f"{outcome.message}.")


# --- Slack ---------------------------------------------------------------------------


def slack_signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """``v0=<hex>``: Slack's signature of a request (``v0:<timestamp>:<body>``)."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret, base, hashlib.sha256).hexdigest()


def slack_request_problem(
    secret: bytes, headers: Mapping[str, str], body: bytes, now: float
) -> str | None:
    """Why a request does not come from Slack (None when its signature holds): a missing or
    stale timestamp (more than :data:`SLACK_TOLERANCE` seconds from ``now``), a bad
    signature."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    if not timestamp.isdigit():
        return "no X-Slack-Request-Timestamp"
    if abs(now - int(timestamp)) > SLACK_TOLERANCE:
        return "the request's timestamp is more than 5 minutes from now (a replay?)"
    given = headers.get("x-slack-signature", "")
    if not hmac.compare_digest(slack_signature(secret, timestamp, body).encode(), given.encode()):
        return "the request is not signed with the Slack signing secret"
    return None


def slack_person(people: Mapping[str, Person], user: SlackUser) -> str | LinkAnswer:
    """The person whose ``slack`` contact is ``user``: their Slack user id, else ``@`` and one
    of the names Slack gave; a refusal when nobody (or more than one person) is."""
    by_id = [n for n, p in people.items() if p.slack and p.slack.lstrip("@") == user.id]
    handles = {f"@{name}" for name in user.names if name}
    found = by_id or [n for n, p in people.items() if p.slack in handles]
    if len(found) == 1:
        return found[0]
    shown = user.names[0] if user.names else user.id
    if not found:
        why = f"Slack user {shown} is not a person of the directory (no matching slack contact)"
    else:
        why = f"Slack user {shown} matches several people ({', '.join(sorted(found))})"
    return LinkAnswer(403, "Unknown Slack user", why)


def read_slack_action(body: bytes) -> tuple[SlackUser, str | None]:
    """The clicking user and the token of the Acknowledge button from a ``block_actions``
    payload (None when no action is ours); :class:`HttpError` 400 when malformed."""
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload = json.loads(fields["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError):
        raise HttpError(400, "expected a form with a JSON payload (a Slack interaction)") from None
    if not isinstance(payload, dict) or payload.get("type") != "block_actions":
        raise HttpError(400, "expected a block_actions payload")
    user = payload.get("user")
    actions = payload.get("actions")
    if not isinstance(user, dict) or not isinstance(user.get("id"), str):
        raise HttpError(400, "the payload names no user")
    names = tuple(str(user[k]) for k in ("username", "name") if isinstance(user.get(k), str))
    clicker = SlackUser(user["id"], names)
    for action in actions if isinstance(actions, list) else []:
        if isinstance(action, dict) and action.get("action_id") == SLACK_ACK_ACTION:
            value = action.get("value")
            return clicker, value if isinstance(value, str) else ""
    return clicker, None


def slack_answer(
    server: EscaladeServer, config: LinkConfig, headers: Mapping[str, str], body: bytes
) -> Response:
    """Slack's request, checked and applied: 401 unsigned, 200 with what happened."""
    secret = config.slack_secret()
    if isinstance(secret, str):
        raise HttpError(503, f"Slack actions need {secret}")
    problem = slack_request_problem(secret, headers, body, time.time())
    if problem is not None:
        raise HttpError(401, problem)
    clicker, token = read_slack_action(body)
    if token is None:
        return JSONResponse({"text": "Nothing to do for this action."})
    with server.engine_lock() as engine:
        answer = use_link(engine, config, token, "slack", clicker)
    text = answer.message if answer.status == 200 else f"Not acknowledged: {answer.message}"
    return JSONResponse({"text": text})


# --- pages ---------------------------------------------------------------------------


def page(status: int, title: str, paragraphs: list[str], form: str | None = None) -> HTMLResponse:
    """A minimal HTML page in the site's stylesheet: every value escaped, no script;
    ``form`` is the label of a button that posts to the same URL."""
    body = "".join(f"<p>{html.escape(text)}</p>\n" for text in paragraphs)
    if form is not None:
        body += f'<form method="post"><button type="submit">{html.escape(form)}</button></form>\n'
    text = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="referrer" content="no-referrer">\n<meta name="robots" content="noindex">\n'
        '<link rel="stylesheet" href="/static/escalade.css">\n'
        f"<title>{html.escape(title)} · Escalade</title>\n</head>\n<body>\n<main>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}</main>\n</body>\n</html>\n"
    )
    headers = {"cache-control": "no-store", "x-robots-tag": "noindex"}
    return HTMLResponse(text, status, headers=headers)


def _answer_page(answer: LinkAnswer) -> HTMLResponse:
    return page(answer.status, answer.title, [answer.message])


def confirm_page(engine: Engine, config: LinkConfig, token: str) -> HTMLResponse:
    """The ``GET`` page: who acknowledges which ticket, and one button (nothing written)."""
    found = check_link(engine, config, token)
    if isinstance(found, LinkAnswer):
        return _answer_page(found)
    link, esc = found
    people = engine.pack(esc.pack_id).people
    person: Person | None = people.get(link.person)
    display = person.display if person is not None else link.person
    return page(
        200,
        f"Acknowledge ticket {esc.ticket}?",
        [
            f"{display} ({link.person}) is the {esc.level} owner of ticket {esc.ticket}"
            f" ({esc.policy}).",
            "Acknowledging stops the escalation: nobody else is paged for this level or after.",
        ],
        form=f"Acknowledge as {link.person}",
    )


def link_routes(server: EscaladeServer) -> list[BaseRoute]:
    """``/ack/<token>`` (GET, POST) and ``/slack/actions`` (POST) over ``server``'s engine."""
    with server.engine_lock() as engine:
        configured = engine.rt.links

    def config() -> LinkConfig:
        if configured is None:
            raise HttpError(
                503,
                "acknowledgment links are not configured"
                " (runtime.server.public_url and link_secret_env)",
            )
        return configured

    def ack(request: Request) -> Response:  # sync: Starlette runs it in the thread pool
        token = request.path_params["token"]
        links = config()
        with server.engine_lock() as engine:
            if request.method == "POST":
                return _answer_page(use_link(engine, links, token, "link"))
            return confirm_page(engine, links, token)

    async def slack_actions(request: Request) -> Response:
        links = config()
        limit = min(server.max_body, SLACK_MAX_BODY)
        body = await read_body(request, limit, server.request_timeout)
        headers = {k.lower(): v for k, v in request.headers.items()}
        return await run_in_threadpool(slack_answer, server, links, headers, body)

    return [
        Route("/ack/{token}", ack, methods=["GET", "POST"]),
        Route("/slack/actions", slack_actions, methods=["POST"]),
    ]
