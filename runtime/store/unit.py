"""What one transaction of a SQL store has read, and what it writes only at its end.

A transaction holds the shards of the tickets it touches (SQLite: every shard, by
``BEGIN IMMEDIATE``; PostgreSQL: an advisory lock per shard, taken before the first
read of a ticket, see :mod:`~escalade.runtime.store.trail`), so nobody else changes
the rows of those tickets while it runs: a :class:`Unit` keeps what it read of them
for the rest of the transaction, and keeps the rows the decision appends, to write
each table in one multi-row statement just before the COMMIT (or before a query
that must see them). What it keeps:

- the clock, the absences version, the earliest due timer and every shard's audit
  head, read in ONE statement when the transaction opens (and again for the shards a
  PostgreSQL transaction takes later: :meth:`Unit.refreshed`);
- each ticket the decision touched: its state, its open escalation, whether it ever
  had a closed one and its highest escalation id (one query per ticket);
- appended rows not written yet: audit rows and checkpoints, timers, outbox messages,
  counter increments, ticket states and escalation inserts and updates.

The rows every decision used to rewrite (the clock, the audit head, the counters) are
kept per shard: a transaction writes only rows of a shard it holds (its lowest, its
"home"), so two transactions on different shards never wait for each other's rows.

Nothing here outlives the transaction: a rollback drops the unit and every
buffered write with it, a commit writes them first. The store methods in
:mod:`~escalade.runtime.store.sql` decide when a query needs a flush.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from escalade.runtime.store import AuditCheckpoint, AuditRow, OutboxMessage, Timer
from escalade.runtime.store.rows import (
    AUDIT_COLUMNS,
    CHECKPOINT_COLUMNS,
    ESC_COLUMNS,
    ESC_CONFLICT,
    OUTBOX_WRITTEN,
    TIMER_WRITTEN,
    audit_values,
    checkpoint_values,
    outbox_values,
    timer_values,
)
from escalade.runtime.store.writes import Write

Send = Callable[[Write], None]  # writes rows now (or with the others, before the commit)
InsertNew = Callable[[str, Sequence[Any], str], "int | None"]

# One statement reads what every decision needs: the absences version, the clock (the
# latest of the shards' clocks), the earliest due timer (the timers' index answers MIN at
# once) and every shard's audit head. Rows: (what, shard, value).
META_LOAD = (
    "SELECT 'absences', CAST(NULL AS BIGINT), value FROM meta WHERE key = 'absences'"
    " UNION ALL SELECT 'clock', CAST(NULL AS BIGINT), CAST(MAX(at) AS TEXT) FROM clocks"
    " UNION ALL SELECT 'next_due', CAST(NULL AS BIGINT), CAST(MIN(due) AS TEXT) FROM timers"
    " UNION ALL SELECT 'head', shard, CAST(seq AS TEXT) || ':' || hash FROM audit_heads"
)
# What may have changed while a PostgreSQL transaction waited for shards it takes: the
# meta rows of META_LOAD, with only those shards' heads ({shards}: their marks).
REFRESH = (
    "SELECT 'absences', CAST(NULL AS BIGINT), value FROM meta WHERE key = 'absences'"
    " UNION ALL SELECT 'clock', CAST(NULL AS BIGINT), CAST(MAX(at) AS TEXT) FROM clocks"
    " UNION ALL SELECT 'next_due', CAST(NULL AS BIGINT), CAST(MIN(due) AS TEXT) FROM timers"
    " UNION ALL SELECT 'head', shard, CAST(seq AS TEXT) || ':' || hash FROM audit_heads"
    " WHERE shard IN ({shards})"
)
NO_TIMER = 2**62  # a due time after every real one: "no timer is due before it"


@dataclass(slots=True)
class Unit:
    """One transaction's reads and its writes not yet sent (see the module docstring)."""

    clock: int | None = None
    heads: dict[int, tuple[int, str]] = field(default_factory=dict)  # shard -> (seq, hash)
    absences_version: int | None = None
    next_due: int = NO_TIMER  # a lower bound of every timer's due time (DB and buffer)
    clock_dirty: bool = False
    heads_dirty: set[int] = field(default_factory=set)
    absences_dirty: bool = False
    exclusive: bool = False  # nobody else writes (SQLite, or an exclusive transaction)
    meta_read: bool = True  # False: the meta rows are read with the first shards taken
    held: set[int] = field(default_factory=set)  # shards this transaction took
    crossed: bool = False  # a shard passed a checkpoint boundary: write a checkpoint
    audit_at: int | None = None  # the latest time of an audit row appended here
    # ticket -> (state JSON, times JSON), None: no row; the open escalation row (of the
    # tickets viewed); whether it ever had a closed escalation
    viewed: set[str] = field(default_factory=set)
    tickets: dict[str, tuple[str, str] | None] = field(default_factory=dict)
    open: dict[str, tuple[Any, ...] | None] = field(default_factory=dict)
    closed: dict[str, bool] = field(default_factory=dict)
    by_id: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    last_id: dict[str, int] = field(default_factory=dict)  # the ticket's highest escalation id
    # event ids read ahead (checked) and those known to the store (or claimed here)
    checked: set[str] = field(default_factory=set)
    known: set[str] = field(default_factory=set)
    # writes held until the flush
    event_rows: list[tuple[str, str, int, str, str]] = field(default_factory=list)
    ticket_writes: dict[str, tuple[str, str]] = field(default_factory=dict)
    esc_writes: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    fresh: set[int] = field(default_factory=set)  # inserted here; no timer of theirs written
    timers: list[Timer] = field(default_factory=list)
    doomed: list[int] = field(default_factory=list)  # timers taken (fired), deleted at the flush
    passed: list[int] = field(default_factory=list)  # due timers of shards others hold
    timed: Counter[int | None] = field(default_factory=Counter)  # buffered timers by escalation
    outbox: list[OutboxMessage] = field(default_factory=list)
    unseen: list[OutboxMessage] = field(default_factory=list)  # queued since queued_outbox()
    audit: list[AuditRow] = field(default_factory=list)
    checkpoints: list[AuditCheckpoint] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    # rows of other tables by (table, columns, conflict clause), each by its key
    rows_held: dict[tuple[str, str, str], dict[tuple[Any, ...], tuple[Any, ...]]] = field(
        default_factory=dict
    )

    @classmethod
    def loaded(cls, rows: Sequence[Sequence[Any]] | None, exclusive: bool) -> Unit:
        """A unit from the rows of :data:`META_LOAD` (None: to be read later)."""
        unit = cls(exclusive=exclusive, meta_read=rows is not None)
        unit.refreshed(rows or ())
        return unit

    def refreshed(self, rows: Sequence[Sequence[Any]]) -> None:
        """Take in rows of :data:`META_LOAD` or :data:`REFRESH`: the clock only moves on,
        the earliest due time only comes closer (buffered timers count), heads are as read."""
        for what, shard, value in rows:
            if value is None:
                continue
            if what == "head":
                seq, _, digest = str(value).partition(":")
                self.heads[int(shard)] = (int(seq), digest)
            elif what == "clock":
                self.clock = int(value) if self.clock is None else max(self.clock, int(value))
            elif what == "next_due":
                self.next_due = min(self.next_due, int(value))
            elif what == "absences":
                self.absences_version = int(value)

    def home(self) -> int:
        """The shard whose clock and counter rows this transaction writes: its lowest."""
        return min(self.held) if self.held else 0

    def forget(self, shards: set[int], shard_of: Callable[[str], int]) -> None:
        """Drop what was read of tickets of ``shards`` before this transaction took them
        (escalations that came with a timer): it is read again, as their holder left it."""
        stale = [i for i, row in self.by_id.items() if shard_of(str(row[1])) in shards]
        for esc_id in stale:
            if esc_id not in self.esc_writes:
                del self.by_id[esc_id]

    # --- timers held in the buffer ----------------------------------------------
    def add_timer(self, timer: Timer) -> None:
        self.timers.append(timer)
        self.timed[timer.escalation_id] += 1
        self.next_due = min(self.next_due, timer.due)

    def drop_timers(self, escalation_id: int, kinds: Sequence[str] | None) -> None:
        """Forget buffered timers of ``escalation_id`` (of ``kinds``, or all)."""
        if not self.timed[escalation_id]:
            return
        kept = [
            t
            for t in self.timers
            if t.escalation_id != escalation_id or (kinds is not None and t.kind not in kinds)
        ]
        self.timed[escalation_id] -= len(self.timers) - len(kept)
        self.timers = kept

    def has_timer(self, ticket: str, kind: str, key: str) -> bool:
        return any(t.ticket == ticket and t.kind == kind and t.key == key for t in self.timers)

    # --- tickets and escalations ----------------------------------------------------
    def view(self, ticket: str, row: Sequence[Any]) -> None:
        """Take in ``ticket`` as :data:`~escalade.runtime.store.ticket_reads.TICKET_VIEW` read it; what
        this transaction wrote already (its state, escalation updates) wins."""
        self.viewed.add(ticket)
        self.tickets.setdefault(ticket, None if row[0] is None else (row[0], row[1]))
        self.closed[ticket] = self.closed.get(ticket, False) or bool(row[2])
        if row[3] is not None:
            self.last_id[ticket] = max(self.last_id.get(ticket, 0), int(row[3]))
        found = None if row[4] is None else tuple(row[4:])
        if found is not None:
            found = self.by_id.setdefault(int(found[0]), found)
        self.open[ticket] = None if found is None or found[5] == "closed" else found

    def keep_escalation(self, row: tuple[Any, ...], written: bool) -> None:
        """Remember an escalation row (``ESC_COLUMNS`` order) as the store now has it;
        ``written``: it is in the database already, else it is written at the flush."""
        esc_id, ticket, closed = int(row[0]), str(row[1]), row[5] == "closed"
        self.by_id[esc_id] = row
        self.last_id[ticket] = max(self.last_id.get(ticket, 0), esc_id)
        if not written:
            self.esc_writes[esc_id] = row
        if closed:
            self.closed[ticket] = True
        if ticket not in self.viewed:
            return  # view() prefers this row to the database's when the ticket is read
        current = self.open.get(ticket)
        if not closed:
            self.open[ticket] = row
        elif current is not None and int(current[0]) == esc_id:
            self.open[ticket] = None

    # --- the flush ------------------------------------------------------------------
    def pending(self) -> bool:
        """Whether anything waits to be written."""
        return bool(
            self.doomed
            or self.event_rows
            or self.ticket_writes
            or self.esc_writes
            or self.timers
            or self.outbox
            or self.audit
            or self.checkpoints
            or self.counters
            or self.rows_held
        )

    def flush_events(self, send: Send) -> None:
        rows, self.event_rows = self.event_rows, []
        send(Write("events", "id, type, at, ticket, body", rows, " ON CONFLICT(id) DO NOTHING"))

    def flush_tickets(self, send: Send) -> None:
        rows = [(t, s, times) for t, (s, times) in self.ticket_writes.items()]
        self.ticket_writes = {}
        send(Write("tickets", "ticket, state, times", rows, TICKET_UPSERT))

    def flush_escalations(self, send: Send) -> None:
        rows, self.esc_writes = list(self.esc_writes.values()), {}
        send(Write("escalations", ESC_COLUMNS, rows, ESC_CONFLICT))

    def flush_timers(self, send: Send) -> None:
        rows = [timer_values(t) for t in self.timers]
        self.timers = []
        self.timed.clear()
        self.fresh.clear()  # their timers may be in the database from now on
        send(Write("timers", TIMER_WRITTEN, rows))

    def flush_doomed(self, send: Send) -> None:
        ids, self.doomed = self.doomed, []
        send(Write("timers", "id", [(i,) for i in ids], delete=True))

    def flush_outbox(self, send: Send) -> None:
        """Write the queued messages as they are now (a delivery in the transaction changed
        their status already) and give each its id; a key taken already is skipped (id 0),
        as ``add_outbox`` does."""
        queued, self.outbox, self.unseen = self.outbox, [], []
        by_key = {m.key: m for m in queued}

        def take_ids(found: list[Any]) -> None:
            for new_id, key in found:
                by_key[str(key)].id = int(new_id)

        rows = [outbox_values(m) for m in queued]
        send(Write("outbox", OUTBOX_WRITTEN, rows, OUTBOX_NEW, take_ids))

    def append_audit(self, row: AuditRow, every: int) -> None:
        """Hold ``row`` for the flush; its shard's head moves to it (``every``: a checkpoint
        is due when the shard's chain reaches a multiple of this many rows)."""
        self.audit.append(row)
        self.heads[row.shard] = (row.seq, row.hash)
        self.heads_dirty.add(row.shard)
        self.crossed = self.crossed or row.seq % every == 0
        self.audit_at = row.at if self.audit_at is None else max(self.audit_at, row.at)

    def flush_audit(self, send: Send) -> None:
        rows = [audit_values(r) for r in self.audit]
        self.audit = []
        send(Write("audit", AUDIT_COLUMNS, rows))

    def flush_counters(self, send: Send) -> None:
        """The increments, on the home shard's rows (by name: every writer locks them in
        the same order)."""
        home = self.home()
        rows = [(name, home, by) for name, by in sorted(self.counters.items())]
        self.counters = {}
        send(Write("counters", "name, shard, value", rows, COUNTER_ADD))

    def hold_row(
        self, into: tuple[str, str, str], key: tuple[Any, ...], row: tuple[Any, ...], upsert: bool
    ) -> None:
        """Hold ``row`` for ``into`` (table, columns, conflict clause) until the flush; of two
        rows with the same ``key`` the later is written (``upsert``) or the first kept."""
        held = self.rows_held.setdefault(into, {})
        if upsert or key not in held:
            held[key] = row

    def flush_held(self, send: Send, table: str | None = None) -> None:
        """Write the rows held for ``table`` (None: for every table)."""
        for into in [i for i in self.rows_held if table is None or i[0] == table]:
            rows = self.rows_held.pop(into)
            send(Write(into[0], into[1], list(rows.values()), into[2]))

    def flush(self, send: Send) -> None:
        """Write everything held, each table in one statement (or a few, for many rows)."""
        if self.event_rows:
            self.flush_events(send)
        if self.ticket_writes:
            self.flush_tickets(send)
        if self.esc_writes:
            self.flush_escalations(send)
        if self.timers:
            self.flush_timers(send)
        if self.doomed:
            self.flush_doomed(send)
        if self.outbox:
            self.flush_outbox(send)
        if self.audit:
            self.flush_audit(send)
        if self.counters:
            self.flush_counters(send)
        if self.rows_held:
            self.flush_held(send)

    def finish(self, send: Send) -> None:
        """The last writes before the COMMIT: checkpoints, the heads of the chains appended
        to, the clock (the home shard's row) and the absences version."""
        if self.checkpoints:
            rows = [checkpoint_values(c) for c in self.checkpoints]
            self.checkpoints = []
            send(Write("audit_checkpoints", CHECKPOINT_COLUMNS, rows))
        if self.heads_dirty:
            heads = [(s, *self.heads[s]) for s in sorted(self.heads_dirty)]
            self.heads_dirty = set()
            send(Write("audit_heads", "shard, seq, hash", heads, HEAD_UPSERT))
        if self.clock_dirty and self.clock is not None:
            send(clock_write(self.home(), self.clock))
        if self.absences_dirty:
            send(meta_write([("absences", str(self.absences_version or 0))]))


TICKET_UPSERT = " ON CONFLICT(ticket) DO UPDATE SET state = excluded.state, times = excluded.times"
OUTBOX_NEW = " ON CONFLICT(key) DO NOTHING RETURNING id, key"
COUNTER_ADD = " ON CONFLICT(name, shard) DO UPDATE SET value = counters.value + excluded.value"
HEAD_UPSERT = " ON CONFLICT(shard) DO UPDATE SET seq = excluded.seq, hash = excluded.hash"


def clock_write(shard: int, at: int) -> Write:
    """Move ``shard``'s clock on to ``at`` (never back)."""
    tail = " ON CONFLICT(shard) DO UPDATE SET at = excluded.at WHERE excluded.at > clocks.at"
    return Write("clocks", "shard, at", [(shard, at)], tail)


def meta_write(rows: Sequence[tuple[str, str]]) -> Write:
    """Upsert ``rows`` of the meta table."""
    return Write(
        "meta", "key, value", rows, " ON CONFLICT(key) DO UPDATE SET value = excluded.value"
    )
