"""Inbound sources: ``runtime.sources`` in ``escalade.yaml``, and how their requests verify.

::

    runtime:
      sources:
        zendesk:
          auth:
            method: hmac                  # hmac | stripe | standard_webhooks | bearer
            header: X-Zendesk-Webhook-Signature
            encoding: base64              # hex (default) | base64
            timestamp_header: X-Zendesk-Webhook-Signature-Timestamp  # signs timestamp + body
            tolerance: 5m                 # how old (or ahead) a signed timestamp may be
            secret_env: ZENDESK_WEBHOOK_SECRET
          map: {...}                      # escalade.runtime.sourcemaps
          expect_every: 15m               # silence past this is a source.silent event

The methods, each an HMAC-SHA256 under the secret the variable ``secret_env`` holds:

``hmac``
    Of the raw body (GitHub ``X-Hub-Signature-256: sha256=<hex>``: ``prefix: "sha256="``),
    or of ``<timestamp><body>`` with ``timestamp_header`` (Zendesk, base64).
``stripe``
    ``Stripe-Signature: t=<unix>,v1=<hex>`` (another ``header`` may be named) of ``<t>.<body>``.
``standard_webhooks``
    ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature: v1,<base64>`` of
    ``<id>.<timestamp>.<body>``; a ``whsec_`` secret is base64, as the specification says.
``bearer``
    ``Authorization: Bearer <the value of token_env>``.

:func:`verify` says why a request is refused (None when it verifies); :func:`sign` makes
the headers a vendor would send (tests and ``docs/integrations.md``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from escalade.runtime.clock import TimeError, format_time, parse_duration, parse_time
from escalade.runtime.sourcemaps import SourceMap, entry_problems, map_of

DEFAULT_TOLERANCE = 300  # seconds a signed timestamp may differ from the wall clock
METHODS = ("hmac", "stripe", "standard_webhooks", "bearer")
DEFAULT_HEADERS = {"stripe": "Stripe-Signature", "standard_webhooks": "webhook-signature"}


class SecretMissing(LookupError):
    """The environment variable holding a source's secret is not set."""


@dataclass(frozen=True, slots=True)
class SourceAuth:
    """How one source's requests are authenticated (see the module)."""

    method: str
    secret_env: str | None = None
    token_env: str | None = None
    header: str | None = None
    prefix: str = ""
    encoding: str = "hex"
    timestamp_header: str | None = None
    tolerance: int = DEFAULT_TOLERANCE

    @property
    def env(self) -> str:
        """The variable holding the secret (or the bearer token)."""
        return str(self.token_env if self.method == "bearer" else self.secret_env)

    @property
    def signature_header(self) -> str:
        return self.header or DEFAULT_HEADERS.get(self.method, "X-Signature")


@dataclass(frozen=True, slots=True)
class Source:
    """One inbound source: its name, authentication, field map and expected cadence."""

    name: str
    auth: SourceAuth
    map: SourceMap
    expect_every: int | None = None


def _duration(raw: Any, default: int | None) -> int | None:
    return default if raw is None else parse_duration(str(raw))


def source_of(name: str, raw: Mapping[str, Any]) -> Source:
    """A :class:`Source` from its settings (checked by :func:`source_problems`)."""
    auth = raw["auth"]
    return Source(
        name=name,
        auth=SourceAuth(
            method=auth["method"],
            secret_env=auth.get("secret_env"),
            token_env=auth.get("token_env"),
            header=auth.get("header"),
            prefix=str(auth.get("prefix", "")),
            encoding=str(auth.get("encoding", "hex")),
            timestamp_header=auth.get("timestamp_header"),
            tolerance=_duration(auth.get("tolerance"), DEFAULT_TOLERANCE) or DEFAULT_TOLERANCE,
        ),
        map=map_of(raw["map"]),
        expect_every=_duration(raw.get("expect_every"), None),
    )


def source_problems(raw: Mapping[str, Any]) -> list[tuple[list[Any], str]]:
    """What the schema cannot say about one source (it holds already): (path below the
    source, message) pairs — durations, JSON pointers, entries, the method's needs."""
    found: list[tuple[list[Any], str]] = []
    auth = raw.get("auth") or {}
    method = auth.get("method")
    for key, where in ((auth.get("tolerance"), ["auth", "tolerance"]),):
        if key is not None:
            found += _duration_problem(key, where)
    if raw.get("expect_every") is not None:
        found += _duration_problem(raw["expect_every"], ["expect_every"])
    if method == "hmac" and not auth.get("header"):
        found.append((["auth"], "method hmac needs header (where the signature is)"))
    if method != "hmac":
        for key in ("prefix", "encoding", "timestamp_header"):
            if key in auth:
                found.append((["auth", key], f"{key} applies to method hmac only"))
    if method == "bearer" and "header" in auth:
        found.append((["auth", "header"], "a bearer token comes in Authorization"))
    mapping = raw.get("map") or {}
    for key in ("id", "type", "at"):
        if key in mapping:
            found += [(["map", key, *p], m) for p, m in entry_problems(mapping[key])]
    fields = mapping.get("fields") or {}
    for path, entry in fields.items():
        found += [(["map", "fields", path, *p], m) for p, m in entry_problems(entry)]
    subjects = {str(p).partition(".")[0] for p in fields}
    for subject in sorted(subjects):
        if f"{subject}.id" not in fields:
            found.append((["map", "fields"], f"map {subject}.id too (the object's id)"))
    return found


def _duration_problem(raw: Any, where: list[Any]) -> list[tuple[list[Any], str]]:
    try:
        seconds = parse_duration(str(raw))
    except TimeError as exc:
        return [(where, str(exc))]
    return [] if seconds >= 1 else [(where, f"must be at least 1s (got {raw!r})")]


def _key(auth: SourceAuth, secret: str) -> bytes:
    if auth.method == "standard_webhooks" and secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            pass
    return secret.encode()


def _mac(key: bytes, content: bytes, encoding: str = "hex") -> str:
    digest = hmac.new(key, content, hashlib.sha256)
    return (
        base64.b64encode(digest.digest()).decode() if encoding == "base64" else digest.hexdigest()
    )


def _timestamp(text: str) -> int | None:
    text = text.strip()
    if text.isdigit():
        return int(text)
    try:
        return parse_time(text)
    except (TimeError, ValueError):
        return None


def _stale(at: int | None, now: float, tolerance: int) -> str | None:
    if at is None:
        return "the signed timestamp is not a time"
    if abs(now - at) > tolerance:
        return (
            f"stale: the signed timestamp is {int(now - at)}s away from now (at most {tolerance}s)"
        )
    return None


def verify(
    auth: SourceAuth, headers: Mapping[str, str], body: bytes, secret: str, now: float
) -> str | None:
    """Why the request is refused (None: it verifies). ``headers``: lower-cased names.
    The body is never part of a message: it is the caller's, unauthenticated."""
    if auth.method == "bearer":
        scheme, _, given = (headers.get("authorization") or "").partition(" ")
        ok = scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), secret.encode()
        )
        return None if ok else "missing or wrong bearer token"
    given = (headers.get(auth.signature_header.lower()) or "").strip()
    if not given:
        return f"no {auth.signature_header} header"
    key = _key(auth, secret)
    if auth.method == "stripe":
        parts = [p.partition("=") for p in given.split(",")]
        stamps = [v for k, _, v in parts if k.strip() == "t"]
        sigs = [v.strip() for k, _, v in parts if k.strip() == "v1"]
        if len(stamps) != 1 or not sigs:
            return f"malformed {auth.signature_header} (t=<unix>,v1=<hex>)"
        expected = _mac(key, stamps[0].strip().encode() + b"." + body)
        stale = _stale(_timestamp(stamps[0]), now, auth.tolerance)
    elif auth.method == "standard_webhooks":
        msg_id = headers.get("webhook-id") or ""
        stamp = headers.get("webhook-timestamp") or ""
        if not msg_id or not stamp:
            return "no webhook-id or webhook-timestamp header"
        sigs = [s.partition(",")[2] for s in given.split() if s.startswith("v1,")]
        expected = _mac(key, f"{msg_id}.{stamp}.".encode() + body, "base64")
        stale = _stale(_timestamp(stamp), now, auth.tolerance)
    else:
        if not given.startswith(auth.prefix):
            return f"{auth.signature_header} does not start with {auth.prefix!r}"
        sigs = [given.removeprefix(auth.prefix).strip()]
        content, stale = body, None
        if auth.timestamp_header:
            stamp = (headers.get(auth.timestamp_header.lower()) or "").strip()
            if not stamp:
                return f"no {auth.timestamp_header} header"
            content = stamp.encode() + body
            stale = _stale(_timestamp(stamp), now, auth.tolerance)
        expected = _mac(key, content, auth.encoding)
    if not any(hmac.compare_digest(expected.encode(), s.encode()) for s in sigs):
        return "the signature does not match"
    return stale


def sign(
    auth: SourceAuth, body: bytes, secret: str, at: int, msg_id: str = "msg"
) -> dict[str, str]:
    """The headers a vendor signing like ``auth`` sends with ``body`` at ``at``."""
    key = _key(auth, secret)
    if auth.method == "bearer":
        return {"Authorization": f"Bearer {secret}"}
    if auth.method == "stripe":
        return {auth.signature_header: f"t={at},v1={_mac(key, f'{at}.'.encode() + body)}"}
    if auth.method == "standard_webhooks":
        mac = _mac(key, f"{msg_id}.{at}.".encode() + body, "base64")
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(at),
            "webhook-signature": f"v1,{mac}",
        }
    headers: dict[str, str] = {}
    content = body
    if auth.timestamp_header:
        stamp = format_time(at)
        headers[auth.timestamp_header] = stamp
        content = stamp.encode() + body
    headers[auth.signature_header] = auth.prefix + _mac(key, content, auth.encoding)
    return headers


def read_secret(auth: SourceAuth, environ: Mapping[str, str]) -> str:
    """The source's secret (or token) from ``environ``; :class:`SecretMissing` when unset."""
    value = environ.get(auth.env)
    if not value:
        raise SecretMissing(auth.env)
    return value


__all__ = [
    "METHODS",
    "SecretMissing",
    "Source",
    "SourceAuth",
    "read_secret",
    "sign",
    "source_of",
    "source_problems",
    "verify",
]
