"""The outbox after the commit: dispatch to the notifier, receipts, retries, fallbacks.

A networked notifier is called with NO transaction open, so the store's write
lock is never held across a network call; the receipts of a round of sends (at
most :data:`RECEIPTS_PER_COMMIT`) are then written together in one short
transaction. A crash between a send and its receipt leaves the row pending, and
the next dispatch (of this process or the next) sends it again under the same
idempotency key. An in-process (``transactional``) notifier delivers inside the
decision's own transaction instead (one commit per event): the messages the
decision queued are delivered before they are written, so each is written once,
with its receipt.
"""

from __future__ import annotations

from typing import Any

from escalade.runtime import tracing
from escalade.runtime.engine.actions import emit
from escalade.runtime.engine.chain import failure
from escalade.runtime.engine.context import Moment, Runtime
from escalade.runtime.engine.loaded import LoadedPack, PolicyRules
from escalade.runtime.notify import COUNTS_AS_DELIVERED, Delivery, Notifier, as_delivery
from escalade.runtime.receipts import receipt_channels
from escalade.runtime.store import Escalation, OutboxMessage, Timer

DISPATCH_ROUNDS = 8  # receipts that queue more rows (fallbacks, triage notices): bounded
RECEIPTS_PER_COMMIT = 100  # sends whose receipts one transaction records


def what(msg: OutboxMessage) -> str:
    """``notify oncall``, ``create_ticket``: a message's action and target for people."""
    return f"{msg.action} {msg.target or ''}".strip()


class Outbox:
    """Hands pending outbox rows to the notifier and records what became of each."""

    def __init__(self, rt: Runtime, notifier: Notifier) -> None:
        self.rt = rt
        self.notifier = notifier
        self.in_transaction = bool(getattr(notifier, "transactional", False))

    def dispatch(self, now: int) -> int:
        """Send every pending row and record the receipts; how many were sent."""
        rt = self.rt
        if not rt.outbox_dirty:
            return 0
        if self.in_transaction:
            with rt.store.transaction():
                return self._deliver_pending(now)
        sent = 0
        try:
            # Receipts may queue more rows (a fallback, a triage notice): send those too.
            for _ in range(DISPATCH_ROUNDS):
                if not rt.outbox_dirty:
                    break
                rt.outbox_dirty = False
                pending = rt.store.pending_outbox()
                for start in range(0, len(pending), RECEIPTS_PER_COMMIT):
                    part = pending[start : start + RECEIPTS_PER_COMMIT]
                    sent += self._send_and_record(part, now)
        except BaseException:
            rt.outbox_dirty = True  # whatever is still pending goes out next time
            raise
        return sent

    def _send_and_record(self, msgs: list[OutboxMessage], now: int) -> int:
        """Send ``msgs`` with no transaction open, then record their receipts in one."""
        results = [(msg, self._attempt(msg)) for msg in msgs]
        store = self.rt.store
        with store.transaction():
            # Sent with no transaction open: a receipt recorded meanwhile wins.
            current = store.outbox_statuses([msg.id for msg in msgs])
            for msg, result in results:
                if current.get(msg.id) == "pending":
                    self._record(msg, result, now)
        return len(results)

    def deliver_now(self, now: int) -> None:
        """The fast path: an in-process notifier delivers inside the decision's transaction."""
        if self.in_transaction:
            self._deliver_pending(now)

    def _deliver_pending(self, now: int) -> int:
        rt = self.rt
        sent = 0
        for _ in range(DISPATCH_ROUNDS):
            if not rt.outbox_dirty:
                break
            rt.outbox_dirty = False
            stored, rt.outbox_stored = rt.outbox_stored, False
            # What this transaction queued is delivered before it is written; rows already
            # in the database (an earlier process, a retry) are read when there may be some.
            msgs = rt.store.pending_outbox() if stored else rt.store.queued_outbox()
            for msg in msgs:
                self._record(msg, self._attempt(msg), now)
                sent += 1
        return sent

    def _attempt(self, msg: OutboxMessage) -> Delivery:
        """Send ``msg`` once; a notifier that raises has failed to deliver, with the reason."""
        with tracing.span(
            "escalade.deliver",
            tracing.taken(msg.key) if msg.attempts == 0 else None,
            action=what(msg),
            ticket=msg.ticket,
            escalation=msg.escalation_id,
            policy=msg.payload.get("policy"),
            outbox_key=msg.key,
            attempt=msg.attempts + 1,
        ):
            try:
                result = as_delivery(self.notifier.deliver(msg))
            except Exception as exc:  # a bug in a notifier must not abort the engine's decision
                result = Delivery("failed", f"the notifier raised {type(exc).__name__}: {exc}")
            tracing.annotate(outcome=result.receipt, channel=result.channel or None)
            return result

    def _record(self, msg: OutboxMessage, result: Delivery, now: int) -> None:
        """Write one attempt's receipt (inside a transaction) and decide what follows it."""
        store = self.rt.store
        status = "sent" if result.receipt == "pending" else result.receipt
        msg.attempts += 1
        reason = result.reason or None
        msg.status, msg.reason = status, reason
        if msg.id:
            store.mark_outbox(msg.id, status, now, msg.attempts, reason)
        else:  # still queued in this transaction: written with its receipt at the commit
            msg.attempted_at = now
            msg.delivered_at = now if status == "delivered" else msg.delivered_at
        if result.receipt not in COUNTS_AS_DELIVERED:
            store.outbox_id(msg)  # what follows names the message by its id
            undelivered(self.rt, msg, result, Moment(now=now, cause=f"delivery of {msg.key}"))

    def confirm(self, key: str, channel: str | None, now: int) -> tuple[str, str]:
        """A receipt for outbox ``key`` from ``channel`` (None: an in-process caller that
        knows it was delivered). Returns ``(outcome, why)``: ``confirmed`` (marked
        delivered and audited ``delivery_confirmed``), ``replay`` (already delivered:
        nothing changes) or ``refused`` (unknown key, not awaiting a receipt, or a channel
        that cannot confirm it)."""
        store = self.rt.store
        with store.transaction():
            msg = store.outbox_by_key(key)
            if msg is None:
                return "refused", f"no outbox message has the key {key!r}"
            if channel is not None and channel not in receipt_channels(msg):
                return "refused", f"{what(msg)} cannot be confirmed by the {channel} channel"
            if msg.status == "delivered":
                return "replay", f"{key} was already confirmed"
            if msg.status not in ("sent", "pending"):  # pending: a receipt during the send
                return "refused", f"{key} is {msg.status}, not awaiting a receipt"
            store.mark_outbox(msg.id, "delivered", now, msg.attempts, attempted=False)
            esc = store.escalation(msg.escalation_id) if msg.escalation_id is not None else None
            if esc is not None:
                how = f"{channel} receipt" if channel else "receipt"
                detail = {"key": key, "channel": channel or ""}
                m = Moment(now=now, actor=f"receipt:{channel or 'runtime'}")
                audit_message(
                    self.rt,
                    msg,
                    esc,
                    m,
                    "delivery_confirmed",
                    f"{what(msg)} confirmed by {how}",
                    detail,
                )
            return "confirmed", f"{key} delivered"


def undelivered(rt: Runtime, msg: OutboxMessage, result: Delivery, m: Moment) -> None:
    """After an attempt without a receipt: the policy's delivery check decides when one
    exists; otherwise a transient answer (``pending``) is retried with backoff, and a
    refusal (``failed``) or no channel at all (``undeliverable``) fails its step (an
    assignment's own ack timer governs it)."""
    if msg.escalation_id is None:
        return
    esc = rt.store.escalation(msg.escalation_id)
    if esc is None:
        return
    final = result.receipt in ("failed", "undeliverable")
    if final:
        how = "refused" if result.receipt == "failed" else "undeliverable"
        audit_delivery(rt, msg, esc, m, how, result.channel)
    delivery = msg.payload.get("delivery")
    if delivery:
        rt.store.add_timer(
            Timer(
                due=m.now + int(delivery["within"]),
                kind="delivery",
                ticket=msg.ticket or "",
                escalation_id=msg.escalation_id,
                key=msg.key,
                payload={"message": msg.id, "stage": msg.payload.get("stage", "retry")},
            )
        )
        return
    if final:
        step_undelivered(rt, msg, esc, m)
        return
    # No receipt yet, or a transient failure: try again later under the same key. The
    # timer has no escalation, so a re-route or a close does not cancel the delivery.
    rt.store.add_timer(
        Timer(
            # the backoff, or longer when the remote asked (HTTP Retry-After on a 429)
            due=m.now + max(rt.limits.retry_delay(msg.attempts), result.retry_after or 0),
            kind="redeliver",
            ticket=msg.ticket or "",
            key=msg.key,
            payload={"message": msg.id},
        )
    )


def fire_redeliver(rt: Runtime, timer: Timer, m: Moment) -> None:
    """The backoff of a message without a delivery check is over: send it again, or give
    up after ``retry_attempts`` sends (the last one had its full backoff to answer)."""
    msg = rt.store.outbox_message(int(timer.payload["message"]))
    if msg is None or msg.status != "sent":
        return  # delivered (a late receipt), refused, or already queued again
    esc = rt.store.escalation(msg.escalation_id) if msg.escalation_id is not None else None
    attempts = rt.limits.retry_attempts
    if msg.attempts < attempts:
        if esc is not None:
            last = f" ({msg.reason})" if msg.reason else ""
            audit_message(
                rt,
                msg,
                esc,
                m,
                "delivery_retry",
                f"no receipt for {what(msg)}{last}: retry {msg.attempts} of {attempts - 1}",
                {"key": msg.key, "attempt": msg.attempts + 1},
            )
        requeue(rt, msg, m.now)
        return
    last = f"; last: {msg.reason}" if msg.reason else ""
    reason = f"no receipt after {msg.attempts} attempts{last}"
    rt.store.mark_outbox(msg.id, "failed", m.now, msg.attempts, reason, attempted=False)
    msg.reason = reason
    if esc is not None:
        audit_delivery(rt, msg, esc, m, "never delivered")
        step_undelivered(rt, msg, esc, m)


def fire_delivery(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, timer: Timer, m: Moment
) -> None:
    """A ``check delivery`` window is over without a receipt: retry, fall back, then fail."""
    msg = rt.store.outbox_message(int(timer.payload["message"]))
    if msg is None or msg.status in COUNTS_AS_DELIVERED:
        return
    delivery = msg.payload.get("delivery") or {}
    retries = int(delivery.get("retry", 0))
    stage = timer.payload.get("stage", "retry")
    if stage == "retry" and msg.attempts <= retries:
        reason = f"no receipt for {msg.action} {msg.target}: retry {msg.attempts} of {retries}"
        rt.audit(m, "delivery_retry", esc, pack, rules.name, reason=reason)
        requeue(rt, msg, m.now)
        return
    fallback = delivery.get("then")
    if stage == "retry" and fallback:
        reason = (
            f"no receipt for {msg.action} {msg.target} after {retries} retries:"
            f" falling back to {fallback}"
        )
        rt.audit(m, "delivery_fallback", esc, pack, rules.name, reason=reason)
        payload = {k: v for k, v in msg.payload.items() if k != "channel"}
        payload["stage"] = "fallback"
        payload["fallback_for"] = msg.key
        emit(rt, esc, pack, rules, m, "notify", str(fallback), "channel", payload)
        return
    reason = f"check delivery: {msg.action} {msg.target} was never delivered"
    if esc.state == "triage":
        # The triage owner has it already; failing again would triage again, notify
        # again and fail again, every retry window, for as long as nobody acts.
        rt.audit(m, "delivery_failed", esc, pack, rules.name, reason=f"{reason} (in triage)")
        return
    failure(rt, esc, pack, rules, "check_failed", m, reason)


def audit_delivery(
    rt: Runtime, msg: OutboxMessage, esc: Escalation, m: Moment, how: str, channel: str = ""
) -> None:
    """``delivery_failed`` in the audit trail, with the notifier's reason."""
    why = f": {msg.reason}" if msg.reason else ""
    audit_message(
        rt,
        msg,
        esc,
        m,
        "delivery_failed",
        f"{what(msg)} was {how} (attempt {msg.attempts}){why}",
        {"key": msg.key, "attempt": msg.attempts, "channel": channel},
    )


def audit_message(
    rt: Runtime,
    msg: OutboxMessage,
    esc: Escalation,
    m: Moment,
    kind: str,
    reason: str,
    detail: dict[str, Any],
) -> None:
    """An audit row about ``msg``, under the policy that issued it."""
    policy = str(msg.payload.get("policy") or esc.policy)
    rt.audit(m, kind, esc, rt.pack(esc.pack_id), policy, reason=reason, detail=detail)


def step_undelivered(rt: Runtime, msg: OutboxMessage, esc: Escalation, m: Moment) -> None:
    """A step's action that can never be delivered is a step failure (SPEC §4) — while the
    escalation is still open under the policy that issued it."""
    if msg.payload.get("moment") is None or esc.state == "closed":
        return
    if msg.payload.get("policy") not in (None, esc.policy):
        return
    if esc.state == "triage":
        return  # the triage owner has it already: one failure is enough to put it there
    pack = rt.pack(esc.pack_id)
    why = f": {msg.reason}" if msg.reason else ""
    failure(
        rt,
        esc,
        pack,
        pack.rules[esc.policy],
        "step_failed",
        m,
        f"{what(msg)} failed to deliver{why}",
    )
    rt.store.update_escalation(esc)


def requeue(rt: Runtime, msg: OutboxMessage, now: int) -> None:
    """Send ``msg`` again under its key: by the fast path in this transaction, else by
    the dispatch after the commit (never a network call inside a transaction)."""
    rt.store.mark_outbox(msg.id, "pending", now, msg.attempts, attempted=False)
    rt.outbox_dirty = rt.outbox_stored = True
