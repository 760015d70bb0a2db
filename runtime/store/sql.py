"""What the SQL stores share: every query whose SQL is the same in SQLite and PostgreSQL.

:class:`SQLStore` implements the :class:`~escalade.runtime.store.Store` methods
once, against a few hooks its subclasses provide: :meth:`SQLStore._row`,
:meth:`SQLStore._rows` and :meth:`SQLStore._exec` run SQL written with ``?``
placeholders (the PostgreSQL store turns them into ``%s``),
:meth:`SQLStore._insert` inserts a row and returns its new id,
:meth:`SQLStore._insert_new` does so unless the row's unique key is taken, and
:meth:`SQLStore._is_unique_violation` recognises the driver's duplicate-key
error. Connections, transactions and locking, migrations and DDL stay in
:mod:`~escalade.runtime.store.sqlite` and :mod:`~escalade.runtime.store.postgres`.

Inside the outermost :meth:`SQLStore.transaction` the store holds the write
lock (SQLite's ``BEGIN IMMEDIATE``, PostgreSQL's advisory lock), so nobody else
changes the clock or the audit head: they are read once and written back once.
"""

from __future__ import annotations

import dataclasses
import json
import operator
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from escalade.runtime.store import (
    AuditRow,
    DeadLetter,
    DuplicateEvent,
    Escalation,
    Facts,
    OutboxMessage,
    Timer,
)
from escalade.runtime.store.token_table import TokenTable

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_T = TypeVar("_T", bound="DataclassInstance")

ESC_COLUMNS = (
    "id, ticket, policy, pack_id, priority, state, level, level_index, cycle, owner, owner_kind,"
    " started_at, acked_at, resolved_at, closed_at, account, snapshot, extra"
)
OUTBOX_COLUMNS = (
    "id, key, escalation_id, ticket, action, target, target_kind, payload, created_at,"
    " status, attempts, delivered_at, reason, attempted_at"
)
TIMER_COLUMNS = "id, due, kind, ticket, escalation_id, key, payload"
AUDIT_COLUMNS = (
    "seq, at, kind, ticket, escalation_id, policy, pack_version, actor, reason, detail, prev, hash"
)
DEAD_LETTER_COLUMNS = "id, event_id, raw, error, received_at, replayed_at"
_ESC_FIELDS = ESC_COLUMNS.split(", ")
_OUTBOX_FIELDS = OUTBOX_COLUMNS.split(", ")
_AUDIT_FIELDS = AUDIT_COLUMNS.split(", ")
_ESC_WRITTEN = ", ".join(_ESC_FIELDS[1:])
_ESC_MARKS = ", ".join("?" for _ in _ESC_FIELDS[1:])
_ESC_ASSIGNMENTS = ", ".join(f"{c} = ?" for c in _ESC_FIELDS[1:])
_OUTBOX_WRITTEN = ", ".join(_OUTBOX_FIELDS[1:])
_OUTBOX_MARKS = ", ".join("?" for _ in _OUTBOX_FIELDS[1:])
_AUDIT_MARKS = ", ".join("?" for _ in _AUDIT_FIELDS)


def dumps(value: Any) -> str:
    """JSON as the stores keep it: sorted keys, no spaces (stable for hashing and diffs)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _record(make: type[_T], columns: str, *json_fields: str) -> Callable[[Sequence[Any]], _T]:
    """What turns a row of ``columns`` (in that order) into the dataclass ``make``;
    ``json_fields`` are stored as JSON text. Every field of ``make`` is a column."""
    fields = columns.split(", ")
    decoded = tuple(fields.index(f) for f in json_fields)
    # the dataclass's positional order, as indexes into the row (faster than keywords)
    in_order = operator.itemgetter(*[fields.index(f.name) for f in dataclasses.fields(make)])

    def of(row: Sequence[Any]) -> _T:
        values = list(row)
        for i in decoded:
            values[i] = json.loads(values[i])
        return make(*in_order(values))

    return of


_escalation_row = _record(Escalation, ESC_COLUMNS.replace("extra", "facts"), "snapshot", "facts")


def escalation_of(row: Sequence[Any]) -> Escalation:
    """An escalation row; its ``extra`` column holds the typed :class:`Facts` as JSON."""
    esc = _escalation_row(row)
    esc.facts = Facts.from_json(esc.facts)  # type: ignore[arg-type]  # decoded JSON so far
    return esc


timer_of = _record(Timer, TIMER_COLUMNS, "payload")
outbox_of = _record(OutboxMessage, OUTBOX_COLUMNS, "payload")
audit_of = _record(AuditRow, AUDIT_COLUMNS, "detail")
dead_letter_of = _record(DeadLetter, DEAD_LETTER_COLUMNS)


def _esc_values(esc: Escalation) -> tuple[Any, ...]:
    return (
        esc.ticket,
        esc.policy,
        esc.pack_id,
        esc.priority,
        esc.state,
        esc.level,
        esc.level_index,
        esc.cycle,
        esc.owner,
        esc.owner_kind,
        esc.started_at,
        esc.acked_at,
        esc.resolved_at,
        esc.closed_at,
        esc.account,
        dumps(esc.snapshot),
        dumps(esc.facts.to_json()),
    )


class SQLStore(TokenTable):
    """The dialect-neutral half of a SQL :class:`~escalade.runtime.store.Store` (API tokens
    in :class:`~escalade.runtime.store.token_table.TokenTable`)."""

    def __init__(self) -> None:
        self._depth = 0
        self._cached = False
        self._clock: int | None = None
        self._head: tuple[int, str] = (0, "")
        self._clock_dirty = False
        self._head_dirty = False

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

    def _lock(self) -> None:
        """Take the write lock inside a just-opened transaction, when BEGIN did not."""

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def _lock_due_timers(self) -> str:
        """A clause that locks the due timers :meth:`due_timers` reads ('' for none)."""
        return ""

    # --- transactions --------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._begin()
        self._depth = 1
        try:
            self._lock()
            # Under the write lock nobody else changes these: read them once per transaction.
            self._load_cached_meta()
            yield
            if self._head_dirty:
                self._set_meta("audit_head", f"{self._head[0]}:{self._head[1]}")
            if self._clock_dirty and self._clock is not None:
                self._set_meta("clock", str(self._clock))
        except BaseException:
            self._depth = 0
            self._cached = False
            self._rollback()
            raise
        self._depth = 0
        self._cached = False
        self._commit()

    def _load_cached_meta(self) -> None:
        rows = dict(self._rows("SELECT key, value FROM meta WHERE key IN ('clock', 'audit_head')"))
        self._clock = int(rows["clock"]) if "clock" in rows else None
        head = rows.get("audit_head")
        if head is None:
            self._head = (0, "")
        else:
            seq, _, digest = head.partition(":")
            self._head = (int(seq), digest)
        self._cached = True
        self._clock_dirty = False
        self._head_dirty = False

    def schema_version(self) -> int:
        """The highest applied migration."""
        row = self._row("SELECT MAX(version) FROM schema_migrations")
        return int(row[0] or 0)

    # --- meta / clock --------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._row("SELECT value FROM meta WHERE key = ?", (key,))
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._exec(
            "INSERT INTO meta(key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    def clock(self) -> int | None:
        if self._cached:
            return self._clock
        value = self._meta("clock")
        return None if value is None else int(value)

    def set_clock(self, at: int) -> None:
        current = self.clock()
        if current is not None and at <= current:
            return
        if self._cached:
            self._clock, self._clock_dirty = at, True
        else:
            self._set_meta("clock", str(at))

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
        return self._row("SELECT 1 FROM events WHERE id = ?", (event_id,)) is not None

    def add_event(self, event_id: str, type_: str, at: int, ticket: str, body: str) -> None:
        try:
            self._exec(
                "INSERT INTO events(id, type, at, ticket, body) VALUES (?, ?, ?, ?, ?)",
                (event_id, type_, at, ticket, body),
            )
        except Exception as exc:
            if self._is_unique_violation(exc):
                raise DuplicateEvent(f"duplicate event id {event_id!r}") from None
            raise

    def count_events(self) -> int:
        return self._count("SELECT COUNT(*) FROM events")

    # --- tickets -------------------------------------------------------------
    def ticket_state(self, ticket: str) -> tuple[dict[str, Any], dict[str, int]]:
        row = self._row("SELECT state, times FROM tickets WHERE ticket = ?", (ticket,))
        if row is None:
            return {}, {}
        return json.loads(row[0]), json.loads(row[1])

    def put_ticket_state(self, ticket: str, state: dict[str, Any], times: dict[str, int]) -> None:
        self._exec(
            "INSERT INTO tickets(ticket, state, times) VALUES (?, ?, ?) ON CONFLICT(ticket)"
            " DO UPDATE SET state = excluded.state, times = excluded.times",
            (ticket, dumps(state), dumps(times)),
        )

    # --- escalations ---------------------------------------------------------
    def open_escalation(self, ticket: str) -> Escalation | None:
        row = self._row(
            f"SELECT {ESC_COLUMNS} FROM escalations WHERE ticket = ? AND state != 'closed'",
            (ticket,),
        )
        return None if row is None else escalation_of(row)

    def latest_escalation(self, ticket: str) -> Escalation | None:
        row = self._row(
            f"SELECT {ESC_COLUMNS} FROM escalations WHERE ticket = ? ORDER BY id DESC LIMIT 1",
            (ticket,),
        )
        return None if row is None else escalation_of(row)

    def escalation(self, escalation_id: int) -> Escalation | None:
        row = self._row(f"SELECT {ESC_COLUMNS} FROM escalations WHERE id = ?", (escalation_id,))
        return None if row is None else escalation_of(row)

    def insert_escalation(self, esc: Escalation) -> int:
        esc.id = self._insert(
            f"INSERT INTO escalations({_ESC_WRITTEN}) VALUES ({_ESC_MARKS})", _esc_values(esc)
        )
        return esc.id

    def update_escalation(self, esc: Escalation) -> None:
        self._exec(
            f"UPDATE escalations SET {_ESC_ASSIGNMENTS} WHERE id = ?", (*_esc_values(esc), esc.id)
        )

    def last_closed_at(self, ticket: str, policy: str) -> int | None:
        row = self._row(
            "SELECT MAX(closed_at) FROM escalations WHERE ticket = ? AND policy = ?"
            " AND state = 'closed'",
            (ticket, policy),
        )
        return None if row is None or row[0] is None else int(row[0])

    def open_escalations_owned_by(self, owner: str) -> list[Escalation]:
        rows = self._rows(
            f"SELECT {ESC_COLUMNS} FROM escalations WHERE owner = ? AND state != 'closed'"
            " ORDER BY id",
            (owner,),
        )
        return [escalation_of(r) for r in rows]

    def open_escalations(self, limit: int) -> list[Escalation]:
        rows = self._rows(
            f"SELECT {ESC_COLUMNS} FROM escalations WHERE state != 'closed'"
            " ORDER BY started_at, id LIMIT ?",
            (limit,),
        )
        return [escalation_of(r) for r in rows]

    def count_open(self) -> int:
        return self._count("SELECT COUNT(*) FROM escalations WHERE state != 'closed'")

    def open_by_state_and_policy(self) -> list[tuple[str, str, int]]:
        rows = self._rows(
            "SELECT state, policy, COUNT(*) FROM escalations WHERE state != 'closed'"
            " GROUP BY state, policy ORDER BY state, policy"
        )
        return [(str(s), str(p), int(n)) for s, p, n in rows]

    # --- timers --------------------------------------------------------------
    def add_timer(self, timer: Timer) -> int:
        timer.id = self._insert(
            "INSERT INTO timers(due, kind, ticket, escalation_id, key, payload)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                timer.due,
                timer.kind,
                timer.ticket,
                timer.escalation_id,
                timer.key,
                dumps(timer.payload),
            ),
        )
        return timer.id

    def cancel_timers(self, escalation_id: int, kinds: Sequence[str] | None = None) -> None:
        if kinds is None:
            self._exec("DELETE FROM timers WHERE escalation_id = ?", (escalation_id,))
            return
        marks = ", ".join("?" for _ in kinds)
        self._exec(
            f"DELETE FROM timers WHERE escalation_id = ? AND kind IN ({marks})",
            (escalation_id, *kinds),
        )

    def due_timers(self, until: int, limit: int) -> list[Timer]:
        rows = self._rows(
            f"SELECT {TIMER_COLUMNS} FROM timers WHERE due <= ? ORDER BY due, id LIMIT ?"
            + self._lock_due_timers(),
            (until, limit),
        )
        return [timer_of(r) for r in rows]

    def delete_timer(self, timer_id: int) -> None:
        self._exec("DELETE FROM timers WHERE id = ?", (timer_id,))

    def timers_of(self, escalation_id: int) -> list[Timer]:
        rows = self._rows(
            f"SELECT {TIMER_COLUMNS} FROM timers WHERE escalation_id = ? ORDER BY due, id",
            (escalation_id,),
        )
        return [timer_of(r) for r in rows]

    def has_timer(self, ticket: str, kind: str, key: str) -> bool:
        row = self._row(
            "SELECT 1 FROM timers WHERE ticket = ? AND kind = ? AND key = ?", (ticket, kind, key)
        )
        return row is not None

    def count_timers(self) -> int:
        return self._count("SELECT COUNT(*) FROM timers")

    # --- absences ------------------------------------------------------------
    def set_absence(self, person: str, until: int) -> None:
        self._exec(
            "INSERT INTO absences(person, until) VALUES (?, ?)"
            " ON CONFLICT(person) DO UPDATE SET until = excluded.until",
            (person, until),
        )

    def absences(self, at: int) -> dict[str, int]:
        rows = self._rows("SELECT person, until FROM absences WHERE until > ?", (at,))
        return {str(p): int(u) for p, u in rows}

    # --- audit ---------------------------------------------------------------
    def append_audit(self, row: AuditRow) -> None:
        self._exec(
            f"INSERT INTO audit({AUDIT_COLUMNS}) VALUES ({_AUDIT_MARKS})",
            (*row.chained()[:-1], dumps(row.detail), row.prev, row.hash),
        )
        if self._cached:
            self._head, self._head_dirty = (row.seq, row.hash), True
        else:
            self._set_meta("audit_head", f"{row.seq}:{row.hash}")

    def audit_head(self) -> tuple[int, str]:
        if self._cached:
            return self._head
        row = self._row("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        return (0, "") if row is None else (int(row[0]), str(row[1]))

    def audit_recorded_head(self) -> tuple[int, str]:
        value = self._meta("audit_head")
        if value is None:
            return 0, ""
        seq, _, digest = value.partition(":")
        return int(seq), digest

    def audit_rows(self, escalation_id: int | None = None, after: int = 0) -> Iterator[AuditRow]:
        sql = f"SELECT {AUDIT_COLUMNS} FROM audit WHERE seq > ?"
        params: tuple[Any, ...] = (after,)
        if escalation_id is not None:
            sql += " AND escalation_id = ?"
            params = (after, escalation_id)
        for r in self._rows(sql + " ORDER BY seq", params):
            yield audit_of(r)

    # --- outbox --------------------------------------------------------------
    def add_outbox(self, msg: OutboxMessage) -> bool:
        new_id = self._insert_new(
            f"INSERT INTO outbox({_OUTBOX_WRITTEN}) VALUES ({_OUTBOX_MARKS})",
            (
                msg.key,
                msg.escalation_id,
                msg.ticket,
                msg.action,
                msg.target,
                msg.target_kind,
                dumps(msg.payload),
                msg.created_at,
                msg.status,
                msg.attempts,
                msg.delivered_at,
                msg.reason,
                msg.attempted_at,
            ),
            "key",
        )
        if new_id is None:
            return False
        msg.id = new_id
        return True

    def pending_outbox(self) -> list[OutboxMessage]:
        rows = self._rows(
            f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE status = 'pending' ORDER BY id"
        )
        return [outbox_of(r) for r in rows]

    def outbox_message(self, msg_id: int) -> OutboxMessage | None:
        row = self._row(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE id = ?", (msg_id,))
        return None if row is None else outbox_of(row)

    def outbox_by_key(self, key: str) -> OutboxMessage | None:
        # `key` is UNIQUE, so its index answers this without a scan.
        row = self._row(f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE key = ?", (key,))
        return None if row is None else outbox_of(row)

    def mark_outbox(
        self,
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

    def outbox(self, escalation_id: int | None = None) -> list[OutboxMessage]:
        if escalation_id is None:
            rows = self._rows(f"SELECT {OUTBOX_COLUMNS} FROM outbox ORDER BY id")
        else:
            rows = self._rows(
                f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE escalation_id = ? ORDER BY id",
                (escalation_id,),
            )
        return [outbox_of(r) for r in rows]

    def outbox_by_status(self) -> dict[str, int]:
        rows = self._rows("SELECT status, COUNT(*) FROM outbox GROUP BY status")
        return {str(s): int(n) for s, n in rows}

    # --- dead letters --------------------------------------------------------
    def add_dead_letter(self, letter: DeadLetter) -> int:
        letter.id = self._insert(
            "INSERT INTO dead_letters(event_id, raw, error, received_at) VALUES (?, ?, ?, ?)",
            (letter.event_id, letter.raw, letter.error, letter.received_at),
        )
        return letter.id

    def dead_letters(self, include_replayed: bool = False) -> list[DeadLetter]:
        sql = f"SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters"
        if not include_replayed:
            sql += " WHERE replayed_at IS NULL"
        return [dead_letter_of(r) for r in self._rows(sql + " ORDER BY id")]

    def mark_replayed(self, letter_id: int, at: int) -> None:
        self._exec("UPDATE dead_letters SET replayed_at = ? WHERE id = ?", (at, letter_id))

    def count_dead_letters(self) -> int:
        return self._count("SELECT COUNT(*) FROM dead_letters WHERE replayed_at IS NULL")

    # --- counters ------------------------------------------------------------
    def bump(self, name: str, by: int = 1) -> None:
        self._exec(
            "INSERT INTO counters(name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = counters.value + excluded.value",
            (name, by),
        )

    def counters(self) -> dict[str, int]:
        return {str(n): int(v) for n, v in self._rows("SELECT name, value FROM counters")}

    def _count(self, sql: str) -> int:
        row = self._row(sql)
        return int(row[0] or 0) if row is not None else 0
