"""Real notification channels against real receivers on loopback (127.0.0.1 only).

An HTTP receiver (ThreadingHTTPServer) checks the HMAC signature and the
idempotency key on its own, with its own copy of the secret, and answers as a
test scripts it; an aiosmtpd server receives the mail. Every wait is bounded.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from click.testing import CliRunner

from escalade.runtime.__main__ import main as runtime_main
from escalade.runtime.clock import VirtualClock
from escalade.runtime.engine import Engine
from escalade.runtime.notify.channels import (
    GenericWebhook,
    PagerWebhook,
    SignedWebhook,
    SlackWebhook,
    SmtpEmail,
    verify_signature,
)
from escalade.runtime.notify.router import ChannelNotifier, Choice
from escalade.runtime.settings import SettingsError, load_settings, parse_settings
from escalade.runtime.signing import generate_keypair
from escalade.runtime.store import OutboxMessage
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0, critical

WEBHOOK_SECRET = "webhook-secret-for-loopback"
PAGER_SECRET = "pager-secret-for-loopback"
ENV = {
    "ESC_TEST_SLACK_URL": "",  # filled with the receiver's URL per test
    "ESC_TEST_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "ESC_TEST_PAGER_SECRET": PAGER_SECRET,
    "ESC_TEST_SMTP_PASSWORD": "smtp-password",
}


# --- receivers ---------------------------------------------------------------


@dataclass
class Received:
    """One POST as the receiver saw it."""

    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool | None  # None: this path is not signed
    duplicate: bool

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records posts and answers as scripted."""

    secrets: dict[str, str]
    requests: list[Received] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=dict)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def answer(self, path: str, *statuses: int) -> None:
        """The next answers on ``path`` (then 200 again)."""
        self.script.setdefault(path, []).extend(statuses)

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def handle(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        secret = self.secrets.get(path)
        signature_ok: bool | None = None
        if secret is not None:
            # The receiver's own check, independent of the code under test.
            expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
            signature_ok = hmac.compare_digest(expected, headers.get("x-escalade-signature", ""))
        key = headers.get("idempotency-key", "")
        with self.lock:
            duplicate = any(
                r.path == path and r.headers.get("idempotency-key") == key for r in self.requests
            )
            self.requests.append(Received(path, headers, body, signature_ok, duplicate))
            scripted = self.script.get(path) or []
            status = scripted.pop(0) if scripted else 200
        if signature_ok is False:
            return 401, b'{"error": "bad signature"}'
        if path == "/slack":
            text = {200: b"ok", 404: b"channel_not_found", 500: b"rollup_error"}
            return status, text.get(status, b"invalid_payload")
        return status, json.dumps({"status": status, "duplicate": duplicate}).encode()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, answer = receiver.handle(self.path, headers, body)
            self.send_response(status)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback only: an HTTP proxy from the environment must not see these requests."""
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)


@contextmanager
def receiving() -> Iterator[Receiver]:
    """Slack, the webhook and the pager on loopback, checking the signatures themselves."""
    rec = Receiver(secrets={"/hook": WEBHOOK_SECRET, "/pager": PAGER_SECRET})
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with receiving() as rec:
        yield rec


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    yield sock.getsockname()[1]
    sock.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Mailbox:
    """An aiosmtpd handler: keeps the envelopes, refuses recipients as scripted."""

    messages: list[Envelope] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # address -> SMTP answer

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


def _authenticate(
    server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        b"escalade",
        b"smtp-password",
    )
    return AuthResult(success=ok, handled=False)  # handled=False: the server answers 535


@contextmanager
def smtp_server(**options: Any) -> Iterator[tuple[Mailbox, int]]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that accepts the test login."""
    mailbox = Mailbox()
    port = _free_port()
    controller = Controller(
        mailbox,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticate,
        ready_timeout=5.0,
        **options,
    )
    controller.start()
    try:
        yield mailbox, port
    finally:
        controller.stop()


@pytest.fixture
def smtp() -> Iterator[tuple[Mailbox, int]]:
    with smtp_server(auth_require_tls=False) as running:
        yield running


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, receiver: Receiver) -> dict[str, str]:
    values = dict(ENV, ESC_TEST_SLACK_URL=receiver.url("/slack"))
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def message(
    key: str = "esc-1/2",
    action: str = "notify",
    target: str | None = "oncall",
    target_kind: str | None = "channel",
    **payload: Any,
) -> OutboxMessage:
    base: dict[str, Any] = {"policy": "enterprise_critical", "moment": "start"}
    base.update(payload)
    return OutboxMessage(key, 1, "T1", action, target, target_kind, base, created_at=T0)


SLACK_CHANNEL = {"kind": "slack", "target": "#cust-ops-oncall"}
CAROL = {"email": "carol@example.com", "pager": "carol-diaz"}
ALICE = {"email": "alice@example.com", "slack": "@alice"}


def notifier(
    receiver: Receiver, env: dict[str, str], smtp_port: int | None = None
) -> ChannelNotifier:
    """Every channel configured, pointed at the loopback receivers."""
    return ChannelNotifier(
        slack=SlackWebhook("ESC_TEST_SLACK_URL", timeout=2, environ=env),
        email=SmtpEmail("127.0.0.1", "escalade@example.com", smtp_port, timeout=2, environ=env)
        if smtp_port
        else None,
        webhook=GenericWebhook(receiver.url("/hook"), "ESC_TEST_WEBHOOK_SECRET", 2, environ=env),
        pager=PagerWebhook(receiver.url("/pager"), "ESC_TEST_PAGER_SECRET", 2, environ=env),
    )


# --- signed webhook ------------------------------------------------------------


def test_signed_webhook_is_delivered_with_signature_timestamp_and_key(
    receiver: Receiver, env: dict[str, str]
) -> None:
    hook = SignedWebhook(receiver.url("/hook"), "ESC_TEST_WEBHOOK_SECRET", 2, environ=env)
    msg = message(action="create_ticket", target=None, target_kind=None, text="Escalation: X")
    sent = hook.send(msg, None)
    assert sent.receipt == "delivered", sent.reason
    [got] = receiver.on("/hook")
    assert got.signature_ok is True
    assert got.headers["idempotency-key"] == "esc-1/2"
    assert got.headers["x-escalade-timestamp"] == str(got.json["sent_at"])
    assert got.json["action"] == "create_ticket" and got.json["payload"]["text"] == "Escalation: X"
    # The library's own verifier agrees, and a changed byte breaks it.
    assert verify_signature(WEBHOOK_SECRET, got.body, got.headers["x-escalade-signature"])
    tampered = got.body.replace(b"Escalation", b"Escalatiom")
    assert not verify_signature(WEBHOOK_SECRET, tampered, got.headers["x-escalade-signature"])
    assert not verify_signature("another-secret", got.body, got.headers["x-escalade-signature"])
    assert not verify_signature(WEBHOOK_SECRET, got.body, None)


@pytest.mark.parametrize(
    ("status", "receipt"),
    [
        (200, "delivered"),
        (204, "delivered"),
        (202, "pending"),
        (400, "failed"),
        (404, "failed"),
        (408, "pending"),
        (429, "pending"),
        (500, "pending"),
        (503, "pending"),
    ],
)
def test_webhook_answers_become_receipts(
    receiver: Receiver, env: dict[str, str], status: int, receipt: str
) -> None:
    receiver.answer("/hook", status)
    hook = SignedWebhook(receiver.url("/hook"), "ESC_TEST_WEBHOOK_SECRET", 2, environ=env)
    sent = hook.send(message(action="set", target=None, target_kind=None), None)
    assert sent.receipt == receipt
    assert f"HTTP {status}" in sent.reason
    assert len(receiver.on("/hook")) == 1


def test_a_202_may_be_configured_as_delivered(receiver: Receiver, env: dict[str, str]) -> None:
    receiver.answer("/hook", 202)
    hook = SignedWebhook(
        receiver.url("/hook"), "ESC_TEST_WEBHOOK_SECRET", 2, accepted="delivered", environ=env
    )
    assert hook.send(message(), None).receipt == "delivered"


def test_retry_after_500_carries_the_same_idempotency_key(
    receiver: Receiver, env: dict[str, str]
) -> None:
    receiver.answer("/hook", 500)
    channels = notifier(receiver, env)
    msg = message(action="create_ticket", target=None, target_kind=None, text="Open it")
    assert channels.deliver(msg).receipt == "pending"
    assert channels.deliver(msg).receipt == "delivered"
    first, second = receiver.on("/hook")
    assert first.headers["idempotency-key"] == second.headers["idempotency-key"] == "esc-1/2"
    assert (first.duplicate, second.duplicate) == (False, True)
    assert first.signature_ok and second.signature_ok
    assert first.json["key"] == second.json["key"] == "esc-1/2"
    assert [d.receipt for d in channels.history] == ["pending", "delivered"]


def test_a_receiver_with_another_secret_refuses_the_signature(
    receiver: Receiver, env: dict[str, str]
) -> None:
    wrong = dict(env, ESC_TEST_WEBHOOK_SECRET="not-the-shared-secret")
    hook = SignedWebhook(receiver.url("/hook"), "ESC_TEST_WEBHOOK_SECRET", 2, environ=wrong)
    sent = hook.send(message(), None)
    assert sent.receipt == "failed" and "HTTP 401" in sent.reason
    [got] = receiver.on("/hook")
    assert got.signature_ok is False


def test_an_unset_secret_fails_without_sending(receiver: Receiver) -> None:
    hook = SignedWebhook(receiver.url("/hook"), "ESC_TEST_UNSET_SECRET", 2, environ={})
    sent = hook.send(message(), None)
    assert sent.receipt == "failed"
    assert "ESC_TEST_UNSET_SECRET is not set" in sent.reason
    assert receiver.requests == []


def test_a_receiver_that_never_answers_times_out_as_pending(
    silent_port: int, env: dict[str, str]
) -> None:
    url = f"http://127.0.0.1:{silent_port}/hook"
    channels = ChannelNotifier(
        webhook=GenericWebhook(url, "ESC_TEST_WEBHOOK_SECRET", timeout=0.5, environ=env)
    )
    started = time.monotonic()
    receipt = channels.deliver(message(action="set", target=None, target_kind=None)).receipt
    elapsed = time.monotonic() - started
    assert receipt == "pending"
    assert 0.4 <= elapsed < 3.0
    last = channels.last("esc-1/2")
    assert last is not None and "within 0.5s" in last.reason


def test_an_unreachable_receiver_is_pending(env: dict[str, str]) -> None:
    url = f"http://127.0.0.1:{_free_port()}/hook"
    hook = SignedWebhook(url, "ESC_TEST_WEBHOOK_SECRET", 1, environ=env)
    sent = hook.send(message(), None)
    assert sent.receipt == "pending" and "cannot reach" in sent.reason


def test_a_redirect_is_not_followed(receiver: Receiver, env: dict[str, str]) -> None:
    receiver.answer("/hook", 307)
    hook = SignedWebhook(receiver.url("/hook"), "ESC_TEST_WEBHOOK_SECRET", 2, environ=env)
    sent = hook.send(message(), None)
    assert sent.receipt == "failed" and "HTTP 307" in sent.reason
    assert len(receiver.requests) == 1


# --- Slack and pager ------------------------------------------------------------


def test_slack_ok_is_delivered_and_errors_map_to_receipts(
    receiver: Receiver, env: dict[str, str]
) -> None:
    slack = SlackWebhook("ESC_TEST_SLACK_URL", 2, environ=env)
    msg = message(text="Escalation opened: Checkout down", channel=SLACK_CHANNEL)
    assert slack.send(msg, "#cust-ops-oncall").receipt == "delivered"
    [got] = receiver.on("/slack")
    assert got.json["channel"] == "#cust-ops-oncall"
    assert got.json["text"].startswith("Escalation opened: Checkout down")
    assert got.headers["idempotency-key"] == "esc-1/2"
    receiver.answer("/slack", 404, 500)
    missing = slack.send(msg, "#nowhere")
    assert missing.receipt == "failed" and "channel_not_found" in missing.reason
    assert slack.send(msg, "#cust-ops-oncall").receipt == "pending"
    # The webhook URL's path is Slack's token: reasons name the host only.
    assert "/slack" not in missing.reason


def test_pager_gets_a_pager_shaped_signed_page(receiver: Receiver, env: dict[str, str]) -> None:
    channels = notifier(receiver, env)
    msg = message(
        key="esc-1/3", action="page", target="carol", target_kind="person", contacts=CAROL
    )
    assert channels.deliver(msg).receipt == "delivered"
    [page] = receiver.on("/pager")
    assert page.signature_ok is True
    assert page.headers["idempotency-key"] == "esc-1/3"
    body = page.json
    assert body["routing_key"] == "carol-diaz"
    assert body["dedup_key"] == "esc-1/3"
    assert body["event_action"] == "trigger"
    assert body["payload"]["severity"] == "critical"
    assert "T1" in body["payload"]["summary"]
    assert body["payload"]["custom_details"]["policy"] == "enterprise_critical"


# --- email ---------------------------------------------------------------------


def login_mail(port: int, env: dict[str, str], **options: Any) -> SmtpEmail:
    """SMTP to the loopback server, logging in with the password from the environment."""
    return SmtpEmail(
        "127.0.0.1",
        "escalade@example.com",
        port,
        username="escalade",
        password_env="ESC_TEST_SMTP_PASSWORD",
        timeout=2,
        environ=env,
        **options,
    )


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, made here (nothing is fetched)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_email_over_starttls_with_login(tmp_path: Path, env: dict[str, str]) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    with smtp_server(tls_context=server_tls, require_starttls=True) as (mailbox, port):
        trusted = ssl.create_default_context(cafile=str(cert))
        sent = login_mail(port, env, starttls=True, tls_context=trusted).send(
            message(key="esc-9/1"), "revops@example.com"
        )
        assert sent.receipt == "delivered", sent.reason
        assert [e.rcpt_tos for e in mailbox.messages] == [["revops@example.com"]]
        # Without STARTTLS the server refuses (530); with an untrusted certificate we refuse.
        plain = login_mail(port, env).send(message(), "revops@example.com")
        assert plain.receipt == "failed", plain.reason
        untrusted = login_mail(port, env, starttls=True).send(message(), "revops@example.com")
        assert untrusted.receipt == "failed" and "certificate" in untrusted.reason
        assert len(mailbox.messages) == 1


def test_email_is_delivered_over_smtp_with_login(
    smtp: tuple[Mailbox, int], env: dict[str, str]
) -> None:
    mailbox, port = smtp
    mail = login_mail(port, env)
    msg = message(key="esc-4/1", text="Revenue drop\non account acme", channel={"kind": "email"})
    sent = mail.send(msg, "revops@example.com")
    assert sent.receipt == "delivered", sent.reason
    [envelope] = mailbox.messages
    assert envelope.mail_from == "escalade@example.com"
    assert envelope.rcpt_tos == ["revops@example.com"]
    content = envelope.content if isinstance(envelope.content, bytes) else b""
    text = content.decode()
    assert "Subject: [escalade] Revenue drop on account acme" in text  # one line: no injection
    assert "Message-ID: <esc-4.1@escalade>" in text
    assert "X-Escalade-Idempotency-Key: esc-4/1" in text


def test_email_refusals_and_outages_become_receipts(
    smtp: tuple[Mailbox, int], env: dict[str, str]
) -> None:
    mailbox, port = smtp
    mailbox.refuse = {
        "nobody@example.com": "550 5.1.1 no such user",
        "busy@example.com": "451 4.3.0 try again later",
    }
    mail = SmtpEmail("127.0.0.1", "escalade@example.com", port, timeout=2, environ=env)
    refused = mail.send(message(), "nobody@example.com")
    assert refused.receipt == "failed" and "550" in refused.reason
    assert mail.send(message(), "busy@example.com").receipt == "pending"
    assert mail.send(message(), "not-an-address").receipt == "failed"
    assert mail.send(message(), "a@example.com\r\nBcc: x@example.com").receipt == "failed"
    wrong = login_mail(port, dict(env, ESC_TEST_SMTP_PASSWORD="wrong"))
    denied = wrong.send(message(), "revops@example.com")
    assert denied.receipt == "failed" and "535" in denied.reason
    unset = SmtpEmail(
        "127.0.0.1", "e@example.com", port, username="escalade", password_env="NOPE", environ={}
    )
    assert (
        unset.send(message(), "revops@example.com").reason == "environment variable NOPE is not set"
    )
    down = SmtpEmail("127.0.0.1", "escalade@example.com", _free_port(), timeout=1, environ=env)
    assert down.send(message(), "revops@example.com").receipt == "pending"
    assert mailbox.messages == []


def test_smtp_that_never_answers_times_out(silent_port: int, env: dict[str, str]) -> None:
    mail = SmtpEmail("127.0.0.1", "escalade@example.com", silent_port, timeout=0.5, environ=env)
    started = time.monotonic()
    sent = mail.send(message(), "revops@example.com")
    assert sent.receipt == "pending"
    assert time.monotonic() - started < 3.0


# --- choosing the channel ------------------------------------------------------


@pytest.mark.parametrize(
    ("msg", "configured", "expected"),
    [
        # a channel target goes by its kind
        (message(channel=SLACK_CHANNEL), "all", ("slack", "#cust-ops-oncall")),
        (
            message(channel={"kind": "email", "target": "editors@example.com"}),
            "all",
            ("email", "editors@example.com"),
        ),
        (
            message(channel={"kind": "webhook", "target": "https://hooks.example.com/x"}),
            "all",
            ("webhook", "https://hooks.example.com/x"),
        ),
        (message(channel={"kind": "pager", "target": "svc-7"}), "all", ("pager", "svc-7")),
        # a person: pager for a page, else slack, else email
        (message(action="page", target="carol", contacts=CAROL), "all", ("pager", "carol-diaz")),
        (message(action="page", target="alice", contacts=ALICE), "all", ("slack", "@alice")),
        (
            message(action="notify", target="carol", contacts=CAROL),
            "all",
            ("email", "carol@example.com"),
        ),
        (message(action="notify", target="alice", contacts=ALICE), "all", ("slack", "@alice")),
        (
            message(action="page", target="carol", contacts=CAROL),
            "slack,email",
            ("email", "carol@example.com"),
        ),
        (
            message(action="notify", target="alice", contacts=ALICE),
            "email",
            ("email", "alice@example.com"),
        ),
        # ticket-system actions go to the generic webhook
        (message(action="create_ticket", target=None, target_kind=None), "all", ("webhook", None)),
        # refusals, with the reason
        (message(channel=SLACK_CHANNEL), "email", "runtime.notifiers.slack is not configured"),
        (message(channel={"kind": "fax", "target": "1"}), "all", "unknown kind 'fax'"),
        (
            message(action="notify", target="x", contacts={"pager": "p"}),
            "all",
            "no configured channel",
        ),
        (message(action="notify", target="ops", target_kind="team"), "all", "no contact points"),
        (
            message(action="create_ticket", target=None, target_kind=None),
            "slack,email,pager",
            "runtime.notifiers.webhook is not configured",
        ),
    ],
)
def test_contact_point_selection(
    msg: OutboxMessage, configured: str, expected: tuple[str, str | None] | str
) -> None:
    full = ChannelNotifier(
        slack=SlackWebhook("S"),
        email=SmtpEmail("127.0.0.1", "e@example.com"),
        webhook=GenericWebhook("http://127.0.0.1:9/hook", "W"),
        pager=PagerWebhook("http://127.0.0.1:9/pager", "P"),
    )
    if configured != "all":
        for kind in ("slack", "email", "webhook", "pager"):
            if kind not in configured.split(","):
                setattr(full, kind, None)
    choices = full.choices(msg)
    if isinstance(expected, str):
        assert not isinstance(choices, list) and choices.receipt in ("failed", "undeliverable")
        assert expected in choices.reason
    else:
        assert isinstance(choices, list) and choices[0] == Choice(expected[0], expected[1])


def test_each_person_is_reached_on_their_own_channel(
    receiver: Receiver, env: dict[str, str], smtp: tuple[Mailbox, int]
) -> None:
    mailbox, port = smtp
    channels = notifier(receiver, env, port)
    assert (
        channels.deliver(message("k1", "page", "carol", "person", contacts=CAROL)).receipt
        == "delivered"
    )
    assert (
        channels.deliver(message("k2", "page", "alice", "person", contacts=ALICE)).receipt
        == "delivered"
    )
    assert (
        channels.deliver(message("k3", "notify", "carol", "person", contacts=CAROL)).receipt
        == "delivered"
    )
    assert [r.json["routing_key"] for r in receiver.on("/pager")] == ["carol-diaz"]
    assert [r.json["channel"] for r in receiver.on("/slack")] == ["@alice"]
    assert [e.rcpt_tos for e in mailbox.messages] == [["carol@example.com"]]
    assert channels.deliver(message("k4", "notify", "ops", "team")).receipt == "failed"


def test_a_channel_bug_becomes_a_failed_receipt_not_an_exception(
    receiver: Receiver, env: dict[str, str]
) -> None:
    def broken_clock() -> float:
        raise RuntimeError("clock exploded")

    channels = ChannelNotifier(
        webhook=GenericWebhook(
            receiver.url("/hook"), "ESC_TEST_WEBHOOK_SECRET", 2, environ=env, clock=broken_clock
        )
    )
    assert (
        channels.deliver(message(action="set", target=None, target_kind=None)).receipt == "failed"
    )
    last = channels.last("esc-1/2")
    assert last is not None and "clock exploded" in last.reason


# --- settings ------------------------------------------------------------------

SETTINGS = """\
version: 1.0.0
runtime:
  database: state/escalade.db
  trusted_keys: [keys/release.pub]
  notifiers:
    timeout: 3
    slack: {webhook_url_env: ESC_TEST_SLACK_URL}
    email:
      host: 127.0.0.1
      port: 2525
      sender: escalade@example.com
      starttls: false
      username: escalade
      password_env: ESC_TEST_SMTP_PASSWORD
    webhook: {url: "http://127.0.0.1:1/hook", secret_env: ESC_TEST_WEBHOOK_SECRET, timeout: 1}
    pager: {url: "http://127.0.0.1:1/pager", secret_env: ESC_TEST_PAGER_SECRET, accepted: delivered}
"""


def test_settings_are_read_from_the_runtime_section(tmp_path: Path) -> None:
    settings = parse_settings(SETTINGS, tmp_path)
    assert settings.database == str(tmp_path / "state/escalade.db")
    assert settings.trusted_keys == (tmp_path / "keys/release.pub",)
    n = settings.notifiers
    assert n is not None and n.slack is not None and n.email is not None
    assert n.webhook is not None and n.pager is not None
    assert (n.slack.webhook_url_env, n.slack.timeout) == ("ESC_TEST_SLACK_URL", 3.0)
    assert (n.email.port, n.email.username, n.email.password_env) == (
        2525,
        "escalade",
        "ESC_TEST_SMTP_PASSWORD",
    )
    assert (n.webhook.timeout, n.pager.accepted) == (1.0, "delivered")
    assert n.missing_env({"ESC_TEST_SLACK_URL": "x", "ESC_TEST_PAGER_SECRET": "y"}) == [
        "ESC_TEST_SMTP_PASSWORD",
        "ESC_TEST_WEBHOOK_SECRET",
    ]
    built = ChannelNotifier.from_settings(n, environ={})
    assert built.configured() == ["slack", "email", "webhook", "pager"]
    assert built.pager is not None and built.pager.accepted == "delivered"


@pytest.mark.parametrize(
    ("snippet", "where", "says"),
    [
        (
            "    slack: {webhook_url: 'https://hooks.slack.com/services/T/B/x'}\n",
            ":5:13:",
            "webhook_url_env",
        ),
        (
            "    email: {host: h, sender: a@b.c, username: u, password: hunter2}\n",
            ":5:50:",
            "password_env",
        ),
        ("    webhook: {url: 'http://h/x', secret: s3cr3t}\n", ":5:34:", "secret_env"),
        ("    pager: {url: 'http://h/x', secret_env: 'not a name!'}\n", ":5:44:", "NAME of an"),
        ("    webhook: {url: 'https://user:pw@h/x', secret_env: S}\n", ":5:20:", "credentials"),
        ("    slack: {webhook_url_env: S, colour: red}\n", ":5:33:", "unknown setting 'colour'"),
        ("    {}\n", ":5:5:", "at least one of"),
    ],
)
def test_inline_secrets_and_mistakes_are_located_errors(
    tmp_path: Path, snippet: str, where: str, says: str
) -> None:
    text = "version: 1.0.0\nruntime:\n  database: x.db\n  notifiers:\n" + snippet
    with pytest.raises(SettingsError) as caught:
        parse_settings(text, tmp_path, shown="escalade.yaml")
    message_text = str(caught.value)
    assert f"escalade.yaml{where}" in message_text, message_text
    assert says in message_text
    for secret in ("hunter2", "s3cr3t", "not a name!", "pw@", "T/B/x"):
        assert secret not in message_text  # a pasted secret is never echoed


def test_settings_are_found_from_a_subdirectory_and_default_without_a_file(
    tmp_path: Path,
) -> None:
    (tmp_path / "escalade.yaml").write_text(SETTINGS)
    (tmp_path / "a" / "b").mkdir(parents=True)
    found = load_settings(tmp_path / "a" / "b")
    assert found.found and found.trusted_keys == (tmp_path / "keys/release.pub",)
    (tmp_path / "escalade.yaml").write_text("version: 1.0.0\n")
    assert load_settings(tmp_path).notifiers is None
    (tmp_path / "escalade.yaml").write_text("runtime: [1\n")
    with pytest.raises(SettingsError, match="invalid YAML"):
        load_settings(tmp_path)


# --- end to end ----------------------------------------------------------------


def _engine(
    tmp_path: Path, pack: dict[str, Any], channels: ChannelNotifier
) -> Callable[[], tuple[Engine, SQLiteStore]]:
    def make() -> tuple[Engine, SQLiteStore]:
        store = SQLiteStore(str(tmp_path / "e2e.sqlite"))
        engine = Engine(store, VirtualClock(T0), channels)
        engine.activate(pack, T0)
        return engine, store

    return make


def test_engine_delivers_an_enterprise_critical_event_to_real_receivers(
    tmp_path: Path, pack: dict[str, Any], receiver: Receiver, env: dict[str, str]
) -> None:
    receiver.answer("/slack", 500)  # the first Slack post fails; the delivery check retries
    channels = notifier(receiver, env)
    engine, store = _engine(tmp_path, pack, channels)()
    try:
        engine.receive(critical("T1", "e1"), T0)
        slack = receiver.on("/slack")
        pages = receiver.on("/pager")
        hooks = receiver.on("/hook")
        assert [r.json["channel"] for r in slack] == ["#cust-ops-oncall", "@alice"]
        assert "Escalation opened: Checkout down" in slack[0].json["text"]
        assert [p.json["routing_key"] for p in pages] == ["carol-diaz"]
        assert pages[0].signature_ok and pages[0].json["payload"]["severity"] == "critical"
        assert [h.json["action"] for h in hooks] == ["create_ticket", "open", "snapshot"]
        assert all(h.signature_ok for h in hooks)
        statuses = {m.key: m.status for m in store.outbox()}
        room = slack[0].headers["idempotency-key"]
        assert statuses[room] == "sent"  # no receipt yet
        assert [s for k, s in statuses.items() if k != room] == ["delivered"] * 5

        engine.advance(T0 + 60)  # `check delivery within 1m else retry 3`
        retried = receiver.on("/slack")
        assert len(retried) == 3
        assert retried[2].headers["idempotency-key"] == room and retried[2].duplicate
        assert {m.key: m.status for m in store.outbox()}[room] == "delivered"
    finally:
        store.close()


def test_cli_uses_the_notifiers_and_trusted_keys_of_escalade_yaml(
    tmp_path: Path,
    pack_file: Path,
    receiver: Receiver,
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "escalade.yaml").write_text(
        "version: 1.0.0\nruntime:\n  notifiers:\n"
        "    slack: {webhook_url_env: ESC_TEST_SLACK_URL}\n"
        f"    webhook: {{url: '{receiver.url('/hook')}', secret_env: ESC_TEST_WEBHOOK_SECRET}}\n"
        f"    pager: {{url: '{receiver.url('/pager')}', secret_env: ESC_TEST_PAGER_SECRET}}\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ESCALADE_TRUSTED_KEYS", raising=False)
    event = json.dumps(critical("T1", "e1"))
    args = ["event", "-", "--db", "e.db", "--pack", str(pack_file), "--at", "2026-11-27T10:00:00Z"]
    result = CliRunner().invoke(runtime_main, args, input=event)
    assert result.exit_code == 0, result.output
    assert [r.json["routing_key"] for r in receiver.on("/pager")] == ["carol-diaz"]
    assert receiver.on("/slack")[0].json["channel"] == "#cust-ops-oncall"

    # runtime.trusted_keys: an unsigned pack is now refused.
    _, public = generate_keypair()
    (tmp_path / "release.pub").write_bytes(public)
    with (tmp_path / "escalade.yaml").open("a") as fh:
        fh.write("  trusted_keys: [release.pub]\n")
    result = CliRunner().invoke(
        runtime_main, ["tick", "--db", "fresh.db", "--pack", str(pack_file)]
    )
    assert result.exit_code == 1 and "refusing the pack" in result.output

    (tmp_path / "escalade.yaml").write_text("runtime:\n  notifiers:\n    slack: {webhook_url: x}\n")
    result = CliRunner().invoke(runtime_main, ["tick", "--db", "e.db"])
    assert result.exit_code == 1 and "escalade.yaml:3:13" in result.output


# --- values from events arrive as text ------------------------------------------


def test_slack_escapes_values_so_mentions_and_links_arrive_as_text(
    receiver: Receiver, env: dict[str, str]
) -> None:
    slack = SlackWebhook("ESC_TEST_SLACK_URL", 2, environ=env)
    title = "<!channel> R&D <@U123> <https://evil.example|click> &lt;"
    msg = message(text=f"Escalation opened: {title}", channel=SLACK_CHANNEL)
    assert slack.send(msg, "#cust-ops-oncall").receipt == "delivered"
    [got] = receiver.on("/slack")
    assert got.json["text"] == (
        "Escalation opened: &lt;!channel&gt; R&amp;D &lt;@U123&gt;"
        " &lt;https://evil.example|click&gt; &amp;lt;\n"
        "_ticket T1 · policy enterprise_critical · esc-1/2_"
    )
    assert "<" not in got.json["text"] and ">" not in got.json["text"]


def test_an_event_title_reaches_slack_as_text_and_webhooks_as_data(
    tmp_path: Path, pack: dict[str, Any], receiver: Receiver, env: dict[str, str]
) -> None:
    engine, store = _engine(tmp_path, pack, notifier(receiver, env))()
    title = "<!channel> checkout & <!here>"
    try:
        assert engine.receive(critical("T1", "e1", title=title), T0).status == "applied"
    finally:
        store.close()
    slack = receiver.on("/slack")
    assert slack and all("<" not in r.json["text"] for r in slack)
    assert (
        "Escalation opened: &lt;!channel&gt; checkout &amp; &lt;!here&gt;" in slack[0].json["text"]
    )
    hooks = receiver.on("/hook")
    assert all(h.signature_ok for h in hooks)
    ticket = next(h.json for h in hooks if h.json["action"] == "create_ticket")
    assert ticket["payload"]["text"] == f"Escalation: {title} (Acme)"  # the value, as JSON data


def test_an_email_carries_hostile_text_without_new_headers_or_control_bytes(
    smtp: tuple[Mailbox, int], env: dict[str, str]
) -> None:
    mailbox, port = smtp
    text = "Down\r\nBcc: evil@example.com\r\n\r\nforged body\x00\x1b[2J\u2028To: x@example.com"
    sent = login_mail(port, env).send(message(key="esc-4/1", text=text), "revops@example.com")
    assert sent.receipt == "delivered", sent.reason
    [envelope] = mailbox.messages
    assert envelope.rcpt_tos == ["revops@example.com"]
    content = envelope.content if isinstance(envelope.content, bytes) else b""
    assert b"\x00" not in content and b"\x1b" not in content
    mail = email.message_from_bytes(content, policy=email.policy.default)
    assert mail["Bcc"] is None and mail.get_all("To") == ["revops@example.com"]
    one_line = "Down Bcc: evil@example.com forged body\ufffd\ufffd[2J To: x@example.com"
    assert mail["Subject"] == f"[escalade] {one_line}"
    body = mail.get_body()
    assert body is not None and body.get_content().splitlines()[0] == one_line
