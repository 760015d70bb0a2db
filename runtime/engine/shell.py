"""The engine's transactional shell: every input decided and written in ONE transaction.

An input — an event, a due timer, an operator command — opens one store
transaction; the decision functions (:mod:`.chain`, :mod:`.timers`,
:mod:`.commands`) change the escalation along the transition table
(:mod:`.transitions`), arm and cancel timers, queue outbox rows and append
audit rows; all of it commits together or not at all. After the commit the
outbox is dispatched (:mod:`.delivery`).

The engine reads the clock only through :class:`~escalade.runtime.clock.Clock`
or explicit ``at`` arguments, so policy tests and the simulator run it on
virtual time. In-flight escalations keep the rule pack version they started
under: each escalation row names its pack, and every pack ever activated stays
in the store.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from escalade.runtime import audit
from escalade.runtime.clock import Clock, SystemClock, format_time
from escalade.runtime.engine import chain, commands
from escalade.runtime.engine.context import ClockError, Limits, Moment, Refused, Runtime
from escalade.runtime.engine.delivery import Outbox
from escalade.runtime.engine.intake import BATCH, Intake, Outcome, RawEvent, merge_fields
from escalade.runtime.engine.loaded import LoadedPack, PolicyRules, no_active_pack
from escalade.runtime.engine.ownership import on_call
from escalade.runtime.engine.status import ticket_status
from escalade.runtime.events import EventError, parse_event
from escalade.runtime.notify import Notifier, RecordingNotifier
from escalade.runtime.pack import FORMAT, PackError, RulePack
from escalade.runtime.settings import LastResort
from escalade.runtime.store import Escalation, Store

Decide = Callable[[Runtime, Escalation, LoadedPack, PolicyRules, Moment], str]
__all__ = ["Engine", "Outcome", "merge_fields", "typed_pack"]


def typed_pack(body: Mapping[str, Any] | RulePack) -> RulePack:
    """The typed view of a pack to activate (validated by whoever read it from a file)."""
    if isinstance(body, RulePack):
        return body
    if not isinstance(body, Mapping) or body.get("format") != FORMAT:
        got = body.get("format") if isinstance(body, Mapping) else type(body).__name__
        raise PackError("<pack>", [f"/format: expected {FORMAT!r}, got {got!r}"])
    return RulePack.trusted(body)


class Engine:
    """Runs escalations for one store. Not thread-safe; one engine per process."""

    def __init__(
        self,
        store: Store,
        clock: Clock | None = None,
        notifier: Notifier | None = None,
        *,
        last_resort: LastResort | None = None,
        **limits: int,
    ) -> None:
        """``limits`` are :class:`~escalade.runtime.engine.context.Limits`: ``loop_limit``,
        ``loop_window`` (the routing-loop breaker) and ``retry_attempts``,
        ``retry_base``, ``retry_cap`` (the delivery retry of messages whose policy has
        no ``check delivery``); a bad value raises ValueError. ``last_resort`` owns what
        nobody else can (``runtime.last_resort``)."""
        self.limits = Limits(**limits)
        self.store = store
        self.clock: Clock = clock or SystemClock()
        self.notifier: Notifier = notifier if notifier is not None else RecordingNotifier()
        self.rt = Runtime(store, self.limits, last_resort)
        self.outbox = Outbox(self.rt, self.notifier)
        self.intake = Intake(self)
        self._active_id: int | None = None
        self._pinned: LoadedPack | None = None

    # --- limits, as the settings name them --------------------------------------
    @property
    def loop_limit(self) -> int:
        return self.limits.loop_limit

    @property
    def loop_window(self) -> int:
        return self.limits.loop_window

    @property
    def retry_attempts(self) -> int:
        return self.limits.retry_attempts

    @property
    def retry_base(self) -> int:
        return self.limits.retry_base

    @property
    def retry_cap(self) -> int:
        return self.limits.retry_cap

    def retry_delay(self, attempts: int) -> int:
        """Seconds to wait after attempt number ``attempts`` without a receipt."""
        return self.limits.retry_delay(attempts)

    # --- packs ----------------------------------------------------------------
    def activate(
        self,
        body: Mapping[str, Any] | RulePack,
        at: int | None = None,
        *,
        actor: str = "escalade",
        reason: str | None = None,
        kind: str = "pack_activated",
    ) -> LoadedPack:
        """Register ``body`` (if new) and make it the active pack; in-flight escalations keep
        theirs. ``kind`` and ``reason`` say why in the audit trail (``pack_rolled_back``)."""
        pack = typed_pack(body)
        loaded = LoadedPack.of(0, pack)  # refuse an unusable pack before storing it
        now = self.processing_time(at)
        text = json.dumps(pack.raw, sort_keys=True)
        # Exclusive: decisions in flight end first, every later one sees the new pack.
        with self.store.transaction(exclusive=True):
            pack_id = self.store.add_pack(pack.content_hash, pack.version, text, now)
            if pack_id not in self.rt.packs:
                loaded.id = pack_id
                self.rt.packs[pack_id] = loaded
            self._active_id = pack_id
            if self.store.active_pack() != pack_id:
                self.store.activate_pack(pack_id, now)
                version = self.pack(pack_id).version
                audit.append(
                    self.store,
                    at=now,
                    kind=kind,
                    actor=actor,
                    reason=reason or f"pack {version} activated",
                    pack_version=version,
                    detail={"pack_id": pack_id, "content_hash": pack.content_hash},
                )
        return self.pack(pack_id)

    def refuse_pack(
        self, source: str, why: str, at: int | None = None, actor: str = "escalade"
    ) -> None:
        """Record that a pack was refused; the active pack stays active."""
        now = self.processing_time(at)
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
        self.rt.outbox_dirty = self.rt.outbox_stored = True

    def pack(self, pack_id: int) -> LoadedPack:
        """The compiled pack ``pack_id`` (cached)."""
        return self.rt.pack(pack_id)

    def pin(self, pack: RulePack) -> LoadedPack:
        """Use ``pack`` as the active one in this process only, without storing or activating
        it (a read command given ``--pack``: the store stays as it was)."""
        self._pinned = LoadedPack.of(0, pack)
        return self._pinned

    def active(self) -> LoadedPack:
        """The active pack; :class:`PackError` when none was ever activated."""
        if self._pinned is not None:
            return self._pinned
        pack_id = self._active_id if self._active_id is not None else self.store.active_pack()
        self._active_id = pack_id
        if pack_id is None:
            raise no_active_pack()
        return self.pack(pack_id)

    # --- time -----------------------------------------------------------------
    def processing_time(self, at: int | None) -> int:
        """Processing time: ``at`` when given, else the wall clock — never before the
        store's clock (a rehearsal with ``--at`` ahead of the wall clock keeps its time)."""
        if at is not None:
            return at
        stored = self.store.clock()
        wall = self.clock.now()
        return wall if stored is None else max(stored, wall)

    def check_time(self, at: int) -> None:
        """Refuse a time earlier than the store's clock."""
        stored = self.store.clock()
        if stored is not None and at < stored:
            raise ClockError(
                f"--at {format_time(at)} is earlier than the store's clock {format_time(stored)};"
                " the runtime never goes back in time"
            )

    def advance(self, at: int | None = None, *, move_clock: bool = True) -> int:
        """Fire every timer due up to ``at`` (in due order; quiet timers share a transaction,
        one that queues a message for a notifier outside the transaction commits and is
        dispatched before the next fires).

        ``move_clock``: also record ``at`` as the store's clock (``escalade tick``); a
        server's timer loop passes False, so it writes only when a timer is due."""
        now = self.processing_time(at)
        self.check_time(now)
        fired = self.intake.fire_apart(now)
        if move_clock and (self.store.clock() or now - 1) < now:
            with self.store.transaction():
                self.store.set_clock(now)
        self.dispatch(now)  # rows an earlier process left pending (a crash after the commit)
        return fired

    tick = advance

    # --- events ---------------------------------------------------------------
    def receive(self, raw: RawEvent, at: int | None = None) -> Outcome:
        """Apply one event in one transaction. Malformed: dead-lettered, nothing else
        changes. Seen id: no-op. :class:`ClockError` for a time before the store's clock."""
        return self.intake.receive(raw, at)

    def receive_many(
        self,
        events: Iterable[RawEvent | tuple[RawEvent, int | None]],
        at: int | None = None,
        *,
        batch: int = BATCH,
    ) -> list[Outcome]:
        """Apply many events, up to ``batch`` per transaction (one commit), each checked on
        its own; one :class:`Outcome` per event, in order, after its commit. Items are raw
        events or ``(raw, at)`` pairs (their own processing time). A time before the
        store's clock is ``refused`` for that event; an event that raises is ``error``
        while the others are applied (see :mod:`~escalade.runtime.engine.intake`)."""
        return self.intake.receive_many(events, at, batch=batch)

    def replay_dead_letters(
        self, at: int | None = None, *, by: str = "operator"
    ) -> list[tuple[int, Outcome]]:
        """Try every unreplayed dead letter again (e.g. after a pack that knows the new field)."""
        results = []
        for letter in self.store.dead_letters():
            try:
                parse_event(letter.raw, self.active().pack)
            except EventError as exc:
                results.append((letter.id, Outcome("dead_letter", f"still rejected: {exc}")))
                continue
            outcome = self.receive(letter.raw, at)
            with self.store.transaction():
                now = self.processing_time(at)
                self.store.mark_replayed(letter.id, now)
                audit.append(
                    self.store,
                    at=now,
                    kind="dead_letter_replayed",
                    actor=by,
                    reason=f"dead letter #{letter.id} replayed: {outcome.status}",
                    ticket=outcome.ticket,
                    escalation_id=outcome.escalation_id,
                    pack_version=self.active().version,
                    detail={"letter": letter.id, "outcome": outcome.status},
                )
            results.append((letter.id, outcome))
        return results

    # --- ownership --------------------------------------------------------------
    def oncall(
        self, pack: LoadedPack, team: str, at: int, absent: Mapping[str, int] | None = None
    ) -> str | None:
        """The team's on-call member at ``at`` (the next available one when absent)."""
        away = absent if absent is not None else self.store.absences(at)
        return on_call(pack, team, at, away)

    # --- the outbox ---------------------------------------------------------------
    def dispatch(self, at: int | None = None) -> int:
        """Hand pending outbox rows to the notifier and record the receipts (see
        :class:`~escalade.runtime.engine.delivery.Outbox`); how many were sent."""
        if not self.rt.outbox_dirty:
            return 0
        return self.outbox.dispatch(self.processing_time(at))

    def record_receipt(self, key: str, at: int | None = None) -> bool:
        """An in-process caller knows the message ``key`` that awaited a receipt was
        delivered; False when no such message awaits one."""
        return self.outbox.confirm(key, None, self.processing_time(at))[0] != "refused"

    def confirm_receipt(self, key: str, channel: str, at: int | None = None) -> tuple[str, str]:
        """A signed receipt from ``channel`` (``webhook`` or ``pager``) for outbox ``key``:
        ``(confirmed | replay | refused, why)`` (see ``Outbox.confirm``)."""
        return self.outbox.confirm(key, channel, self.processing_time(at))

    # --- operator commands --------------------------------------------------------
    def _command(self, ticket: str, at: int | None, actor: str, decide: Decide) -> Outcome:
        now = self.processing_time(at)
        self.advance(now)
        refusal: str | None = None
        with self.store.transaction():
            esc = self.store.open_escalation(ticket)
            if esc is None:
                raise Refused(f"ticket {ticket} has no open escalation")
            pack = self.pack(esc.pack_id)
            m = Moment(now=now, actor=actor)
            try:
                message = decide(self.rt, esc, pack, pack.rules[esc.policy], m)
            except Refused as exc:
                refusal = message = str(exc)
            self.store.update_escalation(esc)
            self.outbox.deliver_now(now)
        self.dispatch(now)
        if refusal is not None:
            raise Refused(refusal)
        return Outcome("applied", message, ticket, esc.id)

    def check_person(self, who: str) -> None:
        """:class:`Refused` unless ``who`` is a person of the active pack's directory."""
        if who not in self.active().people:
            raise Refused(f"{who!r} is not a person in the directory")

    def ack(
        self,
        ticket: str,
        by: str,
        at: int | None = None,
        *,
        override: str | None = None,
        actor: str | None = None,
        via: str | None = None,
    ) -> Outcome:
        """``by``, the current assignee (any member of an owning team without rotation),
        acknowledges: failover stops for good. Anyone else needs ``override``, a reason,
        audited as an override. ``actor`` is who asked, when not ``by`` itself (a service
        principal acknowledging for a person). ``via`` says how it arrived (``link``,
        ``slack``), recorded in the ``acknowledged`` audit row's detail."""
        return self._command(
            ticket,
            at,
            actor or by,
            lambda rt, e, p, r, m: commands.decide_ack(rt, e, p, r, m, by, override, via),
        )

    def resolve(self, ticket: str, at: int | None = None, by: str = "operator") -> Outcome:
        """The problem is fixed; the resolve SLA is met unless it already breached."""
        return self._command(ticket, at, by, commands.decide_resolve)

    def close(self, ticket: str, at: int | None = None, by: str = "operator") -> Outcome:
        """Close, only once every close check holds; refused (and audited) otherwise."""
        return self._command(ticket, at, by, commands.decide_close)

    def close_problems(self, esc: Escalation, rules: PolicyRules) -> list[str]:
        """Why ``esc`` may not close yet (empty when it may)."""
        return commands.close_problems(self.rt, esc, rules)

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
        problem = commands.transfer_problem(reason, sla)
        if problem is not None or sla is None:
            raise Refused(problem or "a transfer needs an expected SLA (--sla 2h)")
        seconds = sla
        return self._command(
            ticket,
            at,
            by,
            lambda rt, e, p, r, m: commands.decide_transfer(rt, e, p, r, m, to, reason, seconds),
        )

    def postmortem(
        self, ticket: str, link: str, at: int | None = None, by: str = "operator"
    ) -> Outcome:
        """Record the completed post-mortem that close may require."""
        if not link.strip():
            raise Refused("a post-mortem needs a link")
        return self._command(
            ticket, at, by, lambda rt, e, p, r, m: commands.decide_postmortem(rt, e, p, r, m, link)
        )

    def absent(
        self, person: str, until: int, at: int | None = None, by: str = "operator"
    ) -> Outcome:
        """Mark ``person`` absent; escalations waiting on them move on at once."""
        now = self.processing_time(at)
        self.advance(now)
        pack = self.active()
        if person not in pack.people:
            raise Refused(f"{person!r} is not a person in the directory")
        if until <= now:
            raise Refused(f"--until {format_time(until)} is not in the future")
        # Exclusive: the escalations it moves may be of any ticket.
        with self.store.transaction(exclusive=True):
            self.store.set_absence(person, until)
            m = Moment(now=now, actor=by)
            self.rt.audit(
                m,
                "absent",
                None,
                pack,
                None,
                reason=f"{person} is absent until {format_time(until)}",
                detail={"person": person, "until": until},
            )
            moved = sum(self._reassign(esc, person, m) for esc in self._waiting_on(person))
            self.outbox.deliver_now(now)
        self.dispatch(now)
        return Outcome(
            "applied",
            f"{person} absent until {format_time(until)}; {moved} escalation(s) reassigned",
        )

    def _waiting_on(self, person: str) -> list[Escalation]:
        return [
            esc
            for esc in self.store.open_escalations_owned_by(person)
            if esc.state in ("assigned", "triage")
        ]

    def _reassign(self, esc: Escalation, person: str, m: Moment) -> bool:
        """``person``, who holds ``esc``, became absent: the chain (or triage) moves on."""
        pack = self.pack(esc.pack_id)
        rules = pack.rules[esc.policy]
        self.store.cancel_timers(esc.id, ("ack",))
        why = f"{person} became absent"
        if esc.state == "triage":
            chain.triage(self.rt, esc, pack, rules, m, why)
        elif esc.level == "transfer":
            return False  # the transfer's own SLA timer governs it
        else:
            chain.assign(self.rt, esc, pack, rules, esc.level_index, esc.cycle, m, why)
        self.store.update_escalation(esc)
        return True

    # --- reading ------------------------------------------------------------------
    def status(self, ticket: str, at: int | None = None) -> dict[str, Any] | None:
        """The ticket's latest escalation: policy, state, owner, level, timers and history,
        with countdowns from ``at`` (default: the wall clock). Reading never writes."""
        return ticket_status(self.rt, ticket, self.clock.now() if at is None else at)
