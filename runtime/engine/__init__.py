"""The escalation engine (SPEC §4), split along its seams.

::

    transitions  the states and the inputs that move between them, as data
    loaded       a rule pack as the engine runs it (typed policies, compiled conditions)
    context      what every decision shares: store, packs, limits, the moment
    ownership    who a reference reaches now (on call, team members, absences)
    actions      steps and notifications become outbox rows
    chain        routing, the owner chain, failover, failures and triage
    delivery     the outbox after the commit: dispatch, receipts, retries, fallbacks
    timers       what a due timer does, by kind
    commands     operator decisions: ack, resolve, close, transfer, post-mortem
    status       a ticket's escalation as operators read it
    intake       events in: one per transaction, or many in one (the batch API)
    shell        :class:`Engine`: one transaction per input, dispatch after the commit

Imports go down that list only (a test checks there is no cycle).
"""

from __future__ import annotations

from escalade.runtime.engine.context import (
    LOOP_LIMIT,
    LOOP_WINDOW,
    RETRY_ATTEMPTS,
    RETRY_BASE,
    RETRY_CAP,
    ClockError,
    Limits,
    Refused,
)
from escalade.runtime.engine.loaded import LoadedPack, PolicyRules
from escalade.runtime.engine.shell import Engine, Outcome
from escalade.runtime.pack import PackError

__all__ = [
    "LOOP_LIMIT",
    "LOOP_WINDOW",
    "RETRY_ATTEMPTS",
    "RETRY_BASE",
    "RETRY_CAP",
    "ClockError",
    "Engine",
    "Limits",
    "LoadedPack",
    "Outcome",
    "PackError",
    "PolicyRules",
    "Refused",
]
