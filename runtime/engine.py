"""The escalation state machine (SPEC §4), driven by events, commands and a clock.

::

    triggered -> assigned -> acknowledged -> resolved -> closed
                     \\-> unacknowledged -> triage -> (acknowledged -> resolved -> closed)

Every input — an event, a due timer, an operator command — is decided and
written in ONE store transaction: the ticket state, the escalation, its timers,
the outbox rows and the audit rows commit together or not at all. After the
commit the outbox is dispatched to the notifier (see :mod:`escalade.runtime.notify`).

The engine reads the clock only through :class:`~escalade.runtime.clock.Clock`
or explicit ``at`` arguments, so policy tests and the simulator run it on
virtual time. In-flight escalations keep the rule pack version they started
under: each escalation row names its pack, and every pack ever activated stays
in the store.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from escalade.runtime import audit
from escalade.runtime.clock import Clock, SystemClock, format_duration, format_time
from escalade.runtime.conditions import Predicate, compile_condition, format_condition
from escalade.runtime.events import Event, EventError, parse_event
from escalade.runtime.matcher import Matcher
from escalade.runtime.notify import Delivery, Notifier, RecordingNotifier, as_delivery
from escalade.runtime.pack import PackError as SchemaError
from escalade.runtime.pack import RulePack
from escalade.runtime.store import (
    OPEN_STATES,
    DeadLetter,
    DuplicateEvent,
    Escalation,
    OutboxMessage,
    Store,
    Timer,
)

PACK_FORMAT = "escalade.rulepack/v1"
TARGET_ACTIONS = ("notify", "page", "route")
LOOP_LIMIT, LOOP_WINDOW = 5, 3600  # routing-loop breaker: > 5 handoffs within 1h -> triage
RETRY_ATTEMPTS, RETRY_BASE, RETRY_CAP = 5, 60, 3600  # sends, first backoff (s), longest (s)
DISPATCH_ROUNDS = 8  # receipts that queue more rows (fallbacks, triage notices): bounded
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\s*\}\}")


class PackError(ValueError):
    """A rule pack the runtime refuses to activate."""


class Refused(Exception):
    """An operator command the engine refuses; the message says why (nothing changed)."""


class ClockError(ValueError):
    """A time earlier than the store's clock."""


# --- the rule pack, compiled for the engine ----------------------------------


@dataclass(slots=True)
class Rules:
    """One policy of a pack with its conditions compiled."""

    name: str
    raw: Mapping[str, Any]
    priority: int
    when: Predicate
    exceptions: list[tuple[str, Predicate | None, str | None, str]]  # name, cond, failure, to
    state_checks: list[tuple[Mapping[str, Any], Predicate, int]]
    close_checks: list[tuple[Mapping[str, Any] | None, Predicate | None]]  # None cond: post-mortem

    @property
    def owners(self) -> list[Mapping[str, Any]]:
        return list(self.raw.get("owners") or [])

    @property
    def repeat(self) -> int:
        return int(self.raw.get("repeat") or 0)

    def sla(self, kind: str) -> int | None:
        sla = self.raw.get("sla") or {}
        value = sla.get(kind)
        return None if value is None else int(value)

    def steps(self, moment: str | None = None) -> list[Mapping[str, Any]]:
        if moment is None:
            return list(self.raw.get("steps") or [])
        return list((self.raw.get("on") or {}).get(moment) or [])

    @property
    def delivery(self) -> Mapping[str, Any] | None:
        checks = (self.raw.get("checks") or {}).get("delivery") or []
        return checks[0] if checks else None


@dataclass(slots=True)
class CompiledPack:
    """A rule pack as the engine uses it: policies by name, routed by the one matcher."""

    id: int
    body: Mapping[str, Any]
    version: str
    typed: RulePack
    matcher: Matcher
    policies: dict[str, Rules]

    @classmethod
    def build(cls, pack_id: int, body: Mapping[str, Any]) -> CompiledPack:
        """Compile every condition of ``body`` once; :class:`PackError` when it is incomplete."""
        meta = body.get("metadata") or {}
        digest = str(meta.get("content_hash") or "")
        version = f"{meta.get('version', '0.0.0')}+{digest.removeprefix('sha256:')[:12]}"
        try:
            typed = RulePack.trusted(body)
        except SchemaError as exc:
            raise PackError("; ".join(exc.problems)) from None
        matcher = Matcher(typed)
        policies: dict[str, Rules] = {}
        for raw in body.get("policies") or []:
            checks = raw.get("checks") or {}
            rules = Rules(
                name=raw["name"],
                raw=raw,
                priority=int(raw.get("priority") or 0),
                when=matcher.predicate(raw["name"]),
                exceptions=[
                    (
                        e["name"],
                        compile_condition(e["when"]) if e.get("when") is not None else None,
                        e.get("failure"),
                        e["handoff"],
                    )
                    for e in raw.get("exceptions") or []
                ],
                state_checks=[
                    (c["when"], compile_condition(c["when"]), int(c.get("within") or 300))
                    for c in checks.get("state") or []
                ],
                close_checks=[
                    (c.get("when"), compile_condition(c["when"]) if c.get("when") else None)
                    for c in checks.get("close") or []
                ],
            )
            policies[rules.name] = rules
        return cls(pack_id, body, version, typed, matcher, policies)

    @property
    def schema(self) -> Mapping[str, Any]:
        return self.body.get("schema") or {}

    @property
    def people(self) -> Mapping[str, Mapping[str, Any]]:
        return (self.body.get("directory") or {}).get("people") or {}

    @property
    def teams(self) -> Mapping[str, Mapping[str, Any]]:
        return (self.body.get("directory") or {}).get("teams") or {}

    @property
    def channels(self) -> Mapping[str, Mapping[str, Any]]:
        return (self.body.get("directory") or {}).get("channels") or {}

    def owner_of(self, event_type: str, state: Mapping[str, Mapping[str, Any]]) -> Rules | None:
        """The policy that owns the event: the matcher's decision (highest priority, then name)."""
        found = self.matcher.owner(event_type, state)
        return None if found is None else self.policies[found.name]


def pack_hash(body: Mapping[str, Any]) -> str:
    """The pack's recorded content hash, or a hash of its canonical JSON when it has none."""
    recorded = (body.get("metadata") or {}).get("content_hash")
    if isinstance(recorded, str) and recorded:
        return recorded
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    return "sha256:" + hashlib.sha256(canonical).hexdigest()


def check_pack_shape(body: Any) -> None:
    """The minimal structure the engine relies on (full schema checks live in ``pack``)."""
    if not isinstance(body, dict):
        raise PackError("a rule pack is a JSON object")
    if body.get("format") != PACK_FORMAT:
        raise PackError(f"unsupported pack format {body.get('format')!r} (expected {PACK_FORMAT})")
    for key in ("metadata", "schema", "directory"):
        if not isinstance(body.get(key), dict):
            raise PackError(f"the pack has no `{key}` object")
    if not isinstance(body.get("policies"), list):
        raise PackError("the pack has no `policies` list")


# --- outcomes ----------------------------------------------------------------


@dataclass(slots=True)
class Outcome:
    """What happened to one input."""

    status: str  # applied | duplicate | dead_letter | refused
    message: str
    ticket: str | None = None
    escalation_id: int | None = None
    unknown_fields: tuple[str, ...] = ()


@dataclass(slots=True)
class _Ctx:
    """The moment being decided: time, actor and the audit cause."""

    now: int
    actor: str = "escalade"
    cause: str = ""
    fired: list[str] = field(default_factory=list)


# --- the engine --------------------------------------------------------------


class Engine:
    """Runs escalations for one store. Not thread-safe; one engine per process."""

    def __init__(
        self,
        store: Store,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
        *,
        loop_limit: int = LOOP_LIMIT,
        loop_window: int = LOOP_WINDOW,
        retry_attempts: int = RETRY_ATTEMPTS,
        retry_base: int = RETRY_BASE,
        retry_cap: int = RETRY_CAP,
    ) -> None:
        """``loop_limit`` and ``loop_window`` set the routing-loop breaker: more than
        ``loop_limit`` handoffs of one ticket within ``loop_window`` seconds go to triage.

        ``retry_*`` set the general delivery retry, for messages whose policy has no
        ``check delivery``: a message without a receipt is sent again after
        ``retry_base`` seconds, doubling up to ``retry_cap``, at most ``retry_attempts``
        sends in all; then it has failed (audited, and a step's failure goes to triage)."""
        if loop_limit < 1 or loop_window < 1:
            raise ValueError(
                f"the routing-loop breaker needs loop_limit >= 1 and loop_window >= 1 second"
                f" (got {loop_limit} and {loop_window})"
            )
        if retry_attempts < 1 or retry_base < 1 or retry_cap < retry_base:
            raise ValueError(
                "delivery retries need retry_attempts >= 1, retry_base >= 1 second and"
                f" retry_cap >= retry_base (got {retry_attempts}, {retry_base} and {retry_cap})"
            )
        self.retry_attempts = retry_attempts
        self.retry_base = retry_base
        self.retry_cap = retry_cap
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.notifier: Notifier = notifier if notifier is not None else RecordingNotifier()
        self.loop_limit = loop_limit
        self.loop_window = loop_window
        self._packs: dict[int, CompiledPack] = {}
        self._outbox_dirty = True  # rows may be pending from an earlier process
        self._active_id: int | None = None
        # An in-process notifier can deliver inside the decision's transaction (one
        # commit per event); a networked one is dispatched after the commit.
        self._deliver_in_txn = bool(getattr(self.notifier, "transactional", False))

    # --- packs ---------------------------------------------------------------
    def activate(
        self,
        body: Mapping[str, Any],
        at: int | None = None,
        *,
        actor: str = "escalade",
        reason: str | None = None,
        kind: str = "pack_activated",
    ) -> CompiledPack:
        """Register ``body`` (if new) and make it the active pack; in-flight escalations keep theirs.

        ``kind`` and ``reason`` say why in the audit trail (``pack_rolled_back``)."""
        check_pack_shape(body)
        compiled = CompiledPack.build(0, body)  # refuse an unusable pack before storing it
        now = self._now(at)
        text = json.dumps(body, sort_keys=True)
        digest = pack_hash(body)
        with self.store.transaction():
            pack_id = self.store.add_pack(
                digest, str(body["metadata"].get("version", "0.0.0")), text, now
            )
            if pack_id not in self._packs and self.store.pack_body(pack_id) == text:
                compiled.id = pack_id
                self._packs[pack_id] = compiled
            self._active_id = pack_id
            if self.store.active_pack() != pack_id:
                self.store.activate_pack(pack_id, now)
                pack = self.pack(pack_id)
                audit.append(
                    self.store,
                    at=now,
                    kind=kind,
                    actor=actor,
                    reason=reason or f"pack {pack.version} activated",
                    pack_version=pack.version,
                    detail={"pack_id": pack_id, "content_hash": digest},
                )
        return self.pack(pack_id)

    def refuse_pack(
        self, source: str, why: str, at: int | None = None, actor: str = "escalade"
    ) -> None:
        """Record that a pack was refused; the active pack stays active."""
        now = self._now(at)
        current = self.store.active_pack()
        with self.store.transaction():
            audit.append(
                self.store,
                at=now,
                kind="pack_refused",
                actor=actor,
                reason=f"refused {source}: {why}",
                pack_version=self.pack(current).version if current is not None else None,
                detail={"source": source},
            )

    def refresh(self) -> None:
        """Forget what this process cached about the store, for a long-running process.

        Another process (``escalade pack activate``/``rollback``, an ``event`` run)
        may have activated a pack or queued outbox rows since; the next call sees them."""
        self._active_id = None
        self._outbox_dirty = True

    def pack(self, pack_id: int) -> CompiledPack:
        """The compiled pack ``pack_id`` (cached)."""
        found = self._packs.get(pack_id)
        if found is None:
            found = CompiledPack.build(pack_id, json.loads(self.store.pack_body(pack_id)))
            self._packs[pack_id] = found
        return found

    def active(self) -> CompiledPack:
        """The active pack; :class:`PackError` when none was ever activated."""
        pack_id = self._active_id if self._active_id is not None else self.store.active_pack()
        self._active_id = pack_id
        if pack_id is None:
            raise PackError("no rule pack is active (run with --pack FILE)")
        return self.pack(pack_id)

    # --- time ----------------------------------------------------------------
    def _now(self, at: int | None) -> int:
        stored = self.store.clock()
        if at is None:
            wall = self.clock.now()
            return wall if stored is None else max(stored, wall)
        return at

    def check_time(self, at: int) -> None:
        """Refuse a time earlier than the store's clock."""
        stored = self.store.clock()
        if stored is not None and at < stored:
            raise ClockError(
                f"--at {format_time(at)} is earlier than the store's clock {format_time(stored)};"
                " the runtime never goes back in time"
            )

    def advance(self, at: int | None = None) -> int:
        """Fire every timer due up to ``at`` (in due order, each in its own transaction)."""
        now = self._now(at)
        self.check_time(now)
        fired = self._fire_due(now)
        if (self.store.clock() or now - 1) < now:
            with self.store.transaction():
                self.store.set_clock(now)
        self.dispatch(now)  # rows an earlier process left pending (a crash after the commit)
        return fired

    def _fire_due(self, now: int) -> int:
        fired = 0
        while True:
            due = self.store.due_timers(now, 1)
            if not due:
                break
            with self.store.transaction():
                # Taken again under the write lock (FOR UPDATE SKIP LOCKED on PostgreSQL):
                # another worker may have fired it since the look above.
                due = self.store.due_timers(now, 1)
                if not due:
                    continue
                timer = due[0]
                self.store.delete_timer(timer.id)
                self.store.set_clock(timer.due)
                self._fire(timer, _Ctx(now=timer.due, cause=f"{timer.kind} timer"))
                self._deliver_now(timer.due)
            fired += 1
            self.dispatch(timer.due)
        return fired

    tick = advance

    # --- events --------------------------------------------------------------
    def receive(self, raw: str | bytes | Mapping[str, Any], at: int | None = None) -> Outcome:
        """Apply one event. Malformed: dead-lettered, nothing else changes. Seen id: no-op."""
        pack = self.active()
        try:
            event = parse_event(raw, pack.schema)
        except EventError as exc:
            return self._dead_letter(raw, exc, at)
        if self.store.has_event(event.id):
            return Outcome(
                "duplicate", f"event {event.id} was already applied; nothing changed", event.ticket
            )
        now = at if at is not None else max(self.store.clock() or event.at, event.at)
        self.check_time(now)
        self._fire_due(now)
        try:
            with self.store.transaction():
                self.store.set_clock(now)
                esc_id = self._apply(
                    pack, event, _Ctx(now=now, cause=f"event {event.id} ({event.type})")
                )
                self._deliver_now(now)
        except DuplicateEvent:
            # another worker applied the same id between the check above and our commit
            return Outcome(
                "duplicate", f"event {event.id} was already applied; nothing changed", event.ticket
            )
        self.dispatch(now)
        note = f"; ignored unknown fields: {', '.join(event.unknown)}" if event.unknown else ""
        return Outcome(
            "applied", f"event {event.id} applied{note}", event.ticket, esc_id, event.unknown
        )

    def _dead_letter(
        self, raw: str | bytes | Mapping[str, Any], exc: EventError, at: int | None
    ) -> Outcome:
        text = (
            raw
            if isinstance(raw, str)
            else (
                raw.decode("utf-8", "replace")
                if isinstance(raw, bytes)
                else json.dumps(raw, sort_keys=True)
            )
        )
        now = self._now(at)
        with self.store.transaction():
            letter_id = self.store.add_dead_letter(
                DeadLetter(raw=text.strip(), error=str(exc), received_at=now, event_id=exc.event_id)
            )
            self.store.bump("dead_letters")
        return Outcome("dead_letter", f"rejected (dead letter #{letter_id}): {exc}")

    def replay_dead_letters(self, at: int | None = None) -> list[tuple[int, Outcome]]:
        """Try every unreplayed dead letter again (e.g. after a pack that knows the new field)."""
        results = []
        for letter in self.store.dead_letters():
            pack = self.active()
            try:
                parse_event(letter.raw, pack.schema)
            except EventError as exc:
                results.append((letter.id, Outcome("dead_letter", f"still rejected: {exc}")))
                continue
            outcome = self.receive(letter.raw, at)
            with self.store.transaction():
                self.store.mark_replayed(letter.id, self._now(at))
            results.append((letter.id, outcome))
        return results

    def _apply(self, pack: CompiledPack, event: Event, ctx: _Ctx) -> int | None:
        store = self.store
        state, times = store.ticket_state(event.ticket)
        for obj, fields in event.data.items():
            target = state.setdefault(obj, {})
            for key, value in fields.items():
                path = f"{obj}.{key}"
                if times.get(path, -(2**62)) > event.at:
                    continue  # a newer event already set this field
                times[path] = event.at
                if value is None:
                    target.pop(key, None)
                else:
                    target[key] = value
        store.put_ticket_state(event.ticket, state, times)
        store.add_event(event.id, event.type, event.at, event.ticket, event.raw)
        if event.unknown:
            store.bump("unknown_fields", len(event.unknown))
        esc = store.open_escalation(event.ticket)
        if esc is not None:
            self._on_update(esc, state, ctx)
            esc = store.open_escalation(event.ticket)
        candidate = pack.owner_of(event.type, state)
        if esc is not None and (candidate is None or candidate.priority <= esc.priority):
            return esc.id
        if candidate is None:
            store.bump("events_unowned")
            return None
        return self._route(event.ticket, pack, candidate, state, ctx)

    # --- routing -------------------------------------------------------------
    def _route(
        self, ticket: str, pack: CompiledPack, rules: Rules, state: dict[str, Any], ctx: _Ctx
    ) -> int | None:
        after = rules.raw.get("after")
        if after:
            key = f"{pack.id}:{rules.name}"
            if not self.store.has_timer(ticket, "after", key):
                self.store.add_timer(
                    Timer(
                        due=ctx.now + int(after),
                        kind="after",
                        ticket=ticket,
                        key=key,
                        payload={"pack": pack.id, "policy": rules.name, "cause": ctx.cause},
                    )
                )
                self._audit(
                    ctx,
                    "trigger_delayed",
                    None,
                    pack,
                    rules.name,
                    ticket=ticket,
                    reason=f"{rules.name} matched; starts in {format_duration(int(after))} if its condition still holds",
                )
            esc = self.store.open_escalation(ticket)
            return esc.id if esc else None
        return self._start(ticket, pack, rules, state, ctx)

    def _start(
        self, ticket: str, pack: CompiledPack, rules: Rules, state: dict[str, Any], ctx: _Ctx
    ) -> int | None:
        esc = self.store.open_escalation(ticket)
        if esc is not None:
            old = esc.policy
            esc.priority = rules.priority
            esc.pack_id = pack.id
            esc.extra.pop("handoffs_stopped", None)  # a new route; the loop window still counts
            self._audit(
                ctx,
                "rerouted",
                esc,
                pack,
                rules.name,
                reason=f"{rules.name} (priority {rules.priority}) outranks {old}; {ctx.cause}",
                detail={"from": old, "to": rules.name, "sla": _sla_targets(rules)},
            )
            self._enter(esc, pack, rules, state, ctx)
            self.store.update_escalation(esc)
            return esc.id
        closed = self.store.last_closed_at(ticket, rules.name)
        raw_cooldown = rules.raw.get("cooldown")
        cooldown = 3600 if raw_cooldown is None else int(raw_cooldown)
        if closed is not None and ctx.now < closed + cooldown:
            self.store.bump("cooldown_suppressed")
            return None
        account = state.get("account", {}).get("id")
        esc = Escalation(
            ticket=ticket,
            policy=rules.name,
            pack_id=pack.id,
            priority=rules.priority,
            started_at=ctx.now,
            snapshot=copy.deepcopy(state),
            account=account if isinstance(account, str) else None,
        )
        self.store.insert_escalation(esc)
        self._audit(
            ctx,
            "triggered",
            esc,
            pack,
            rules.name,
            reason=f"{rules.name} owns the ticket; {ctx.cause}",
            detail={"account": esc.account, "priority": rules.priority, "sla": _sla_targets(rules)},
        )
        self._enter(esc, pack, rules, state, ctx)
        self.store.update_escalation(esc)
        return esc.id

    def _enter(
        self, esc: Escalation, pack: CompiledPack, rules: Rules, state: Mapping[str, Any], ctx: _Ctx
    ) -> None:
        """Start ``rules`` on ``esc``: a new unacknowledged chain, its steps and checks."""
        esc.policy = rules.name
        esc.pack_id = pack.id
        esc.state = "triggered"
        esc.level, esc.level_index, esc.cycle = None, 0, 0
        esc.owner = esc.owner_kind = None
        esc.acked_at = None
        esc.extra.pop("owner_from", None)
        self.store.cancel_timers(esc.id, ("ack", "state_check", "transfer", "delivery"))
        self._arm_sla(esc, pack, rules, ctx)
        # condition exceptions first, before any step runs
        for name, pred, _failure, target in rules.exceptions:
            if pred is not None and pred(state):
                self._handoff(esc, pack, target, ctx, f"exception {name}: its condition holds")
                return
        if not self._run_steps(esc, pack, rules, rules.steps(), ctx, "start"):
            return
        for index, (cond, pred, within) in enumerate(rules.state_checks):
            if pred(state):
                self._audit(
                    ctx,
                    "check_passed",
                    esc,
                    pack,
                    rules.name,
                    reason=f"check state {format_condition(cond)} holds at start",
                )
                continue
            self.store.add_timer(
                Timer(
                    due=ctx.now + within,
                    kind="state_check",
                    ticket=esc.ticket,
                    escalation_id=esc.id,
                    key=f"{rules.name}:{index}",
                    payload={"index": index, "policy": rules.name},
                )
            )
        self._assign(esc, pack, rules, 0, 0, ctx, "assigned at start")

    def _arm_sla(self, esc: Escalation, pack: CompiledPack, rules: Rules, ctx: _Ctx) -> None:
        """SLA clocks keep their original start and use the current policy's targets."""
        self.store.cancel_timers(esc.id, ("sla_acknowledge", "sla_resolve"))
        for kind in ("acknowledge", "resolve"):
            target = rules.sla(kind)
            esc.extra[f"sla_{kind}"] = target
            if (
                target is None
                or esc.extra.get(f"sla_{kind}_met")
                or esc.extra.get(f"sla_{kind}_breached")
            ):
                continue
            due = esc.started_at + target
            if due <= ctx.now:
                self._breach(esc, pack, rules, kind, ctx)
            else:
                self.store.add_timer(
                    Timer(due=due, kind=f"sla_{kind}", ticket=esc.ticket, escalation_id=esc.id)
                )

    def _handoff(
        self, esc: Escalation, pack: CompiledPack, target: str, ctx: _Ctx, reason: str
    ) -> None:
        """Type A: move to ``target`` keeping the priority; a routing loop goes to triage."""
        source = esc.policy
        recent = [t for t in esc.extra.get("handoff_times", []) if t > ctx.now - self.loop_window]
        recent.append(ctx.now)
        esc.extra["handoff_times"] = recent
        rules = pack.policies.get(target)
        if len(recent) > self.loop_limit or rules is None:
            why = (
                f"routing loop: {len(recent)} handoffs within {format_duration(self.loop_window)}"
                if rules is not None
                else f"handoff target {target!r} is not in pack {pack.version}"
            )
            self._audit(ctx, "loop_broken", esc, pack, source, reason=why)
            # Sticky: later events must not hand it off (and triage it) again and again.
            esc.extra["handoffs_stopped"] = why
            self._triage(esc, pack, pack.policies[source], ctx, why)
            return
        self._audit(
            ctx,
            "handoff",
            esc,
            pack,
            target,
            reason=f"{source} -> {target}: {reason}",
            detail={"from": source, "to": target, "sla": _sla_targets(rules)},
        )
        state, _ = self.store.ticket_state(esc.ticket)
        self._enter(esc, pack, rules, state, ctx)

    # --- ownership -----------------------------------------------------------
    def oncall(
        self, pack: CompiledPack, team: str, at: int, absent: Mapping[str, int] | None = None
    ) -> str | None:
        """The team's on-call member at ``at`` (the next available one when absent).

        A team without a rotation answers with its first available member."""
        spec = pack.typed.teams.get(team)
        if spec is None:
            return None
        away = absent if absent is not None else self.store.absences(at)
        if spec.rotation is None:
            return next((m for m in spec.members if m not in away), None)
        return spec.on_call(at, away)

    def _team_recipients(self, pack: CompiledPack, team: str, at: int) -> list[str]:
        """Who a message to ``team`` goes to at ``at``: the on-call member of a team with a
        rotation, else every member; absent members are skipped (empty: nobody available)."""
        spec = pack.typed.teams.get(team)
        if spec is None:
            return []
        away = self.store.absences(at)
        if spec.rotation is not None:
            member = spec.on_call(at, away)
            return [] if member is None else [member]
        return [m for m in spec.members if m not in away]

    def _resolve(
        self, pack: CompiledPack, ref: str, kind: str, at: int, away: Mapping[str, int]
    ) -> tuple[str, str] | None:
        """``(owner, owner_kind)`` for a chain reference, or None when nobody is available."""
        if kind == "team" or ref in pack.teams:
            spec = pack.teams.get(ref) or {}
            if spec.get("rotation"):
                member = self.oncall(pack, ref, at, away)
                return None if member is None else (member, "person")
            available = [m for m in spec.get("members") or [] if m not in away]
            return (ref, "team") if available else None
        return None if ref in away else (ref, "person")

    def _assign(
        self,
        esc: Escalation,
        pack: CompiledPack,
        rules: Rules,
        index: int,
        cycle: int,
        ctx: _Ctx,
        reason: str,
    ) -> None:
        owners = rules.owners
        away = self.store.absences(ctx.now)
        budget = max(1, len(owners)) * (rules.repeat + 1) + 1
        while True:
            if index >= len(owners):
                if cycle < rules.repeat and owners:
                    cycle += 1
                    index = 0
                    self._audit(
                        ctx,
                        "repeat",
                        esc,
                        pack,
                        rules.name,
                        reason=f"chain starts over (round {cycle + 1} of {rules.repeat + 1})",
                    )
                else:
                    self._exhausted(esc, pack, rules, ctx)
                    return
            budget -= 1
            if budget < 0:
                self._exhausted(esc, pack, rules, ctx)
                return
            owner = owners[index]
            resolved = self._resolve(
                pack, str(owner["ref"]), str(owner.get("kind", "person")), ctx.now, away
            )
            if resolved is None:
                ref = owner["ref"]
                until = away.get(str(ref))
                why = (
                    f"{ref} is absent until {format_time(until)}"
                    if until
                    else f"nobody in {ref} is available"
                )
                self._audit(
                    ctx,
                    "skipped",
                    esc,
                    pack,
                    rules.name,
                    reason=f"{owner['level']} owner skipped: {why}",
                )
                index += 1
                continue
            break
        who, who_kind = resolved
        esc.state = "assigned"
        esc.level, esc.level_index, esc.cycle = str(owner["level"]), index, cycle
        esc.owner, esc.owner_kind = who, who_kind
        if who != owner["ref"]:
            esc.extra["owner_from"] = owner["ref"]
        else:
            esc.extra.pop("owner_from", None)
        via = f" (on call for {owner['ref']})" if who != owner["ref"] else ""
        self._audit(
            ctx,
            "assigned",
            esc,
            pack,
            rules.name,
            reason=f"{esc.level} owner {who}{via}: {reason}",
            detail={"owner": who, "level": esc.level, "cycle": cycle, "from": owner["ref"]},
        )
        self._notify_owner(
            esc,
            pack,
            rules,
            ctx,
            f"You are the {esc.level} owner of ticket {esc.ticket} ({rules.name})",
        )
        ack = owner.get("ack")
        if ack is not None:
            self.store.add_timer(
                Timer(
                    due=ctx.now + int(ack),
                    kind="ack",
                    ticket=esc.ticket,
                    escalation_id=esc.id,
                    payload={"index": index, "cycle": cycle, "policy": rules.name},
                )
            )

    def _notify_owner(
        self, esc: Escalation, pack: CompiledPack, rules: Rules, ctx: _Ctx, text: str
    ) -> None:
        owner = esc.owner or ""
        targets = [owner]
        if esc.owner_kind == "team":
            targets = self._team_recipients(pack, owner, ctx.now)
        for person in targets:
            self._emit(
                esc,
                pack,
                rules,
                ctx,
                "notify",
                person,
                "person",
                {"text": text, "reason": "assignment"},
            )

    def _exhausted(self, esc: Escalation, pack: CompiledPack, rules: Rules, ctx: _Ctx) -> None:
        esc.state = "unacknowledged"
        self.store.cancel_timers(esc.id, ("ack",))
        self._failure(
            esc,
            pack,
            rules,
            "unacknowledged",
            ctx,
            f"nobody acknowledged after {rules.repeat + 1} round(s) of the chain",
        )

    def _failure(
        self, esc: Escalation, pack: CompiledPack, rules: Rules, kind: str, ctx: _Ctx, reason: str
    ) -> None:
        """Audit a failure (``kind`` says which), then its Type A exception, else Type B triage."""
        self._audit(ctx, kind, esc, pack, rules.name, reason=reason)
        for name, _pred, failure, target in rules.exceptions:
            if failure == kind and not esc.extra.get("handoffs_stopped"):
                self._handoff(esc, pack, target, ctx, f"exception {name}: {kind}")
                return
        self._triage(esc, pack, rules, ctx, kind)

    def _triage(
        self, esc: Escalation, pack: CompiledPack, rules: Rules, ctx: _Ctx, reason: str
    ) -> None:
        self.store.cancel_timers(esc.id, ("ack", "transfer"))
        triage = rules.raw.get("triage")
        if not triage:
            if esc.state not in ("acknowledged", "resolved"):
                esc.state = "unacknowledged"
            self._audit(
                ctx,
                "no_triage",
                esc,
                pack,
                rules.name,
                reason=f"{reason}; {rules.name} has no triage owner",
            )
            return
        away = self.store.absences(ctx.now)
        resolved = self._resolve(
            pack, str(triage["ref"]), str(triage.get("kind", "person")), ctx.now, away
        )
        note = ""
        if resolved is None:
            fallback = next((o for o in rules.owners if o.get("level") == "escalation"), None)
            fallback = fallback or (rules.owners[-1] if rules.owners else None)
            note = f" ({triage['ref']} is absent; passed to the escalation owner)"
            if fallback is not None:
                resolved = self._resolve(
                    pack, str(fallback["ref"]), str(fallback.get("kind", "person")), ctx.now, away
                )
        if resolved is None:
            esc.state = "unacknowledged"
            self._audit(
                ctx,
                "no_triage",
                esc,
                pack,
                rules.name,
                reason=f"{reason}; no triage owner is available",
            )
            return
        esc.state = "triage"
        esc.level, esc.owner, esc.owner_kind = "triage", resolved[0], resolved[1]
        if resolved[0] != triage["ref"]:
            esc.extra["owner_from"] = triage["ref"]
        else:
            esc.extra.pop("owner_from", None)
        esc.acked_at = None
        self._audit(
            ctx,
            "triage",
            esc,
            pack,
            rules.name,
            reason=f"Type B triage by {resolved[0]}{note}: {reason}",
            detail={"owner": resolved[0], "postmortem": bool(triage.get("postmortem"))},
        )
        self._notify_owner(
            esc, pack, rules, ctx, f"Triage ticket {esc.ticket} ({rules.name}): {reason}"
        )
        if triage.get("postmortem"):
            esc.extra["postmortem_required"] = True
            self._emit(
                esc,
                pack,
                rules,
                ctx,
                "create_task",
                resolved[0],
                resolved[1],
                {
                    "text": f"Post-mortem for ticket {esc.ticket} ({rules.name})",
                    "reason": "postmortem",
                },
            )

    # --- steps and actions ---------------------------------------------------
    def _render(self, text: str, snapshot: Mapping[str, Any]) -> str:
        def value(match: re.Match[str]) -> str:
            found = (snapshot.get(match.group(1)) or {}).get(match.group(2))
            if found is None:
                return ""
            return ", ".join(found) if isinstance(found, list) else str(found)

        return _PLACEHOLDER.sub(value, text)

    def _run_steps(
        self,
        esc: Escalation,
        pack: CompiledPack,
        rules: Rules,
        steps: Iterable[Mapping[str, Any]],
        ctx: _Ctx,
        moment: str,
    ) -> bool:
        """Emit each step's action in order; False when a step could not be issued."""
        for step in steps:
            action = str(step["action"])
            target: str | None = None
            target_kind: str | None = None
            payload: dict[str, Any] = {"moment": moment, "step_line": step.get("line")}
            for arg in step.get("args") or []:
                if "ref" in arg and target is None:
                    target, target_kind = str(arg["ref"]), str(arg.get("kind") or "")
                elif "text" in arg:
                    payload["text"] = self._render(str(arg["text"]), esc.snapshot)
                elif "field" in arg:
                    payload["field"] = arg["field"]
                elif "word" in arg:
                    payload["word"] = arg["word"]
            if step.get("guide"):
                payload["guide"] = step["guide"]
            if action in ("notify", "page") and target_kind == "team" and target is not None:
                # A team is reached through people: its on-call member now, or every member.
                members = self._team_recipients(pack, target, ctx.now)
                if not members:
                    self._failure(
                        esc,
                        pack,
                        rules,
                        "step_failed",
                        ctx,
                        f"step {action} {target}: nobody in {target} is available",
                    )
                    return False
                payload["team"] = target
                for member in members:
                    self._emit(esc, pack, rules, ctx, action, member, "person", dict(payload))
                continue
            self._emit(esc, pack, rules, ctx, action, target, target_kind, payload)
        return True

    def _emit(
        self,
        esc: Escalation,
        pack: CompiledPack,
        rules: Rules,
        ctx: _Ctx,
        action: str,
        target: str | None,
        target_kind: str | None,
        payload: dict[str, Any],
    ) -> None:
        seq = int(esc.extra.get("actions", 0)) + 1
        esc.extra["actions"] = seq
        if target is None:
            pass
        elif target_kind == "channel" and target in pack.channels:
            payload["channel"] = dict(pack.channels[target])
        elif target_kind == "person" and target in pack.people:
            contacts = {k: v for k, v in pack.people[target].items() if v and k != "name"}
            payload["contacts"] = contacts
        delivery = rules.delivery
        if delivery is not None and action in ("notify", "page"):
            payload["delivery"] = dict(delivery)
        payload["policy"] = rules.name
        self._outbox_dirty = True
        self.store.add_outbox(
            OutboxMessage(
                key=f"esc-{esc.id}/{seq}",
                escalation_id=esc.id,
                ticket=esc.ticket,
                action=action,
                target=target,
                target_kind=target_kind,
                payload=payload,
                created_at=ctx.now,
            )
        )

    def dispatch(self, at: int | None = None) -> int:
        """Hand pending outbox rows to the notifier and record the receipts; how many were sent.

        An in-process (``transactional``) notifier delivers inside one transaction.
        Any other is called with NO transaction open, so the store's write lock is
        never held across a network call; each receipt is then written in its own
        short transaction. A crash between the send and its receipt leaves the row
        pending, and the next dispatch (of this process or the next) sends it again
        under the same idempotency key."""
        if not self._outbox_dirty:
            return 0
        now = self._now(at)
        if self._deliver_in_txn:
            with self.store.transaction():
                return self._deliver_pending(now)
        sent = 0
        try:
            # Receipts may queue more rows (a fallback, a triage notice): send those too.
            for _ in range(DISPATCH_ROUNDS):
                if not self._outbox_dirty:
                    break
                self._outbox_dirty = False
                for msg in self.store.pending_outbox():
                    result = self._attempt(msg)
                    with self.store.transaction():
                        self._record(msg, result, now)
                    sent += 1
        except BaseException:
            self._outbox_dirty = True  # whatever is still pending goes out next time
            raise
        return sent

    def _deliver_now(self, now: int) -> None:
        """The fast path: an in-process notifier delivers inside the decision's transaction."""
        if self._deliver_in_txn:
            self._deliver_pending(now)

    def _deliver_pending(self, now: int) -> int:
        sent = 0
        for _ in range(DISPATCH_ROUNDS):
            if not self._outbox_dirty:
                break
            self._outbox_dirty = False
            for msg in self.store.pending_outbox():
                self._record(msg, self._attempt(msg), now)
                sent += 1
        return sent

    def _attempt(self, msg: OutboxMessage) -> Delivery:
        """Send ``msg`` once; a notifier that raises has failed to deliver, with the reason."""
        try:
            return as_delivery(self.notifier.deliver(msg))
        except Exception as exc:  # a bug in a notifier must not abort the engine's decision
            return Delivery("failed", f"the notifier raised {type(exc).__name__}: {exc}")

    def _record(self, msg: OutboxMessage, result: Delivery, now: int) -> None:
        """Write one attempt's receipt (inside a transaction) and decide what follows it."""
        if not self._deliver_in_txn:
            # Sent with no transaction open: a receipt recorded meanwhile wins.
            current = self.store.outbox_message(msg.id)
            if current is None or current.status != "pending":
                return
        status = {"delivered": "delivered", "failed": "failed"}.get(result.receipt, "sent")
        msg.attempts += 1
        msg.status = status
        msg.reason = result.reason or None
        self.store.mark_outbox(msg.id, status, now, msg.attempts, result.reason or None)
        if result.receipt != "delivered":
            self._undelivered(msg, result, _Ctx(now=now, cause=f"delivery of {msg.key}"))

    def _undelivered(self, msg: OutboxMessage, result: Delivery, ctx: _Ctx) -> None:
        """After an attempt without a receipt: the policy's delivery check decides when one
        exists; otherwise a transient answer (``pending``) is retried with backoff and a
        refusal (``failed``) fails its step."""
        if msg.escalation_id is None:
            return
        esc = self.store.escalation(msg.escalation_id)
        if esc is None:
            return
        if result.receipt == "failed":
            self._audit_delivery(msg, esc, ctx, "refused", result.channel)
        delivery = msg.payload.get("delivery")
        if delivery:
            stage = msg.payload.get("stage", "retry")
            self.store.add_timer(
                Timer(
                    due=ctx.now + int(delivery["within"]),
                    kind="delivery",
                    ticket=msg.ticket or "",
                    escalation_id=msg.escalation_id,
                    key=msg.key,
                    payload={"message": msg.id, "stage": stage},
                )
            )
            return
        if result.receipt == "failed":
            self._step_undelivered(msg, esc, ctx)
            return
        # No receipt yet, or a transient failure: try again later under the same key. The
        # timer has no escalation, so a re-route or a close does not cancel the delivery.
        self.store.add_timer(
            Timer(
                due=ctx.now + self.retry_delay(msg.attempts),
                kind="redeliver",
                ticket=msg.ticket or "",
                key=msg.key,
                payload={"message": msg.id},
            )
        )

    def retry_delay(self, attempts: int) -> int:
        """Seconds to wait after attempt number ``attempts`` (1, 2, ...) without a receipt:
        ``retry_base`` doubled each time, at most ``retry_cap``."""
        return int(min(self.retry_cap, self.retry_base * 2 ** max(0, min(attempts - 1, 30))))

    def _fire_redeliver(self, timer: Timer, ctx: _Ctx) -> None:
        """The backoff of a message without a delivery check is over: send it again, or give
        up after ``retry_attempts`` sends (the last one had its full backoff to answer)."""
        msg = self.store.outbox_message(int(timer.payload["message"]))
        if msg is None or msg.status != "sent":
            return  # delivered (a late receipt), refused, or already queued again
        esc = self.store.escalation(msg.escalation_id) if msg.escalation_id is not None else None
        if msg.attempts < self.retry_attempts:
            if esc is not None:
                last = f" ({msg.reason})" if msg.reason else ""
                self._audit_message(
                    msg,
                    esc,
                    ctx,
                    "delivery_retry",
                    f"no receipt for {_what(msg)}{last}:"
                    f" retry {msg.attempts} of {self.retry_attempts - 1}",
                    {"key": msg.key, "attempt": msg.attempts + 1},
                )
            self._requeue(msg, ctx.now)
            return
        last = f"; last: {msg.reason}" if msg.reason else ""
        reason = f"no receipt after {msg.attempts} attempts{last}"
        self.store.mark_outbox(msg.id, "failed", ctx.now, msg.attempts, reason, attempted=False)
        msg.reason = reason
        if esc is not None:
            self._audit_delivery(msg, esc, ctx, "never delivered")
            self._step_undelivered(msg, esc, ctx)

    def _audit_delivery(
        self, msg: OutboxMessage, esc: Escalation, ctx: _Ctx, what: str, channel: str = ""
    ) -> None:
        """``delivery_failed`` in the audit trail, with the notifier's reason."""
        why = f": {msg.reason}" if msg.reason else ""
        self._audit_message(
            msg,
            esc,
            ctx,
            "delivery_failed",
            f"{_what(msg)} was {what} (attempt {msg.attempts}){why}",
            {"key": msg.key, "attempt": msg.attempts, "channel": channel},
        )

    def _audit_message(
        self,
        msg: OutboxMessage,
        esc: Escalation,
        ctx: _Ctx,
        kind: str,
        reason: str,
        detail: dict[str, Any],
    ) -> None:
        """An audit row about ``msg``, under the policy that issued it."""
        policy = str(msg.payload.get("policy") or esc.policy)
        self._audit(ctx, kind, esc, self.pack(esc.pack_id), policy, reason=reason, detail=detail)

    def _step_undelivered(self, msg: OutboxMessage, esc: Escalation, ctx: _Ctx) -> None:
        """A step's action that can never be delivered is a step failure (SPEC §4) — while the
        escalation is still open under the policy that issued it."""
        if msg.payload.get("moment") is None or esc.state == "closed":
            return
        if msg.payload.get("policy") not in (None, esc.policy):
            return
        pack = self.pack(esc.pack_id)
        why = f": {msg.reason}" if msg.reason else ""
        reason = f"{_what(msg)} failed to deliver{why}"
        self._failure(esc, pack, pack.policies[esc.policy], "step_failed", ctx, reason)
        self.store.update_escalation(esc)

    def _requeue(self, msg: OutboxMessage, now: int) -> None:
        """Send ``msg`` again under its key: by the fast path in this transaction, else by
        the dispatch after the commit (never a network call inside a transaction)."""
        self.store.mark_outbox(msg.id, "pending", now, msg.attempts, attempted=False)
        self._outbox_dirty = True

    def record_receipt(self, key: str, at: int | None = None) -> bool:
        """A delivery receipt arrived for outbox ``key`` (used by real channels)."""
        now = self._now(at)
        with self.store.transaction():
            msg = self.store.outbox_by_key(key)
            if msg is None:
                return False
            if msg.status != "delivered":
                self.store.mark_outbox(msg.id, "delivered", now, msg.attempts, attempted=False)
            return True

    # --- timers --------------------------------------------------------------
    def _fire(self, timer: Timer, ctx: _Ctx) -> None:
        if timer.kind == "after":
            self._fire_after(timer, ctx)
            return
        if timer.kind == "redeliver":
            self._fire_redeliver(timer, ctx)
            return
        if timer.escalation_id is None:
            return
        esc = self.store.escalation(timer.escalation_id)
        if esc is None or esc.state == "closed":
            return
        pack = self.pack(esc.pack_id)
        rules = pack.policies[esc.policy]
        if timer.kind == "ack":
            if (
                esc.state != "assigned"
                or esc.level_index != timer.payload.get("index")
                or esc.cycle != timer.payload.get("cycle")
                or esc.policy != timer.payload.get("policy")
            ):
                return
            owner = esc.owner
            self._audit(
                ctx,
                "ack_timeout",
                esc,
                pack,
                rules.name,
                reason=f"{esc.level} owner {owner} did not acknowledge in time",
            )
            if not self._run_steps(esc, pack, rules, rules.steps("failover"), ctx, "failover"):
                self.store.update_escalation(esc)
                return
            self._assign(
                esc, pack, rules, esc.level_index + 1, esc.cycle, ctx, f"failover from {owner}"
            )
        elif timer.kind in ("sla_acknowledge", "sla_resolve"):
            self._breach(esc, pack, rules, timer.kind.removeprefix("sla_"), ctx)
        elif timer.kind == "state_check":
            index = int(timer.payload.get("index", 0))
            if timer.payload.get("policy") != esc.policy or index >= len(rules.state_checks):
                return
            cond = rules.state_checks[index][0]
            self._failure(
                esc,
                pack,
                rules,
                "check_failed",
                ctx,
                f"check state {format_condition(cond)}: no event showed it in time",
            )
        elif timer.kind == "delivery":
            self._fire_delivery(esc, pack, rules, timer, ctx)
        elif timer.kind == "transfer":
            if esc.state in ("resolved", "closed") or esc.level != "transfer":
                return
            self._audit(
                ctx,
                "breach",
                esc,
                pack,
                rules.name,
                reason=f"transfer SLA missed: {esc.owner} has not resolved it",
                detail={"sla": "transfer"},
            )
            self._run_steps(esc, pack, rules, rules.steps("breach"), ctx, "breach")
        self.store.update_escalation(esc)

    def _fire_after(self, timer: Timer, ctx: _Ctx) -> None:
        pack_id = int(timer.payload["pack"])
        active = self.store.active_pack()
        pack = self.pack(active if active is not None else pack_id)
        rules = pack.policies.get(str(timer.payload["policy"]))
        if rules is None:
            return
        state, _ = self.store.ticket_state(timer.ticket)
        esc = self.store.open_escalation(timer.ticket)
        if not rules.when(state):
            self._audit(
                ctx,
                "trigger_dropped",
                esc,
                pack,
                rules.name,
                ticket=timer.ticket,
                reason=f"{rules.name}: the condition no longer holds after the delay",
            )
            return
        if esc is not None and rules.priority <= esc.priority:
            return
        self._start(
            timer.ticket,
            pack,
            rules,
            state,
            _Ctx(now=ctx.now, cause=f"{timer.payload.get('cause')} after delay"),
        )

    def _fire_delivery(
        self, esc: Escalation, pack: CompiledPack, rules: Rules, timer: Timer, ctx: _Ctx
    ) -> None:
        msg = self.store.outbox_message(int(timer.payload["message"]))
        if msg is None or msg.status == "delivered":
            return
        delivery = msg.payload.get("delivery") or {}
        retries = int(delivery.get("retry", 0))
        stage = timer.payload.get("stage", "retry")
        if stage == "retry" and msg.attempts <= retries:
            self._audit(
                ctx,
                "delivery_retry",
                esc,
                pack,
                rules.name,
                reason=f"no receipt for {msg.action} {msg.target}: retry {msg.attempts} of {retries}",
            )
            self._requeue(msg, ctx.now)
            return
        fallback = delivery.get("then")
        if stage == "retry" and fallback:
            self._audit(
                ctx,
                "delivery_fallback",
                esc,
                pack,
                rules.name,
                reason=f"no receipt for {msg.action} {msg.target} after {retries} retries: falling back to {fallback}",
            )
            payload = {k: v for k, v in msg.payload.items() if k != "channel"}
            payload["stage"] = "fallback"
            payload["fallback_for"] = msg.key
            self._emit(esc, pack, rules, ctx, "notify", str(fallback), "channel", payload)
            return
        self._failure(
            esc,
            pack,
            rules,
            "check_failed",
            ctx,
            f"check delivery: {msg.action} {msg.target} was never delivered",
        )

    def _breach(
        self, esc: Escalation, pack: CompiledPack, rules: Rules, kind: str, ctx: _Ctx
    ) -> None:
        flag = f"sla_{kind}_breached"
        if esc.extra.get(flag) or esc.extra.get(f"sla_{kind}_met"):
            return
        esc.extra[flag] = True
        target = rules.sla(kind) or 0
        self._audit(
            ctx,
            "breach",
            esc,
            pack,
            rules.name,
            reason=f"{kind} SLA of {format_duration(target)} breached",
            detail={"sla": kind},
        )
        self._run_steps(esc, pack, rules, rules.steps("breach"), ctx, "breach")

    # --- updates on later events --------------------------------------------
    def _on_update(self, esc: Escalation, state: Mapping[str, Any], ctx: _Ctx) -> None:
        pack = self.pack(esc.pack_id)
        rules = pack.policies[esc.policy]
        changed = False
        for timer in self.store.timers_of(esc.id):
            if timer.kind != "state_check" or timer.payload.get("policy") != rules.name:
                continue
            index = int(timer.payload.get("index", 0))
            if index < len(rules.state_checks) and rules.state_checks[index][1](state):
                self.store.delete_timer(timer.id)
                self._audit(
                    ctx,
                    "check_passed",
                    esc,
                    pack,
                    rules.name,
                    reason=f"check state {format_condition(rules.state_checks[index][0])}: {ctx.cause} shows it",
                )
        if esc.state != "resolved" and not esc.extra.get("handoffs_stopped"):
            for name, pred, _failure, target in rules.exceptions:
                if pred is not None and pred(state) and target != esc.policy:
                    self._handoff(esc, pack, target, ctx, f"exception {name}: its condition holds")
                    changed = True
                    break
        if changed:
            self.store.update_escalation(esc)

    # --- operator commands ---------------------------------------------------
    def _command(
        self,
        ticket: str,
        at: int | None,
        actor: str,
        decide: Callable[[Escalation, CompiledPack, Rules, _Ctx], str],
    ) -> Outcome:
        now = self._now(at)
        self.advance(now)
        refusal: str | None = None
        with self.store.transaction():
            esc = self.store.open_escalation(ticket)
            if esc is None:
                raise Refused(f"ticket {ticket} has no open escalation")
            pack = self.pack(esc.pack_id)
            rules = pack.policies[esc.policy]
            ctx = _Ctx(now=now, actor=actor)
            try:
                message = decide(esc, pack, rules, ctx)
            except Refused as exc:
                refusal = str(exc)
                message = refusal
            self.store.update_escalation(esc)
            self._deliver_now(now)
        self.dispatch(now)
        if refusal is not None:
            raise Refused(refusal)
        return Outcome("applied", message, ticket, esc.id)

    def ack(self, ticket: str, by: str, at: int | None = None) -> Outcome:
        """``by`` acknowledges: failover stops for good."""

        def decide(esc: Escalation, pack: CompiledPack, rules: Rules, ctx: _Ctx) -> str:
            if by not in pack.people:
                raise Refused(f"{by!r} is not a person in the directory")
            if esc.state in ("acknowledged", "resolved"):
                raise Refused(f"ticket {ticket} is already {esc.state} (owner {esc.owner})")
            esc.state = "acknowledged"
            esc.acked_at = ctx.now
            esc.owner, esc.owner_kind = by, "person"
            esc.extra.setdefault("first_ack", ctx.now)
            self.store.cancel_timers(esc.id, ("ack", "sla_acknowledge"))
            self._reached(esc, pack, rules, ctx, "acknowledge", f" by {by}")
            return f"ticket {ticket} acknowledged by {by}"

        return self._command(ticket, at, by, decide)

    def resolve(self, ticket: str, at: int | None = None, by: str = "operator") -> Outcome:
        """The problem is fixed; the resolve SLA is met unless it already breached."""

        def decide(esc: Escalation, pack: CompiledPack, rules: Rules, ctx: _Ctx) -> str:
            if esc.state == "resolved":
                raise Refused(f"ticket {ticket} is already resolved")
            esc.state = "resolved"
            esc.resolved_at = ctx.now
            self.store.cancel_timers(esc.id, ("ack", "sla_acknowledge", "sla_resolve", "transfer"))
            self._reached(esc, pack, rules, ctx, "resolve")
            return f"ticket {ticket} resolved"

        return self._command(ticket, at, by, decide)

    def _reached(
        self,
        esc: Escalation,
        pack: CompiledPack,
        rules: Rules,
        ctx: _Ctx,
        moment: str,
        by: str = "",
    ) -> None:
        """``acknowledge`` or ``resolve`` happened: the SLAs up to it are met unless they
        breached (a resolve meets an outstanding acknowledge SLA too); audit; its ``on`` steps."""
        slas = ("acknowledge",) if moment == "acknowledge" else ("acknowledge", "resolve")
        for kind in slas:
            if not esc.extra.get(f"sla_{kind}_breached"):
                esc.extra[f"sla_{kind}_met"] = True
        self._audit(
            ctx,
            f"{moment}d",
            esc,
            pack,
            rules.name,
            reason=f"{moment}d{by} after {format_duration(ctx.now - esc.started_at)}",
        )
        self._run_steps(esc, pack, rules, rules.steps(moment), ctx, moment)

    def close_problems(self, esc: Escalation, rules: Rules) -> list[str]:
        """Why ``esc`` may not close yet (empty when it may)."""
        problems = []
        if esc.state != "resolved":
            problems.append(f"it is {esc.state}, not resolved")
        state, _ = self.store.ticket_state(esc.ticket)
        needs_postmortem = bool(esc.extra.get("postmortem_required"))
        for cond, pred in rules.close_checks:
            if pred is None:
                needs_postmortem = True
            elif not pred(state):
                problems.append(f"check close requires {format_condition(cond)} does not hold")
        if needs_postmortem and not esc.extra.get("postmortem_link"):
            problems.append("a post-mortem is required (postmortem TICKET --link URL)")
        return problems

    def close(self, ticket: str, at: int | None = None, by: str = "operator") -> Outcome:
        """Close, only once every close check holds; refused (and audited) otherwise."""

        def decide(esc: Escalation, pack: CompiledPack, rules: Rules, ctx: _Ctx) -> str:
            problems = self.close_problems(esc, rules)
            if problems:
                reason = "; ".join(problems)
                self._audit(ctx, "close_refused", esc, pack, rules.name, reason=reason)
                raise Refused(f"close of ticket {ticket} refused: {reason}")
            esc.state = "closed"
            esc.closed_at = ctx.now
            self.store.cancel_timers(esc.id)
            self._audit(ctx, "closed", esc, pack, rules.name, reason="every close check holds")
            return f"ticket {ticket} closed"

        return self._command(ticket, at, by, decide)

    def transfer(
        self,
        ticket: str,
        to: str,
        reason: str,
        sla: int | None,
        at: int | None = None,
        by: str = "operator",
    ) -> Outcome:
        """Manual transfer: needs a reason and an expected SLA; failover stops."""
        if not reason.strip():
            raise Refused('a transfer needs a reason (--reason "...")')
        if sla is None or sla <= 0:
            raise Refused("a transfer needs an expected SLA (--sla 2h)")

        def decide(esc: Escalation, pack: CompiledPack, rules: Rules, ctx: _Ctx) -> str:
            if to not in pack.people and to not in pack.teams:
                raise Refused(f"{to!r} is neither a person nor a team in the directory")
            if esc.state == "resolved":
                raise Refused(f"ticket {ticket} is already resolved")
            away = self.store.absences(ctx.now)
            resolved = self._resolve(
                pack, to, "team" if to in pack.teams else "person", ctx.now, away
            )
            if resolved is None:
                raise Refused(f"{to} is absent (or nobody in the team is available)")
            previous = esc.owner
            self.store.cancel_timers(esc.id, ("ack", "transfer"))
            esc.state = "assigned"
            esc.level, esc.owner, esc.owner_kind = "transfer", resolved[0], resolved[1]
            if resolved[0] != to:
                esc.extra["owner_from"] = to
            else:
                esc.extra.pop("owner_from", None)
            esc.acked_at = None
            esc.extra["transfers"] = int(esc.extra.get("transfers", 0)) + 1
            self.store.add_timer(
                Timer(due=ctx.now + sla, kind="transfer", ticket=ticket, escalation_id=esc.id)
            )
            self._audit(
                ctx,
                "transfer",
                esc,
                pack,
                rules.name,
                reason=f"{previous} -> {resolved[0]}: {reason} (expected within {format_duration(sla)})",
                detail={"from": previous, "to": resolved[0], "sla": sla},
            )
            self._notify_owner(
                esc, pack, rules, ctx, f"Ticket {ticket} was transferred to you: {reason}"
            )
            return f"ticket {ticket} transferred to {resolved[0]}"

        return self._command(ticket, at, by, decide)

    def postmortem(
        self, ticket: str, link: str, at: int | None = None, by: str = "operator"
    ) -> Outcome:
        """Record the completed post-mortem that close may require."""
        if not link.strip():
            raise Refused("a post-mortem needs a link")

        def decide(esc: Escalation, pack: CompiledPack, rules: Rules, ctx: _Ctx) -> str:
            esc.extra["postmortem_link"] = link
            self._audit(
                ctx, "postmortem", esc, pack, rules.name, reason=f"post-mortem completed: {link}"
            )
            return f"post-mortem recorded for ticket {ticket}"

        return self._command(ticket, at, by, decide)

    def absent(
        self, person: str, until: int, at: int | None = None, by: str = "operator"
    ) -> Outcome:
        """Mark ``person`` absent; escalations waiting on them move on at once."""
        now = self._now(at)
        self.advance(now)
        pack = self.active()
        if person not in pack.people:
            raise Refused(f"{person!r} is not a person in the directory")
        if until <= now:
            raise Refused(f"--until {format_time(until)} is not in the future")
        moved = 0
        with self.store.transaction():
            self.store.set_absence(person, until)
            ctx = _Ctx(now=now, actor=by)
            self._audit(
                ctx,
                "absent",
                None,
                pack,
                None,
                reason=f"{person} is absent until {format_time(until)}",
                detail={"person": person, "until": until},
            )
            for esc in self.store.open_escalations_owned_by(person):
                if esc.state not in ("assigned", "triage"):
                    continue
                epack = self.pack(esc.pack_id)
                rules = epack.policies[esc.policy]
                self.store.cancel_timers(esc.id, ("ack",))
                if esc.state == "triage":
                    self._triage(esc, epack, rules, ctx, f"{person} became absent")
                elif esc.level == "transfer":
                    continue
                else:
                    self._assign(
                        esc,
                        epack,
                        rules,
                        esc.level_index,
                        esc.cycle,
                        ctx,
                        f"{person} became absent",
                    )
                self.store.update_escalation(esc)
                moved += 1
            self._deliver_now(now)
        self.dispatch(now)
        return Outcome(
            "applied",
            f"{person} absent until {format_time(until)}; {moved} escalation(s) reassigned",
        )

    # --- reading -------------------------------------------------------------
    def status(self, ticket: str) -> dict[str, Any] | None:
        """The ticket's latest escalation: policy, state, owner, level, timers and history."""
        esc = self.store.open_escalation(ticket) or self.store.latest_escalation(ticket)
        if esc is None:
            return None
        pack = self.pack(esc.pack_id)
        history = [
            {
                "at": format_time(r.at),
                "kind": r.kind,
                "policy": r.policy,
                "actor": r.actor,
                "reason": r.reason,
            }
            for r in self.store.audit_rows(esc.id)
        ]
        actions = [
            {
                "action": m.action,
                "target": m.target,
                "text": m.payload.get("text"),
                "status": m.status,
                "attempts": m.attempts,
                "reason": m.reason,
                "at": format_time(m.created_at),
            }
            for m in self.store.outbox(esc.id)
        ]
        return {
            "ticket": esc.ticket,
            "escalation": esc.id,
            "policy": esc.policy,
            "priority": esc.priority,
            "pack_version": pack.version,
            "state": esc.state,
            "owner": esc.owner,
            "owner_from": esc.extra.get("owner_from"),
            "level": esc.level,
            "round": esc.cycle + 1,
            "started_at": format_time(esc.started_at),
            "acknowledged_at": format_time(esc.acked_at) if esc.acked_at else None,
            "resolved_at": format_time(esc.resolved_at) if esc.resolved_at else None,
            "closed_at": format_time(esc.closed_at) if esc.closed_at else None,
            "postmortem_required": bool(esc.extra.get("postmortem_required")),
            "postmortem_link": esc.extra.get("postmortem_link"),
            "timers": [
                {
                    "kind": t.kind,
                    "due": format_time(t.due),
                    **({"level": esc.level} if t.kind == "ack" else {}),
                }
                for t in self.store.timers_of(esc.id)
            ],
            "actions": actions,
            "history": history,
        }

    # --- audit ---------------------------------------------------------------
    def _audit(
        self,
        ctx: _Ctx,
        kind: str,
        esc: Escalation | None,
        pack: CompiledPack,
        policy: str | None,
        *,
        reason: str,
        ticket: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        audit.append(
            self.store,
            at=ctx.now,
            kind=kind,
            actor=ctx.actor,
            reason=reason,
            ticket=esc.ticket if esc is not None else ticket,
            escalation_id=esc.id if esc is not None else None,
            policy=policy,
            pack_version=pack.version,
            detail=detail,
        )
        ctx.fired.append(kind)


def _what(msg: OutboxMessage) -> str:
    """``notify oncall``, ``create_ticket``: a message's action and target for people."""
    return f"{msg.action} {msg.target or ''}".strip()


def _sla_targets(rules: Rules) -> dict[str, int | None]:
    return {"acknowledge": rules.sla("acknowledge"), "resolve": rules.sla("resolve")}


def open_states() -> tuple[str, ...]:
    """States of an escalation that is not closed."""
    return OPEN_STATES
