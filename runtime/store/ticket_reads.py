"""Reading the tickets a decision is about, in a SQL store: taking them (their shards) and
reading each one's state, open escalation, closed flag and highest escalation id, for one
ticket in ONE query after its lock (with whether the store knows the event's id and what
the shard's last holder changed), for a batch in a few queries however many.

A mixin of :class:`~escalade.runtime.store.sql.SQLStore` (taking shards is in
:class:`~escalade.runtime.store.shard_locks.ShardLocks`, which it extends); what it reads
goes into the transaction's :class:`~escalade.runtime.store.unit.Unit`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from escalade.runtime.store.rows import ESC_COLUMNS, chunks, flat
from escalade.runtime.store.shard_locks import ShardLocks
from escalade.runtime.store.unit import Unit

# One ticket as a decision reads it, in one query: its state, whether it ever had a closed
# escalation, its highest escalation id, whether the store knows an event id (NULL: none
# asked), what may have changed while its shard was held by someone else (the absences
# version, the clock, the earliest due timer, the shard's audit head) and its open
# escalation (at most one: a unique index says so).
_E_COLUMNS = ", ".join(f"e.{c}" for c in ESC_COLUMNS.split(", "))
TICKET_VIEW = (
    "SELECT t.state, t.times, EXISTS(SELECT 1 FROM escalations c WHERE c.ticket = k.ticket"
    " AND c.state = 'closed'), (SELECT MAX(m.id) FROM escalations m WHERE m.ticket = k.ticket),"
    " EXISTS(SELECT 1 FROM events v WHERE v.id = k.event),"
    " (SELECT value FROM meta WHERE key = 'absences'), (SELECT CAST(MAX(at) AS TEXT) FROM clocks),"
    " (SELECT CAST(MIN(due) AS TEXT) FROM timers),"
    " (SELECT CAST(seq AS TEXT) || ':' || hash FROM audit_heads WHERE shard = k.shard),"
    f" {_E_COLUMNS} FROM (SELECT CAST(? AS TEXT) AS ticket, CAST(? AS TEXT) AS event,"
    " CAST(? AS BIGINT) AS shard) k LEFT JOIN tickets t ON t.ticket = k.ticket"
    " LEFT JOIN escalations e ON e.ticket = k.ticket AND e.state != 'closed'"
)
_VIEW_WIDTH = 9  # the columns before the escalation's


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def _view_reads(tickets: list[str]) -> list[tuple[str, Sequence[Any]]]:
    """The queries that read several ``tickets`` for :func:`_take_views` (the ticket rows,
    the open escalations, and per ticket whether it had a closed one and its highest
    escalation id; one ticket is read by :data:`TICKET_VIEW`)."""
    marks = _marks(tickets)
    return [
        (f"SELECT ticket, state, times FROM tickets WHERE ticket IN ({marks})", tickets),
        (
            f"SELECT {ESC_COLUMNS} FROM escalations WHERE state != 'closed'"
            f" AND ticket IN ({marks})",
            tickets,
        ),
        (
            "SELECT ticket, MAX(CASE WHEN state = 'closed' THEN 1 ELSE 0 END), MAX(id)"
            f" FROM escalations WHERE ticket IN ({marks}) GROUP BY ticket",
            tickets,
        ),
    ]


def _take_views(unit: Unit, tickets: list[str], results: list[list[Any]]) -> None:
    """Take in what the queries of :func:`_view_reads` returned for ``tickets``."""
    states = {str(t): (s, times) for t, s, times in results[0]}
    opened = {str(r[1]): tuple(r) for r in results[1]}
    known = {str(t): (bool(c), int(m)) for t, c, m in results[2]}
    none = (None,) * len(ESC_COLUMNS.split(", "))
    for ticket in tickets:
        state, times = states.get(ticket, (None, None))
        closed, last = known.get(ticket, (False, None))
        unit.view(ticket, (state, times, closed, last, *opened.get(ticket, none)))


class TicketReads(ShardLocks):
    """Taking and reading tickets inside a transaction (see the module docstring)."""

    if TYPE_CHECKING:  # SQLStore's

        def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...

    def read_ahead(self, tickets: Sequence[str], event_ids: Sequence[str]) -> None:
        """Inside a transaction, take ``tickets`` and read at once what a batch of events
        will need: which of ``event_ids`` the store knows, and the state, open escalation,
        closed flag and highest escalation id of each ticket (a few queries however many,
        for up to 999 of each; one query for one ticket and one event). The batch's claims
        are then answered from memory and written before the commit."""
        unit = self._unit
        if unit is None:
            return
        ids = [i for i in dict.fromkeys(event_ids) if i not in unit.checked]
        wanted = [t for t in dict.fromkeys(tickets) if t not in unit.viewed]
        if len(wanted) == 1 and len(ids) <= 1 and set(tickets) == set(wanted):
            self._focus(unit, wanted[0], ids[0] if ids else None)
            return
        shards = {self._shard_of(t) for t in tickets} - unit.held
        new = [] if unit.exclusive else sorted(shards)
        reads: list[tuple[str, Sequence[Any]]] = [self._refresh_read(new)] if new else []
        id_parts = chunks([(i,) for i in ids])
        reads += [(f"SELECT id FROM events WHERE id IN ({_marks(p)})", flat(p)) for p in id_parts]
        ticket_parts = [[t for (t,) in part] for part in chunks([(t,) for t in wanted])]
        for part in ticket_parts:
            reads += _view_reads(part) if len(part) > 1 else [self._view_read(part[0], None)]
        results = iter(self._locked_reads(new, reads))
        if new:
            self._took(unit, new, next(results))
        unit.held.update(shards)
        for _ in id_parts:
            unit.known.update(str(r[0]) for r in next(results))
        unit.checked.update(ids)
        for part in ticket_parts:
            if len(part) > 1:
                _take_views(unit, part, [next(results) for _ in _view_reads(part)])
            else:
                self._take_view(unit, part[0], None, next(results)[0], fresh=False)

    def _view_read(self, ticket: str, event_id: str | None) -> tuple[str, Sequence[Any]]:
        return TICKET_VIEW, (ticket, event_id, self._shard_of(ticket))

    def _focus(self, unit: Unit, ticket: str, event_id: str | None) -> None:
        """Take ``ticket`` and read it (and whether the store knows ``event_id``) in ONE
        query after the lock, which also reads what its shard's last holder changed."""
        shard = self._shard_of(ticket)
        new = [] if unit.exclusive or shard in unit.held else [shard]
        row = self._locked_reads(new, [self._view_read(ticket, event_id)])[0][0]
        self._take_view(unit, ticket, event_id, row, fresh=bool(new))
        unit.held.add(shard)

    def _take_view(
        self, unit: Unit, ticket: str, event_id: str | None, row: Sequence[Any], fresh: bool
    ) -> None:
        """Take in a row of :data:`TICKET_VIEW`; ``fresh``: its shard was just taken (its
        head and the rest of the meta rows are as its last holder left them)."""
        if event_id is not None:
            unit.checked.add(event_id)
            if row[4]:
                unit.known.add(event_id)
        if fresh or not unit.meta_read:
            shard = self._shard_of(ticket)
            meta: list[tuple[str, int | None, Any]] = [
                ("absences", None, row[5]),
                ("clock", None, row[6]),
                ("next_due", None, row[7]),
            ]
            if fresh:
                meta.append(("head", shard, row[8]))
                unit.forget({shard}, self._shard_of)
            unit.refreshed(meta)
            unit.meta_read = True
        unit.view(ticket, (*row[:4], *row[_VIEW_WIDTH:]))

    # --- tickets -------------------------------------------------------------
