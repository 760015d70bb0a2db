"""The audit trail's tables in the SQL stores: ``audit`` (one hash chain per shard),
``audit_heads`` (each chain's recorded head) and ``audit_checkpoints`` (the chain of
checkpoints that binds the shards' heads); the same SQL in SQLite and PostgreSQL.

A mixin of :class:`~escalade.runtime.store.sql.SQLStore`. Inside a transaction an
appended row waits in the :class:`~escalade.runtime.store.unit.Unit` with its shard's
new head; the rows, a checkpoint when one is due (:meth:`AuditTable._checkpoint`) and
the heads are written just before the commit. What the shards and checkpoints are for
is in :mod:`~escalade.runtime.store.trail`.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from escalade.runtime.store import AuditCheckpoint, AuditRow
from escalade.runtime.store.rows import (
    AUDIT_COLUMNS,
    AUDIT_MARKS,
    CHECKPOINT_COLUMNS,
    audit_of,
    audit_values,
    checkpoint_of,
)
from escalade.runtime.store.trail import (
    CHECKPOINT_CHAIN,
    GENESIS,
    checkpoint_digest,
    shard_of,
)
from escalade.runtime.store.unit import Unit
from escalade.runtime.store.writes import Write


class AuditTable:
    """Appending to and reading the sharded trail."""

    _unit: Unit | None
    _shards: int
    checkpoint_every: int
    _owe_checkpoint: bool

    if TYPE_CHECKING:  # what this mixin uses of SQLStore and ShardLocks

        def _row(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
        def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...
        def _exec(self, sql: str, params: Sequence[Any] = ()) -> None: ...
        def _send_write(self, write: Write) -> None: ...
        def _take_shards(self, shards: Iterable[int]) -> None: ...

    def _try_checkpoint_lock(self) -> bool:
        """Inside a transaction: take the right to append a checkpoint, without waiting
        (False: another transaction is writing one)."""
        return True

    # --- appending -------------------------------------------------------------
    def audit_shards(self) -> int:
        return self._shards

    def audit_shard(self, ticket: str | None) -> int:
        """The shard of a new row about ``ticket``; about no ticket, the lowest shard the
        transaction holds (else 0). Inside a transaction the shard is taken."""
        unit = self._unit
        if ticket is not None:
            shard = shard_of(ticket, self._shards)
        else:
            shard = unit.home() if unit is not None else 0
        if unit is not None and shard not in unit.held:
            self._take_shards([shard])
        return shard

    def append_audit(self, row: AuditRow) -> None:
        unit = self._unit
        if unit is not None:
            if row.shard not in unit.held:
                self._take_shards([row.shard])
            unit.append_audit(row, self.checkpoint_every)
            return
        self._exec(f"INSERT INTO audit({AUDIT_COLUMNS}) VALUES ({AUDIT_MARKS})", audit_values(row))
        self._exec(
            "INSERT INTO audit_heads(shard, seq, hash) VALUES (?, ?, ?)"
            " ON CONFLICT(shard) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
            (row.shard, row.seq, row.hash),
        )

    def audit_head(self, shard: int = 0) -> tuple[int, str]:
        if self._unit is not None:
            return self._unit.heads.get(shard, (0, ""))
        row = self._row(
            "SELECT seq, hash FROM audit WHERE shard = ? ORDER BY seq DESC LIMIT 1", (shard,)
        )
        return (0, "") if row is None else (int(row[0]), str(row[1]))

    def _checkpoint(self, unit: Unit) -> None:
        """Append a checkpoint of every shard's head: this transaction's for the shards it
        appended to, the committed one for the others (each is a prefix of its chain
        whatever commits meanwhile). Checkpoints are one chain: when another transaction is
        appending one, this one leaves it to the next transaction (owed)."""
        if not self._try_checkpoint_lock():
            self._owe_checkpoint = True
            return
        heads = {
            int(s): (int(seq), str(h))
            for s, seq, h in self._rows("SELECT shard, seq, hash FROM audit_heads")
        }
        heads.update({s: unit.heads[s] for s in unit.heads_dirty if s != CHECKPOINT_CHAIN})
        last, prev = heads.pop(CHECKPOINT_CHAIN, (0, GENESIS))
        bound = [(s, seq, h) for s, (seq, h) in sorted(heads.items()) if seq > 0]
        at = unit.audit_at if unit.audit_at is not None else unit.clock or 0
        checkpoint = AuditCheckpoint(last + 1, at, bound, prev)
        checkpoint.hash = checkpoint_digest(checkpoint)
        unit.checkpoints.append(checkpoint)
        unit.heads[CHECKPOINT_CHAIN] = (checkpoint.n, checkpoint.hash)
        unit.heads_dirty.add(CHECKPOINT_CHAIN)
        unit.crossed = self._owe_checkpoint = False

    # --- reading ---------------------------------------------------------------
    def audit_rows(
        self, escalation_id: int | None = None, after: int | Mapping[int, int] = 0
    ) -> Iterator[AuditRow]:
        unit = self._unit
        if unit is not None and unit.audit:
            unit.flush_audit(self._send_write)
        clauses, params = _past(after)
        if escalation_id is not None:
            clauses.append("escalation_id = ?")
            params.append(escalation_id)
        sql = f"SELECT {AUDIT_COLUMNS} FROM audit"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        rows = self._rows(sql + " ORDER BY shard, seq", params)
        yield from _merged([audit_of(r) for r in rows])

    def audit_chain(self) -> Iterator[AuditRow]:
        unit = self._unit
        if unit is not None and unit.audit:
            unit.flush_audit(self._send_write)
        for r in self._rows(f"SELECT {AUDIT_COLUMNS} FROM audit ORDER BY shard, seq"):
            yield audit_of(r)

    def audit_recorded_head(self, shard: int = 0) -> tuple[int, str]:
        row = self._row("SELECT seq, hash FROM audit_heads WHERE shard = ?", (shard,))
        return (0, "") if row is None else (int(row[0]), str(row[1]))

    def audit_recorded_heads(self) -> dict[int, tuple[int, str]]:
        rows = self._rows("SELECT shard, seq, hash FROM audit_heads ORDER BY shard")
        return {int(s): (int(seq), str(h)) for s, seq, h in rows}

    def audit_checkpoints(self) -> Iterator[AuditCheckpoint]:
        rows = self._rows(f"SELECT {CHECKPOINT_COLUMNS} FROM audit_checkpoints ORDER BY n")
        for r in rows:
            yield checkpoint_of(r)


def _past(after: int | Mapping[int, int]) -> tuple[list[str], list[Any]]:
    """The WHERE clauses (and parameters) of the rows past ``after`` (see ``audit_rows``)."""
    if isinstance(after, int):
        return ["seq > ?"], [after]
    past = sorted(after.items())
    if not past:
        return [], []
    ors = ["(shard = ? AND seq > ?)"] * len(past)
    ors.append(f"shard NOT IN ({', '.join('?' for _ in past)})")
    return ["(" + " OR ".join(ors) + ")"], [v for item in past for v in item] + [s for s, _ in past]


def _merged(rows: list[AuditRow]) -> Iterator[AuditRow]:
    """``rows`` (by shard, then seq) as one trail: each shard's rows stay in their order,
    the shards interleave by time (then shard): a one-chain store's order, unchanged."""
    by_shard: dict[int, list[AuditRow]] = {}
    for row in rows:
        by_shard.setdefault(row.shard, []).append(row)
    if len(by_shard) <= 1:
        yield from rows
        return
    yield from heapq.merge(*by_shard.values(), key=lambda r: (r.at, r.shard))
