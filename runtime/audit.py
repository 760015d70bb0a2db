"""The audit trail: append-only and hash-chained, one chain per shard, bound by checkpoints.

Each row's ``hash`` is ``sha256(prev_hash || canonical JSON of the row)``, so editing a
row breaks its own hash, deleting one breaks the next row's ``prev``, and cutting rows
off the end of a shard disagrees with the head the store records for it. Every row
about one ticket is in that ticket's shard (:mod:`escalade.runtime.store.trail`); the
checkpoints record every shard's head now and then, chained in turn, so a shard cut
back or rewritten behind a checkpoint no longer matches it. :func:`verify` reports the
first row, head or checkpoint that does not fit, with its shard and seq.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from escalade.runtime.store import AuditCheckpoint, AuditRow, Store
from escalade.runtime.store.trail import (
    CHECKPOINT_CHAIN,
    GENESIS,
    checkpoint_digest,
    row_digest,
)

__all__ = ["GENESIS", "Verdict", "append", "row_digest", "verify"]


def append(
    store: Store,
    *,
    at: int,
    kind: str,
    actor: str,
    reason: str,
    ticket: str | None = None,
    escalation_id: int | None = None,
    policy: str | None = None,
    pack_version: str | None = None,
    detail: dict[str, Any] | None = None,
) -> AuditRow:
    """Append one decision to its ticket's chain (inside the caller's transaction)."""
    shard = store.audit_shard(ticket)
    seq, head = store.audit_head(shard)
    row = AuditRow(
        at=at,
        kind=kind,
        ticket=ticket,
        escalation_id=escalation_id,
        policy=policy,
        pack_version=pack_version,
        actor=actor,
        reason=reason,
        detail=detail or {},
        seq=seq + 1,
        prev=head or GENESIS,
        shard=shard,
    )
    row.hash = row_digest(row)
    store.append_audit(row)
    return row


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of :func:`verify`: ``ok`` or the first problem found (with the shard and
    seq of the row, or the number of the checkpoint, it is about). ``anchor``: the last
    checkpoint's hash — written down elsewhere, it lets a later verify tell that the
    trail up to it was not rewritten whole."""

    ok: bool
    rows: int
    problem: str | None = None
    seq: int | None = None
    shard: int | None = None
    shards: int = 1
    checkpoints: int = 0
    anchor: str | None = None


@dataclass(slots=True)
class _Walk:
    """What :func:`verify` learned so far: each chain's end, the first problem."""

    shards: int
    bound: dict[tuple[int, int], tuple[int, str]]  # (shard, seq) -> (checkpoint, its hash)
    ends: dict[int, tuple[int, str]]
    rows: int = 0
    problem: tuple[str, int | None, int | None] | None = None  # (why, seq, shard)

    def fail(self, why: str, seq: int | None, shard: int | None) -> None:
        if self.problem is None:
            where = f"shard {shard}: " if shard is not None and self.shards > 1 else ""
            self.problem = (where + why, seq, shard)


def verify(store: Store) -> Verdict:
    """Walk every shard's chain and the checkpoint chain; report the first edited,
    missing or cut row, or checkpoint that a shard no longer matches. Reads only."""
    checkpoints = list(store.audit_checkpoints())
    recorded = store.audit_recorded_heads()
    walk = _Walk(store.audit_shards(), _bindings(checkpoints), {})
    _check_checkpoints(walk, checkpoints, recorded.get(CHECKPOINT_CHAIN, (0, "")))
    problem = walk.problem  # the checkpoints' own; a row's problem comes first
    walk.problem = None
    _check_rows(walk, store.audit_chain())
    _check_ends(walk, recorded)
    if walk.problem is None and problem is not None:
        walk.problem = problem
    why, seq, shard = walk.problem or (None, None, None)
    return Verdict(
        walk.problem is None,
        walk.rows,
        why,
        seq,
        shard,
        shards=walk.shards,
        checkpoints=len(checkpoints),
        anchor=checkpoints[-1].hash if checkpoints else None,
    )


def _bindings(checkpoints: list[AuditCheckpoint]) -> dict[tuple[int, int], tuple[int, str]]:
    """Every (shard, seq) a checkpoint names, with the hash it names (the first checkpoint
    naming it; a later one naming another hash is caught by the chain walk)."""
    bound: dict[tuple[int, int], tuple[int, str]] = {}
    for cp in checkpoints:
        for shard, seq, digest in cp.heads:
            bound.setdefault((shard, seq), (cp.n, digest))
    return bound


def _check_checkpoints(
    walk: _Walk, checkpoints: list[AuditCheckpoint], head: tuple[int, str]
) -> None:
    """The checkpoint chain: numbered from 1, each naming the one before, unedited, each
    shard's head never going back, and ending where the store recorded its end."""
    prev, last = GENESIS, dict[int, int]()
    for expected, cp in enumerate(checkpoints, start=1):
        if cp.n != expected:
            walk.fail(f"checkpoint {expected} is missing (next is {cp.n})", None, None)
            return
        if cp.prev != prev:
            walk.fail(f"checkpoint {cp.n} does not follow checkpoint {cp.n - 1}", None, None)
            return
        if checkpoint_digest(cp) != cp.hash:
            walk.fail(f"checkpoint {cp.n} was edited after it was written", None, None)
            return
        for shard, seq, _ in cp.heads:
            if seq < last.get(shard, 0):
                why = f"checkpoint {cp.n} puts the shard back from row {last[shard]} to {seq}"
                walk.fail(why, seq, shard)
            last[shard] = seq
        prev = cp.hash
    end = (len(checkpoints), prev if checkpoints else "")
    if head != end:
        walk.fail(
            f"the checkpoints end at {end[0]} but the store recorded checkpoint {head[0]}"
            " as the last: checkpoints were cut off the end",
            None,
            None,
        )


def _check_rows(walk: _Walk, rows: Iterable[AuditRow]) -> None:
    """Each shard's chain: seq from 1 on, each row naming the one before, unedited, and the
    hash every checkpoint names for it."""
    shard, expected_prev, expected_seq = -1, GENESIS, 1
    for row in rows:
        if row.shard != shard:
            if shard >= 0:
                walk.ends[shard] = (expected_seq - 1, expected_prev)
            shard, expected_prev, expected_seq = row.shard, GENESIS, 1
        if not 0 <= row.shard < walk.shards:
            walk.fail(f"row {row.seq} is in no shard of the {walk.shards}", row.seq, row.shard)
        if row.seq != expected_seq:
            why = f"row {expected_seq} is missing (next row is {row.seq})"
            walk.fail(why, expected_seq, shard)
        elif row.prev != expected_prev:
            why = f"row {row.seq} does not follow row {row.seq - 1}: a row was removed or replaced"
            walk.fail(why, row.seq, shard)
        elif row_digest(row) != row.hash:
            walk.fail(f"row {row.seq} was edited after it was written", row.seq, shard)
        else:
            _check_bound(walk, row)
        expected_prev, expected_seq = row.hash, row.seq + 1
        walk.rows += 1
    if shard >= 0:
        walk.ends[shard] = (expected_seq - 1, expected_prev)


def _check_bound(walk: _Walk, row: AuditRow) -> None:
    found = walk.bound.get((row.shard, row.seq))
    if found is not None and found[1] != row.hash:
        why = (
            f"row {row.seq} is not the row checkpoint {found[0]} recorded: the shard was"
            " rewritten after the checkpoint"
        )
        walk.fail(why, row.seq, row.shard)


def _check_ends(walk: _Walk, recorded: dict[int, tuple[int, str]]) -> None:
    """Each shard ends where the store recorded its end, and at or past every row a
    checkpoint names (rows cut off with the recorded head rewritten too)."""
    for shard in sorted(set(walk.ends) | {s for s in recorded if s != CHECKPOINT_CHAIN}):
        count, last = walk.ends.get(shard, (0, ""))
        head = recorded.get(shard, (0, ""))
        if head != (count, last if count else ""):
            walk.fail(
                f"the trail ends at row {count} but the store recorded row {head[0]} as the"
                " last: rows were cut off the end",
                count + 1,
                shard,
            )
    for (shard, seq), (n, _) in sorted(walk.bound.items()):
        count = walk.ends.get(shard, (0, ""))[0]
        if seq > count:
            walk.fail(
                f"checkpoint {n} recorded row {seq} but the shard ends at row {count}:"
                " rows were cut off the end",
                count + 1,
                shard,
            )
