"""API tokens of ``escalade serve``: who a request speaks for, and what each role may do.

A token belongs to a person of the directory (``person:alice``) or to a system
(``service:zendesk``) and carries one role. Its secret is 32 random bytes shown
once as ``esc_<id>_<base64url>``; the store keeps only its SHA-256 (a secret that
random needs no slow hash), compared in constant time. Creating and revoking are
audited in the hash-chained trail.

Roles are data: :data:`GRANTS` says which roles each one includes (responder ⊂
lead ⊂ admin; ``ingest``, for systems that send events, is apart), and
:data:`ROUTE_ROLES` which role each route of the HTTP API needs — a new route
(packs, tokens, sources) is one more line there.

>>> issued = create_token(store, principal="person:alice", role="responder",
...                       by="operator", at=now)  # doctest: +SKIP
>>> authenticate(store, issued.secret).principal  # doctest: +SKIP
'person:alice'
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from escalade.runtime import audit
from escalade.runtime.store import ApiToken, Store

SECRET_PREFIX = "esc_"  # noqa: S105 (a prefix that makes leaked tokens recognisable)
SECRET_BYTES = 32
PERSON_ROLES = ("responder", "lead", "admin")
SERVICE_ROLES = ("ingest", "admin")
ROLES = ("responder", "lead", "admin", "ingest")
GRANTS: dict[str, frozenset[str]] = {
    "responder": frozenset({"responder"}),
    "lead": frozenset({"responder", "lead"}),
    "admin": frozenset({"responder", "lead", "admin"}),
    "ingest": frozenset({"ingest"}),
}
# The role each route of the HTTP API needs (web.answers.ROUTES' templates). A responder
# reaches only the tickets it owns; the server checks that against the escalation.
ROUTE_ROLES: dict[str, str] = {
    "/events": "ingest",
    "/tickets/{id}": "responder",
    "/tickets/{id}/ack": "responder",
    "/tickets/{id}/resolve": "responder",
    "/tickets/{id}/close": "responder",
    "/tickets/{id}/transfer": "responder",
    "/tickets/{id}/postmortem": "responder",
}
# Routes no token guards: probes, scrapers, and receipts (signed by the channel instead).
OPEN_ROUTES = frozenset({"/receipts/{key}", "/metrics", "/healthz"})
_SERVICE_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")


class TokenError(Exception):
    """A token that cannot be created or revoked as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request speaks for: ``person:NAME``, ``service:NAME`` or ``anonymous`` (a server
    without credentials), with every role its credential grants."""

    name: str
    roles: frozenset[str]
    token_id: str | None = None

    @property
    def person(self) -> str | None:
        """The directory name of a person's token (None for a service or anonymous)."""
        kind, _, name = self.name.partition(":")
        return name if kind == "person" else None

    @property
    def actor(self) -> str:
        """Who the audit trail names: the person (as ``--by`` does), else the principal."""
        return self.person or ("operator" if self.name == "anonymous" else self.name)

    def may(self, role: str) -> bool:
        """Whether one of this principal's roles includes ``role``."""
        return any(role in GRANTS[own] for own in self.roles)

    def describe(self) -> str:
        """``person:alice (responder)``, for error messages."""
        return f"{self.name} ({', '.join(sorted(self.roles))})"


# A server without any credential (loopback only): every request may do everything.
ANONYMOUS = Principal("anonymous", frozenset({"admin", "ingest"}))
# The one shared bearer token of runtime.server.token_env (deprecated): a system's credential.
TOKEN_ENV = Principal("service:token_env", frozenset({"admin", "ingest"}))
# Who asks for an open route: nobody in particular, with no role.
PUBLIC = Principal("public", frozenset())


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just created: the stored row and its secret, to be shown once."""

    token: ApiToken
    secret: str


def secret_hash(secret: str) -> str:
    """The SHA-256 (hex) of a secret, as the store keeps it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def token_id_of(secret: str) -> str | None:
    """The id inside ``esc_<id>_<secret>`` (None when ``secret`` does not look like one)."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    token_id, sep, rest = secret.removeprefix(SECRET_PREFIX).partition("_")
    return token_id if sep and token_id and rest else None


def principal_of(kind: str, name: str, role: str) -> str:
    """``person:NAME`` or ``service:NAME`` once ``role`` fits the kind; :class:`TokenError`
    otherwise (a service name is lower-case letters, digits, ``_ . -``)."""
    allowed = PERSON_ROLES if kind == "person" else SERVICE_ROLES
    if role not in allowed:
        raise TokenError(f"a {kind} token's role is one of {', '.join(allowed)}, not {role!r}")
    if kind == "service" and not _SERVICE_NAME.fullmatch(name):
        raise TokenError(
            f"a service name is lower-case letters, digits, '_', '.' or '-', not {name!r}"
        )
    return f"{kind}:{name}"


def create_token(store: Store, *, principal: str, role: str, by: str, at: int) -> IssuedToken:
    """Store a new token for ``principal`` (see :func:`principal_of`) and audit it; the
    secret is returned once and never stored."""
    token_id = secrets.token_hex(6)
    raw = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=").decode()
    secret = f"{SECRET_PREFIX}{token_id}_{raw}"
    token = ApiToken(token_id, principal, role, secret_hash(secret), at, by)
    with store.transaction():
        store.add_token(token)
        audit.append(
            store,
            at=at,
            kind="token_created",
            actor=by,
            reason=f"token {token_id} created for {principal} ({role})",
            detail={"token": token_id, "principal": principal, "role": role},
        )
    return IssuedToken(token, secret)


def revoke_token(store: Store, token_id: str, *, by: str, at: int) -> ApiToken:
    """Revoke an active token and audit it; :class:`TokenError` for an unknown or revoked one."""
    with store.transaction():
        token = store.token(token_id)
        if token is None:
            raise TokenError(f"no token has the id {token_id!r}")
        if not store.revoke_token(token_id, at, by):
            raise TokenError(f"token {token_id} is revoked already")
        audit.append(
            store,
            at=at,
            kind="token_revoked",
            actor=by,
            reason=f"token {token_id} of {token.principal} ({token.role}) revoked",
            detail={"token": token_id, "principal": token.principal, "role": token.role},
        )
    token.revoked_at, token.revoked_by = at, by
    return token


def authenticate(store: Store, secret: str) -> Principal | None:
    """The principal of an active token whose secret is ``secret`` (None otherwise)."""
    token_id = token_id_of(secret)
    token = None if token_id is None else store.token(token_id)
    if token is None or token.revoked_at is not None:
        return None
    if not hmac.compare_digest(secret_hash(secret), token.secret_hash):
        return None
    return Principal(token.principal, frozenset({token.role}), token.id)


def roles_with(role: str) -> list[str]:
    """The roles that include ``role`` (``responder`` -> responder, lead, admin)."""
    return [own for own in ROLES if role in GRANTS[own]]


def needed_role(route: str) -> str | None:
    """The role ``route`` needs (None for an open route); a route in neither table needs
    ``admin``, so a new endpoint is closed until it is given its line."""
    if route in OPEN_ROUTES:
        return None
    return ROUTE_ROLES.get(route, "admin")
