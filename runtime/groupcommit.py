"""Group commit for ``escalade serve``: the events of concurrent requests share one commit.

Every ``POST /events`` hands its events to :meth:`GroupCommit.submit` and waits. The
first request that finds no batch running leads: it takes the engine, applies every
event queued by then (its own and those of the requests that arrived meanwhile, at
most ``max_batch`` per transaction) with
:meth:`~escalade.runtime.engine.Engine.receive_many`, and wakes each request with its
own events' outcomes once they are committed (and dispatched, as before). While it
runs, newer requests queue up for the next batch, which one of them leads. A request
alone is never held back: it leads at once, a batch of one. An event that raises is
answered ``error`` alone (the others of its batch commit); a batch that cannot take
the engine (busy, shutting down) answers each of its requests with that error.
Nothing is answered before its commit.

Runtime-side: the server's engine lock is passed in, so this module imports no web code.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

from escalade.runtime.engine import Engine, Outcome
from escalade.runtime.engine.intake import RawEvent
from escalade.runtime.metrics import open_reader
from escalade.runtime.store import Store

MAX_BATCH = 256  # events per transaction of a group commit
OUTCOME_STATUS = {"applied": 200, "duplicate": 200, "dead_letter": 422, "refused": 409}


@dataclass(slots=True)
class _Request:
    """One request's events, and their outcomes once its batch is done."""

    events: Sequence[RawEvent]
    outcomes: list[Outcome] = field(default_factory=list)
    failure: Exception | None = None
    done: bool = False


class GroupCommit:
    """Applies the events of concurrent requests in shared transactions (see the module)."""

    def __init__(
        self, hold: Callable[[], AbstractContextManager[Engine]], max_batch: int = MAX_BATCH
    ) -> None:
        """``hold``: the engine, held by the calling thread alone (the server's lock)."""
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, not {max_batch}")
        self.hold = hold
        self.max_batch = max_batch
        self._changed = threading.Condition()
        self._queue: deque[_Request] = deque()
        self._leading = False
        self.batches = 0  # transactions' worth of requests led (for tests and the bench)

    def submit(self, events: Sequence[RawEvent]) -> list[Outcome]:
        """Apply ``events`` (one request's) with whatever else is queued; their outcomes in
        order, after their commit. Raises what taking the engine raised."""
        mine = _Request(events)
        with self._changed:
            self._queue.append(mine)
            while not mine.done and self._leading:
                self._changed.wait()
            leader = not mine.done
            self._leading = self._leading or leader
        if leader:
            try:
                while not mine.done:
                    self._run(self._take())
            finally:
                with self._changed:
                    self._leading = False
                    self._changed.notify_all()
        if mine.failure is not None:
            raise mine.failure
        return mine.outcomes

    def _take(self) -> list[_Request]:
        """The queued requests of the next batch: whole requests, up to ``max_batch``
        events (at least one request, however many events it has)."""
        taken: list[_Request] = []
        size = 0
        with self._changed:
            while self._queue and (
                not taken or size + len(self._queue[0].events) <= self.max_batch
            ):
                request = self._queue.popleft()
                taken.append(request)
                size += len(request.events)
        return taken

    def _run(self, batch: list[_Request]) -> None:
        events = [event for request in batch for event in request.events]
        failure: Exception = RuntimeError("the batch was interrupted")
        try:
            with self.hold() as engine:
                outcomes = engine.receive_many(events, batch=self.max_batch)
            start = 0
            for request in batch:
                request.outcomes = outcomes[start : start + len(request.events)]
                start += len(request.events)
        except Exception as exc:  # the engine could not be taken: each request says why
            failure = exc
        finally:
            self.batches += 1
            with self._changed:
                for request in batch:
                    if len(request.outcomes) != len(request.events):
                        request.failure = failure
                    request.done = True
                self._changed.notify_all()


class ReadSide:
    """What a request reads before its events join a batch (who its credential speaks
    for), on a read-only connection of its own (:func:`~escalade.runtime.metrics.open_reader`):
    concurrent requests do not queue for the engine one by one to learn it. A store no
    other connection can see (in-memory SQLite) is read through the engine instead."""

    def __init__(self, store: Store, hold: Callable[[], AbstractContextManager[Engine]]) -> None:
        self.hold = hold
        self.reader = open_reader(store)
        self._lock = threading.Lock()  # one read at a time on the reader
        self._close = None if self.reader is None else weakref.finalize(self, self.reader.close)

    @contextmanager
    def store(self) -> Iterator[Store]:
        """The store to read, held by the calling thread alone."""
        if self.reader is None:
            with self.hold() as engine:
                yield engine.store
            return
        with self._lock:
            yield self.reader

    def close(self) -> None:
        if self._close is not None:
            self._close()


def event_result(outcome: Outcome, line: int | None) -> dict[str, Any]:
    """One event's answer in ``POST /events``: its HTTP status (an ``error`` carries its
    own, 500 for a bug), outcome and message (``line``: its line in a JSON Lines body)."""
    status = getattr(outcome.error, "status", 500)
    result: dict[str, Any] = {
        "status": OUTCOME_STATUS.get(outcome.status, status),
        "outcome": outcome.status,
        "message": outcome.message,
    }
    if line is not None:
        result["line"] = line
    if outcome.status in ("dead_letter", "refused", "error"):
        result["error"] = outcome.message
    if outcome.ticket is not None:
        result["ticket"] = outcome.ticket
    if outcome.escalation_id is not None:
        result["escalation"] = outcome.escalation_id
    if outcome.unknown_fields:
        result["unknown_fields"] = list(outcome.unknown_fields)
    return result
