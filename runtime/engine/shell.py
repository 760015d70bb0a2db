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
from escalade.runtime.engine import commands, handover, noise, roster, timers
from escalade.runtime.engine.context import ClockError, Limits, Moment, Refused, Runtime
from escalade.runtime.engine.delivery import Outbox
from escalade.runtime.engine.intake import BATCH, Intake, Outcome, RawEvent, merge_fields
from escalade.runtime.engine.loaded import LoadedPack, PolicyRules, no_active_pack
from escalade.runtime.engine.ownership import on_call
from escalade.runtime.engine.status import ticket_status
from escalade.runtime.events import EventError, parse_event
from escalade.runtime.notify import Notifier, RecordingNotifier
from escalade.runtime.pack import FORMAT, PackError, RulePack
from escalade.runtime.schedule import Override
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
        roster.forget(self.store)

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
        return on_call(pack, team, at, away, self.store)

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
    def _command(
        self, ticket: str, at: int | None, actor: str, decide: Decide, exclusive: bool = False
    ) -> Outcome:
        now = self.processing_time(at)
        self.advance(now)
        refusal: str | None = None
        with self.store.transaction(exclusive=exclusive):
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

    def close(
        self, ticket: str, at: int | None = None, by: str = "operator", *, related: bool = False
    ) -> Outcome:
        """Close, only once every close check holds; refused (and audited) otherwise;
        ``related``: the related tickets (``group by``) still open close with it."""

        def decide(rt: Runtime, e: Escalation, p: LoadedPack, r: PolicyRules, m: Moment) -> str:
            return commands.decide_close(rt, e, p, r, m) + noise.close_related(rt, e, m, related)

        return self._command(ticket, at, by, decide, exclusive=related)

    def silence(
        self,
        target: tuple[str, str],
        start: int | None,
        until: int,
        reason: str,
        by: str,
        at: int | None = None,
    ) -> Outcome:
        """Hold the pages of ``target`` (``("policy"|"team", name)``) over [``start`` (None:
        now), ``until``) (:mod:`.noise`); :class:`Refused` when invalid (nothing written)."""
        now = self.processing_time(at)
        self.check_time(now)
        pack = self.active()
        window = (now if start is None else start, until)
        noise.check_silence(pack, *target, window, now, reason)
        self.advance(now)
        with self.store.transaction(exclusive=True):
            m = Moment(now=now, actor=by)
            ident = noise.record_silence(self.rt, pack, target, window, reason, m)
        held = f"{target[0]} {target[1]} held until {format_time(until)}"
        return Outcome("applied", f"silence #{ident}: pages of {held}")

    def unsilence(self, silence: int, by: str, at: int | None = None) -> Outcome:
        """End silence ``silence`` now: the chains it held start (else :class:`Refused`)."""
        now = self.processing_time(at)
        self.check_time(now)
        self.advance(now)
        with self.store.transaction(exclusive=True):
            m = Moment(now=now, actor=by)
            released = 0
            for esc, timer in noise.end_silence(self.rt, self.active(), silence, m):
                self.store.delete_timer(timer.id)
                pack = self.pack(esc.pack_id)
                released += timers.release(self.rt, esc, pack, pack.rules[esc.policy], timer, m)
                self.store.update_escalation(esc)
            self.outbox.deliver_now(now)
        self.dispatch(now)
        return Outcome("applied", f"silence #{silence} ended; {released} escalation(s) released")

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

    def revert(self, ticket: str, reason: str, by: str, at: int | None = None) -> Outcome:
        """Undo what ``ticket``'s escalation ran, newest first, through the outbox (see
        :mod:`.undo`); :class:`Refused`, nothing changed, without a reason or anything left."""
        return self._command(ticket, at, by, commands.reverting(reason))

    def absent(
        self,
        person: str,
        until: int,
        at: int | None = None,
        by: str = "operator",
        *,
        since: int | None = None,
        reason: str | None = None,
        accept_gap: str | None = None,
        refuse_gaps: bool = False,
    ) -> Outcome:
        """Mark ``person`` absent over [``since``, ``until``) (``since`` None: from now on,
        stored as from the start of time, so marking them again replaces it); escalations
        waiting on them move on at once when the window covers now (a later window takes
        effect at assignments from its start). With ``refuse_gaps`` (the CLI), an absence
        that leaves a team or a policy's whole chain with nobody for some window is
        :class:`Refused`, naming the windows, unless ``accept_gap`` says why (audited)."""
        now = self.processing_time(at)
        self.check_time(now)
        pack = self.active()
        if person not in pack.people:
            raise Refused(f"{person!r} is not a person in the directory")
        start = now if since is None else since
        if until <= now:
            raise Refused(f"--until {format_time(until)} is not in the future")
        if until <= start:
            raise Refused(f"--until {format_time(until)} is not after --from {format_time(start)}")
        what = f"{person} absent {roster.window_words(start, until)}"
        change = roster.Change(start, until, absent=person)
        accept = accept_gap if refuse_gaps else ""
        roster.checked_gaps(self.store, pack, change, what, accept)  # before any write
        self.advance(now)
        # Exclusive: the escalations it moves may be of any ticket.
        with self.store.transaction(exclusive=True):
            m = Moment(now=now, actor=by)
            gaps = roster.checked_gaps(self.store, pack, change, what, accept)
            self.store.set_absence(person, until, since)
            why = f" ({reason})" if reason else ""
            self.rt.audit(
                m,
                "absent",
                None,
                pack,
                None,
                reason=f"{person} is absent {roster.window_words(start, until)}{why}",
                detail={"person": person, "since": start, "until": until, "why": reason},
            )
            roster.audit_accepted(self.rt, m, pack, what, gaps, accept_gap)
            waiting = handover.waiting_on(self.rt, person) if start <= now else []
            moved = sum(handover.reassign(self.rt, esc, person, m) for esc in waiting)
            if start > now:  # what they hold then moves on then
                handover.at_start(self.rt, start, what, person=person)
            self.outbox.deliver_now(now)
        self.dispatch(now)
        until_words = (
            f"until {format_time(until)}" if since is None else roster.window_words(start, until)
        )
        return Outcome(
            "applied", f"{person} absent {until_words}; {moved} escalation(s) reassigned"
        )

    def override(
        self,
        team: str,
        person: str,
        start: int | None,
        until: int,
        replaces: str | None,
        reason: str,
        by: str,
        accept_gap: str | None = None,
        at: int | None = None,
    ) -> Outcome:
        """Put ``person`` on call for ``team`` over [``start`` (None: now), ``until``), for
        the whole team or only while ``replaces`` would be on call; recorded in the store
        with ``reason`` and ``by``, audited. :class:`Refused` (nothing written) when invalid
        or when it leaves the team, a policy's chain or the override with nobody for some
        window, unless ``accept_gap`` says why. Escalations the team had assigned to whom
        it takes over from move on at once when it starts now."""
        now = self.processing_time(at)
        self.check_time(now)
        pack = self.active()
        begin = now if start is None else start
        if not reason.strip():
            raise Refused("an override needs a reason (--reason)")
        o = Override(person, begin, until, replaces, "store")
        change = roster.Change(begin, until, team=team, override=o)
        roster.check_override(self.store, pack, change, now)
        instead = f" for {replaces}" if replaces else ""
        what = f"{person}{instead} on {team} {roster.window_words(begin, until)}"
        roster.checked_gaps(self.store, pack, change, what, accept_gap)  # before any write
        self.advance(now)
        try:  # the overrides kept may hold the row of a transaction that rolled back
            with self.store.transaction(exclusive=True):
                m = Moment(now=now, actor=by)
                ident, before, after = roster.record_override(
                    self.rt, pack, change, what, reason, accept_gap, m
                )
                why = f"{person} took {team}'s on-call from {before}: {reason}"
                moved = handover.take_over(self.rt, team, before, after, why, m)
                if begin > now:  # what the team gave to whom it replaces moves on then
                    handover.at_start(self.rt, begin, what, team=team)
                self.outbox.deliver_now(now)
        finally:
            roster.forget(self.store)
        self.dispatch(now)
        return Outcome("applied", f"{what} (#{ident}); {moved} escalation(s) reassigned")

    # --- reading ------------------------------------------------------------------
    def status(self, ticket: str, at: int | None = None) -> dict[str, Any] | None:
        """The ticket's latest escalation: policy, state, owner, level, timers and history,
        with countdowns from ``at`` (default: the wall clock). Reading never writes."""
        return ticket_status(self.rt, ticket, self.clock.now() if at is None else at)
