"""What every decision of the engine shares: the store, its packs, the limits, the moment.

A decision runs inside the shell's one transaction (:mod:`.shell`); the
functions of :mod:`.chain`, :mod:`.actions`, :mod:`.delivery`, :mod:`.timers`
and :mod:`.commands` take a :class:`Runtime` and a :class:`Moment`, read and
write through ``rt.store``, and append every decision to the audit trail
through :meth:`Runtime.audit`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from escalade.runtime import audit, settings, tracing
from escalade.runtime.engine.loaded import LoadedPack
from escalade.runtime.engine.transitions import next_state
from escalade.runtime.links import LinkConfig
from escalade.runtime.settings import LastResort
from escalade.runtime.store import Escalation, Store

# The defaults live with the settings that override them (runtime.loop_breaker, runtime.retry).
LOOP_LIMIT, LOOP_WINDOW = settings.DEFAULT_LOOP_LIMIT, settings.DEFAULT_LOOP_WINDOW
RETRY_ATTEMPTS = settings.DEFAULT_RETRY_ATTEMPTS
RETRY_BASE, RETRY_CAP = settings.DEFAULT_RETRY_BASE, settings.DEFAULT_RETRY_CAP


class Refused(Exception):
    """An operator command the engine refuses; the message says why (nothing changed)."""


class ClockError(ValueError):
    """A time earlier than the store's clock."""


@dataclass(slots=True)
class Moment:
    """The moment being decided: processing time, who acts and the audit cause."""

    now: int
    actor: str = "escalade"
    cause: str = ""


@dataclass(frozen=True, slots=True)
class Limits:
    """The routing-loop breaker, the delivery retry and the clock skew (``runtime.*``).

    More than ``loop_limit`` handoffs of one ticket within ``loop_window`` seconds
    go to triage. A message whose policy has no ``check delivery`` is sent again
    after ``retry_base`` seconds without a receipt, doubling up to ``retry_cap``,
    at most ``retry_attempts`` sends in all. An event whose ``at`` is more than
    ``max_clock_skew`` seconds ahead of the processing clock is dead-lettered."""

    loop_limit: int = LOOP_LIMIT
    loop_window: int = LOOP_WINDOW
    retry_attempts: int = RETRY_ATTEMPTS
    retry_base: int = RETRY_BASE
    retry_cap: int = RETRY_CAP
    max_clock_skew: int = settings.DEFAULT_MAX_CLOCK_SKEW

    def __post_init__(self) -> None:
        if self.loop_limit < 1 or self.loop_window < 1:
            raise ValueError(
                "the routing-loop breaker needs loop_limit >= 1 and loop_window >= 1 second"
                f" (got {self.loop_limit} and {self.loop_window})"
            )
        if self.retry_attempts < 1 or self.retry_base < 1 or self.retry_cap < self.retry_base:
            raise ValueError(
                "delivery retries need retry_attempts >= 1, retry_base >= 1 second and"
                f" retry_cap >= retry_base (got {self.retry_attempts}, {self.retry_base}"
                f" and {self.retry_cap})"
            )
        if self.max_clock_skew < 0:
            raise ValueError(f"max_clock_skew must be >= 0 seconds (got {self.max_clock_skew})")

    def retry_delay(self, attempts: int) -> int:
        """Seconds to wait after attempt number ``attempts`` (1, 2, ...) without a receipt:
        ``retry_base`` doubled each time, at most ``retry_cap``."""
        return int(min(self.retry_cap, self.retry_base * 2 ** max(0, min(attempts - 1, 30))))


class Runtime:
    """The store, the packs it holds (compiled once per process) and the limits.

    ``links``: with ``runtime.server.public_url`` and its key, a message to the assignee
    carries an acknowledgment link (:mod:`escalade.runtime.links`)."""

    def __init__(
        self,
        store: Store,
        limits: Limits,
        last_resort: LastResort | None = None,
        links: LinkConfig | None = None,
    ) -> None:
        self.store = store
        self.limits = limits
        self.last_resort = last_resort
        self.links = links
        self.packs: dict[int, LoadedPack] = {}
        self.outbox_dirty = True  # rows may be pending from an earlier process
        # Pending rows may be in the database (an earlier process, a requeue), not only
        # among those the open transaction queued (Store.queued_outbox).
        self.outbox_stored = True

    def pack(self, pack_id: int) -> LoadedPack:
        """The pack ``pack_id`` of the store, compiled (cached)."""
        found = self.packs.get(pack_id)
        if found is None:
            found = LoadedPack.stored(pack_id, json.loads(self.store.pack_body(pack_id)))
            self.packs[pack_id] = found
        return found

    def move(self, esc: Escalation, event: str) -> None:
        """Change ``esc``'s state along the transition table (a bug raises, see
        :class:`~escalade.runtime.engine.transitions.IllegalTransition`)."""
        before, esc.state = esc.state, next_state(esc.state, event)
        tracing.event(
            "escalade.state", escalation=esc.id, transition=event, before=before, state=esc.state
        )
        if event in ("route", "assign", "ack", "transfer"):
            esc.facts.unowned = None  # someone available holds it now

    def audit(
        self,
        m: Moment,
        kind: str,
        esc: Escalation | None,
        pack: LoadedPack,
        policy: str | None,
        *,
        reason: str,
        ticket: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append one decision to the hash-chained trail, stamped with pack and policy."""
        audit.append(
            self.store,
            at=m.now,
            kind=kind,
            actor=m.actor,
            reason=reason,
            ticket=esc.ticket if esc is not None else ticket,
            escalation_id=esc.id if esc is not None else None,
            policy=policy,
            pack_version=pack.version,
            detail=detail,
        )
