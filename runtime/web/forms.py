"""What the pages' forms share: reading a posted form, telling where it came from, and
turning a ticket form into the JSON API's body (and a refusal back into its field).

Forms are ``application/x-www-form-urlencoded`` (what a browser sends without a file),
at most :data:`MAX_FORM` bytes; the first value of each name counts.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from starlette.requests import Request

from escalade.runtime.web.answers import HttpError
from escalade.runtime.web.bodies import read_body

FORM_TYPE = "application/x-www-form-urlencoded"
MAX_FORM = 64 * 1024  # bytes of a posted form
MAX_FIELDS = 32
FORM_ACTIONS = ("ack", "transfer", "resolve", "close", "postmortem")


def came_over_https(request: Request) -> bool:
    """Whether the browser reached us over https (directly or through a proxy saying so)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another site: ``Sec-Fetch-Site``
    when it sends one, else an ``Origin`` naming another host. ``Origin: null`` tells
    nothing (browsers send it under ``Referrer-Policy: no-referrer``): the CSRF token
    decides then."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return True
    return urlsplit(origin).netloc == request.headers.get("host", "")


def safe_next(target: str | None) -> str:
    """Where to go after signing in: a path of this site only (else ``/``)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


async def read_form(request: Request, timeout: float) -> dict[str, str]:
    """A posted form (URL-encoded, at most :data:`MAX_FORM` bytes, arriving within
    ``timeout`` seconds: 413 and 408 otherwise), the first value of each name."""
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    body = await read_body(request, MAX_FORM, timeout)
    if body and media != FORM_TYPE:
        raise HttpError(415, f"a page's form is sent as {FORM_TYPE}, not {media or 'nothing'}")
    try:
        pairs = parse_qsl(body.decode(), keep_blank_values=True, max_num_fields=MAX_FIELDS)
    except (UnicodeDecodeError, ValueError):
        raise HttpError(400, "the form is not URL-encoded UTF-8 text") from None
    form: dict[str, str] = {}
    for name, value in pairs:
        form.setdefault(name, value)
    return form


def error_field(action: str, message: str) -> str:
    """The form field an engine's or the API's refusal is about (the form itself when
    none): ``transfer-reason``, ``transfer-sla``, ``transfer-to``, ``postmortem-link``..."""
    if action == "transfer":
        if "`to`" in message or "directory" in message or "absent" in message:
            return "transfer-to"
        if "reason" in message:
            return "transfer-reason"
        if "SLA" in message or message.startswith("sla:"):
            return "transfer-sla"
    if action == "postmortem" and "link" in message:
        return "postmortem-link"
    return action


def action_body(action: str, form: dict[str, str]) -> dict[str, str]:
    """The JSON API's body for a ticket form (the actor is the signed-in person's)."""
    if action == "ack":
        override = form.get("override", "").strip()
        return {"override": override} if override else {}
    if action == "transfer":
        return {name: form.get(name, "") for name in ("to", "reason", "sla")}
    if action == "postmortem":
        return {"link": form.get("link", "").strip()}
    return {}
