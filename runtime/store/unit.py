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
    ESC_UPSERT,
    OUTBOX_WRITTEN,
    TIMER_WRITTEN,
    audit_values,
    checkpoint_values,
    chunks,
    flat,
    outbox_values,
    timer_values,
    values_list,
)

Run = Callable[[str, Sequence[Any]], None]
RunRows = Callable[[str, Sequence[Any]], list[Any]]
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
# What may have changed while a PostgreSQL transaction waited for shards it takes late:
# the clock, the earliest due timer and those shards' heads ({shards}: their marks).
REFRESH = (
    "SELECT 'clock', CAST(NULL AS BIGINT), CAST(MAX(at) AS TEXT) FROM clocks"
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

    @classmethod
    def loaded(cls, rows: Sequence[Sequence[Any]], exclusive: bool) -> Unit:
        """A unit from the rows of :data:`META_LOAD`."""
        unit = cls(exclusive=exclusive)
        unit.refreshed(rows)
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
        """Take in ``ticket`` as :data:`~escalade.runtime.store.sql.TICKET_VIEW` read it; what
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
        )

    def flush_events(self, run: Run) -> None:
        rows, self.event_rows = self.event_rows, []
        for part in chunks(rows):
            run(
                f"INSERT INTO events(id, type, at, ticket, body) VALUES {values_list(5, len(part))}"
                " ON CONFLICT(id) DO NOTHING",
                flat(part),
            )

    def flush_tickets(self, run: Run) -> None:
        rows = [(t, s, times) for t, (s, times) in self.ticket_writes.items()]
        self.ticket_writes = {}
        for part in chunks(rows):
            run(
                f"INSERT INTO tickets(ticket, state, times) VALUES {values_list(3, len(part))}"
                " ON CONFLICT(ticket) DO UPDATE SET state = excluded.state, times = excluded.times",
                flat(part),
            )

    def flush_escalations(self, run: Run) -> None:
        rows, self.esc_writes = list(self.esc_writes.values()), {}
        for part in chunks(rows):
            run(ESC_UPSERT.format(values=values_list(len(part[0]), len(part))), flat(part))

    def flush_timers(self, run: Run) -> None:
        rows = [timer_values(t) for t in self.timers]
        self.timers = []
        self.timed.clear()
        self.fresh.clear()  # their timers may be in the database from now on
        for part in chunks(rows):
            run(
                f"INSERT INTO timers({TIMER_WRITTEN}) VALUES {values_list(6, len(part))}",
                flat(part),
            )

    def flush_doomed(self, run: Run) -> None:
        ids, self.doomed = self.doomed, []
        for part in chunks([(i,) for i in ids]):
            run(f"DELETE FROM timers WHERE id IN ({', '.join('?' for _ in part)})", flat(part))

    def flush_outbox(self, rows: RunRows, insert_new: InsertNew | None) -> None:
        """Write the queued messages as they are now (a delivery in the transaction changed
        their status already) and give each its id; a key taken already is skipped (id 0),
        as ``add_outbox`` does. ``insert_new``: one row at a time, for a SQLite without
        ``RETURNING`` (before 3.35); otherwise one statement per chunk of rows."""
        queued, self.outbox, self.unseen = self.outbox, [], []
        if insert_new is not None:
            for msg in queued:
                sql = f"INSERT INTO outbox({OUTBOX_WRITTEN}) VALUES {values_list(13, 1)}"
                msg.id = insert_new(sql, outbox_values(msg), "key") or 0
            return
        by_key = {m.key: m for m in queued}
        for part in chunks([outbox_values(m) for m in queued]):
            for new_id, key in rows(
                f"INSERT INTO outbox({OUTBOX_WRITTEN}) VALUES {values_list(13, len(part))}"
                " ON CONFLICT(key) DO NOTHING RETURNING id, key",
                flat(part),
            ):
                by_key[str(key)].id = int(new_id)

    def append_audit(self, row: AuditRow, every: int) -> None:
        """Hold ``row`` for the flush; its shard's head moves to it (``every``: a checkpoint
        is due when the shard's chain reaches a multiple of this many rows)."""
        self.audit.append(row)
        self.heads[row.shard] = (row.seq, row.hash)
        self.heads_dirty.add(row.shard)
        self.crossed = self.crossed or row.seq % every == 0
        self.audit_at = row.at if self.audit_at is None else max(self.audit_at, row.at)

    def flush_audit(self, run: Run) -> None:
        rows = [audit_values(r) for r in self.audit]
        self.audit = []
        for part in chunks(rows):
            run(
                f"INSERT INTO audit({AUDIT_COLUMNS}) VALUES {values_list(13, len(part))}",
                flat(part),
            )

    def flush_counters(self, run: Run) -> None:
        """The increments, on the home shard's rows (by name: every writer locks them in
        the same order)."""
        home = self.home()
        rows = [(name, home, by) for name, by in sorted(self.counters.items())]
        self.counters = {}
        for part in chunks(rows):
            run(
                f"INSERT INTO counters(name, shard, value) VALUES {values_list(3, len(part))}"
                " ON CONFLICT(name, shard) DO UPDATE SET value = counters.value + excluded.value",
                flat(part),
            )

    def flush(self, run: Run, rows: RunRows, insert_new: InsertNew | None) -> None:
        """Write everything held, each table in one statement (or a few, for many rows)."""
        if self.event_rows:
            self.flush_events(run)
        if self.ticket_writes:
            self.flush_tickets(run)
        if self.esc_writes:
            self.flush_escalations(run)
        if self.timers:
            self.flush_timers(run)
        if self.doomed:
            self.flush_doomed(run)
        if self.outbox:
            self.flush_outbox(rows, insert_new)
        if self.audit:
            self.flush_audit(run)
        if self.counters:
            self.flush_counters(run)

    def finish(self, run: Run) -> None:
        """The last writes before the COMMIT: checkpoints, the heads of the chains appended
        to, the clock (the home shard's row) and the absences version."""
        if self.checkpoints:
            rows = [checkpoint_values(c) for c in self.checkpoints]
            self.checkpoints = []
            run(
                f"INSERT INTO audit_checkpoints({CHECKPOINT_COLUMNS})"
                f" VALUES {values_list(5, len(rows))}",
                flat(rows),
            )
        if self.heads_dirty:
            heads = [(s, *self.heads[s]) for s in sorted(self.heads_dirty)]
            self.heads_dirty = set()
            run(
                f"INSERT INTO audit_heads(shard, seq, hash) VALUES {values_list(3, len(heads))}"
                " ON CONFLICT(shard) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                flat(heads),
            )
        if self.clock_dirty and self.clock is not None:
            write_clock(run, self.home(), self.clock)
        if self.absences_dirty:
            write_meta(run, [("absences", str(self.absences_version or 0))])


def write_clock(run: Run, shard: int, at: int) -> None:
    """Move ``shard``'s clock on to ``at`` (never back)."""
    run(
        "INSERT INTO clocks(shard, at) VALUES (?, ?)"
        " ON CONFLICT(shard) DO UPDATE SET at = excluded.at WHERE excluded.at > clocks.at",
        (shard, at),
    )


def write_meta(run: Run, rows: Sequence[tuple[str, str]]) -> None:
    """Upsert ``rows`` of the meta table in one statement."""
    if rows:
        run(
            f"INSERT INTO meta(key, value) VALUES {values_list(2, len(rows))}"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            flat(rows),
        )
