"""Acknowledgment links: a signed, self-expiring ``<public_url>/ack/<token>`` per assignment.

A token is ``base64url(claims) "." base64url(HMAC-SHA256(key, claims))`` where the
claims name the escalation, the person, the level they were assigned at (policy,
level index, cycle and level name: :class:`LevelKey`) and an expiry time. The key
is the secret in the environment variable ``runtime.server.link_secret_env``, so
every process with the same secret (``escalade event`` on the command line,
``escalade serve``) builds the same link for the same assignment, and nothing is
stored: a link is a pure function of the secret and the escalation.

A link stops working when the escalation leaves the level it was issued for (a
failover, a handoff, a transfer, a new cycle of the chain), when it is no longer
waiting for an acknowledgment (state ``assigned`` or ``triage``), or at its expiry
time (the level's ack timeout, at least :data:`MIN_TTL`). The first use
acknowledges, which changes the state, so a link is used once.
:func:`link_refusal` says which of these refused it.

Runtime core: no web framework here; :mod:`escalade.runtime.web.links` serves the
links and :mod:`escalade.runtime.engine.actions` puts them in the messages.

>>> key = b"k" * 32
>>> link = AckLink(7, "alice", LevelKey("enterprise_critical", 0, 0, "primary"), 1_800_000_000)
>>> read_token(key, sign_token(key, link)) == link
True
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from escalade.runtime.clock import format_time
from escalade.runtime.pack import RulePack
from escalade.runtime.settings import RuntimeSettings
from escalade.runtime.store import Escalation

MIN_TTL = 3600  # a link lives at least an hour (unless the escalation moves on)
NO_TIMEOUT_TTL = 24 * 3600  # a level without an ack timeout (triage, transfer)
MIN_SECRET_BYTES = 16
MAX_TOKEN_CHARS = 1024
WAITING_STATES = ("assigned", "triage")  # the states a link may acknowledge from
_FORMAT = 1
_CONTEXT = b"escalade ack link v1\n"  # the key signs nothing else with this prefix

RefusalKind = Literal["forged", "expired", "used", "not_assignee"]


@dataclass(frozen=True, slots=True)
class LevelKey:
    """Where in its escalation an assignment is: policy, chain index, cycle and level name."""

    policy: str
    index: int
    cycle: int
    name: str

    @classmethod
    def of(cls, esc: Escalation) -> LevelKey:
        """The level ``esc`` is at now."""
        return cls(esc.policy, esc.level_index, esc.cycle, esc.level or "")


@dataclass(frozen=True, slots=True)
class AckLink:
    """What a token says: ``person`` may acknowledge escalation ``escalation_id`` while it is
    at ``level``, until ``expires`` (epoch seconds)."""

    escalation_id: int
    person: str
    level: LevelKey
    expires: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a link does not acknowledge: ``forged`` (not signed with our key, or altered),
    ``expired`` (the escalation moved on, or the time ran out), ``used`` (already
    acknowledged), ``not_assignee`` (someone else holds the level now)."""

    kind: RefusalKind
    reason: str


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """``runtime.server.public_url`` and the environment variable of the link key; the key is
    read at each use, so a rotated secret needs no restart (and old links stop working).

    ``slack_signing_secret_env`` is ``runtime.notifiers.slack.signing_secret_env``: Slack's
    secret for the requests its buttons send back."""

    public_url: str
    secret_env: str
    slack_signing_secret_env: str | None = None
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)

    def key(self) -> bytes | str:
        """The link key, or why there is none (unset, or too short to be a key)."""
        value = self.environ.get(self.secret_env, "")
        if not value:
            return f"${self.secret_env} is not set"
        if len(value.encode()) < MIN_SECRET_BYTES:
            return f"${self.secret_env} is shorter than {MIN_SECRET_BYTES} bytes"
        return value.encode()

    def slack_secret(self) -> bytes | str:
        """Slack's signing secret, or why there is none."""
        name = self.slack_signing_secret_env
        if not name:
            return "runtime.notifiers.slack.signing_secret_env is not configured"
        value = self.environ.get(name, "")
        return value.encode() if value else f"${name} is not set"

    def url(self, token: str) -> str:
        """``<public_url>/ack/<token>``."""
        return f"{self.public_url.rstrip('/')}/ack/{token}"


def link_config(
    settings: RuntimeSettings, environ: Mapping[str, str] | None = None
) -> LinkConfig | None:
    """The link configuration of ``settings`` (None without ``runtime.server.public_url``)."""
    server = settings.server
    if not server.public_url or not server.link_secret_env:
        return None
    slack = settings.notifiers.slack if settings.notifiers is not None else None
    return LinkConfig(
        public_url=server.public_url,
        secret_env=server.link_secret_env,
        slack_signing_secret_env=slack.signing_secret_env if slack is not None else None,
        environ=os.environ if environ is None else environ,
    )


def link_expiry(now: int, ack_timeout: int | None) -> int:
    """When a link issued at ``now`` expires: the level's ack timeout, at least
    :data:`MIN_TTL` (:data:`NO_TIMEOUT_TTL` for a level without one).

    >>> link_expiry(0, 300), link_expiry(0, 7200), link_expiry(0, None)
    (3600, 7200, 86400)
    """
    return now + max(NO_TIMEOUT_TTL if ack_timeout is None else ack_timeout, MIN_TTL)


def holds(pack: RulePack, esc: Escalation, person: str) -> bool:
    """Whether ``person`` holds ``esc``: its owner, or a member of its owning team (a team
    owns a level ``all(T)`` or one without a rotation; otherwise a person is the owner)."""
    team = pack.teams.get(esc.owner or "") if esc.owner_kind == "team" else None
    return person in team.members if team is not None else esc.owner == person


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(key: bytes, claims: str) -> str:
    return _b64(hmac.new(key, _CONTEXT + claims.encode("ascii"), hashlib.sha256).digest())


def sign_token(key: bytes, link: AckLink) -> str:
    """The token for ``link`` under ``key`` (URL-safe: base64url and one dot)."""
    level = link.level
    claims = [_FORMAT, link.escalation_id, link.person]
    claims += [level.policy, level.index, level.cycle, level.name, link.expires]
    encoded = _b64(json.dumps(claims, separators=(",", ":")).encode())
    return f"{encoded}.{_mac(key, encoded)}"


def read_token(key: bytes, token: str) -> AckLink | Refusal:
    """The link ``token`` carries, or a ``forged`` refusal when our key did not sign it as
    it is (altered, truncated, signed with another key, not a token at all)."""
    forged = Refusal("forged", "this link is not one Escalade issued (or it was altered)")
    encoded, dot, mac = token.partition(".")
    if not dot or len(token) > MAX_TOKEN_CHARS or not token.isascii():
        return forged
    if not hmac.compare_digest(_mac(key, encoded), mac):
        return forged
    try:
        claims = json.loads(_unb64(encoded))
    except (ValueError, binascii.Error):
        return forged
    shape = (int, int, str, str, int, int, str, int)
    if not isinstance(claims, list) or len(claims) != len(shape) or claims[0] != _FORMAT:
        return forged
    if not all(type(v) is t for v, t in zip(claims, shape, strict=True)):
        return forged
    _, esc_id, person, policy, index, cycle, name, expires = claims
    return AckLink(esc_id, person, LevelKey(policy, index, cycle, name), expires)


def link_refusal(
    link: AckLink, esc: Escalation | None, pack: RulePack | None, now: int
) -> Refusal | None:
    """Why ``link`` may not acknowledge ``esc`` (its escalation as it is now, ``pack`` its
    pack) at ``now``; None when it may."""
    if esc is None or pack is None or esc.id != link.escalation_id:
        return Refusal("expired", "this link's escalation no longer exists")
    ticket = f"ticket {esc.ticket}"
    if esc.state == "acknowledged":
        when = f" at {format_time(esc.acked_at)}" if esc.acked_at is not None else ""
        return Refusal("used", f"{ticket} was already acknowledged by {esc.owner}{when}")
    if esc.state not in WAITING_STATES:
        return Refusal("expired", f"{ticket} is {esc.state}; it awaits no acknowledgment")
    if LevelKey.of(esc) != link.level:
        return Refusal(
            "expired",
            f"{ticket} moved on from the {link.level.name or 'first'} level this link was"
            f" issued for (now: {esc.level} owner {esc.owner})",
        )
    if now >= link.expires:
        return Refusal("expired", f"this link expired at {format_time(link.expires)}")
    if not holds(pack, esc, link.person):
        return Refusal(
            "not_assignee",
            f"{link.person} is no longer the assignee of {ticket} (owner {esc.owner})",
        )
    return None
