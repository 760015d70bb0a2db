"""Which tickets a transaction of a SQL store holds, and taking more of them.

A transaction holds the shards (see :mod:`~escalade.runtime.store.trail`) of the tickets
it touches, from the first read of a ticket to its end: under SQLite every shard at once
(``BEGIN IMMEDIATE``: one writer), under PostgreSQL a transaction-scoped advisory lock
per shard, taken before the ticket is read. Decisions about tickets of different shards
so run and commit at once, and a decision still reads a ticket as the last decision on
it committed it.

No two transactions wait for each other: a transaction takes the shards it needs at its
start, all at once and in ascending order (an event's ticket, a batch's tickets:
:meth:`ShardLocks.lock_tickets`); later it only *tries* a shard (a due timer of another
ticket), and passes over the timer when someone else holds it — that holder fires it, or
the next transaction that can. Only a transaction that holds nothing yet may wait for
its first shard. A mixin of :class:`~escalade.runtime.store.sql.SQLStore`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from escalade.runtime.store.trail import shard_of
from escalade.runtime.store.unit import REFRESH, Unit


class ShardLocks:
    """Taking shards inside a transaction (hooks: :meth:`_lock_shards`,
    :meth:`_try_lock_shards`; SQLite never needs them)."""

    _unit: Unit | None
    _shards: int

    if TYPE_CHECKING:  # SQLStore's

        def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...
        def _locked_reads(
            self, shards: list[int], reads: Sequence[tuple[str, Sequence[Any]]]
        ) -> list[list[Any]]: ...

    def _lock_shards(self, shards: list[int]) -> None:
        """Wait for and take ``shards`` (ascending) until the transaction ends."""
        raise NotImplementedError

    def _try_lock_shards(self, shards: list[int]) -> set[int]:
        """Take those of ``shards`` nobody holds, without waiting; which were taken."""
        raise NotImplementedError

    def _shard_of(self, ticket: str) -> int:
        return shard_of(ticket, self._shards)

    def lock_tickets(self, tickets: Sequence[str]) -> None:
        """Take the shards of ``tickets`` at once (see the module docstring); outside a
        transaction there is nothing to hold."""
        if self._unit is not None:
            self._take_shards({shard_of(t, self._shards) for t in tickets})

    def _hold_ticket(self, ticket: str) -> None:
        """Take ``ticket``'s shard unless the transaction holds it already."""
        unit = self._unit
        if unit is not None and shard_of(ticket, self._shards) not in unit.held:
            self._take_shards([shard_of(ticket, self._shards)])

    def _take_shards(self, shards: Iterable[int]) -> None:
        unit = self._unit
        assert unit is not None
        new = sorted(set(shards) - unit.held)
        if not new:
            return
        if not unit.exclusive:
            self._took(unit, new, self._locked_reads(new, [self._refresh_read(new)])[0])
        unit.held.update(new)

    def _try_shards(self, shards: Sequence[int]) -> set[int]:
        """Take what can be taken of ``shards`` (in order) without waiting — except the
        first when the transaction holds nothing yet, which it waits for."""
        unit = self._unit
        assert unit is not None
        new = [s for s in dict.fromkeys(shards) if s not in unit.held]
        if not new or unit.exclusive:
            unit.held.update(new)
            return set(new)
        got: set[int] = set()
        if not unit.held:
            self._lock_shards(new[:1])
            got.add(new[0])
        if new[len(got) :]:
            got |= self._try_lock_shards(sorted(new[len(got) :]))
        if got:
            taken = sorted(got)
            self._took(unit, taken, self._rows(*self._refresh_read(taken)))
            unit.held.update(got)
        return got

    @staticmethod
    def _refresh_read(shards: list[int]) -> tuple[str, list[int]]:
        """The query that reads again what the holders of ``shards`` may have changed."""
        return REFRESH.format(shards=", ".join("?" for _ in shards)), shards

    def _took(self, unit: Unit, shards: list[int], rows: list[Any]) -> None:
        """Just took ``shards``: take in ``rows`` of their refresh read, forget what was read
        of their tickets before."""
        unit.refreshed(rows)
        unit.meta_read = True
        unit.forget(set(shards), self._shard_of)
