"""Source heartbeats: ``runtime.sources.<name>.expect_every`` and ``source.silent`` events.

Every verified request of a source (``POST /sources/<name>`` or its
``/heartbeat``) records when it was seen in the state of ticket ``source:<name>``
(``source.last_seen``) and makes sure a ``source_silent`` timer is armed for it. All of
it is in the store, so it survives a restart. The timer, when due, looks at the last
sighting (:func:`silence`): seen since it was armed, it is armed again for
``last_seen + expect_every``; else it applies a ``source.silent`` event for the ticket
(``source.status = silent``, ``source.silent_since`` = the last sighting), which
routes like any event. The next request of a silent source sends
``source.recovered`` (``source.status = live``). The pack declares both events and
``schema source { id, name, status, silent_since, last_seen }`` (the bundled policies
do); a pack without them gets no heartbeat events (a warning says so at start).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from escalade.runtime.clock import format_time
from escalade.runtime.store import Store, Timer

log = logging.getLogger("escalade.runtime.sources")

SILENT_KIND = "source_silent"  # the timer kind
EVENTS = ("source.silent", "source.recovered")


def source_ticket(name: str) -> str:
    """The ticket a source's heartbeat events are about."""
    return f"source:{name}"


def _event(kind: str, name: str, at: int, fields: Mapping[str, Any]) -> dict[str, Any]:
    ticket = source_ticket(name)
    return {
        "id": f"{ticket}:{kind}:{fields.get('silent_since')}",
        "type": f"source.{kind}",
        "at": format_time(at),
        "data": {"source": {"id": ticket, "name": name, **fields}},
    }


def arm(store: Store, name: str, every: int, now: int) -> None:
    """Arm the source's timer unless it is (inside the open transaction)."""
    ticket = source_ticket(name)
    if not store.has_timer(ticket, SILENT_KIND, name):
        store.add_timer(
            Timer(
                due=now + every,
                kind=SILENT_KIND,
                ticket=ticket,
                key=name,
                payload={"source": name, "every": every, "armed": now},
            )
        )


def seen(store: Store, name: str, every: int | None, now: int) -> dict[str, Any] | None:
    """Record a sighting of source ``name`` (inside the open transaction); the
    ``source.recovered`` event to apply when it was silent."""
    ticket = source_ticket(name)
    state, times = store.ticket_state(ticket)
    fields = state.setdefault("source", {})
    was = fields.get("status")
    fields["last_seen"] = format_time(now)
    times["source.last_seen"] = now
    store.put_ticket_state(ticket, state, times)
    if every is not None:
        arm(store, name, every, now)
    if was != "silent":
        return None
    since = fields.get("silent_since")
    return _event("recovered", name, now, {"status": "live", "silent_since": since})


def silence(store: Store, timer: Timer) -> dict[str, Any] | None:
    """A due ``source_silent`` timer (taken from the store): the ``source.silent`` event to
    apply, or None (seen since: armed again; already silent: nothing until it is seen)."""
    name, every = str(timer.payload["source"]), int(timer.payload["every"])
    state, times = store.ticket_state(timer.ticket)
    last = times.get("source.last_seen", int(timer.payload.get("armed", timer.due - every)))
    if last + every > timer.due:
        arm(store, name, every, last)
        return None
    if state.get("source", {}).get("status") == "silent":
        return None
    return _event(
        "silent", name, timer.due, {"status": "silent", "silent_since": format_time(last)}
    )


@dataclass(frozen=True, slots=True)
class SourceHealth:
    """What status, metrics and the overview show of one watched source."""

    name: str
    expect_every: int | None
    last_seen: int | None  # seconds since the epoch
    silent: bool

    def since(self, now: int) -> int | None:
        return None if self.last_seen is None else max(0, now - self.last_seen)


def health(store: Store, every: Mapping[str, int | None]) -> list[SourceHealth]:
    """Each source's last sighting and whether it is silent (reads only)."""
    found = []
    for name in sorted(every):
        state, times = store.ticket_state(source_ticket(name))
        silent = state.get("source", {}).get("status") == "silent"
        found.append(SourceHealth(name, every[name], times.get("source.last_seen"), silent))
    return found


def as_raw(event: Mapping[str, Any]) -> str:
    return json.dumps(event, sort_keys=True)


__all__ = [
    "EVENTS",
    "SILENT_KIND",
    "SourceHealth",
    "arm",
    "as_raw",
    "health",
    "seen",
    "silence",
    "source_ticket",
]
