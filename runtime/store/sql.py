"""What the SQL stores share: every query whose SQL is the same in SQLite and PostgreSQL.

:class:`SQLStore` implements the :class:`~escalade.runtime.store.Store` methods
once, against a few hooks its subclasses provide: :meth:`SQLStore._row`,
:meth:`SQLStore._rows` and :meth:`SQLStore._exec` run SQL written with ``?``
placeholders (the PostgreSQL store turns them into ``%s``),
:meth:`SQLStore._exec_count` says how many rows a statement changed,
:meth:`SQLStore._insert` inserts a row and returns its new id,
:meth:`SQLStore._insert_new` does so unless the row's unique key is taken, and
:meth:`SQLStore._is_unique_violation` recognises the driver's duplicate-key
error. Connections, transactions and locking, migrations and DDL stay in
:mod:`~escalade.runtime.store.sqlite` and :mod:`~escalade.runtime.store.postgres`;
the append-mostly tables (timers, audit, outbox, dead letters, counters) are in
:mod:`~escalade.runtime.store.appends`, absences and the other on-call and operations
tables in :mod:`~escalade.runtime.store.roster`.

Inside the outermost :meth:`SQLStore.transaction` the store holds the tickets it
touches (SQLite's ``BEGIN IMMEDIATE`` holds them all; PostgreSQL takes their shards,
:mod:`~escalade.runtime.store.shard_locks`), so nobody else changes what a decision
reads of them: a :class:`~escalade.runtime.store.unit.Unit` keeps it for the
transaction and holds the appended rows until the commit
(:mod:`~escalade.runtime.store.unit`); the audit trail's tables are in
:mod:`~escalade.runtime.store.audit_table`. Outside a transaction every call reads
and writes the database at once. Each hook counts what it sends:
:attr:`SQLStore.statements` and :attr:`SQLStore.commits` (the benchmarks print them).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from escalade.runtime.store import DuplicateEvent, Escalation
from escalade.runtime.store.appends import Appends
from escalade.runtime.store.audit_table import AuditTable
from escalade.runtime.store.roster import AbsenceCache, Roster
from escalade.runtime.store.rows import (
    ESC_ASSIGNMENTS,
    ESC_COLUMNS,
    ESC_MARKS,
    ESC_SNAPSHOT,
    ESC_WRITTEN,
    dumps,
    esc_row,
    esc_update,
    esc_values,
    escalation_of,
    values_list,
)
from escalade.runtime.store.ticket_reads import TicketReads
from escalade.runtime.store.token_table import TokenTable
from escalade.runtime.store.trail import CHECKPOINT_EVERY
from escalade.runtime.store.unit import META_LOAD, InsertNew, Unit, clock_write, meta_write
from escalade.runtime.store.writes import Write, as_values


class SQLStore(TokenTable, Appends, Roster, AuditTable, TicketReads):
    """The dialect-neutral half of a SQL :class:`~escalade.runtime.store.Store` (API tokens
    in :class:`~escalade.runtime.store.token_table.TokenTable`, the append-mostly tables in
    :class:`~escalade.runtime.store.appends.Appends`, absences, overrides, silences, rotation
    cursors, groups and post-mortems in :class:`~escalade.runtime.store.roster.Roster`,
    the audit trail in
    :class:`~escalade.runtime.store.audit_table.AuditTable`, taking and reading tickets in
    :class:`~escalade.runtime.store.ticket_reads.TicketReads`)."""

    # BEGIN excludes every other writer (SQLite): every transaction is exclusive
    single_writer = True

    def __init__(self, checkpoint_every: int = CHECKPOINT_EVERY) -> None:
        if checkpoint_every < 1:
            raise ValueError(f"checkpoint_every must be >= 1, not {checkpoint_every}")
        self._depth = 0
        self._unit: Unit | None = None
        self._shards = 1  # the audit trail's, read from the store's meta when it opens
        self.checkpoint_every = checkpoint_every
        self._owe_checkpoint = False  # another transaction was writing one: the next writes
        # (absences version, since when, the windows) kept while the version holds
        self._absent: AbsenceCache | None = None
        self.statements = 0  # statements sent to the database (a multi-row INSERT is one)
        self.round_trips = 0  # messages that waited for the server (PostgreSQL)
        self.commits = 0

    # --- hooks (the subclass's dialect and driver) ----------------------------
    def _row(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """The first row ``sql`` (``?`` placeholders) returns, or ``None``."""
        raise NotImplementedError

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Every row ``sql`` (``?`` placeholders) returns."""
        raise NotImplementedError

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run ``sql`` (``?`` placeholders) for its effect."""
        raise NotImplementedError

    def _exec_count(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run ``sql`` for its effect; how many rows it changed."""
        raise NotImplementedError

    def _insert(self, sql: str, params: Sequence[Any]) -> int:
        """Run an ``INSERT`` (``?`` placeholders) into a table with an ``id`` column; the new id."""
        raise NotImplementedError

    def _insert_new(self, sql: str, params: Sequence[Any], unique: str) -> int | None:
        """Like :meth:`_insert`, but a row whose ``unique`` column is taken is skipped
        (``None``) instead of refused."""
        raise NotImplementedError

    def _is_unique_violation(self, exc: Exception) -> bool:
        """Whether ``exc`` is the driver's error for a duplicate key."""
        raise NotImplementedError

    def _begin(self) -> None:
        """Open the outermost transaction."""
        raise NotImplementedError

    def _open(self, exclusive: bool) -> list[Any] | None:
        """Open the outermost transaction, take its lock (see :meth:`_lock`) and read
        :data:`~escalade.runtime.store.unit.META_LOAD`: its rows (rolled back on failure;
        None: read later, see :meth:`_meta_unit`)."""
        self._begin()
        try:
            self._lock(exclusive)
            return self._rows(META_LOAD)
        except BaseException:
            with suppress(Exception):
                self._rollback()
            raise

    def _locked_reads(
        self, shards: list[int], reads: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[list[Any]]:
        """Take ``shards`` (ascending, waiting for them), then run ``reads``: their rows."""
        if shards:
            self._lock_shards(shards)
        return [self._rows(sql, params) for sql, params in reads]

    def _send_write(self, write: Write) -> None:
        """Write ``write``'s rows now: multi-row INSERTs (one row at a time with a returning
        write on a SQLite without ``RETURNING``, before 3.35)."""
        insert_new = self._insert_one_by_one()
        if write.then is not None and insert_new is not None:
            found = []
            for row in write.rows:
                sql = (
                    f"INSERT INTO {write.table}({write.columns}) VALUES {values_list(len(row), 1)}"
                )
                new_id = insert_new(sql, row, "key")
                if new_id is not None:
                    found.append((new_id, row[0]))
            write.then(found)
            return
        for sql, params in as_values(write):
            if write.then is None:
                self._exec(sql, params)
            else:
                write.then(self._rows(sql, params))

    def _write_and_commit(self, unit: Unit) -> bool:
        """Write what ``unit`` holds (and COMMIT, when the store sends both at once:
        True)."""
        unit.flush(self._send_write)
        unit.finish(self._send_write)
        return False

    def _lock(self, exclusive: bool) -> None:
        """Inside a just-opened transaction, when BEGIN did not: keep out ``exclusive``
        transactions (or, for one, every other transaction)."""

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def _for_update(self) -> str:
        """A clause that locks the rows a query reads until the transaction ends ('' where
        a transaction is the only writer already)."""
        return ""

    def _lock_due_timers(self, table: str = "") -> str:
        """A clause that locks the due timers :meth:`due_timers` reads ('' for none;
        ``table``: the timers' alias when the query joins another table)."""
        return ""

    # --- transactions --------------------------------------------------------
    @contextmanager
    def transaction(self, *, exclusive: bool = False) -> Iterator[None]:
        if self._depth:
            if exclusive and self._unit is not None and not self._unit.exclusive:
                raise RuntimeError("an exclusive transaction cannot join a shared one")
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        # Read once per transaction: what others change meanwhile is read again when the
        # transaction takes the shards it concerns.
        rows = self._open(exclusive)
        self._depth = 1
        try:
            unit = self._unit = Unit.loaded(rows, exclusive or self.single_writer)
            yield
            committed = self._finish(unit)
        except BaseException:
            self._abandon()
            raise
        self._depth = 0
        self._unit = None
        if not committed:
            try:
                self._commit()
            except BaseException:
                self._absent = None
                with suppress(Exception):
                    self._rollback()  # a COMMIT that failed (SQLite: busy) may leave it open
                raise
        self.commits += 1

    def _finish(self, unit: Unit) -> bool:
        """Write what the transaction holds: a checkpoint when one is due, then every row
        (True: committed with them)."""
        if (unit.clock_dirty or unit.counters) and not unit.held:
            self._take_shards([0])  # the clock and counter rows it writes are shard 0's
        if unit.crossed or (self._owe_checkpoint and unit.heads_dirty):
            self._checkpoint(unit)
        return self._write_and_commit(unit)

    def _abandon(self) -> None:
        """Roll back: every row held for the commit is dropped with the transaction."""
        self._depth = 0
        self._unit = None
        self._absent = None  # it may hold an absence the rollback undid
        self._rollback()

    def flush(self) -> None:
        """Write now what the open transaction holds for its commit (nothing outside one):
        for a reader that queries the database directly inside the transaction."""
        if self._unit is not None:
            self._unit.flush(self._send_write)

    def _insert_one_by_one(self) -> InsertNew | None:
        """``_insert_new`` when the database cannot return the ids of a multi-row INSERT
        (SQLite before 3.35 has no ``RETURNING``), else None."""
        return None

    def schema_version(self) -> int:
        """The highest applied migration."""
        row = self._row("SELECT MAX(version) FROM schema_migrations")
        return int(row[0] or 0)

    # --- meta / clock --------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._row("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._send_write(meta_write([(key, value)]))

    def _meta_unit(self) -> Unit:
        """The open unit, its meta rows read (a shared PostgreSQL transaction reads them
        with the first shards it takes, or here when it needs them before)."""
        unit = self._unit
        assert unit is not None
        if not unit.meta_read:
            unit.refreshed(self._rows(META_LOAD))
            unit.meta_read = True
        return unit

    def clock(self) -> int | None:
        """The latest time the store acted at: the latest of the shards' clocks."""
        if self._unit is not None:
            return self._meta_unit().clock
        row = self._row("SELECT MAX(at) FROM clocks")
        return None if row is None or row[0] is None else int(row[0])

    def set_clock(self, at: int) -> None:
        current = self.clock()
        if current is not None and at <= current:
            return
        if self._unit is not None:
            self._unit.clock, self._unit.clock_dirty = at, True  # read by clock() above
        else:
            self._send_write(clock_write(0, at))

    # --- packs ---------------------------------------------------------------
    def add_pack(self, content_hash: str, version: str, body: str, at: int) -> int:
        row = self._row("SELECT id FROM packs WHERE content_hash = ?", (content_hash,))
        if row is not None:
            return int(row[0])
        return self._insert(
            "INSERT INTO packs(content_hash, version, body, added_at) VALUES (?, ?, ?, ?)",
            (content_hash, version, body, at),
        )

    def pack_body(self, pack_id: int) -> str:
        row = self._row("SELECT body FROM packs WHERE id = ?", (pack_id,))
        if row is None:
            raise KeyError(f"no pack {pack_id} in the store")
        return str(row[0])

    def pack_hash(self, pack_id: int) -> str:
        row = self._row("SELECT content_hash FROM packs WHERE id = ?", (pack_id,))
        if row is None:
            raise KeyError(f"no pack {pack_id} in the store")
        return str(row[0])

    def active_pack(self) -> int | None:
        value = self._meta("active_pack")
        return None if value is None else int(value)

    def activate_pack(self, pack_id: int, at: int) -> None:
        self._exec("UPDATE packs SET activated_at = ? WHERE id = ?", (at, pack_id))
        self._set_meta("active_pack", str(pack_id))

    def packs(self) -> list[dict[str, Any]]:
        rows = self._rows(
            "SELECT id, content_hash, version, added_at, activated_at FROM packs ORDER BY id"
        )
        keys = ("id", "content_hash", "version", "added_at", "activated_at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # --- events --------------------------------------------------------------
    def has_event(self, event_id: str) -> bool:
        unit = self._unit
        if unit is not None and event_id in unit.checked:
            return event_id in unit.known
        return self._row("SELECT 1 FROM events WHERE id = ?", (event_id,)) is not None

    def add_event(self, event_id: str, type_: str, at: int, ticket: str, body: str) -> None:
        if not self.claim_event(event_id, type_, at, ticket, body):
            raise DuplicateEvent(f"duplicate event id {event_id!r}")

    def claim_event(self, event_id: str, type_: str, at: int, ticket: str, body: str) -> bool:
        """Record the event unless its id is known: True when it is new (one statement, or
        none for an id :meth:`read_ahead` checked: it is written before the commit)."""
        unit = self._unit
        if unit is not None and event_id in unit.checked:
            if event_id in unit.known:
                return False
            unit.known.add(event_id)
            unit.event_rows.append((event_id, type_, at, ticket, body))
            return True
        changed = self._exec_count(
            "INSERT INTO events(id, type, at, ticket, body) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(id) DO NOTHING",
            (event_id, type_, at, ticket, body),
        )
        return changed > 0

    def count_events(self) -> int:
        if self._unit is not None and self._unit.event_rows:
            self._unit.flush_events(self._send_write)
        return self._count("SELECT COUNT(*) FROM events")

    def _view(self, ticket: str) -> Unit:
        """The open unit, with ``ticket`` read into it (one query the first time)."""
        unit = self._unit
        assert unit is not None
        if ticket not in unit.viewed:
            self.read_ahead([ticket], ())  # its shard taken first (one message)
        return unit

    def ticket_state(self, ticket: str) -> tuple[dict[str, Any], dict[str, int]]:
        if self._unit is not None:
            row = self._view(ticket).tickets.get(ticket)
        else:
            row = self._row("SELECT state, times FROM tickets WHERE ticket = ?", (ticket,))
        if row is None:
            return {}, {}
        return json.loads(row[0]), json.loads(row[1])

    def put_ticket_state(self, ticket: str, state: dict[str, Any], times: dict[str, int]) -> None:
        written = (dumps(state), dumps(times))
        if self._unit is not None:
            self._hold_ticket(ticket)
            self._unit.tickets[ticket] = self._unit.ticket_writes[ticket] = written
            return
        self._exec(
            "INSERT INTO tickets(ticket, state, times) VALUES (?, ?, ?) ON CONFLICT(ticket)"
            " DO UPDATE SET state = excluded.state, times = excluded.times",
            (ticket, *written),
        )

    # --- escalations ---------------------------------------------------------
    def _flush_escalations(self) -> None:
        if self._unit is not None and self._unit.esc_writes:
            self._unit.flush_escalations(self._send_write)

    def open_escalation(self, ticket: str) -> Escalation | None:
        if self._unit is not None:
            found = self._view(ticket).open.get(ticket)
            return None if found is None else escalation_of(found)
        row = self._row(
            f"SELECT {ESC_COLUMNS} FROM escalations WHERE ticket = ? AND state != 'closed'",
            (ticket,),
        )
        return None if row is None else escalation_of(row)

    def latest_escalation(self, ticket: str) -> Escalation | None:
        self._flush_escalations()
        row = self._row(
            f"SELECT {ESC_COLUMNS} FROM escalations WHERE ticket = ? ORDER BY id DESC LIMIT 1",
            (ticket,),
        )
        return None if row is None else escalation_of(row)

    def escalation(self, escalation_id: int) -> Escalation | None:
        unit = self._unit
        if unit is not None and escalation_id in unit.by_id:
            return escalation_of(unit.by_id[escalation_id])
        sql = f"SELECT {ESC_COLUMNS} FROM escalations WHERE id = ?"
        row = self._row(sql, (escalation_id,))
        if row is None:
            return None
        if unit is not None:
            ticket = str(row[1])
            if self._shard_of(ticket) not in unit.held:
                self._hold_ticket(ticket)
                if not unit.exclusive:
                    row = self._row(sql, (escalation_id,))  # as its last holder left it
            unit.by_id[escalation_id] = tuple(row)
        return escalation_of(row)

    def _reserved_id(self, after: int) -> int | None:
        """An escalation id above ``after`` (the ticket's highest), reserved for an insert
        the transaction writes at its end; None: insert at once to learn the id."""
        return None

    def insert_escalation(self, esc: Escalation) -> int:
        unit = self._unit
        if unit is not None:
            self._view(esc.ticket)  # its shard taken, its highest id known
            reserved = self._reserved_id(unit.last_id.get(esc.ticket, 0))
            if reserved is not None:  # written with the others before the commit
                esc.id = reserved
                unit.keep_escalation((esc.id, *esc_values(esc)), written=False)
                unit.fresh.add(esc.id)
                return esc.id
        if unit is not None and unit.closed.get(esc.ticket):
            self._flush_escalations()  # a close held for the commit frees the ticket first
        values = esc_values(esc)
        esc.id = self._insert(
            f"INSERT INTO escalations({ESC_WRITTEN}) VALUES ({ESC_MARKS})", values
        )
        if self._unit is not None:
            self._unit.keep_escalation((esc.id, *values), written=True)
            self._unit.fresh.add(esc.id)
        return esc.id

    def update_escalation(self, esc: Escalation) -> None:
        unit = self._unit
        before = unit.by_id.get(esc.id) if unit is not None else None
        row = esc_row(esc, None if before is None else before[ESC_SNAPSHOT])
        if unit is not None:
            self._hold_ticket(esc.ticket)
            unit.keep_escalation(row, written=False)
            return
        self._exec(f"UPDATE escalations SET {ESC_ASSIGNMENTS} WHERE id = ?", esc_update(row))

    def last_closed_at(self, ticket: str, policy: str) -> int | None:
        if self._unit is not None:
            if not self._view(ticket).closed.get(ticket):
                return None  # the ticket never had a closed escalation
            self._flush_escalations()
        row = self._row(
            "SELECT MAX(closed_at) FROM escalations WHERE ticket = ? AND policy = ?"
            " AND state = 'closed'",
            (ticket, policy),
        )
        return None if row is None or row[0] is None else int(row[0])

    def open_escalations_owned_by(self, owner: str) -> list[Escalation]:
        self._flush_escalations()
        rows = self._rows(
            f"SELECT {ESC_COLUMNS} FROM escalations WHERE owner = ? AND state != 'closed'"
            " ORDER BY id",
            (owner,),
        )
        return [escalation_of(r) for r in rows]

    def open_escalations(self, limit: int) -> list[Escalation]:
        self._flush_escalations()
        rows = self._rows(
            f"SELECT {ESC_COLUMNS} FROM escalations WHERE state != 'closed'"
            " ORDER BY started_at, id LIMIT ?",
            (limit,),
        )
        return [escalation_of(r) for r in rows]

    def count_open(self) -> int:
        self._flush_escalations()
        return self._count("SELECT COUNT(*) FROM escalations WHERE state != 'closed'")

    def open_by_state_and_policy(self) -> list[tuple[str, str, int]]:
        self._flush_escalations()
        rows = self._rows(
            "SELECT state, policy, COUNT(*) FROM escalations WHERE state != 'closed'"
            " GROUP BY state, policy ORDER BY state, policy"
        )
        return [(str(s), str(p), int(n)) for s, p, n in rows]

    def _count(self, sql: str) -> int:
        row = self._row(sql)
        return int(row[0] or 0) if row is not None else 0
