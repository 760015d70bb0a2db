"""Rows of the SQL stores: column lists, JSON as stored, and the records they decode to.

Shared by :mod:`~escalade.runtime.store.sql` (the queries) and
:mod:`~escalade.runtime.store.unit` (what a transaction writes at its end), so
the SQL of SQLite and PostgreSQL names every column once.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import operator
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from escalade.runtime.store import (
    AuditCheckpoint,
    AuditRow,
    DeadLetter,
    Escalation,
    Facts,
    OutboxMessage,
    Timer,
)

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
    "seq, at, kind, ticket, escalation_id, policy, pack_version, actor, reason, detail, prev, hash,"
    " shard"
)
CHECKPOINT_COLUMNS = "n, at, heads, prev, hash"
DEAD_LETTER_COLUMNS = "id, event_id, raw, error, received_at, replayed_at"
_ESC_FIELDS = ESC_COLUMNS.split(", ")
_OUTBOX_FIELDS = OUTBOX_COLUMNS.split(", ")
_AUDIT_FIELDS = AUDIT_COLUMNS.split(", ")
ESC_WRITTEN = ", ".join(_ESC_FIELDS[1:])
ESC_MARKS = ", ".join("?" for _ in _ESC_FIELDS[1:])
# An update writes every column but the snapshot: the ticket as it was at the start, never
# changed afterwards (so an update does not serialise it again).
ESC_ASSIGNMENTS = ", ".join(f"{c} = ?" for c in _ESC_FIELDS[1:] if c != "snapshot")
# Many escalations updated at once: an INSERT of rows whose ids exist, which turns into an
# update of every column but the snapshot (ids always conflict: escalations are never deleted).
ESC_CONFLICT = " ON CONFLICT(id) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in _ESC_FIELDS[1:] if c != "snapshot"
)
ESC_SNAPSHOT = _ESC_FIELDS.index("snapshot")
OUTBOX_WRITTEN = ", ".join(_OUTBOX_FIELDS[1:])
OUTBOX_MARKS = ", ".join("?" for _ in _OUTBOX_FIELDS[1:])
AUDIT_MARKS = ", ".join("?" for _ in _AUDIT_FIELDS)


# json.dumps with arguments builds an encoder per call; one shared encoder writes the same text.
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def dumps(value: Any) -> str:
    """JSON as the stores keep it: sorted keys, no spaces (stable for hashing and diffs)."""
    return _ENCODER.encode(value)


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


def esc_values(esc: Escalation, snapshot: str | None = None) -> tuple[Any, ...]:
    """The written columns of ``esc`` (``ESC_WRITTEN`` order); ``snapshot``: see
    :func:`esc_row`."""
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
        dumps(esc.snapshot) if snapshot is None else snapshot,
        dumps(esc.facts.to_json()),
    )


def esc_row(esc: Escalation, snapshot: str | None = None) -> tuple[Any, ...]:
    """``esc`` as the row :func:`escalation_of` reads back (``ESC_COLUMNS`` order);
    ``snapshot``: its snapshot as stored already (else it is serialised)."""
    values = esc_values(esc, snapshot)
    return (esc.id, *values)


def esc_update(row: Sequence[Any]) -> tuple[Any, ...]:
    """The parameters of ``UPDATE escalations SET {ESC_ASSIGNMENTS} WHERE id = ?`` for an
    escalation row (``ESC_COLUMNS`` order)."""
    return (*row[1:ESC_SNAPSHOT], *row[ESC_SNAPSHOT + 1 :], row[0])


def outbox_values(msg: OutboxMessage) -> tuple[Any, ...]:
    """The written columns of an outbox row (``OUTBOX_WRITTEN`` order)."""
    return (
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
    )


def timer_values(timer: Timer) -> tuple[Any, ...]:
    """The written columns of a timer row (``TIMER_WRITTEN`` order)."""
    return (
        timer.due,
        timer.kind,
        timer.ticket,
        timer.escalation_id,
        timer.key,
        dumps(timer.payload),
    )


def audit_values(row: AuditRow) -> tuple[Any, ...]:
    """An audit row's columns (``AUDIT_COLUMNS`` order)."""
    return (
        row.seq,
        row.at,
        row.kind,
        row.ticket,
        row.escalation_id,
        row.policy,
        row.pack_version,
        row.actor,
        row.reason,
        dumps(row.detail),
        row.prev,
        row.hash,
        row.shard,
    )


def checkpoint_values(cp: AuditCheckpoint) -> tuple[Any, ...]:
    """A checkpoint's columns (``CHECKPOINT_COLUMNS`` order)."""
    return (cp.n, cp.at, dumps([list(h) for h in cp.heads]), cp.prev, cp.hash)


def checkpoint_of(row: Sequence[Any]) -> AuditCheckpoint:
    """A checkpoint row (``CHECKPOINT_COLUMNS`` order)."""
    n, at, heads, prev, digest = row
    bound = [(int(s), int(seq), str(h)) for s, seq, h in json.loads(heads)]
    return AuditCheckpoint(int(n), int(at), bound, str(prev), str(digest))


TIMER_WRITTEN = ", ".join(TIMER_COLUMNS.split(", ")[1:])
# Old SQLite builds allow 999 parameters per statement: a multi-row INSERT stays under it.
MAX_PARAMETERS = 999


@functools.lru_cache(maxsize=256)
def values_list(columns: int, rows: int) -> str:
    """``(?, ?), (?, ?)``: the VALUES of a multi-row INSERT of ``rows`` rows."""
    one = "(" + ", ".join("?" for _ in range(columns)) + ")"
    return ", ".join(one for _ in range(rows))


def chunks(rows: Sequence[tuple[Any, ...]]) -> list[Sequence[tuple[Any, ...]]]:
    """``rows`` cut into runs a multi-row statement can carry (``MAX_PARAMETERS``)."""
    if not rows:
        return []
    size = max(1, MAX_PARAMETERS // len(rows[0]))
    return [rows[i : i + size] for i in range(0, len(rows), size)]


def flat(rows: Sequence[tuple[Any, ...]]) -> list[Any]:
    """The parameters of a multi-row statement, row after row."""
    return [value for row in rows for value in row]
