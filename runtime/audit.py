"""The audit trail: append-only and hash-chained.

Each row's ``hash`` is ``sha256(prev_hash || canonical JSON of the row)``, so
editing a row breaks its own hash, deleting one breaks the next row's ``prev``,
and cutting rows off the end disagrees with the head the store records on
every append. :func:`verify` reports the first row that does not fit.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from escalade.runtime.store import AuditRow, Store
from escalade.runtime.store.rows import dumps

GENESIS = "0" * 64


def row_digest(row: AuditRow) -> str:
    """The hash a row must carry, given its ``prev``."""
    body = dumps(row.chained())  # sorted keys, no spaces: json.dumps(..., sort_keys=True, ...)
    return hashlib.sha256((row.prev + body).encode()).hexdigest()


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
    """Append one decision to the trail (inside the caller's transaction)."""
    seq, head = store.audit_head()
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
    )
    row.hash = row_digest(row)
    store.append_audit(row)
    return row


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of :func:`verify`: ``ok`` or the first problem found."""

    ok: bool
    rows: int
    problem: str | None = None
    seq: int | None = None


def verify(store: Store) -> Verdict:
    """Walk the chain from the first row; report the first edited, missing or cut row."""
    expected_prev = GENESIS
    expected_seq = 1
    count = 0
    for row in store.audit_rows():
        if row.seq != expected_seq:
            return Verdict(
                False, count, f"row {expected_seq} is missing (next row is {row.seq})", expected_seq
            )
        if row.prev != expected_prev:
            return Verdict(
                False,
                count,
                f"row {row.seq} does not follow row {row.seq - 1}: a row was removed or replaced",
                row.seq,
            )
        if row_digest(row) != row.hash:
            return Verdict(False, count, f"row {row.seq} was edited after it was written", row.seq)
        expected_prev = row.hash
        expected_seq += 1
        count += 1
    head_seq, head_hash = store.audit_recorded_head()
    if (head_seq, head_hash) != (count, expected_prev if count else ""):
        return Verdict(
            False,
            count,
            f"the trail ends at row {count} but the store recorded row {head_seq} as the last:"
            " rows were cut off the end",
            count + 1,
        )
    return Verdict(True, count)
