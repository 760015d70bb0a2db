"""Real notification channels: Slack, SMTP email, a signed webhook and a pager webhook.

:class:`ChannelNotifier` implements :class:`~escalade.runtime.notify.Notifier`
by choosing a channel for each outbox message:

- a channel target (``notify oncall``) by its kind: slack, email, webhook, pager;
- a person by their contact points: the pager for ``page``, else Slack, else email;
- every other action (``create_ticket``, ``set``, ``open``, ``manual``, ...) goes to
  the generic signed webhook, the integration point for the ticket system.

Each attempt answers a :class:`~escalade.runtime.notify.Delivery`: the receipt
and the reason, which the engine keeps on the outbox row (and, for a failed
delivery, in the audit trail). Receipts: ``delivered`` when the receiver took
the message, ``pending`` when it may still arrive (timeouts, 5xx, 429, 202,
SMTP 4xx: the engine retries under the same idempotency key, by the policy's
delivery check or else with backoff), ``failed`` when the receiver or the
configuration refused it (4xx, SMTP 5xx, a channel that is not configured, a
secret that is not set). Nothing here raises into the engine: every error
becomes a receipt, and the reason is logged and kept in
:attr:`ChannelNotifier.history` too.

Only the standard library talks to the network (``urllib.request``,
``smtplib``), always with a timeout, and redirects are never followed (a
signed body is not re-sent to another host).

Webhook receivers check ``X-Escalade-Signature: sha256=<hex>``, the HMAC-SHA256
of the raw body with the shared secret (:func:`verify_signature`); the body
carries ``sent_at`` (also in ``X-Escalade-Timestamp``), so the signature covers
the time too and a receiver can refuse old replays. ``Idempotency-Key`` is the
outbox key: a retry carries the same one, so the receiver drops duplicates.

A message to the assignee may carry an acknowledgment link (``ack_url``, see
:mod:`escalade.runtime.links`): the mail says ``Acknowledge: <url>``, Slack gets an
Acknowledge button (``action_id`` :data:`SLACK_ACK_ACTION`, the link's token as its
value, answered at ``POST /slack/actions``), webhooks and pages carry ``ack_url``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import smtplib
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from http.client import HTTPException
from typing import Any, ClassVar, Literal, Self

from escalade.runtime import tracing
from escalade.runtime.notify import Delivery, Receipt
from escalade.runtime.settings import EmailSettings, EndpointSettings
from escalade.runtime.store import OutboxMessage

log = logging.getLogger("escalade.runtime.notify")

SIGNATURE_HEADER = "X-Escalade-Signature"
TIMESTAMP_HEADER = "X-Escalade-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
DEFAULT_TIMEOUT = 5.0
CHANNEL_KINDS = ("slack", "email", "webhook", "pager")
SLACK_ACK_ACTION = "escalade_ack"  # the action_id of the Acknowledge button
ChannelKind = Literal["slack", "email", "webhook", "pager"]
Environ = Mapping[str, str]


def _os_environ() -> Environ:
    return os.environ


# --- signing -----------------------------------------------------------------


def sign(secret: str | bytes, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of body>``: the value of ``X-Escalade-Signature``."""
    key = secret.encode() if isinstance(secret, str) else secret
    return "sha256=" + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_signature(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """True when ``header`` is the signature of ``body`` under ``secret`` (constant time)."""
    if not header:
        return False
    return hmac.compare_digest(sign(secret, body), header.strip())


def _secret(environ: Environ, name: str | None) -> str | Delivery:
    if not name:
        return Delivery("failed", "no secret is configured")
    value = environ.get(name)
    if not value:
        return Delivery("failed", f"environment variable {name} is not set")
    return value


# --- HTTP --------------------------------------------------------------------


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A 3xx answer is an answer: a signed body is never re-sent elsewhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass(frozen=True, slots=True)
class HttpAnswer:
    """What a POST got back: ``status`` is None when nothing came back (``error`` says why)."""

    status: int | None
    body: str = ""
    error: str = ""

    def describe(self) -> str:
        if self.status is None:
            return self.error
        text = " ".join(self.body.split())[:200]
        return f"HTTP {self.status}" + (f": {text}" if text else "")


def post_json(url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> HttpAnswer:
    """POST ``body`` as JSON with a timeout; never raises for network or HTTP errors.

    Only ``http`` and ``https`` URLs are posted to (a ``file:`` URL in a secret would
    otherwise read a local file)."""
    if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
        return HttpAnswer(None, error=f"not an http(s) URL: {_host(url)}")
    request = urllib.request.Request(  # noqa: S310 (only http and https get here)
        url,
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "escalade", **headers},
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return HttpAnswer(response.status, response.read(4096).decode("utf-8", "replace"))
    except urllib.error.HTTPError as exc:
        try:
            text = exc.read(4096).decode("utf-8", "replace")
        except (OSError, HTTPException):
            text = ""
        return HttpAnswer(exc.code, text)
    except urllib.error.URLError as exc:
        return HttpAnswer(None, error=f"cannot reach {_host(url)}: {exc.reason}")
    except TimeoutError:
        return HttpAnswer(None, error=f"no answer from {_host(url)} within {timeout:g}s")
    except (OSError, HTTPException, ValueError) as exc:
        return HttpAnswer(None, error=f"cannot post to {_host(url)}: {type(exc).__name__}: {exc}")


def _host(url: str) -> str:
    # Only scheme://host:port: a Slack webhook URL's path is its secret token.
    parsed = urllib.parse.urlsplit(url)
    return f"{parsed.scheme}://{parsed.netloc}" if parsed.netloc else "the endpoint"


def http_receipt(status: int | None, accepted: Receipt = "pending") -> Receipt:
    """2xx delivered (202: ``accepted``), 408/429/5xx/no answer pending, other 4xx/3xx failed."""
    if status is None or status in (408, 429) or status >= 500:
        return "pending"
    if status == 202:
        return accepted
    if 200 <= status < 300:
        return "delivered"
    return "failed"


# --- what a message says -------------------------------------------------------


# Controls and unpaired surrogates: mail forbids NUL, terminals obey escape sequences.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def summary(msg: OutboxMessage) -> str:
    """One line for a human: the step's text, else what happened to which ticket.

    Blanks of any kind (line breaks too) become one space, so the line is safe in a
    mail header; other control characters become U+FFFD."""
    text = msg.payload.get("text")
    if isinstance(text, str) and text.strip():
        return _UNPRINTABLE.sub("\ufffd", " ".join(text.split()))
    policy = msg.payload.get("policy") or "escalade"
    if msg.action == "page":
        return f"Page: ticket {msg.ticket} needs you ({policy})"
    return f"{msg.action} for ticket {msg.ticket} ({policy})"


def slack_escape(text: str) -> str:
    """Text for a Slack message as text: ``&``, ``<`` and ``>`` escaped as Slack asks.

    Slack reads ``<!channel>``, ``<@U123>`` and ``<https://x|label>`` in a message as
    mentions and links; a ticket title carrying them must not ping a whole channel.
    The engine's texts are plain (policy templates filled with event values), so
    the whole text is escaped: markup written in a policy is shown, not obeyed.

    >>> slack_escape("<!channel> R&D <3")
    '&lt;!channel&gt; R&amp;D &lt;3'
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_URL = re.compile(r"https?://[^\s<>|\"'`]+")


def ack_url(msg: OutboxMessage) -> str | None:
    """The acknowledgment link ``msg`` carries (None when it has none, or not a plain URL)."""
    url = msg.payload.get("ack_url")
    return url if isinstance(url, str) and _URL.fullmatch(url) and "/ack/" in url else None


def slack_blocks(text: str, context: str, url: str) -> list[dict[str, Any]]:
    """Slack blocks for a message with an acknowledgment link: the text, a context line with
    the link (for a workspace whose app takes no button clicks) and the Acknowledge button,
    whose value is the link's token. ``text`` and ``context`` are escaped already."""
    token = url.rpartition("/ack/")[2]
    button = {
        "type": "button",
        "text": {"type": "plain_text", "text": "Acknowledge"},
        "style": "primary",
        "action_id": SLACK_ACK_ACTION,
        "value": token,
    }
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": text[:3000]}},
        {
            "type": "context",
            "elements": [
                {"type": "mrkdwn", "text": f"_{context}_ · <{url}|acknowledge in the browser>"}
            ],
        },
        {"type": "actions", "elements": [button]},
    ]


def _dumps(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str).encode()


# --- channels ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SlackWebhook:
    """A Slack incoming webhook: POST ``{"text", "channel"}``; the answer ``ok`` is the receipt.

    The text is escaped (:func:`slack_escape`): values from events arrive as text.

    The URL embeds Slack's token, so it is read from the environment variable
    ``url_env`` at each delivery and never logged beyond its host."""

    url_env: str
    timeout: float = DEFAULT_TIMEOUT
    environ: Environ = field(default_factory=_os_environ)

    def send(self, msg: OutboxMessage, target: str | None) -> Delivery:
        url = _secret(self.environ, self.url_env)
        if isinstance(url, Delivery):
            return url
        text = summary(msg)
        context = f"ticket {msg.ticket} · policy {msg.payload.get('policy', '')} · {msg.key}"
        body: dict[str, Any] = {"text": f"{slack_escape(text)}\n_{slack_escape(context)}_"}
        link = ack_url(msg)
        if link is not None:
            body["blocks"] = slack_blocks(slack_escape(text), slack_escape(context), link)
        if target:
            body["channel"] = target
        answer = post_json(url, _dumps(body), {IDEMPOTENCY_HEADER: msg.key}, self.timeout)
        if answer.status is not None and 200 <= answer.status < 300:
            if answer.body.strip() == "ok":
                return Delivery("delivered", "Slack answered ok")
            return Delivery("failed", f"Slack did not answer ok ({answer.describe()})")
        return Delivery(http_receipt(answer.status, "failed"), f"Slack: {answer.describe()}")


@dataclass(frozen=True, slots=True)
class SmtpEmail(EmailSettings):
    """SMTP email with the standard library: optional STARTTLS and login.

    The relay is described by its :class:`EmailSettings` (``runtime.notifiers.email``).
    The server's acceptance of the message is the receipt. The password comes
    from the environment variable ``password_env``. ``Message-ID`` derives from
    the idempotency key, so a retried mail is the same message to the reader."""

    environ: Environ = field(default_factory=_os_environ)
    tls_context: ssl.SSLContext | None = None

    def compose(self, msg: OutboxMessage, to: str) -> EmailMessage:
        """The mail for ``msg`` (header values are single lines: no header injection)."""
        mail = EmailMessage()
        mail["From"] = self.sender
        mail["To"] = to
        mail["Subject"] = f"[escalade] {summary(msg)}"[:200]
        mail["Date"] = formatdate(usegmt=True)
        safe_key = "".join(c if c.isalnum() or c in "-._" else "." for c in msg.key)
        mail["Message-ID"] = f"<{safe_key}@escalade>"
        mail["X-Escalade-Idempotency-Key"] = msg.key
        lines = [
            summary(msg),
            "",
            f"Ticket: {msg.ticket}",
            f"Policy: {msg.payload.get('policy', '')}",
            f"Action: {msg.action}",
            f"Key: {msg.key}",
        ]
        url = ack_url(msg)
        if url is not None:
            lines[1:1] = ["", f"Acknowledge: {url}"]
        guide = msg.payload.get("guide")
        if isinstance(guide, str):
            lines += ["", guide]
        mail.set_content("\n".join(lines) + "\n")
        return mail

    def send(self, msg: OutboxMessage, target: str | None) -> Delivery:
        """Mail ``msg`` to ``target``: the relay's acceptance is the receipt."""
        if not target or any(c in target for c in "\r\n") or "@" not in target:
            return Delivery("failed", f"not an email address: {target!r}")
        password: str | None = None
        if self.username:
            found = _secret(self.environ, self.password_env)
            if isinstance(found, Delivery):
                return found
            password = found
        try:
            mail = self.compose(msg, target)
        except ValueError as exc:
            return Delivery("failed", f"cannot compose the mail: {exc}")
        smtp = self._connect()
        if isinstance(smtp, Delivery):
            return smtp
        try:
            return self._transmit(smtp, mail, target, password)
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    @property
    def _where(self) -> str:
        return f"{self.host}:{self.port}"

    def _connect(self) -> smtplib.SMTP | Delivery:
        """A connection to the relay, or why there is none (a transient failure)."""
        try:
            return smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        except smtplib.SMTPConnectError as exc:
            return self._answer(exc.smtp_code, exc.smtp_error, self._where)
        except TimeoutError:
            return Delivery("pending", f"SMTP {self._where}: no answer within {self.timeout:g}s")
        except OSError as exc:
            return Delivery("pending", f"SMTP {self._where}: cannot connect: {exc}")

    def _transmit(
        self, smtp: smtplib.SMTP, mail: EmailMessage, target: str, password: str | None
    ) -> Delivery:
        """STARTTLS, login and send on an open connection; each SMTP answer as a receipt."""
        where = self._where
        try:
            if self.starttls:
                smtp.starttls(context=self.tls_context or ssl.create_default_context())
            if self.username and password is not None:
                smtp.login(self.username, password)
            refused = smtp.send_message(mail)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            temporary = all(400 <= code < 500 for code in codes)
            return Delivery(
                "pending" if temporary else "failed", f"SMTP {where} refused {target}: {codes}"
            )
        except smtplib.SMTPNotSupportedError as exc:
            return Delivery("failed", f"SMTP {where}: {exc}")
        except smtplib.SMTPResponseException as exc:
            return self._answer(exc.smtp_code, exc.smtp_error, where)
        except ssl.SSLCertVerificationError as exc:
            return Delivery(
                "failed", f"SMTP {where}: TLS certificate refused: {exc.verify_message}"
            )
        except TimeoutError:
            return Delivery("pending", f"SMTP {where}: no answer within {self.timeout:g}s")
        except (smtplib.SMTPException, OSError) as exc:
            return Delivery("pending", f"SMTP {where}: {type(exc).__name__}: {exc}")
        if refused:
            return Delivery("failed", f"SMTP {where} refused {sorted(refused)}")
        return Delivery("delivered", f"SMTP {where} accepted the mail for {target}")

    @staticmethod
    def _answer(code: int, text: bytes | str, where: str) -> Delivery:
        said = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        receipt: Receipt = "pending" if 400 <= code < 500 else "failed"
        return Delivery(receipt, f"SMTP {where} answered {code} {said}".strip())


@dataclass(frozen=True, slots=True)
class SignedWebhook:
    """POST the message as signed JSON; 2xx delivered, 202 ``accepted``, 4xx failed, 5xx pending.

    Headers: ``X-Escalade-Signature`` (HMAC-SHA256 of the body with the secret
    from ``secret_env``), ``X-Escalade-Timestamp`` and ``Idempotency-Key``."""

    url: str
    secret_env: str
    timeout: float = DEFAULT_TIMEOUT
    accepted: Receipt = "pending"
    environ: Environ = field(default_factory=_os_environ)
    clock: Callable[[], float] = time.time
    label: ClassVar[str] = "webhook"

    def shape(self, msg: OutboxMessage, target: str | None, sent_at: int) -> dict[str, Any]:
        """The JSON body for ``msg`` (with ``ack_url`` when it carries an acknowledgment link)."""
        body = {
            "key": msg.key,
            "action": msg.action,
            "ticket": msg.ticket,
            "escalation_id": msg.escalation_id,
            "target": target if target is not None else msg.target,
            "target_kind": msg.target_kind,
            "summary": summary(msg),
            "created_at": msg.created_at,
            "sent_at": sent_at,
            "payload": msg.payload,
        }
        return _with_ack_url(body, msg)

    def endpoint(self, target: str | None) -> str:
        """Where to post: the configured URL (subclasses may route by target)."""
        return self.url

    def send(self, msg: OutboxMessage, target: str | None) -> Delivery:
        secret = _secret(self.environ, self.secret_env)
        if isinstance(secret, Delivery):
            return secret
        sent_at = int(self.clock())
        body = _dumps(self.shape(msg, target, sent_at))
        headers = {
            SIGNATURE_HEADER: sign(secret, body),
            TIMESTAMP_HEADER: str(sent_at),
            IDEMPOTENCY_HEADER: msg.key,
        }
        tracing.inject(headers)  # traceparent: the receiver's spans join the delivery's trace
        url = self.endpoint(target)
        answer = post_json(url, body, headers, self.timeout)
        return Delivery(
            http_receipt(answer.status, self.accepted), f"{self.label}: {answer.describe()}"
        )

    @classmethod
    def from_settings(cls, spec: EndpointSettings, environ: Environ) -> Self:
        """Build from ``runtime.notifiers.webhook`` (or ``pager``)."""
        accepted: Receipt = "delivered" if spec.accepted == "delivered" else "pending"
        return cls(spec.url, spec.secret_env, spec.timeout, accepted, environ)


@dataclass(frozen=True, slots=True)
class GenericWebhook(SignedWebhook):
    """The generic webhook: a channel whose target is a URL is posted there, signed alike."""

    def endpoint(self, target: str | None) -> str:
        if target and target.startswith(("https://", "http://")):
            return target
        return self.url


@dataclass(frozen=True, slots=True)
class PagerWebhook(SignedWebhook):
    """A signed webhook with a pager-shaped body (an Events-API-like ``trigger``).

    ``routing_key`` is the person's or channel's pager id, ``dedup_key`` the
    idempotency key, ``severity`` critical for ``page`` (warning otherwise); an
    acknowledgment link is ``ack_url`` and the first of ``links``."""

    label: ClassVar[str] = "pager"

    def shape(self, msg: OutboxMessage, target: str | None, sent_at: int) -> dict[str, Any]:
        body = {
            "routing_key": target,
            "event_action": "trigger",
            "dedup_key": msg.key,
            "payload": {
                "summary": summary(msg)[:1024],
                "severity": "critical" if msg.action == "page" else "warning",
                "source": "escalade",
                "timestamp": datetime.fromtimestamp(sent_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                "custom_details": {
                    "ticket": msg.ticket,
                    "policy": msg.payload.get("policy"),
                    "action": msg.action,
                    "target": msg.target,
                    "escalation_id": msg.escalation_id,
                },
            },
        }
        return _with_ack_url(body, msg)


def _with_ack_url(body: dict[str, Any], msg: OutboxMessage) -> dict[str, Any]:
    """``body`` with ``msg``'s acknowledgment link as ``ack_url`` and in ``links`` (the
    Events API's list of links), when it has one."""
    url = ack_url(msg)
    if url is not None:
        body["ack_url"] = url
        body["links"] = [{"href": url, "text": "Acknowledge"}]
    return body
