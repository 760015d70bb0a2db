"""SQLite system of record (stdlib ``sqlite3``, one file, WAL).

Durability: WAL journal with ``synchronous=NORMAL`` by default — a committed
event survives ``kill -9`` of the process (the WAL is written before COMMIT
returns); ``synchronous=FULL`` also survives power loss at the cost of an
fsync per commit. Throughput figures always name the setting. The WAL is
checkpointed every :data:`CHECKPOINT_PAGES` pages.

The schema is versioned: ``schema_migrations`` records each applied step of
:data:`MIGRATIONS`, and opening a store applies the missing ones in order.
Timers are rows with an index on ``due``, so a tick reads only what is due.
Audit rows cannot be updated or deleted through SQL (triggers refuse it), and
the hash chain detects anyone who drops the triggers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from escalade.runtime.store import StoreError, schema_problem
from escalade.runtime.store.sql import SQLStore
from escalade.runtime.store.trail import CHECKPOINT_EVERY, SQLITE_SHARDS, check_shards
from escalade.runtime.store.unit import InsertNew

SYNCHRONOUS = ("NORMAL", "FULL", "EXTRA", "OFF")  # PRAGMA synchronous values, WAL mode
RETURNING = sqlite3.sqlite_version_info >= (3, 35, 0)  # INSERT ... RETURNING
# A decision rewrites the same few index pages; checkpointing every 10,000 WAL pages (40 MB
# of 4 KiB pages, SQLite's default is 1,000) copies each back once per many decisions and
# pays its fsync ten times less often. Durability is the same: a commit is in the WAL.
CHECKPOINT_PAGES = 10_000

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
    # 3: API tokens of `escalade serve` (the hash of each secret, never the secret)
    """
    CREATE TABLE api_tokens (
        n INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
        principal TEXT NOT NULL, role TEXT NOT NULL,
        secret_hash TEXT NOT NULL UNIQUE, created_at INTEGER NOT NULL, created_by TEXT NOT NULL,
        revoked_at INTEGER, revoked_by TEXT);
    """,
    # 4: the audit trail in shards (store/trail.py): the one chain so far becomes shard 0,
    # each shard's head and the checkpoints that bind them get tables; the clock and the
    # counters become rows per shard (a decision writes only its own shard's)
    """
    CREATE TABLE audit_sharded (
        shard INTEGER NOT NULL, seq INTEGER NOT NULL, at INTEGER NOT NULL, kind TEXT NOT NULL,
        ticket TEXT, escalation_id INTEGER, policy TEXT, pack_version TEXT,
        actor TEXT NOT NULL, reason TEXT NOT NULL, detail TEXT NOT NULL, prev TEXT NOT NULL,
        hash TEXT NOT NULL, PRIMARY KEY (shard, seq));
    INSERT INTO audit_sharded(shard, seq, at, kind, ticket, escalation_id, policy,
        pack_version, actor, reason, detail, prev, hash)
        SELECT 0, seq, at, kind, ticket, escalation_id, policy, pack_version, actor, reason,
        detail, prev, hash FROM audit ORDER BY seq;
    DROP TABLE audit;
    ALTER TABLE audit_sharded RENAME TO audit;
    CREATE INDEX audit_escalation ON audit(escalation_id);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TABLE audit_heads (shard INTEGER PRIMARY KEY, seq INTEGER NOT NULL,
        hash TEXT NOT NULL);
    INSERT INTO audit_heads(shard, seq, hash)
        SELECT 0, CAST(substr(value, 1, instr(value, ':') - 1) AS INTEGER),
        substr(value, instr(value, ':') + 1) FROM meta WHERE key = 'audit_head';
    DELETE FROM meta WHERE key = 'audit_head';
    CREATE TABLE audit_checkpoints (n INTEGER PRIMARY KEY, at INTEGER NOT NULL,
        heads TEXT NOT NULL, prev TEXT NOT NULL, hash TEXT NOT NULL);
    CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints BEGIN SELECT RAISE(ABORT, 'the audit trail is append-only'); END;
    CREATE TABLE clocks (shard INTEGER PRIMARY KEY, at INTEGER NOT NULL);
    INSERT INTO clocks(shard, at) SELECT 0, CAST(value AS INTEGER) FROM meta WHERE key = 'clock';
    DELETE FROM meta WHERE key = 'clock';
    CREATE TABLE counters_sharded (name TEXT NOT NULL, shard INTEGER NOT NULL,
        value INTEGER NOT NULL, PRIMARY KEY (name, shard));
    INSERT INTO counters_sharded(name, shard, value) SELECT name, 0, value FROM counters;
    DROP TABLE counters;
    ALTER TABLE counters_sharded RENAME TO counters;
    """,
    # 5: on-call rosters and operations state: absences become windows (each absence so far
    # from the start of time: since 0), run-time overrides, silences, round-robin cursors,
    # related tickets and their groups' parents, post-mortem records
    """
    CREATE TABLE absence_windows (person TEXT NOT NULL, since INTEGER NOT NULL,
        until INTEGER NOT NULL, PRIMARY KEY (person, since));
    INSERT INTO absence_windows(person, since, until) SELECT person, 0, until FROM absences;
    DROP TABLE absences;
    ALTER TABLE absence_windows RENAME TO absences;
    CREATE INDEX absences_until ON absences(until);
    CREATE TABLE overrides (
        id INTEGER PRIMARY KEY AUTOINCREMENT, team TEXT NOT NULL, person TEXT NOT NULL,
        replaces TEXT, since INTEGER NOT NULL, until INTEGER NOT NULL, reason TEXT NOT NULL,
        actor TEXT NOT NULL);
    CREATE INDEX overrides_until ON overrides(until);
    CREATE TABLE silences (
        id INTEGER PRIMARY KEY AUTOINCREMENT, scope TEXT NOT NULL, name TEXT NOT NULL,
        since INTEGER NOT NULL, until INTEGER NOT NULL, reason TEXT NOT NULL,
        actor TEXT NOT NULL);
    CREATE INDEX silences_until ON silences(until);
    CREATE TABLE rotation_cursors (key TEXT PRIMARY KEY, person TEXT);
    CREATE TABLE related_tickets (escalation_id INTEGER NOT NULL, ticket TEXT NOT NULL,
        at INTEGER NOT NULL, group_key TEXT NOT NULL, PRIMARY KEY (escalation_id, ticket));
    CREATE TABLE groups (escalation_id INTEGER PRIMARY KEY, policy TEXT NOT NULL,
        group_key TEXT NOT NULL, at INTEGER NOT NULL);
    CREATE INDEX groups_key ON groups(policy, group_key);
    CREATE TABLE postmortems (escalation_id INTEGER PRIMARY KEY, draft TEXT NOT NULL,
        owner TEXT, due INTEGER, created_at INTEGER NOT NULL, completed_link TEXT,
        completed_by TEXT, completed_at INTEGER);
    """,
)


def stored_shards(db: sqlite3.Connection) -> int | None:
    """The audit shards the store recorded (None: not recorded yet)."""
    row = db.execute("SELECT value FROM meta WHERE key = 'audit_shards'").fetchone()
    return None if row is None else int(row[0])


def _open_read_only(path: str) -> sqlite3.Connection:
    """A connection that cannot write (``mode=ro``) to an existing, up-to-date store."""
    if path == ":memory:" or not Path(path).is_file():
        raise StoreError(
            f"{path}: no such store (a read never creates one; a writing command such as"
            " `escalade event` or `escalade migrate` does)"
        )
    uri = f"file:{quote(str(Path(path).resolve()))}?mode=ro"
    db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    try:
        found = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        applied = None
        if found is not None:
            applied = int(db.execute("SELECT COUNT(*) FROM schema_migrations").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        db.close()
        raise StoreError(f"{path}: not a readable SQLite store ({exc})") from None
    problem = schema_problem(applied, len(MIGRATIONS), path)
    if problem is not None:
        db.close()
        raise StoreError(problem)
    return db


class SQLiteStore(SQLStore):
    """The default :class:`~escalade.runtime.store.Store`: one SQLite file (or ``:memory:``)."""

    def __init__(
        self,
        path: str,
        synchronous: str = "NORMAL",
        *,
        read_only: bool = False,
        checkpoint_pages: int = CHECKPOINT_PAGES,
        audit_shards: int | None = None,
        checkpoint_every: int = CHECKPOINT_EVERY,
    ) -> None:
        """Open (and migrate) the store at ``path`` in WAL mode.

        ``synchronous``: NORMAL (default) survives kill -9 of the process; FULL
        and EXTRA also survive power loss; OFF survives neither reliably.
        ``read_only``: open an existing, up-to-date store without writing to it
        (:class:`~escalade.runtime.store.StoreError` otherwise).
        ``checkpoint_pages``: the WAL is copied back into the database (with an fsync)
        once it holds this many pages (SQLite's ``wal_autocheckpoint``).
        ``audit_shards``: the audit trail's chains, for a store created now (default
        :data:`~escalade.runtime.store.trail.SQLITE_SHARDS`); an existing store keeps its
        own. ``checkpoint_every``: see :mod:`~escalade.runtime.store.trail`."""
        if synchronous.upper() not in SYNCHRONOUS:
            raise ValueError(
                f"synchronous must be one of {', '.join(SYNCHRONOUS)}, not {synchronous!r}"
            )
        if checkpoint_pages < 1:
            raise ValueError(f"checkpoint_pages must be >= 1, not {checkpoint_pages}")
        super().__init__(checkpoint_every)
        self.path = path
        self.synchronous = synchronous.upper()
        self.read_only = read_only
        if read_only:
            self._db = _open_read_only(path)
            self._shards = stored_shards(self._db) or 1
            return
        try:
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: cannot open the SQLite store ({exc})") from None
        self._db.execute(f"PRAGMA synchronous={self.synchronous}")
        self._db.execute(f"PRAGMA wal_autocheckpoint={int(checkpoint_pages)}")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._migrate()
        self._shards = self._recorded_shards(audit_shards)

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

    def _recorded_shards(self, wanted: int | None) -> int:
        """The store's audit shards: recorded when it is created (``wanted``, or the
        default); an existing store keeps its own, and refuses another number."""
        found = stored_shards(self._db)
        if found is None:
            self._db.execute(
                "INSERT INTO meta(key, value) VALUES ('audit_shards', ?) ON CONFLICT DO NOTHING",
                (str(check_shards(wanted or SQLITE_SHARDS)),),
            )
            return stored_shards(self._db) or 1  # another process may have been first
        if wanted is not None and wanted != found:
            raise StoreError(
                f"{self.path} keeps its audit trail in {found} shards (fixed when it was"
                f" created), not {wanted}"
            )
        return found

    # --- connection and transactions -------------------------------------------
    def _begin(self) -> None:
        self.statements += 1
        self._db.execute("BEGIN IMMEDIATE")  # takes the write lock

    def _commit(self) -> None:
        self.statements += 1
        self._db.execute("COMMIT")

    def _rollback(self) -> None:
        self.statements += 1
        self._db.execute("ROLLBACK")

    def close(self) -> None:
        self._db.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        """Raw SQL, for tests and tools that inspect the file (not used by the engine); inside
        a transaction, what it holds for the commit is written first."""
        self.flush()
        return self._db.execute(sql, params)

    # --- the hooks of SQLStore -------------------------------------------------
    def _row(self, sql: str, params: Sequence[Any] = ()) -> Any:
        self.statements += 1
        return self._db.execute(sql, params).fetchone()

    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        self.statements += 1
        return self._db.execute(sql, params).fetchall()

    def _exec(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.statements += 1
        self._db.execute(sql, params)

    def _exec_count(self, sql: str, params: Sequence[Any] = ()) -> int:
        self.statements += 1
        return int(self._db.execute(sql, params).rowcount)

    def _insert(self, sql: str, params: Sequence[Any]) -> int:
        self.statements += 1
        return int(self._db.execute(sql, params).lastrowid or 0)

    def _insert_new(self, sql: str, params: Sequence[Any], unique: str) -> int | None:
        # OR IGNORE: the row is skipped when `unique` (the table's only user key) is taken.
        self.statements += 1
        cur = self._db.execute(sql.replace("INSERT INTO", "INSERT OR IGNORE INTO", 1), params)
        return int(cur.lastrowid or 0) if cur.rowcount else None

    def _insert_one_by_one(self) -> InsertNew | None:
        return None if RETURNING else self._insert_new

    def _is_unique_violation(self, exc: Exception) -> bool:
        return isinstance(exc, sqlite3.IntegrityError)


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
