"""SQLite system of record (stdlib ``sqlite3``, one file, WAL).

Durability: WAL journal with ``synchronous=NORMAL`` by default — a committed
event survives ``kill -9`` of the process (the WAL is written before COMMIT
returns); ``synchronous=FULL`` also survives power loss at the cost of an
fsync per commit. Throughput figures always name the setting.

The schema is versioned: ``schema_migrations`` records each applied step of
:data:`MIGRATIONS`, and opening a store applies the missing ones in order.
Timers are rows with an index on ``due``, so a tick reads only what is due.
Audit rows cannot be updated or deleted through SQL (triggers refuse it), and
the hash chain detects anyone who drops the triggers.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from escalade.runtime.store import (
    AuditRow,
    DeadLetter,
    DuplicateEvent,
    Escalation,
    OutboxMessage,
    Timer,
)

SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA", "OFF")  # PRAGMA synchronous values, WAL mode

MIGRATIONS: tuple[str, ...] = (
    # 1: everything the engine needs
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE packs (
        id INTEGER PRIMARY KEY AUTOINCREMENT, content_hash TEXT NOT NULL UNIQUE,
        version TEXT NOT NULL, body TEXT NOT NULL, added_at INTEGER NOT NULL,
        activated_at INTEGER);
    CREATE TABLE events (
        id TEXT PRIMARY KEY, type TEXT NOT NULL, at INTEGER NOT NULL,
        ticket TEXT NOT NULL, body TEXT NOT NULL);
    CREATE TABLE tickets (ticket TEXT PRIMARY KEY, state TEXT NOT NULL, times TEXT NOT NULL);
    CREATE TABLE escalations (
        id INTEGER PRIMARY KEY AUTOINCREMENT, ticket TEXT NOT NULL, policy TEXT NOT NULL,
        pack_id INTEGER NOT NULL REFERENCES packs(id), priority INTEGER NOT NULL,
        state TEXT NOT NULL, level TEXT, level_index INTEGER NOT NULL, cycle INTEGER NOT NULL,
        owner TEXT, owner_kind TEXT, started_at INTEGER NOT NULL, acked_at INTEGER,
        resolved_at INTEGER, closed_at INTEGER, account TEXT,
        snapshot TEXT NOT NULL, extra TEXT NOT NULL);
    CREATE UNIQUE INDEX escalations_one_open ON escalations(ticket) WHERE state != 'closed';
    CREATE INDEX escalations_closed ON escalations(ticket, policy, closed_at);
    CREATE INDEX escalations_owner ON escalations(owner) WHERE state != 'closed';
    CREATE TABLE timers (
        id INTEGER PRIMARY KEY AUTOINCREMENT, due INTEGER NOT NULL, kind TEXT NOT NULL,
        ticket TEXT NOT NULL, escalation_id INTEGER, key TEXT NOT NULL, payload TEXT NOT NULL);
    CREATE INDEX timers_due ON timers(due);
    CREATE INDEX timers_escalation ON timers(escalation_id);
    CREATE INDEX timers_key ON timers(ticket, kind, key);
    CREATE TABLE absences (person TEXT PRIMARY KEY, until INTEGER NOT NULL);
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY, at INTEGER NOT NULL, kind TEXT NOT NULL, ticket TEXT,
        escalation_id INTEGER, policy TEXT, pack_version TEXT, actor TEXT NOT NULL,
        reason TEXT NOT NULL, detail TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);
    CREATE INDEX audit_escalation ON audit(escalation_id);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE, escalation_id INTEGER,
        ticket TEXT, action TEXT NOT NULL, target TEXT, target_kind TEXT, payload TEXT NOT NULL,
        created_at INTEGER NOT NULL, status TEXT NOT NULL, attempts INTEGER NOT NULL,
        delivered_at INTEGER);
    CREATE INDEX outbox_pending ON outbox(status) WHERE status = 'pending';
    CREATE INDEX outbox_escalation ON outbox(escalation_id);
    CREATE TABLE dead_letters (
        id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT, raw TEXT NOT NULL,
        error TEXT NOT NULL, received_at INTEGER NOT NULL, replayed_at INTEGER);
    CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
    """,
    # 2: why the latest delivery attempt ended as it did, and when it was made
    """
    ALTER TABLE outbox ADD COLUMN reason TEXT;
    ALTER TABLE outbox ADD COLUMN attempted_at INTEGER;
    """,
)

_ESC_COLUMNS = (
    "id, ticket, policy, pack_id, priority, state, level, level_index, cycle, owner, owner_kind,"
    " started_at, acked_at, resolved_at, closed_at, account, snapshot, extra"
)


def _dumps(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _escalation(row: sqlite3.Row | tuple[Any, ...]) -> Escalation:
    return Escalation(
        id=row[0],
        ticket=row[1],
        policy=row[2],
        pack_id=row[3],
        priority=row[4],
        state=row[5],
        level=row[6],
        level_index=row[7],
        cycle=row[8],
        owner=row[9],
        owner_kind=row[10],
        started_at=row[11],
        acked_at=row[12],
        resolved_at=row[13],
        closed_at=row[14],
        account=row[15],
        snapshot=json.loads(row[16]),
        extra=json.loads(row[17]),
    )


def _timer(row: tuple[Any, ...]) -> Timer:
    return Timer(
        id=row[0],
        due=row[1],
        kind=row[2],
        ticket=row[3],
        escalation_id=row[4],
        key=row[5],
        payload=json.loads(row[6]),
    )


def _outbox(row: tuple[Any, ...]) -> OutboxMessage:
    return OutboxMessage(
        id=row[0],
        key=row[1],
        escalation_id=row[2],
        ticket=row[3],
        action=row[4],
        target=row[5],
        target_kind=row[6],
        payload=json.loads(row[7]),
        created_at=row[8],
        status=row[9],
        attempts=row[10],
        delivered_at=row[11],
        reason=row[12],
        attempted_at=row[13],
    )


_OUTBOX_COLUMNS = (
    "id, key, escalation_id, ticket, action, target, target_kind, payload, created_at,"
    " status, attempts, delivered_at, reason, attempted_at"
)


class SQLiteStore:
    """The default :class:`~escalade.runtime.store.Store`: one SQLite file (or ``:memory:``)."""

    def __init__(self, path: str, synchronous: str = "NORMAL") -> None:
        """Open (and migrate) the store at ``path`` in WAL mode.

        ``synchronous``: NORMAL (default) survives kill -9 of the process; FULL
        and EXTRA also survive power loss; OFF survives neither reliably."""
        if synchronous.upper() not in SYNCHRONOUS:
            raise ValueError(
                f"synchronous must be one of {', '.join(SYNCHRONOUS)}, not {synchronous!r}"
            )
        self.path = path
        self.synchronous = synchronous.upper()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={self.synchronous}")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._depth = 0
        self._cached = False
        self._clock: int | None = None
        self._head: tuple[int, str] = (0, "")
        self._clock_dirty = False
        self._head_dirty = False
        self._migrate()

    # --- schema ------------------------------------------------------------
    def _migrate(self) -> None:
        db = self._db
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
        )
        done = {r[0] for r in db.execute("SELECT version FROM schema_migrations")}
        for version, script in enumerate(MIGRATIONS, start=1):
            if version in done:
                continue
            db.execute("BEGIN IMMEDIATE")
            try:
                for statement in _split_sql(script):
                    db.execute(statement)
                db.execute("INSERT INTO schema_migrations(version) VALUES (?)", (version,))
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def schema_version(self) -> int:
        """The highest applied migration."""
        row = self._db.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0] or 0)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        if self._depth:
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
            return
        self._db.execute("BEGIN IMMEDIATE")
        self._depth = 1
        # Under the write lock nobody else changes these: read them once per transaction.
        self._load_cached_meta()
        try:
            yield
            if self._head_dirty:
                self._set_meta("audit_head", f"{self._head[0]}:{self._head[1]}")
            if self._clock_dirty and self._clock is not None:
                self._set_meta("clock", str(self._clock))
        except BaseException:
            self._depth = 0
            self._cached = False
            self._db.execute("ROLLBACK")
            raise
        self._depth = 0
        self._cached = False
        self._db.execute("COMMIT")

    def _load_cached_meta(self) -> None:
        rows = dict(
            self._db.execute("SELECT key, value FROM meta WHERE key IN ('clock', 'audit_head')")
        )
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

    def close(self) -> None:
        self._db.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Raw SQL, for tests and tools that inspect the file (not used by the engine)."""
        return self._db.execute(sql, params)

    # --- meta / clock --------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
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
        row = self._db.execute(
            "SELECT id FROM packs WHERE content_hash = ?", (content_hash,)
        ).fetchone()
        if row is not None:
            return int(row[0])
        cur = self._db.execute(
            "INSERT INTO packs(content_hash, version, body, added_at) VALUES (?, ?, ?, ?)",
            (content_hash, version, body, at),
        )
        return int(cur.lastrowid or 0)

    def pack_body(self, pack_id: int) -> str:
        row = self._db.execute("SELECT body FROM packs WHERE id = ?", (pack_id,)).fetchone()
        if row is None:
            raise KeyError(f"no pack {pack_id} in the store")
        return str(row[0])

    def pack_hash(self, pack_id: int) -> str:
        row = self._db.execute("SELECT content_hash FROM packs WHERE id = ?", (pack_id,))
        found = row.fetchone()
        if found is None:
            raise KeyError(f"no pack {pack_id} in the store")
        return str(found[0])

    def active_pack(self) -> int | None:
        value = self._meta("active_pack")
        return None if value is None else int(value)

    def activate_pack(self, pack_id: int, at: int) -> None:
        self._db.execute("UPDATE packs SET activated_at = ? WHERE id = ?", (at, pack_id))
        self._set_meta("active_pack", str(pack_id))

    def packs(self) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "SELECT id, content_hash, version, added_at, activated_at FROM packs ORDER BY id"
        )
        keys = ("id", "content_hash", "version", "added_at", "activated_at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    # --- events --------------------------------------------------------------
    def has_event(self, event_id: str) -> bool:
        return (
            self._db.execute("SELECT 1 FROM events WHERE id = ?", (event_id,)).fetchone()
            is not None
        )

    def add_event(self, event_id: str, type_: str, at: int, ticket: str, body: str) -> None:
        try:
            self._db.execute(
                "INSERT INTO events(id, type, at, ticket, body) VALUES (?, ?, ?, ?, ?)",
                (event_id, type_, at, ticket, body),
            )
        except sqlite3.IntegrityError:
            raise DuplicateEvent(f"duplicate event id {event_id!r}") from None

    def count_events(self) -> int:
        return self._count("SELECT COUNT(*) FROM events")

    # --- tickets -------------------------------------------------------------
    def ticket_state(self, ticket: str) -> tuple[dict[str, Any], dict[str, int]]:
        row = self._db.execute(
            "SELECT state, times FROM tickets WHERE ticket = ?", (ticket,)
        ).fetchone()
        if row is None:
            return {}, {}
        return json.loads(row[0]), json.loads(row[1])

    def put_ticket_state(self, ticket: str, state: dict[str, Any], times: dict[str, int]) -> None:
        self._db.execute(
            "INSERT INTO tickets(ticket, state, times) VALUES (?, ?, ?) ON CONFLICT(ticket)"
            " DO UPDATE SET state = excluded.state, times = excluded.times",
            (ticket, _dumps(state), _dumps(times)),
        )

    # --- escalations ---------------------------------------------------------
    def open_escalation(self, ticket: str) -> Escalation | None:
        row = self._db.execute(
            f"SELECT {_ESC_COLUMNS} FROM escalations WHERE ticket = ? AND state != 'closed'",
            (ticket,),
        ).fetchone()
        return None if row is None else _escalation(row)

    def latest_escalation(self, ticket: str) -> Escalation | None:
        row = self._db.execute(
            f"SELECT {_ESC_COLUMNS} FROM escalations WHERE ticket = ? ORDER BY id DESC LIMIT 1",
            (ticket,),
        ).fetchone()
        return None if row is None else _escalation(row)

    def escalation(self, escalation_id: int) -> Escalation | None:
        row = self._db.execute(
            f"SELECT {_ESC_COLUMNS} FROM escalations WHERE id = ?", (escalation_id,)
        ).fetchone()
        return None if row is None else _escalation(row)

    def _esc_values(self, esc: Escalation) -> tuple[Any, ...]:
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
            _dumps(esc.snapshot),
            _dumps(esc.extra),
        )

    def insert_escalation(self, esc: Escalation) -> int:
        cur = self._db.execute(
            f"INSERT INTO escalations({_ESC_COLUMNS.removeprefix('id, ')})"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            self._esc_values(esc),
        )
        esc.id = int(cur.lastrowid or 0)
        return esc.id

    def update_escalation(self, esc: Escalation) -> None:
        columns = _ESC_COLUMNS.removeprefix("id, ").split(", ")
        assignments = ", ".join(f"{c.strip()} = ?" for c in columns)
        self._db.execute(
            f"UPDATE escalations SET {assignments} WHERE id = ?", (*self._esc_values(esc), esc.id)
        )

    def last_closed_at(self, ticket: str, policy: str) -> int | None:
        row = self._db.execute(
            "SELECT MAX(closed_at) FROM escalations WHERE ticket = ? AND policy = ?"
            " AND state = 'closed'",
            (ticket, policy),
        ).fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def open_escalations_owned_by(self, owner: str) -> list[Escalation]:
        rows = self._db.execute(
            f"SELECT {_ESC_COLUMNS} FROM escalations WHERE owner = ? AND state != 'closed'"
            " ORDER BY id",
            (owner,),
        )
        return [_escalation(r) for r in rows]

    def count_open(self) -> int:
        row = self._db.execute("SELECT COUNT(*) FROM escalations WHERE state != 'closed'")
        return int(row.fetchone()[0])

    def open_by_state_and_policy(self) -> list[tuple[str, str, int]]:
        rows = self._db.execute(
            "SELECT state, policy, COUNT(*) FROM escalations WHERE state != 'closed'"
            " GROUP BY state, policy ORDER BY state, policy"
        ).fetchall()
        return [(str(s), str(p), int(n)) for s, p, n in rows]

    # --- timers --------------------------------------------------------------
    def add_timer(self, timer: Timer) -> int:
        cur = self._db.execute(
            "INSERT INTO timers(due, kind, ticket, escalation_id, key, payload)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (
                timer.due,
                timer.kind,
                timer.ticket,
                timer.escalation_id,
                timer.key,
                _dumps(timer.payload),
            ),
        )
        timer.id = int(cur.lastrowid or 0)
        return timer.id

    def cancel_timers(self, escalation_id: int, kinds: Sequence[str] | None = None) -> None:
        if kinds is None:
            self._db.execute("DELETE FROM timers WHERE escalation_id = ?", (escalation_id,))
            return
        marks = ", ".join("?" for _ in kinds)
        self._db.execute(
            f"DELETE FROM timers WHERE escalation_id = ? AND kind IN ({marks})",
            (escalation_id, *kinds),
        )

    def due_timers(self, until: int, limit: int) -> list[Timer]:
        rows = self._db.execute(
            "SELECT id, due, kind, ticket, escalation_id, key, payload FROM timers"
            " WHERE due <= ? ORDER BY due, id LIMIT ?",
            (until, limit),
        )
        return [_timer(r) for r in rows]

    def delete_timer(self, timer_id: int) -> None:
        self._db.execute("DELETE FROM timers WHERE id = ?", (timer_id,))

    def timers_of(self, escalation_id: int) -> list[Timer]:
        rows = self._db.execute(
            "SELECT id, due, kind, ticket, escalation_id, key, payload FROM timers"
            " WHERE escalation_id = ? ORDER BY due, id",
            (escalation_id,),
        )
        return [_timer(r) for r in rows]

    def has_timer(self, ticket: str, kind: str, key: str) -> bool:
        row = self._db.execute(
            "SELECT 1 FROM timers WHERE ticket = ? AND kind = ? AND key = ?", (ticket, kind, key)
        ).fetchone()
        return row is not None

    def count_timers(self) -> int:
        return self._count("SELECT COUNT(*) FROM timers")

    # --- absences ------------------------------------------------------------
    def set_absence(self, person: str, until: int) -> None:
        self._db.execute(
            "INSERT INTO absences(person, until) VALUES (?, ?)"
            " ON CONFLICT(person) DO UPDATE SET until = excluded.until",
            (person, until),
        )

    def absences(self, at: int) -> dict[str, int]:
        rows = self._db.execute("SELECT person, until FROM absences WHERE until > ?", (at,))
        return {str(p): int(u) for p, u in rows}

    # --- audit ---------------------------------------------------------------
    def append_audit(self, row: AuditRow) -> None:
        self._db.execute(
            "INSERT INTO audit(seq, at, kind, ticket, escalation_id, policy, pack_version, actor,"
            " reason, detail, prev, hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*row.chained()[:-1], _dumps(row.detail), row.prev, row.hash),
        )
        if self._cached:
            self._head, self._head_dirty = (row.seq, row.hash), True
        else:
            self._set_meta("audit_head", f"{row.seq}:{row.hash}")

    def audit_head(self) -> tuple[int, str]:
        if self._cached:
            return self._head
        row = self._db.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        return (0, "") if row is None else (int(row[0]), str(row[1]))

    def audit_recorded_head(self) -> tuple[int, str]:
        value = self._meta("audit_head")
        if value is None:
            return 0, ""
        seq, _, digest = value.partition(":")
        return int(seq), digest

    def audit_rows(self, escalation_id: int | None = None) -> Iterator[AuditRow]:
        sql = (
            "SELECT seq, at, kind, ticket, escalation_id, policy, pack_version, actor, reason,"
            " detail, prev, hash FROM audit"
        )
        params: tuple[Any, ...] = ()
        if escalation_id is not None:
            sql += " WHERE escalation_id = ?"
            params = (escalation_id,)
        for r in self._db.execute(sql + " ORDER BY seq", params).fetchall():
            yield AuditRow(
                seq=r[0],
                at=r[1],
                kind=r[2],
                ticket=r[3],
                escalation_id=r[4],
                policy=r[5],
                pack_version=r[6],
                actor=r[7],
                reason=r[8],
                detail=json.loads(r[9]),
                prev=r[10],
                hash=r[11],
            )

    # --- outbox --------------------------------------------------------------
    def add_outbox(self, msg: OutboxMessage) -> bool:
        cur = self._db.execute(
            "INSERT OR IGNORE INTO outbox(key, escalation_id, ticket, action, target, target_kind,"
            " payload, created_at, status, attempts, delivered_at, reason, attempted_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                msg.key,
                msg.escalation_id,
                msg.ticket,
                msg.action,
                msg.target,
                msg.target_kind,
                _dumps(msg.payload),
                msg.created_at,
                msg.status,
                msg.attempts,
                msg.delivered_at,
                msg.reason,
                msg.attempted_at,
            ),
        )
        if cur.rowcount:
            msg.id = int(cur.lastrowid or 0)
        return bool(cur.rowcount)

    def pending_outbox(self) -> list[OutboxMessage]:
        rows = self._db.execute(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE status = 'pending' ORDER BY id"
        )
        return [_outbox(r) for r in rows]

    def outbox_message(self, msg_id: int) -> OutboxMessage | None:
        row = self._db.execute(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id = ?", (msg_id,))
        found = row.fetchone()
        return None if found is None else _outbox(found)

    def outbox_by_key(self, key: str) -> OutboxMessage | None:
        # `key` is UNIQUE: SQLite's automatic index answers this without a scan.
        row = self._db.execute(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE key = ?", (key,))
        found = row.fetchone()
        return None if found is None else _outbox(found)

    def mark_outbox(
        self,
        msg_id: int,
        status: str,
        at: int,
        attempts: int,
        reason: str | None = None,
        attempted: bool = True,
    ) -> None:
        self._db.execute(
            "UPDATE outbox SET status = ?, attempts = ?,"
            " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END,"
            " reason = CASE WHEN ? THEN ? ELSE COALESCE(?, reason) END,"
            " attempted_at = CASE WHEN ? THEN ? ELSE attempted_at END WHERE id = ?",
            (status, attempts, status, at, attempted, reason, reason, attempted, at, msg_id),
        )

    def outbox(self, escalation_id: int | None = None) -> list[OutboxMessage]:
        if escalation_id is None:
            rows = self._db.execute(f"SELECT {_OUTBOX_COLUMNS} FROM outbox ORDER BY id")
        else:
            rows = self._db.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE escalation_id = ? ORDER BY id",
                (escalation_id,),
            )
        return [_outbox(r) for r in rows]

    def outbox_by_status(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status")
        return {str(s): int(n) for s, n in rows}

    # --- dead letters --------------------------------------------------------
    def add_dead_letter(self, letter: DeadLetter) -> int:
        cur = self._db.execute(
            "INSERT INTO dead_letters(event_id, raw, error, received_at) VALUES (?, ?, ?, ?)",
            (letter.event_id, letter.raw, letter.error, letter.received_at),
        )
        letter.id = int(cur.lastrowid or 0)
        return letter.id

    def dead_letters(self, include_replayed: bool = False) -> list[DeadLetter]:
        sql = "SELECT id, event_id, raw, error, received_at, replayed_at FROM dead_letters"
        if not include_replayed:
            sql += " WHERE replayed_at IS NULL"
        return [
            DeadLetter(
                id=r[0], event_id=r[1], raw=r[2], error=r[3], received_at=r[4], replayed_at=r[5]
            )
            for r in self._db.execute(sql + " ORDER BY id")
        ]

    def mark_replayed(self, letter_id: int, at: int) -> None:
        self._db.execute("UPDATE dead_letters SET replayed_at = ? WHERE id = ?", (at, letter_id))

    def count_dead_letters(self) -> int:
        return self._count("SELECT COUNT(*) FROM dead_letters WHERE replayed_at IS NULL")

    # --- counters ------------------------------------------------------------
    def bump(self, name: str, by: int = 1) -> None:
        self._db.execute(
            "INSERT INTO counters(name, value) VALUES (?, ?)"
            " ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            (name, by),
        )

    def counters(self) -> dict[str, int]:
        return {str(n): int(v) for n, v in self._db.execute("SELECT name, value FROM counters")}

    def _count(self, sql: str) -> int:
        row = self._db.execute(sql).fetchone()
        return int(row[0] or 0) if row is not None else 0


def _split_sql(script: str) -> list[str]:
    """Split a migration into statements, keeping trigger bodies (``BEGIN ... END;``) whole."""
    statements: list[str] = []
    current: list[str] = []
    in_trigger = False
    for line in script.splitlines():
        if not line.strip():
            continue
        current.append(line)
        upper = line.upper()
        if "CREATE TRIGGER" in upper:
            in_trigger = True
        if line.rstrip().endswith(";") and (not in_trigger or upper.rstrip().endswith("END;")):
            statements.append("\n".join(current))
            current = []
            in_trigger = False
    if current:
        statements.append("\n".join(current))
    return statements
