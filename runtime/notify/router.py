"""Choosing the channel for each outbox message, over the channels that are configured.

- a channel target (``notify oncall``) goes by its kind: slack, email, webhook, pager;
- a message to a person goes to their contact points that a configured channel
  reaches, in order (``page``: pager, Slack, email; ``notify``: Slack, email), and
  is delivered when any of them delivers it;
- every other action (``create_ticket``, ``set``, ...) goes to the generic webhook.

Nowhere to go is ``undeliverable``, never a silent success.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, cast

from escalade.runtime.notify import Delivery
from escalade.runtime.notify.channels import (
    CHANNEL_KINDS,
    ChannelKind,
    Environ,
    GenericWebhook,
    PagerWebhook,
    SignedWebhook,
    SlackWebhook,
    SmtpEmail,
)
from escalade.runtime.notify.connectors import Connector, connectors_of
from escalade.runtime.settings import EmailSettings, NotifierSettings
from escalade.runtime.store import OutboxMessage

log = logging.getLogger("escalade.runtime.notify")

# --- choosing the channel ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class Choice:
    """The channel kind and target a message goes to."""

    kind: ChannelKind
    target: str | None


@dataclass
class ChannelNotifier:
    """The :class:`Notifier` for real channels; ``None`` channels are not configured.

    Not transactional: the engine dispatches it after the decision's commit, so
    a slow receiver never holds back a decision (and a crash re-sends under the
    same idempotency key). ``history`` keeps the latest attempts with reasons."""

    transactional: ClassVar[bool] = False

    slack: SlackWebhook | None = None
    email: SmtpEmail | None = None
    webhook: SignedWebhook | None = None
    pager: PagerWebhook | None = None
    connectors: Mapping[str, Connector] = field(default_factory=dict)  # by action
    history: deque[Delivery] = field(default_factory=lambda: deque(maxlen=1000))

    @classmethod
    def from_settings(
        cls, settings: NotifierSettings, environ: Environ | None = None
    ) -> ChannelNotifier:
        """The notifier ``runtime.notifiers`` describes; secrets stay in ``environ``."""
        env = os.environ if environ is None else environ
        slack = settings.slack
        email = settings.email
        return cls(
            slack=SlackWebhook(slack.webhook_url_env, slack.timeout, env) if slack else None,
            email=SmtpEmail(**_fields_of(email), environ=env) if email else None,
            webhook=GenericWebhook.from_settings(settings.webhook, env)
            if settings.webhook
            else None,
            pager=PagerWebhook.from_settings(settings.pager, env) if settings.pager else None,
            connectors=connectors_of(settings.connectors, env),
        )

    def configured(self) -> list[str]:
        """The channel kinds that are configured."""
        return [k for k in CHANNEL_KINDS if getattr(self, k) is not None]

    def choices(self, msg: OutboxMessage) -> list[Choice] | Delivery:
        """Where ``msg`` may go, in order of preference (a person: each configured contact
        point), or an ``undeliverable`` (``failed`` for a malformed message) saying why
        it cannot go anywhere."""
        channel = msg.payload.get("channel")
        if isinstance(channel, Mapping):
            kind = str(channel.get("kind"))
            target = channel.get("target")
            if kind not in CHANNEL_KINDS:
                return Delivery("failed", f"channel {msg.target} has an unknown kind {kind!r}")
            if getattr(self, kind) is None:
                return Delivery(
                    "undeliverable",
                    f"channel {msg.target} is {kind}, and runtime.notifiers.{kind}"
                    " is not configured",
                )
            return [Choice(cast(ChannelKind, kind), str(target) if target is not None else None)]
        if msg.action in ("notify", "page"):
            return self._contact_points(msg)
        if self.webhook is None:
            return Delivery(
                "undeliverable",
                f"action {msg.action} goes to the generic webhook, and"
                " runtime.notifiers.webhook is not configured",
            )
        return [Choice("webhook", msg.target)]

    def _contact_points(self, msg: OutboxMessage) -> list[Choice] | Delivery:
        contacts = msg.payload.get("contacts")
        if not isinstance(contacts, Mapping):
            return Delivery(
                "failed",
                f"{msg.action} {msg.target} ({msg.target_kind}): the message names no"
                " channel and no contact points",
            )
        order: tuple[ChannelKind, ...] = (
            ("pager", "slack", "email") if msg.action == "page" else ("slack", "email")
        )
        found = [
            Choice(kind, str(contacts[kind]))
            for kind in order
            if contacts.get(kind) and getattr(self, kind) is not None
        ]
        if found:
            return found
        points = ", ".join(sorted(k for k, v in contacts.items() if v)) or "none"
        return Delivery(
            "undeliverable",
            f"{msg.action} {msg.target}: no configured channel reaches them (contact points:"
            f" {points}; configured: {', '.join(self.configured()) or 'none'})",
        )

    def attempt(self, msg: OutboxMessage) -> Delivery:
        """Send once through the first channel that takes it: a message to a person is
        delivered when any of their configured contact points delivered it; otherwise
        the best answer (``pending`` before ``failed``) with every reason."""
        connector = self.connectors.get(msg.action)
        if connector is not None and not isinstance(msg.payload.get("channel"), Mapping):
            done = connector.send(msg, msg.target)
            return Delivery(
                done.receipt,
                done.reason,
                msg.key,
                "connector",
                msg.target,
                done.remote,
                done.retry_after,
            )
        choices = self.choices(msg)
        if isinstance(choices, Delivery):
            return Delivery(choices.receipt, choices.reason, msg.key)
        tried: list[Delivery] = []
        for choice in choices:
            sender: SlackWebhook | SmtpEmail | SignedWebhook | PagerWebhook | None = getattr(
                self, choice.kind
            )
            assert sender is not None  # choices() only picks configured channels
            done = sender.send(msg, choice.target)
            result = Delivery(done.receipt, done.reason, msg.key, choice.kind, choice.target)
            if result.receipt == "delivered":
                return result
            tried.append(result)
        best = next((t for t in tried if t.receipt == "pending"), tried[0])
        if len(tried) == 1:
            return best
        reasons = "; ".join(f"{t.channel}: {t.reason}" for t in tried)
        return Delivery(best.receipt, reasons, msg.key, best.channel, best.target)

    def deliver(self, msg: OutboxMessage) -> Delivery:
        """Deliver ``msg`` once and say what happened (receipt and reason); never raises."""
        try:
            result = self.attempt(msg)
        except Exception as exc:  # a bug in a channel must not abort the engine's commit
            log.exception("delivery of %s raised", msg.key)
            result = Delivery("failed", f"internal error: {type(exc).__name__}: {exc}", msg.key)
        self.history.append(result)
        level = logging.INFO if result.receipt == "delivered" else logging.WARNING
        log.log(
            level,
            "%s %s via %s to %s: %s (%s)",
            msg.key,
            msg.action,
            result.channel or "-",
            result.target or msg.target or "-",
            result.receipt,
            result.reason,
        )
        return result

    def last(self, key: str) -> Delivery | None:
        """The latest attempt for outbox ``key`` still in the history."""
        for found in reversed(self.history):
            if found.key == key:
                return found
        return None


def _fields_of(settings: EmailSettings) -> dict[str, Any]:
    """The settings' fields by name (``dataclasses.asdict`` without its deep copy)."""
    return {f.name: getattr(settings, f.name) for f in fields(settings)}
