"""Delivery receipts from the channels that have them (the signed webhook and the pager).

A receiving system confirms a message it took by POSTing to ``/receipts/<key>``
with ``X-Escalade-Signature: t=<unix seconds>,v1=<hex>``, where ``v1`` is the
HMAC-SHA256 of ``<t>.<key>`` under that channel's secret (as Stripe and Standard
Webhooks sign). ``t`` is read on the wall clock and may be at most
:data:`TOLERANCE` seconds old (or ahead), so a captured receipt cannot be
replayed later; the message must still await a receipt on that channel.

Refused receipts never reach the hash-chained audit trail, which an
unauthenticated caller must not be able to grow: they go to the rate-limited
:class:`SecurityLog` and to a counter.

>>> header = sign_receipt("s3cret", "esc-1/2", 1_800_000_000)
>>> verify_receipt("s3cret", "esc-1/2", header, 1_800_000_060) is None
True
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import time
from collections import Counter

from escalade.runtime.store import OutboxMessage

TOLERANCE = 300  # seconds a receipt's timestamp may differ from the wall clock
RECEIPT_CHANNELS = ("webhook", "pager")
_HEADER = re.compile(r"^t=(\d{1,12}),v1=([0-9a-f]{64})$")


def _mac(secret: str, key: str, at: int) -> str:
    return hmac.new(secret.encode(), f"{at}.{key}".encode(), hashlib.sha256).hexdigest()


def sign_receipt(secret: str, key: str, at: int) -> str:
    """The ``X-Escalade-Signature`` value of a receipt for ``key`` made at ``at``."""
    return f"t={at},v1={_mac(secret, key, at)}"


def verify_receipt(secret: str, key: str, header: str | None, now: float) -> str | None:
    """Why the receipt header is refused (None when it is signed by ``secret`` for ``key``
    within :data:`TOLERANCE` of ``now``)."""
    found = _HEADER.match((header or "").strip())
    if found is None:
        return "missing or malformed signature (t=<unix seconds>,v1=<hex HMAC of t.key>)"
    at = int(found.group(1))
    if abs(now - at) > TOLERANCE:
        return f"the receipt's timestamp is {int(now - at)}s away from now (at most {TOLERANCE}s)"
    if not hmac.compare_digest(_mac(secret, key, at), found.group(2)):
        return "the signature does not match"
    return None


def receipt_channels(msg: OutboxMessage) -> set[str]:
    """The channels that may confirm ``msg``: the signed webhook for a webhook channel or an
    automated action, the pager for a pager channel or a page to a person with a pager."""
    channel = msg.payload.get("channel")
    if isinstance(channel, dict):
        return {str(channel.get("kind"))} & set(RECEIPT_CHANNELS)
    if msg.action == "page":
        contacts = msg.payload.get("contacts")
        return {"pager"} if isinstance(contacts, dict) and contacts.get("pager") else set()
    if msg.action == "notify":
        return set()
    return {"webhook"}


class SecurityLog:
    """Refused requests, logged at WARNING at most ``per_minute`` lines a minute (then one
    line saying how many were left out) and counted by reason."""

    def __init__(self, per_minute: int = 20) -> None:
        self.per_minute = per_minute
        self.counts: Counter[str] = Counter()
        self._log = logging.getLogger("escalade.runtime.security")
        self._lock = threading.Lock()
        self._window = 0
        self._lines = 0
        self._dropped = 0

    def refused(self, reason: str, detail: str) -> None:
        """Count a refusal under ``reason`` (a short label) and log ``detail`` (rate-limited)."""
        minute = int(time.monotonic() // 60)
        with self._lock:
            self.counts[reason] += 1
            if minute != self._window:
                if self._dropped:
                    self._log.warning("%d more refusals were not logged", self._dropped)
                self._window, self._lines, self._dropped = minute, 0, 0
            if self._lines >= self.per_minute:
                self._dropped += 1
                return
            self._lines += 1
        self._log.warning("refused %s: %s", reason, detail)
