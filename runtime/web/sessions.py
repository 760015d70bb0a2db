"""Signed sessions of the web pages, and the CSRF tokens of their forms.

A session is a cookie the server can check without storing it: the token id,
principal and role it was opened with and when it ends, as base64url JSON,
then a dot and the HMAC-SHA256 of that text. The key is random per process
(:func:`secrets.token_bytes`), so every session ends when the server restarts.
Each request re-reads the token from the store: revoking the token ends its
sessions at once. Signing out remembers the session's nonce until it expires,
so a copied cookie does not outlive the sign-out.

A form's CSRF token is the HMAC of the session's nonce under another label; a
page signed in with ``Authorization: Bearer`` needs none (a browser never sends
that header across sites on its own).

>>> keeper = SessionKeeper(key=b"k" * 32)
>>> cookie = keeper.issue(Session("abc", "person:alice", "lead", 100, "n"))
>>> keeper.read(cookie, now=50).principal
'person:alice'
>>> keeper.read(cookie, now=100) is None  # expired
True
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from dataclasses import dataclass

COOKIE = "escalade_session"
LIFETIME = 8 * 3600  # seconds: one shift
_SESSION_LABEL = b"session:"
_CSRF_LABEL = b"csrf:"


@dataclass(frozen=True, slots=True)
class Session:
    """What a session cookie says: the API token it was opened with, whose it is, the
    token's role, when it ends (epoch seconds) and its random nonce."""

    token_id: str
    principal: str
    role: str
    expires: int
    nonce: str


class SessionKeeper:
    """Issues and checks session cookies and CSRF tokens with one key (random by default)."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self._ended: dict[str, int] = {}  # nonce -> expiry, for signed-out sessions
        self._lock = threading.Lock()

    def _mac(self, label: bytes, text: str) -> str:
        return hmac.new(self._key, label + text.encode(), hashlib.sha256).hexdigest()

    def open(self, token_id: str, principal: str, role: str, now: int) -> Session:
        """A new session for a token, ending :data:`LIFETIME` seconds after ``now``."""
        return Session(token_id, principal, role, now + LIFETIME, secrets.token_urlsafe(16))

    def issue(self, session: Session) -> str:
        """The cookie value of ``session``."""
        doc = {
            "t": session.token_id,
            "p": session.principal,
            "r": session.role,
            "e": session.expires,
            "n": session.nonce,
        }
        compact = json.dumps(doc, sort_keys=True, separators=(",", ":"))
        text = base64.urlsafe_b64encode(compact.encode()).decode().rstrip("=")
        return f"{text}.{self._mac(_SESSION_LABEL, text)}"

    def read(self, cookie: str | None, now: int) -> Session | None:
        """The session of a cookie this keeper issued, unexpired and not signed out (None
        for anything else: a forged, altered, old or malformed cookie)."""
        text, _, mac = (cookie or "").partition(".")
        if not text or not _same(mac, self._mac(_SESSION_LABEL, text)):
            return None
        try:
            doc = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
            session = Session(
                str(doc["t"]), str(doc["p"]), str(doc["r"]), int(doc["e"]), str(doc["n"])
            )
        except (ValueError, KeyError, TypeError):
            return None
        if session.expires <= now:
            return None
        with self._lock:
            if session.nonce in self._ended:
                return None
        return session

    def end(self, session: Session, now: int) -> None:
        """Sign ``session`` out: its cookie is refused from now on (until it would expire)."""
        with self._lock:
            self._ended = {n: e for n, e in self._ended.items() if e > now}
            self._ended[session.nonce] = session.expires

    def csrf(self, session: Session) -> str:
        """The CSRF token of ``session``'s forms."""
        return self._mac(_CSRF_LABEL, session.nonce)

    def csrf_ok(self, session: Session, given: str | None) -> bool:
        """Whether ``given`` is ``session``'s CSRF token (compared in constant time)."""
        return given is not None and _same(given, self.csrf(session))


def _same(given: str, expected: str) -> bool:
    """Constant-time equality that also takes text no browser should send (non-ASCII)."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())
