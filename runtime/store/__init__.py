"""The runtime's system of record: a small interface and its records.

The engine talks to state only through :class:`Store`:
:mod:`escalade.runtime.store.sqlite` is the default implementation (one file),
:mod:`escalade.runtime.store.postgres` the one for several workers sharing a
database; :func:`open_store` picks one from a URL.
Every engine decision runs inside one :meth:`Store.transaction`, so an event
is applied completely or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

# The on-call and operations records, kept in a module of their own (re-exported).
from escalade.runtime.store.records import OverrideRow as OverrideRow
from escalade.runtime.store.records import PostmortemRow as PostmortemRow
from escalade.runtime.store.records import SilenceRow as SilenceRow

OPEN_STATES = ("triggered", "assigned", "acknowledged", "resolved", "unacknowledged", "triage")
STATES = (*OPEN_STATES, "closed")


class StoreError(Exception):
    """A store that cannot be opened as asked (missing, outdated, not a store); the message
    says what to do. Read-only opens never create or migrate anything."""


class DuplicateEvent(Exception):
    """``add_event`` for an id the store already holds (another worker applied it first)."""


@dataclass(slots=True)
class Facts:
    """What an escalation has learned along the way (stored as JSON beside the row).

    SLA targets are the current policy's; ``met`` and ``breached`` hold SLA kinds
    (``acknowledge``, ``resolve``): a breach fires once and a met SLA stays met."""

    sla_targets: dict[str, int | None] = field(default_factory=dict)
    met: set[str] = field(default_factory=set)
    breached: set[str] = field(default_factory=set)
    handoff_times: list[int] = field(default_factory=list)  # for the routing-loop breaker
    handoffs_stopped: str | None = None  # why handoffs stopped for good (a loop broken)
    owner_from: str | None = None  # the team or chain reference the owner stands in for
    actions: int = 0  # outbox rows issued: the sequence of their idempotency keys
    first_ack: int | None = None
    postmortem_required: bool = False
    postmortem_link: str | None = None
    transfers: int = 0
    unowned: str | None = None  # why nobody available owns it (an alert was raised)

    def to_json(self) -> dict[str, Any]:
        """The stored form; its keys are the ones the first stores wrote (read back by
        :meth:`from_json`, so escalations written before typed facts keep theirs)."""
        out: dict[str, Any] = {}
        for kind, target in sorted(self.sla_targets.items()):
            out[f"sla_{kind}"] = target
        for kind in sorted(self.met):
            out[f"sla_{kind}_met"] = True
        for kind in sorted(self.breached):
            out[f"sla_{kind}_breached"] = True
        plain = {
            "handoff_times": self.handoff_times or None,
            "handoffs_stopped": self.handoffs_stopped,
            "owner_from": self.owner_from,
            "actions": self.actions or None,
            "first_ack": self.first_ack,
            "postmortem_required": self.postmortem_required or None,
            "postmortem_link": self.postmortem_link,
            "transfers": self.transfers or None,
            "unowned": self.unowned,
        }
        out.update({k: v for k, v in plain.items() if v is not None})
        return out

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Facts:
        """Facts from their stored form (see :meth:`to_json`)."""
        kinds = ("acknowledge", "resolve")
        return cls(
            sla_targets={k: raw[f"sla_{k}"] for k in kinds if f"sla_{k}" in raw},
            met={k for k in kinds if raw.get(f"sla_{k}_met")},
            breached={k for k in kinds if raw.get(f"sla_{k}_breached")},
            handoff_times=[int(t) for t in raw.get("handoff_times") or []],
            handoffs_stopped=raw.get("handoffs_stopped"),
            owner_from=raw.get("owner_from"),
            actions=int(raw.get("actions") or 0),
            first_ack=raw.get("first_ack"),
            postmortem_required=bool(raw.get("postmortem_required")),
            postmortem_link=raw.get("postmortem_link"),
            transfers=int(raw.get("transfers") or 0),
            unowned=raw.get("unowned"),
        )


@dataclass(slots=True)
class Escalation:
    """One escalation of one ticket; it survives re-routes and handoffs."""

    ticket: str
    policy: str
    pack_id: int
    priority: int
    started_at: int
    state: str = "triggered"
    level: str | None = None  # primary | backup | escalation | triage | transfer
    level_index: int = 0
    cycle: int = 0
    owner: str | None = None
    owner_kind: str | None = None  # person | team
    acked_at: int | None = None
    resolved_at: int | None = None
    closed_at: int | None = None
    account: str | None = None
    snapshot: dict[str, Any] = field(default_factory=dict)  # ticket state at start
    facts: Facts = field(default_factory=Facts)  # SLAs met or breached, handoffs, post-mortem
    id: int = 0


@dataclass(slots=True)
class Timer:
    """A row that fires at ``due``; ``key`` makes pending timers unique per purpose."""

    due: int
    kind: str  # ack | sla_* | delivery | redeliver | state_check | after | transfer
    ticket: str
    escalation_id: int | None = None
    key: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    id: int = 0


@dataclass(slots=True)
class AuditRow:
    """One appended decision; ``prev`` and ``hash`` chain it to the row before."""

    at: int
    kind: str
    ticket: str | None
    escalation_id: int | None
    policy: str | None
    pack_version: str | None
    actor: str
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)
    seq: int = 0  # the row's place in its shard's chain (1, 2, ...)
    prev: str = ""
    hash: str = ""
    shard: int = 0  # the chain it belongs to: its ticket's (see store/trail.py)

    def chained(self) -> list[Any]:
        """What the row's hash covers, in a fixed order: ``seq`` to ``detail``, then the
        shard when it is not 0 (so a row of a one-chain store hashes as it always did, and
        a row moved to another shard no longer matches its hash)."""
        body = [
            self.seq,
            self.at,
            self.kind,
            self.ticket,
            self.escalation_id,
            self.policy,
            self.pack_version,
            self.actor,
            self.reason,
            self.detail,
        ]
        return [*body, self.shard] if self.shard else body


@dataclass(slots=True)
class AuditCheckpoint:
    """A row of the checkpoint chain: the head (last seq and hash) of every shard's chain at
    one moment, chained to the checkpoint before (``prev``, ``hash``), so that rows a shard
    had then cannot be removed or rewritten without breaking every later checkpoint."""

    n: int
    at: int
    heads: list[tuple[int, int, str]]  # (shard, seq, hash) of every shard with rows, by shard
    prev: str = ""
    hash: str = ""

    def chained(self) -> list[Any]:
        """What the checkpoint's hash covers."""
        return [self.n, self.at, [list(h) for h in self.heads]]


@dataclass(slots=True)
class OutboxMessage:
    """An action waiting for (or done with) delivery; ``key`` is its idempotency key."""

    key: str
    escalation_id: int | None
    ticket: str | None
    action: str
    target: str | None
    target_kind: str | None
    payload: dict[str, Any]
    created_at: int
    status: str = "pending"  # pending (to send) | sent (no receipt yet) | delivered | failed
    attempts: int = 0
    delivered_at: int | None = None
    reason: str | None = None  # why the latest attempt ended as it did (the notifier's words)
    attempted_at: int | None = None
    id: int = 0


@dataclass(slots=True)
class DeadLetter:
    """An input the runtime refused, kept verbatim with the reason."""

    raw: str
    error: str
    received_at: int
    event_id: str | None = None
    replayed_at: int | None = None
    id: int = 0


@dataclass(slots=True)
class ApiToken:
    """A bearer credential of the HTTP API: who it speaks for and with which role.

    ``principal`` is ``person:NAME`` or ``service:NAME``; the secret itself is never
    stored, only ``secret_hash`` (see :mod:`escalade.runtime.tokens`)."""

    id: str
    principal: str
    role: str
    secret_hash: str
    created_at: int
    created_by: str
    revoked_at: int | None = None
    revoked_by: str | None = None


class Store(Protocol):
    """What the engine needs from a database. Implementations must be transactional."""

    def transaction(self, *, exclusive: bool = False) -> AbstractContextManager[None]:
        """All writes inside commit together or not at all (nesting joins the outer one).
        A store may hold appended rows until the commit; its own queries still see them.

        A transaction excludes the others that touch the same tickets (it takes their
        shards as it first touches them, see :meth:`lock_tickets`); ``exclusive``: it
        excludes every other transaction (a pack activation, an absence that moves
        escalations of any ticket)."""
        ...

    def lock_tickets(self, tickets: Sequence[str]) -> None:
        """Inside a transaction: exclude, until it ends, every other transaction touching
        ``tickets`` (all of them at once, so that two decisions never wait for each other);
        what is read afterwards is what the last decision on them committed."""
        ...

    def flush(self) -> None:
        """Write now what the open transaction holds for its commit (for raw SQL readers)."""
        ...

    def close(self) -> None: ...

    # clock: the latest time the store has acted at; it never goes back
    def clock(self) -> int | None: ...
    def set_clock(self, at: int) -> None: ...

    # rule packs: every version ever activated, so in-flight escalations keep theirs
    def add_pack(self, content_hash: str, version: str, body: str, at: int) -> int: ...
    def pack_body(self, pack_id: int) -> str: ...
    def pack_hash(self, pack_id: int) -> str: ...
    def active_pack(self) -> int | None: ...
    def activate_pack(self, pack_id: int, at: int) -> None: ...
    def packs(self) -> list[dict[str, Any]]: ...

    # events, idempotent by id
    def has_event(self, event_id: str) -> bool: ...
    def add_event(self, event_id: str, type_: str, at: int, ticket: str, body: str) -> None: ...
    def claim_event(self, event_id: str, type_: str, at: int, ticket: str, body: str) -> bool:
        """Record the event unless its id is known already: True when it was new."""
        ...

    def read_ahead(self, tickets: Sequence[str], event_ids: Sequence[str]) -> None:
        """Inside a transaction: read at once what a batch of events about ``tickets``
        with ids ``event_ids`` will need (a store may do nothing)."""
        ...

    def count_events(self) -> int: ...

    # the latest known value of every field per ticket (and when each was set)
    def ticket_state(self, ticket: str) -> tuple[dict[str, Any], dict[str, int]]: ...
    def put_ticket_state(
        self, ticket: str, state: dict[str, Any], times: dict[str, int]
    ) -> None: ...

    # escalations
    def open_escalation(self, ticket: str) -> Escalation | None: ...
    def latest_escalation(self, ticket: str) -> Escalation | None: ...
    def escalation(self, escalation_id: int) -> Escalation | None: ...
    def insert_escalation(self, esc: Escalation) -> int: ...
    def update_escalation(self, esc: Escalation) -> None: ...
    def last_closed_at(self, ticket: str, policy: str) -> int | None: ...
    def open_escalations_owned_by(self, owner: str) -> list[Escalation]: ...
    def open_escalations(self, limit: int) -> list[Escalation]:
        """At most ``limit`` escalations not closed, the oldest first (by start, then id)."""
        ...

    def count_open(self) -> int: ...
    def open_by_state_and_policy(self) -> list[tuple[str, str, int]]:
        """(state, policy, count) of the escalations not closed, sorted."""
        ...

    # timers: rows indexed by due time, so a tick reads only what is due
    def add_timer(self, timer: Timer) -> int: ...
    def cancel_timers(self, escalation_id: int, kinds: Sequence[str] | None = None) -> None: ...
    def due_timers(self, until: int, limit: int) -> list[Timer]: ...
    def take_due_timers(self, until: int, limit: int) -> list[Timer]:
        """Remove and return at most ``limit`` timers due by ``until``, in due order."""
        ...

    def delete_timer(self, timer_id: int) -> None: ...
    def timers_of(self, escalation_id: int) -> list[Timer]: ...
    def has_timer(self, ticket: str, kind: str, key: str) -> bool: ...
    def count_timers(self) -> int: ...

    # absences: windows [since, until) per person (since None: from the start of time)
    def set_absence(self, person: str, until: int, since: int | None = None) -> None:
        """Record an absence window; one of the person's starting at ``since`` is replaced."""
        ...

    def absences(self, at: int) -> dict[str, int]:
        """Who is absent at ``at``, until when (the end of the window ``at`` falls in)."""
        ...

    def absence_windows(self, start: int, end: int) -> dict[str, list[tuple[int, int]]]:
        """Every window overlapping [start, end), per person, sorted."""
        ...

    # on-call overrides recorded at run time; silences (held pages) of a policy or team
    def add_override(
        self,
        team: str,
        person: str,
        since: int,
        until: int,
        replaces: str | None,
        reason: str,
        actor: str,
    ) -> int: ...
    def roster_version(self) -> int | None: ...
    def overrides(self, start: int, end: int, team: str | None = None) -> list[OverrideRow]:
        """The overrides (of ``team``) overlapping [start, end), by start then id."""
        ...

    def add_silence(
        self, scope: str, name: str, since: int, until: int, reason: str, actor: str
    ) -> int: ...
    def silences(self, start: int, end: int) -> list[SilenceRow]:
        """The silences overlapping [start, end), by start then id."""
        ...

    def end_silence(self, silence_id: int, at: int) -> bool:
        """until = min(until, at); False when unknown or over by ``at`` already."""
        ...

    # round-robin cursors: the member each rotation handed out last (durable)
    def rotation_cursor(self, key: str) -> str | None: ...
    def set_rotation_cursor(self, key: str, person: str) -> None: ...
    def advance_rotation(
        self, key: str, members: Sequence[str], available: Callable[[str], bool]
    ) -> str | None:
        """Hand out (and record) the next available member after the last, cyclic in
        ``members`` order; None when nobody is. Call it inside the ticket's transaction: the
        cursor stays locked until it ends (PostgreSQL: ``SELECT ... FOR UPDATE``)."""
        ...

    # related tickets, grouped under their group's parent escalation
    def link_related(self, escalation_id: int, ticket: str, at: int, group_key: str) -> None: ...
    def related(self, escalation_id: int) -> list[tuple[str, int]]: ...
    def set_group(self, escalation_id: int, policy: str, group_key: str, at: int) -> None: ...
    def group_parent(self, policy: str, group_key: str, since: int) -> int | None:
        """The group's registered parent: open (not resolved or closed), of ``policy``,
        started at or after ``since``; None when there is none."""
        ...

    # post-mortem records
    def save_postmortem(
        self, escalation_id: int, draft: str, owner: str | None, due: int | None, at: int
    ) -> None: ...
    def postmortem_record(self, escalation_id: int) -> PostmortemRow | None: ...
    def complete_postmortem(self, escalation_id: int, link: str, by: str, at: int) -> None: ...

    # audit trail (append-only): one hash chain per shard, bound by checkpoints
    def audit_shards(self) -> int:
        """How many chains the trail has (fixed when the store was created)."""
        ...

    def audit_shard(self, ticket: str | None) -> int:
        """The shard a new row about ``ticket`` goes to (inside a transaction, taken by it)."""
        ...

    def append_audit(self, row: AuditRow) -> None: ...
    def audit_head(self, shard: int = 0) -> tuple[int, str]:
        """(seq, hash) of the last row of ``shard``'s chain ((0, "") when it has none)."""
        ...

    def audit_rows(
        self, escalation_id: int | None = None, after: int | Mapping[int, int] = 0
    ) -> Iterator[AuditRow]:
        """The trail: every row (of one escalation when ``escalation_id`` is given) past
        ``after``, each shard's rows in ``seq`` order, the shards merged by time. ``after``
        is a mapping shard -> the last ``seq`` read there, so a reader fetches only what
        was appended since (an int applies to every shard: a one-chain store's ``seq``)."""
        ...

    def audit_chain(self) -> Iterator[AuditRow]:
        """Every row by shard, then ``seq`` (what :func:`escalade.runtime.audit.verify` walks)."""
        ...

    def audit_recorded_head(self, shard: int = 0) -> tuple[int, str]: ...
    def audit_recorded_heads(self) -> dict[int, tuple[int, str]]:
        """The head the store recorded for each chain: shard -> (seq, hash); the checkpoint
        chain's is under -1."""
        ...

    def audit_checkpoints(self) -> Iterator[AuditCheckpoint]:
        """The checkpoint chain, oldest first."""
        ...

    # notification outbox
    def add_outbox(self, msg: OutboxMessage) -> bool: ...
    def pending_outbox(self) -> list[OutboxMessage]: ...
    def queued_outbox(self) -> list[OutboxMessage]:
        """Pending messages the open transaction queued since the last call, not written yet
        (id 0): a delivery inside the transaction may change their status fields before
        the commit writes them."""
        ...

    def outbox_id(self, msg: OutboxMessage) -> int:
        """``msg``'s id, writing it now when it is still queued (0: its key was taken)."""
        ...

    def outbox_statuses(self, ids: Sequence[int]) -> dict[int, str]:
        """The status of each outbox row of ``ids``."""
        ...

    def outbox_message(self, msg_id: int) -> OutboxMessage | None: ...
    def outbox_by_key(self, key: str) -> OutboxMessage | None: ...
    def mark_outbox(
        self,
        msg_id: int,
        status: str,
        at: int,
        attempts: int,
        reason: str | None = None,
        attempted: bool = True,
    ) -> None:
        """Record an attempt's outcome and reason (``attempted``: ``at`` is when it was
        made); otherwise a change of status, where a ``None`` reason keeps the previous one."""
        ...

    def outbox(
        self, escalation_id: int | None = None, *, keep_queued: bool = False
    ) -> list[OutboxMessage]: ...
    def outbox_by_status(self) -> dict[str, int]: ...

    # dead letters
    def add_dead_letter(self, letter: DeadLetter) -> int: ...
    def dead_letters(self, include_replayed: bool = False) -> list[DeadLetter]: ...
    def mark_replayed(self, letter_id: int, at: int) -> None: ...
    def count_dead_letters(self) -> int:
        """Dead letters not replayed yet."""
        ...

    # counters (unknown fields seen, ...)
    def bump(self, name: str, by: int = 1) -> None: ...
    def counters(self) -> dict[str, int]: ...

    # API tokens (their secrets' hashes only); a token is revoked, never deleted
    def add_token(self, token: ApiToken) -> None: ...
    def token(self, token_id: str) -> ApiToken | None: ...
    def tokens(self) -> list[ApiToken]: ...
    def revoke_token(self, token_id: str, at: int, by: str) -> bool:
        """Mark an active token revoked; False when it is unknown or revoked already."""
        ...


def open_store(url: str, *, read_only: bool = False) -> Store:
    """The store at ``url``: ``postgresql://...`` (or ``postgres://``) opens a
    :class:`~escalade.runtime.store.postgres.PostgresStore` (needs psycopg); a
    ``sqlite:///path`` URL or a plain path (``:memory:`` too) a SQLite file.

    ``read_only``: for commands that only read; the store must exist with an
    up-to-date schema (:class:`StoreError` otherwise), and nothing is written."""
    if url.startswith(("postgresql://", "postgres://")):
        from escalade.runtime.store.postgres import PostgresStore

        return PostgresStore(url, read_only=read_only)
    from escalade.runtime.store.sqlite import SQLiteStore

    if url.startswith("sqlite:///"):
        return SQLiteStore(url.removeprefix("sqlite:///") or ":memory:", read_only=read_only)
    if url.startswith("sqlite://"):
        raise ValueError(f"a SQLite URL is sqlite:///PATH (three slashes), not {url!r}")
    return SQLiteStore(url, read_only=read_only)


def schema_problem(applied: int | None, known: int, where: str) -> str | None:
    """Why a store with ``applied`` migrations (None: no migration table) cannot be read by
    this release, which knows ``known`` (None when it can)."""
    if applied is None:
        return f"{where} is not an Escalade store (no schema_migrations table)"
    if applied < known:
        return (
            f"{where} has schema version {applied}, this release needs {known}:"
            " run `escalade migrate` with the same --db first (reads never migrate)"
        )
    if applied > known:
        return (
            f"{where} has schema version {applied}, newer than this release knows ({known}):"
            " upgrade escalade"
        )
    return None
