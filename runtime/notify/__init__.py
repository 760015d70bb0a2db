"""Where actions go: a :class:`Notifier` interface behind the outbox.

The engine never talks to Slack or a pager directly. Inside the event's
transaction it writes each action (notify, page, create_ticket, ...) to the
outbox with an idempotency key; after the commit the dispatcher hands pending
rows to a notifier and records the receipt. A crash between the two leaves the
row pending, and the next dispatch sends it again under the same key, so a
receiving system can drop the duplicate.

Only the in-process :class:`RecordingNotifier` exists so far. Real channels
(Slack incoming webhook, SMTP email, signed generic webhook, pager webhook)
are a later issue; they implement :meth:`Notifier.deliver` the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from escalade.runtime.store import OutboxMessage

Receipt = Literal["delivered", "pending", "failed"]


class Notifier(Protocol):
    """Delivers one outbox message and says what happened.

    ``delivered``: a receipt came back; ``pending``: sent, no receipt yet (a
    delivery check may retry it); ``failed``: the channel refused it.
    """

    def deliver(self, msg: OutboxMessage) -> Receipt: ...


@dataclass(slots=True)
class Sent:
    """One delivery attempt as the recording notifier saw it."""

    key: str
    action: str
    target: str | None
    text: str | None
    ticket: str | None
    receipt: Receipt


@dataclass
class RecordingNotifier:
    """Keeps every attempt in memory; used by tests, the simulator and the CLI.

    ``failing`` targets refuse delivery; ``silent`` targets never send a
    receipt, which is how tests exercise delivery checks and retries.
    """

    # Delivery is an in-memory append, so it may run inside the store transaction.
    transactional = True
    failing: set[str] = field(default_factory=set)
    silent: set[str] = field(default_factory=set)
    sent: list[Sent] = field(default_factory=list)

    def deliver(self, msg: OutboxMessage) -> Receipt:
        receipt: Receipt = "delivered"
        if msg.target in self.failing or msg.action in self.failing:
            receipt = "failed"
        elif msg.target in self.silent:
            receipt = "pending"
        text = msg.payload.get("text")
        self.sent.append(
            Sent(
                key=msg.key,
                action=msg.action,
                target=msg.target,
                text=text if isinstance(text, str) else None,
                ticket=msg.ticket,
                receipt=receipt,
            )
        )
        return receipt
