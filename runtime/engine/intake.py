"""Events into the engine: one per transaction, or many in one (the batch API).

:meth:`Intake.receive` applies one event in one transaction. :meth:`Intake.receive_many`
applies several in ONE transaction (at most ``batch`` per commit): each is still read and
checked on its own, a malformed one is dead-lettered beside the others, a seen id is a
duplicate (also within the batch), and the outcomes are returned only after the commit.
The transaction takes every ticket of the batch first (its shards, at once: see
:mod:`~escalade.runtime.store.shard_locks`), so workers on other tickets go on meanwhile.
An event that raises (a bug, never bad input) is answered ``error``: the transaction is
rolled back and done again without it, so the others are applied; a failure of the
commit itself answers ``error`` for the whole batch, nothing of it written.

Timers due before an event fire first, in its transaction (one commit per event), when
the notifier delivers in the transaction; with a notifier that sends after the commit
they fire apart first (:meth:`Intake.fire_apart`), each message dispatched at its
timer's time as before. :meth:`Intake.fire_due` takes due timers one at a time, so a
timer that cancels another is never fired after it; the store's transaction knows the
earliest due time, so an event with nothing due reads no timer.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from escalade.runtime import heartbeats, tracing
from escalade.runtime.clock import format_duration, format_time
from escalade.runtime.engine import chain, timers
from escalade.runtime.engine.context import ClockError, Limits, Moment, Runtime
from escalade.runtime.engine.delivery import Outbox
from escalade.runtime.engine.loaded import LoadedPack
from escalade.runtime.events import Event, EventError, parse_event, storable_text
from escalade.runtime.store import DeadLetter, Store, Timer

log = logging.getLogger("escalade.runtime.engine")

RawEvent = str | bytes | Mapping[str, Any]
BATCH = 500  # events per transaction of receive_many
ADVANCE_BATCH = 500  # due timers per transaction when they fire apart from an event
READ_AHEAD_FROM = 2  # more events than this: their tickets and ids are read in 4 queries


@dataclass(slots=True)
class Outcome:
    """What happened to one input."""

    status: str  # applied | duplicate | dead_letter | refused | error
    message: str
    ticket: str | None = None
    escalation_id: int | None = None
    unknown_fields: tuple[str, ...] = ()
    error: Exception | None = None  # what an `error` outcome raised (a bug, logged)


class Core(Protocol):
    """What the intake needs of the engine (:class:`~escalade.runtime.engine.shell.Engine`)."""

    store: Store
    rt: Runtime
    outbox: Outbox
    limits: Limits

    def active(self) -> LoadedPack: ...
    def processing_time(self, at: int | None) -> int: ...
    def check_time(self, at: int) -> None: ...
    def dispatch(self, at: int | None = None) -> int: ...


class _TimerFailed(Exception):
    """A due timer raised while an event waited for it: every later event would too."""


class Intake:
    """Applies events for one engine (see the module docstring)."""

    def __init__(self, core: Core) -> None:
        self.core = core

    # --- one event ----------------------------------------------------------------
    def receive(self, raw: RawEvent, at: int | None = None) -> Outcome:
        """Apply one event in one transaction. Malformed: dead-lettered, nothing else
        changes. Seen id: no-op. ClockError for a time before the store's clock."""
        core = self.core
        self._timers_apart(at)
        try:
            with core.store.transaction():
                outcome, now = self._one(raw, at)
        except _TimerFailed as exc:
            self._rolled_back()
            raise exc.__cause__ or exc from None
        core.dispatch(now)
        return outcome

    def _timers_apart(self, at: int | None) -> None:
        """With a notifier that sends after the commit, fire what is due before the event's
        transaction, as each timer's own input (overdue ones only, for a refused ``at``)."""
        if not self.core.outbox.in_transaction:
            self.fire_apart(self.core.processing_time(at))

    def _one(
        self, raw: RawEvent, at: int | None, parsed: Event | EventError | None = None
    ) -> tuple[Outcome, int]:
        """One event inside the open transaction (``parsed``: read already), and its
        processing time."""
        core, store = self.core, self.core.store
        pack = core.active()
        event = _parsed(raw, pack) if parsed is None else parsed
        if isinstance(event, Event):
            # Its ticket is taken (and read, with whether its id is known) before the time
            # is read: the clock is then at least that of the last decision on it.
            store.read_ahead([event.ticket], [event.id])
        now = core.processing_time(at)  # an event's `at` never moves the clock
        if isinstance(event, EventError):
            return self._dead_letter(raw, event, now), now
        try:
            core.check_time(now)
        except ClockError:
            if store.has_event(event.id):
                return _duplicate(event), now
            raise
        ahead = event.at - now
        if ahead > core.limits.max_clock_skew:
            if store.has_event(event.id):
                return _duplicate(event), now
            why = (
                f"from the future: `at` {format_time(event.at)} is {format_duration(ahead)} ahead"
                f" of the processing clock {format_time(now)} (runtime.max_clock_skew is"
                f" {format_duration(core.limits.max_clock_skew)})"
            )
            return self._dead_letter(raw, EventError(why, event.id), now), now
        if not store.claim_event(event.id, event.type, event.at, event.ticket, event.raw):
            return _duplicate(event), now  # seen before, or by another worker since
        try:
            self.fire_due(now)
        except Exception as exc:
            raise _TimerFailed(f"a due timer failed: {exc}") from exc
        store.set_clock(now)
        m = Moment(now=now, cause=f"event {event.id} ({event.type})")
        with tracing.span(
            "escalade.event",
            tracing.taken(event.id),
            event=event.id,
            event_type=event.type,
            ticket=event.ticket,
            pack_version=pack.version,
        ):
            esc_id = self._apply(pack, event, m)
        core.outbox.deliver_now(now)
        note = f"; ignored unknown fields: {', '.join(event.unknown)}" if event.unknown else ""
        return Outcome(
            "applied", f"event {event.id} applied{note}", event.ticket, esc_id, event.unknown
        ), now

    def _dead_letter(self, raw: RawEvent, exc: EventError, now: int) -> Outcome:
        store = self.core.store
        text = storable_text(raw)  # what any store keeps: no NUL, no lone surrogate
        letter_id = store.add_dead_letter(
            DeadLetter(raw=text.strip(), error=str(exc), received_at=now, event_id=exc.event_id)
        )
        store.bump("dead_letters")
        return Outcome("dead_letter", f"rejected (dead letter #{letter_id}): {exc}")

    def _apply(self, pack: LoadedPack, event: Event, m: Moment) -> int | None:
        rt, store = self.core.rt, self.core.store
        state, times = store.ticket_state(event.ticket)
        merge_fields(state, times, event)
        store.put_ticket_state(event.ticket, state, times)
        if event.unknown:
            store.bump("unknown_fields", len(event.unknown))
        esc = store.open_escalation(event.ticket)
        if esc is not None:
            chain.on_update(rt, esc, state, m)
            esc = store.open_escalation(event.ticket)
        with tracing.span("escalade.decide", ticket=event.ticket) as decided:
            candidate = pack.owner_of(event.type, state)
            if decided is not None:
                names = [p.name for p in pack.matcher.candidates(event.type)]
                owner = candidate.name if candidate else None
                tracing.annotate(candidates=names, policy=owner, escalation=esc and esc.id)
        if esc is not None and (candidate is None or candidate.priority <= esc.priority):
            return esc.id
        if candidate is None:
            store.bump("events_unowned")
            return None
        return chain.route(rt, event.ticket, pack, candidate, state, m)

    # --- many events --------------------------------------------------------------
    def receive_many(
        self,
        events: Iterable[RawEvent | tuple[RawEvent, int | None]],
        at: int | None = None,
        *,
        batch: int = BATCH,
    ) -> list[Outcome]:
        """Apply ``events`` (raw events, or ``(raw, at)`` pairs giving each its processing
        time; else ``at``) in transactions of at most ``batch`` events; one outcome per
        event, in order, once its transaction committed. A time before the store's clock
        is ``refused`` for that event alone."""
        if batch < 1:
            raise ValueError(f"batch must be >= 1, not {batch}")
        items = [e if isinstance(e, tuple) else (e, at) for e in events]
        core = self.core
        outcomes: list[Outcome] = []
        last: int | None = None
        for start in range(0, len(items), batch):
            chunk = items[start : start + batch]
            self._timers_apart(chunk[0][1])
            done, chunk_last = self._commit_chunk(chunk)
            outcomes += done
            last = chunk_last if last is None or chunk_last is None else max(last, chunk_last)
        if last is not None:
            try:
                core.dispatch(last)
            except Exception:  # committed: the outcomes stand; what is pending goes out later
                log.exception("dispatching the outbox after a batch failed")
        return outcomes

    def _commit_chunk(
        self, chunk: Sequence[tuple[RawEvent, int | None]]
    ) -> tuple[list[Outcome], int | None]:
        """Apply ``chunk`` in one transaction; an event that raises is answered ``error`` and
        the transaction done again without it."""
        todo = list(range(len(chunk)))
        done: dict[int, Outcome] = {}
        last: int | None = None
        pack = self.core.active()
        parsed = [_parsed(raw, pack) for raw, _ in chunk]  # each read once, whatever happens
        events = [e for e in parsed if isinstance(e, Event)]
        while todo:
            results: dict[int, Outcome] = {}
            times: list[int] = []
            current: int | None = None
            try:
                with self.core.store.transaction():
                    tickets = [e.ticket for e in events]
                    self.core.store.lock_tickets(tickets)  # all at once: nobody waits twice
                    if len(events) > READ_AHEAD_FROM:
                        self.core.store.read_ahead(tickets, [e.id for e in events])
                    for current in todo:
                        raw, at = chunk[current]
                        results[current], now = self._guarded(raw, at, parsed[current])
                        if now is not None:
                            times.append(now)
                    current = None
            except Exception as exc:
                self._rolled_back()
                failed = todo if current is None else todo[todo.index(current) :]
                if current is not None and not isinstance(exc, _TimerFailed):
                    failed = [current]
                log.error("applying an event failed", exc_info=exc)
                for i in failed:
                    done[i] = _error(exc)
                todo = [i for i in todo if i not in failed]
                continue
            done.update(results)
            last = max(times, default=None)
            break
        return [done[i] for i in range(len(chunk))], last

    def _guarded(
        self, raw: RawEvent, at: int | None, parsed: Event | EventError
    ) -> tuple[Outcome, int | None]:
        try:
            return self._one(raw, at, parsed)
        except ClockError as exc:  # raised before the event wrote anything
            return Outcome("refused", str(exc)), None

    def _rolled_back(self) -> None:
        """After a rollback: rows thought delivered or queued may be pending again."""
        self.core.rt.outbox_dirty = True
        self.core.rt.outbox_stored = True

    # --- timers ---------------------------------------------------------------------
    def fire_due(
        self, now: int, limit: int | None = None, *, stop_on_send: bool = False
    ) -> tuple[int, int | None]:
        """Fire the timers due by ``now`` in the open transaction, in due order, one at a
        time (at most ``limit``). ``stop_on_send``: with a notifier that sends after the
        commit, stop after a timer that queued a message, so that the message goes out at
        its timer's time. How many fired, and the due time of the last one."""
        core = self.core
        rt, store = core.rt, core.store
        fired, last = 0, None
        while limit is None or fired < limit:
            due = store.take_due_timers(now, 1)
            if not due:
                break
            timer = due[0]
            store.set_clock(timer.due)
            moment = Moment(now=timer.due, cause=f"{timer.kind} timer")
            with tracing.span(
                "escalade.timer",
                timer=timer.kind,
                ticket=timer.ticket,
                escalation=timer.escalation_id,
            ):
                if timer.kind == heartbeats.SILENT_KIND:
                    self._source_silent(timer, moment)
                else:
                    timers.fire(rt, timer, moment)
            core.outbox.deliver_now(timer.due)
            fired, last = fired + 1, timer.due
            if stop_on_send and rt.outbox_dirty and not core.outbox.in_transaction:
                break
        return fired, last

    def _source_silent(self, timer: Timer, m: Moment) -> None:
        """A source's heartbeat timer: seen since, armed again; else a ``source.silent``
        event applied as if received then, once (its id is claimed)."""
        raw = heartbeats.silence(self.core.store, timer)
        if raw is None:
            return
        pack = self.core.active()
        event = _parsed(raw, pack)
        if isinstance(event, EventError):
            log.warning("source %s is silent, but the pack cannot take it: %s", timer.key, event)
            return
        if self.core.store.claim_event(event.id, event.type, event.at, event.ticket, event.raw):
            self._apply(pack, event, Moment(now=m.now, cause=f"event {event.id} ({event.type})"))

    def fire_apart(self, now: int) -> int:
        """Fire every timer due by ``now`` in transactions of their own (no event waiting),
        dispatching after each commit; how many fired."""
        core = self.core
        fired = 0
        while core.store.due_timers(now, 1):  # read without the write lock first
            with core.store.transaction():
                count, last = self.fire_due(now, ADVANCE_BATCH, stop_on_send=True)
            fired += count
            if last is not None:
                core.dispatch(last)
        return fired


def merge_fields(state: dict[str, Any], times: dict[str, int], event: Event) -> None:
    """Merge ``event``'s fields into the ticket ``state``, field by field by the event's
    ``at``: a late event never overwrites a field a newer event set (None removes one)."""
    for obj, fields in event.data.items():
        target = state.setdefault(obj, {})
        for key, value in fields.items():
            path = f"{obj}.{key}"
            if times.get(path, -(2**62)) > event.at:
                continue  # a newer event already set this field
            times[path] = event.at
            if value is None:
                target.pop(key, None)
            else:
                target[key] = value


def _parsed(raw: RawEvent, pack: LoadedPack) -> Event | EventError:
    """``raw`` read against ``pack``, or why it cannot be."""
    try:
        return parse_event(raw, pack.pack)
    except EventError as exc:
        return exc


def _duplicate(event: Event) -> Outcome:
    return Outcome(
        "duplicate", f"event {event.id} was already applied; nothing changed", event.ticket
    )


def _error(exc: Exception) -> Outcome:
    message = f"internal error ({type(exc).__name__}); see the log"
    return Outcome("error", message, error=exc)
