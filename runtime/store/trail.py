"""The audit trail's shape: which chain a row belongs to, and what each hash covers.

The trail is cut into a fixed number of shards (``audit_shards`` in the store's meta,
fixed when the store is created): a row about a ticket goes to the shard
``crc32(ticket) % shards``, so every row about one ticket is in ONE chain, in the
order it was decided; a row about no ticket (a pack activation, an API token, an
absence) goes to a shard its transaction holds already, or to shard 0. Each shard
is its own hash chain, so decisions about tickets of different shards append
without waiting for each other.

A checkpoint binds the shards together: it records every shard's head (last
``seq`` and hash) and is itself chained to the checkpoint before. A transaction
writes one when a shard it appended to passes a multiple of ``checkpoint_every``
rows, so each shard's rows are bound by a checkpoint at most about that many rows
after they were written. :func:`escalade.runtime.audit.verify` checks every chain,
every recorded head and that each checkpoint's heads are rows the chains still hold
unchanged (docs/operations.md, "The sharded audit trail", says what this does and
does not detect).

A store that had one chain (before shards) keeps it as shard 0: its rows hash
exactly as before (:meth:`~escalade.runtime.store.AuditRow.chained` adds the shard
only when it is not 0).
"""

from __future__ import annotations

import hashlib
import zlib

from escalade.runtime.store import AuditCheckpoint, AuditRow
from escalade.runtime.store.rows import dumps

GENESIS = "0" * 64  # the ``prev`` of every chain's first row
# Shards of a new store: PostgreSQL decisions on tickets of different shards commit at
# once, so there are several; SQLite has one writer at a time, so one chain is enough
# (and keeps a single total order).
POSTGRES_SHARDS = 16
SQLITE_SHARDS = 1
MAX_SHARDS = 4096
# A checkpoint when a shard's chain passes a multiple of this many rows: what a
# tamperer who rewrites a shard's recorded head could still cut off unseen.
CHECKPOINT_EVERY = 64
CHECKPOINT_CHAIN = -1  # the checkpoint chain's head, beside the shards' in audit_heads


def shard_of(ticket: str, shards: int) -> int:
    """The shard of ``ticket``'s rows: a stable hash (the same in every process and
    release), so every row about one ticket is in one chain."""
    if shards <= 1:
        return 0
    return zlib.crc32(ticket.encode("utf-8", "surrogatepass")) % shards


def row_digest(row: AuditRow) -> str:
    """The hash a row must carry, given its ``prev``: sha256(prev || canonical JSON)."""
    body = dumps(row.chained())  # sorted keys, no spaces
    return hashlib.sha256((row.prev + body).encode()).hexdigest()


def checkpoint_digest(checkpoint: AuditCheckpoint) -> str:
    """The hash a checkpoint must carry, given its ``prev``."""
    body = dumps(checkpoint.chained())
    return hashlib.sha256((checkpoint.prev + body).encode()).hexdigest()


def check_shards(shards: int) -> int:
    """``shards`` when it is a usable number of chains (ValueError otherwise)."""
    if not 1 <= shards <= MAX_SHARDS:
        raise ValueError(f"audit_shards must be between 1 and {MAX_SHARDS}, not {shards}")
    return shards
