"""Where actions go: a :class:`Notifier` interface behind the outbox.

The engine never talks to Slack or a pager directly. Inside the event's
transaction it writes each action (notify, page, create_ticket, ...) to the
outbox with an idempotency key; after the commit the dispatcher hands pending
rows to a notifier and records the receipt. A crash between the two leaves the
row pending, and the next dispatch sends it again under the same key, so a
receiving system can drop the duplicate.

The in-process :class:`RecordingNotifier` is ``transactional``: it delivers
inside the decision's transaction (one commit per event). The real channels
(:mod:`escalade.runtime.notify.channels`) are not: the engine sends with no
transaction open and writes each receipt in its own short transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from escalade.runtime.store import OutboxMessage

Receipt = Literal["delivered", "pending", "failed", "undeliverable", "dry_run"]
RECEIPTS: tuple[Receipt, ...] = ("delivered", "pending", "failed", "undeliverable", "dry_run")
# Receipts the policy's delivery checks count as delivered (a dry run is explicit and visible).
COUNTS_AS_DELIVERED: tuple[Receipt, ...] = ("delivered", "dry_run")


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt: the receipt, why, and (when the notifier says) the channel and target.

    The engine keeps ``reason`` on the outbox row and, for a failed delivery, in
    the audit trail."""

    receipt: Receipt
    reason: str = ""
    key: str = ""
    channel: str = ""
    target: str | None = None
    remote: str | None = None  # the id the remote system gave (a connector's issue key)
    retry_after: int | None = None  # seconds the remote asked to wait (HTTP Retry-After)


class Notifier(Protocol):
    """Delivers one outbox message and says what happened.

    ``delivered``: a receipt came back; ``pending``: sent, no receipt yet, or a
    transient failure (the engine retries it under the same key); ``failed``:
    the channel refused it; ``undeliverable``: no configured channel reaches the
    target (never a silent success); ``dry_run``: nothing was sent, on purpose
    (``runtime.notifiers.dry_run``, ``escalade test`` and ``simulate``). A
    notifier may answer with the bare receipt, a ``(receipt, reason)`` pair or a
    :class:`Delivery`.
    """

    def deliver(self, msg: OutboxMessage) -> Receipt | Delivery | tuple[Receipt, str]: ...


def as_delivery(answer: object) -> Delivery:
    """Whatever a notifier answered, as a :class:`Delivery`; an unknown answer is ``failed``."""
    if isinstance(answer, Delivery):
        if answer.receipt in RECEIPTS:
            return answer
        answer = answer.receipt
    elif isinstance(answer, tuple) and len(answer) == 2 and answer[0] in RECEIPTS:
        receipt: Receipt = answer[0]
        return Delivery(receipt, str(answer[1]))
    for known in RECEIPTS:
        if answer == known:
            return Delivery(known)
    return Delivery("failed", f"the notifier answered {answer!r}, not one of {', '.join(RECEIPTS)}")


@dataclass(slots=True)
class Sent:
    """One delivery attempt as the recording notifier saw it."""

    key: str
    action: str
    target: str | None
    text: str | None
    ticket: str | None
    receipt: Receipt


DRY_RUN_REASON = "dry run: recorded, nothing was sent"


@dataclass(frozen=True)
class DryRunNotifier:
    """``runtime.notifiers.dry_run``: every message is ``dry_run``, nothing is sent or kept."""

    transactional = True

    def deliver(self, msg: OutboxMessage) -> Delivery:
        return Delivery("dry_run", DRY_RUN_REASON, msg.key)


@dataclass
class RecordingNotifier:
    """Keeps every attempt in memory and sends nothing: every message is ``dry_run``
    (never ``delivered``). Used by tests, ``escalade test`` and the simulator.

    ``failing`` targets refuse delivery; ``silent`` targets never send a
    receipt, which is how tests exercise delivery checks and retries.
    """

    # Delivery is an in-memory append, so it may run inside the store transaction.
    transactional = True
    failing: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    sent: list[Sent] = field(default_factory=list)

    def deliver(self, msg: OutboxMessage) -> Delivery:
        result = Delivery("dry_run", DRY_RUN_REASON)
        if msg.target in self.failing or msg.action in self.failing:
            result = Delivery("failed", f"{msg.target or msg.action} refuses deliveries (test)")
        elif msg.target in self.silent or msg.action in self.silent:
            result = Delivery("pending", f"{msg.target} sends no receipt (test)")
        text = msg.payload.get("text")
        self.sent.append(
            Sent(
                key=msg.key,
                action=msg.action,
                target=msg.target,
                text=text if isinstance(text, str) else None,
                ticket=msg.ticket,
                receipt=result.receipt,
            )
        )
        return result
