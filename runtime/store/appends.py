"""The append-mostly tables of the SQL stores: timers, outbox, dead letters and counters
(the same SQL in SQLite and PostgreSQL; the audit trail's are in
:mod:`~escalade.runtime.store.audit_table`).

A mixin of :class:`~escalade.runtime.store.sql.SQLStore`, kept apart so each module
stays small. Inside a transaction, rows appended to the timers, outbox and
counters wait in the transaction's :class:`~escalade.runtime.store.unit.Unit` and
are written together before the commit; a query of one of those tables writes
that table's waiting rows first, so it never misses one. Outside a transaction
every call writes at once. Absences are in :mod:`~escalade.runtime.store.roster`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from escalade.runtime.store import DeadLetter, OutboxMessage, Timer
from escalade.runtime.store.rows import (
    DEAD_LETTER_COLUMNS,
    ESC_COLUMNS,
    OUTBOX_COLUMNS,
    OUTBOX_MARKS,
    OUTBOX_WRITTEN,
    TIMER_COLUMNS,
    TIMER_WRITTEN,
    dead_letter_of,
    outbox_of,
    outbox_values,
    timer_of,
    timer_values,
)
from escalade.runtime.store.unit import NO_TIMER, InsertNew, Unit
from escalade.runtime.store.writes import Write

_TIMER_WIDTH = len(TIMER_COLUMNS.split(", "))
MAX_PASSED_OVER = 100  # timers taken and not deleted yet that a query of due ones skips
_T_COLUMNS = ", ".join(f"t.{c}" for c in TIMER_COLUMNS.split(", "))
_E_COLUMNS = ", ".join(f"e.{c}" for c in ESC_COLUMNS.split(", "))


class _Store(Protocol):
    _unit: Unit | None

    def _row(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...
    def _exec(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    def _insert(self, sql: str, params: Sequence[Any]) -> int: ...
    def _insert_new(self, sql: str, params: Sequence[Any], unique: str) -> int | None: ...
    def _lock_due_timers(self, table: str = "") -> str: ...
    def _meta(self, key: str) -> str | None: ...
    def _set_meta(self, key: str, value: str) -> None: ...
    def _count(self, sql: str) -> int: ...
    def _insert_one_by_one(self) -> InsertNew | None: ...
    def _meta_unit(self) -> Unit: ...
    def _send_write(self, write: Write) -> None: ...
    def _shard_of(self, ticket: str) -> int: ...
    def _try_shards(self, shards: Sequence[int]) -> set[int]: ...


def _flushed_timers(store: _Store, taking: bool = False) -> None:
    """Write the timers the transaction holds (and delete those it took, unless ``taking``
    more: that query passes over them)."""
    unit = store._unit
    if unit is None:
        return
    if unit.timers:
        unit.flush_timers(store._send_write)
    if unit.doomed and (not taking or len(unit.doomed) > MAX_PASSED_OVER):
        unit.flush_doomed(store._send_write)


def _flushed_outbox(store: _Store) -> None:
    unit = store._unit
    if unit is not None and unit.outbox:
        unit.flush_outbox(store._send_write)


def _peek_due(store: _Store, limit: int) -> list[Timer]:
    """The first ``limit`` + 1 timers by due time (one row past the due ones says when the
    next timer is due), but those the transaction took or passed over; each comes with
    its escalation, which firing it reads next."""
    unit = store._unit
    passed = [*unit.doomed, *unit.passed] if unit is not None else []
    skip = f"WHERE t.id NOT IN ({', '.join('?' for _ in passed)}) " if passed else ""
    rows = []
    for row in store._rows(
        f"SELECT {_T_COLUMNS}, {_E_COLUMNS} FROM timers t"
        f" LEFT JOIN escalations e ON e.id = t.escalation_id {skip}ORDER BY t.due, t.id LIMIT ?",
        (*passed, limit + 1),
    ):
        rows.append(timer_of(row[:_TIMER_WIDTH]))
        if unit is not None and row[_TIMER_WIDTH] is not None:
            unit.by_id.setdefault(int(row[_TIMER_WIDTH]), tuple(row[_TIMER_WIDTH:]))
    return rows


def _took_their_tickets(store: _Store, timers: list[Timer], until: int) -> bool:
    """Take the tickets of the due ``timers`` the transaction does not hold yet; pass over
    the timers of those someone else holds. Whether the timers must be read again."""
    unit = store._unit
    assert unit is not None
    due = [(t, store._shard_of(t.ticket)) for t in timers if t.due <= until]
    new = [s for s in dict.fromkeys(s for _, s in due) if s not in unit.held]
    if not new:
        return False
    got = store._try_shards(new)
    if unit.exclusive:
        return False  # nobody else changes them: as read
    unit.passed.extend(t.id for t, s in due if s in new and s not in got)
    return True


class Appends:
    """Timers, outbox messages, dead letters and counters."""

    _unit: Unit | None

    # --- timers --------------------------------------------------------------
    def add_timer(self: _Store, timer: Timer) -> int:
        """The new timer's id; 0 inside a transaction, which writes it before its commit."""
        if self._unit is not None:
            self._unit.add_timer(timer)
            return 0
        timer.id = self._insert(
            f"INSERT INTO timers({TIMER_WRITTEN}) VALUES (?, ?, ?, ?, ?, ?)", timer_values(timer)
        )
        return timer.id

    def cancel_timers(self: _Store, escalation_id: int, kinds: Sequence[str] | None = None) -> None:
        unit = self._unit
        if unit is not None:
            unit.drop_timers(escalation_id, kinds)
            if escalation_id in unit.fresh:
                return  # started in this transaction: none of its timers is written yet
        if kinds is None:
            self._exec("DELETE FROM timers WHERE escalation_id = ?", (escalation_id,))
            return
        marks = ", ".join("?" for _ in kinds)
        self._exec(
            f"DELETE FROM timers WHERE escalation_id = ? AND kind IN ({marks})",
            (escalation_id, *kinds),
        )

    def due_timers(self: _Store, until: int, limit: int) -> list[Timer]:
        _flushed_timers(self)
        rows = self._rows(
            f"SELECT {TIMER_COLUMNS} FROM timers WHERE due <= ? ORDER BY due, id LIMIT ?"
            + self._lock_due_timers(),
            (until, limit),
        )
        return [timer_of(r) for r in rows]

    def take_due_timers(self: _Store, until: int, limit: int) -> list[Timer]:
        """Remove and return at most ``limit`` timers due by ``until``, in due order. In a
        transaction that knows no timer is due yet this reads nothing: the transaction
        read the earliest due time when it opened and lowers it as timers are added.

        Inside a transaction each timer's ticket is taken first; a timer whose ticket
        another transaction holds is passed over (its holder fires it: timers keep their
        order per ticket), and the timers of tickets just taken are read again."""
        unit = self._unit if self._unit is None else self._meta_unit()
        if unit is not None and unit.next_due > until:
            return []
        _flushed_timers(self, taking=True)
        rows = _peek_due(self, limit)
        while unit is not None and _took_their_tickets(self, rows[:limit], until):
            if len(unit.passed) > MAX_PASSED_OVER:
                unit.next_due = NO_TIMER  # too busy: left to their holders for now
                return []
            rows = _peek_due(self, limit)
        due = [t for t in rows[:limit] if t.due <= until]
        if unit is not None:  # deleted before the commit (or the next timers query)
            unit.doomed.extend(t.id for t in due)
        elif due:
            marks = ", ".join("?" for _ in due)
            self._exec(f"DELETE FROM timers WHERE id IN ({marks})", [t.id for t in due])
        if unit is not None:
            rest = rows[len(due) :]
            unit.next_due = rest[0].due if rest else NO_TIMER
        return due

    def delete_timer(self: _Store, timer_id: int) -> None:
        self._exec("DELETE FROM timers WHERE id = ?", (timer_id,))

    def timers_of(self: _Store, escalation_id: int) -> list[Timer]:
        _flushed_timers(self)
        rows = self._rows(
            f"SELECT {TIMER_COLUMNS} FROM timers WHERE escalation_id = ? ORDER BY due, id",
            (escalation_id,),
        )
        return [timer_of(r) for r in rows]

    def has_timer(self: _Store, ticket: str, kind: str, key: str) -> bool:
        unit = self._unit
        if unit is not None and unit.has_timer(ticket, kind, key):
            return True
        if unit is not None and unit.doomed:
            unit.flush_doomed(self._send_write)  # a timer taken in this transaction is gone
        row = self._row(
            "SELECT 1 FROM timers WHERE ticket = ? AND kind = ? AND key = ?", (ticket, kind, key)
        )
        return row is not None

    def count_timers(self: _Store) -> int:
        _flushed_timers(self)
        return self._count("SELECT COUNT(*) FROM timers")

    # --- outbox --------------------------------------------------------------
    def add_outbox(self: _Store, msg: OutboxMessage) -> bool:
        """Queue ``msg``; False when its key is taken. Inside a transaction it is written
        before the commit (a key taken then is skipped) and True is all it can say."""
        if self._unit is not None:
            self._unit.outbox.append(msg)
            self._unit.unseen.append(msg)
            return True
        new_id = self._insert_new(
            f"INSERT INTO outbox({OUTBOX_WRITTEN}) VALUES ({OUTBOX_MARKS})",
            outbox_values(msg),
            "key",
        )
        if new_id is None:
            return False
        msg.id = new_id
        return True

    def queued_outbox(self: _Store) -> list[OutboxMessage]:
        """The messages this transaction queued since the last call and has not written yet
        (id 0). A delivery inside the transaction changes their status fields (as
        ``mark_outbox`` would) and the commit writes them as they are then; outside a
        transaction, none."""
        unit = self._unit
        if unit is None:
            return []
        found, unit.unseen = unit.unseen, []
        return [m for m in found if m.status == "pending"]

    def outbox_id(self: _Store, msg: OutboxMessage) -> int:
        """``msg``'s id (0 when its key was taken): a message still queued in the transaction
        is written now, with every other queued one, to have it."""
        if msg.id == 0:
            _flushed_outbox(self)
        return msg.id

    def pending_outbox(self: _Store) -> list[OutboxMessage]:
        _flushed_outbox(self)
        rows = self._rows(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'pending' ORDER BY id"
        )
        return [outbox_of(r) for r in rows]

    def outbox_message(self: _Store, msg_id: int) -> OutboxMessage | None:
        _flushed_outbox(self)
        row = self._row(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?", (msg_id,))
        return None if row is None else outbox_of(row)

    def outbox_statuses(self: _Store, ids: Sequence[int]) -> dict[int, str]:
        """The status of each outbox row of ``ids`` (one query)."""
        if not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        rows = self._rows(f"SELECT id, status FROM outbox WHERE id IN ({marks})", list(ids))
        return {int(i): str(s) for i, s in rows}

    def outbox_by_key(self: _Store, key: str) -> OutboxMessage | None:
        _flushed_outbox(self)
        # `key` is UNIQUE, so its index answers this without a scan.
        row = self._row(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE key = ?", (key,))
        return None if row is None else outbox_of(row)

    def mark_outbox(
        self: _Store,
        msg_id: int,
        status: str,
        at: int,
        attempts: int,
        reason: str | None = None,
        attempted: bool = True,
    ) -> None:
        delivered = status == "delivered"
        self._exec(
            "UPDATE outbox SET status = ?, attempts = ?,"
            " delivered_at = CASE WHEN ? THEN ? ELSE delivered_at END,"
            " reason = CASE WHEN ? THEN ? ELSE COALESCE(?, reason) END,"
            " attempted_at = CASE WHEN ? THEN ? ELSE attempted_at END WHERE id = ?",
            (status, attempts, delivered, at, attempted, reason, reason, attempted, at, msg_id),
        )

    def outbox(
        self: _Store, escalation_id: int | None = None, *, keep_queued: bool = False
    ) -> list[OutboxMessage]:
        """The outbox (of one escalation), by id. ``keep_queued``: the messages this
        transaction queued are listed as they stand in memory, not written first (writing
        them would send the rest of the transaction's deliveries through the table)."""
        if keep_queued and escalation_id is not None:
            unit = self._unit
            queued = [m for m in unit.outbox if m.escalation_id == escalation_id] if unit else []
            rows = self._rows(
                f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE escalation_id = ? ORDER BY id",
                (escalation_id,),
            )
            return [outbox_of(r) for r in rows] + queued
        _flushed_outbox(self)
        if escalation_id is None:
            rows = self._rows(f"SELECT {OUTBOX_COLUMNS} FROM outbox ORDER BY id")
        else:
            rows = self._rows(
                f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE escalation_id = ? ORDER BY id",
                (escalation_id,),
            )
        return [outbox_of(r) for r in rows]

    def outbox_by_status(self: _Store) -> dict[str, int]:
        _flushed_outbox(self)
        rows = self._rows("SELECT status, COUNT(*) FROM outbox GROUP BY status")
        return {str(s): int(n) for s, n in rows}

    # --- dead letters --------------------------------------------------------
    def add_dead_letter(self: _Store, letter: DeadLetter) -> int:
        letter.id = self._insert(
            "INSERT INTO dead_letters(event_id, raw, error, received_at) VALUES (?, ?, ?, ?)",
            (letter.event_id, letter.raw, letter.error, letter.received_at),
        )
        return letter.id

    def dead_letters(self: _Store, include_replayed: bool = False) -> list[DeadLetter]:
        sql = f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters"
        if not include_replayed:
            sql += " WHERE replayed_at IS NULL"
        return [dead_letter_of(r) for r in self._rows(sql + " ORDER BY id")]

    def mark_replayed(self: _Store, letter_id: int, at: int) -> None:
        self._exec("UPDATE dead_letters SET replayed_at = ? WHERE id = ?", (at, letter_id))

    def count_dead_letters(self: _Store) -> int:
        return self._count("SELECT COUNT(*) FROM dead_letters WHERE replayed_at IS NULL")

    # --- counters ------------------------------------------------------------
    def bump(self: _Store, name: str, by: int = 1) -> None:
        """Add ``by`` to counter ``name`` (inside a transaction, on its home shard's row)."""
        unit = self._unit
        if unit is not None:  # one statement for every counter, before the commit
            unit.counters[name] = unit.counters.get(name, 0) + by
            return
        self._exec(
            "INSERT INTO counters(name, shard, value) VALUES (?, 0, ?)"
            " ON CONFLICT(name, shard) DO UPDATE SET value = counters.value + excluded.value",
            (name, by),
        )

    def counters(self: _Store) -> dict[str, int]:
        """Every counter: the sum of its rows (one per shard that counted)."""
        unit = self._unit
        if unit is not None and unit.counters:
            unit.flush_counters(self._send_write)
        rows = self._rows("SELECT name, SUM(value) FROM counters GROUP BY name")
        return {str(n): int(v) for n, v in rows}
