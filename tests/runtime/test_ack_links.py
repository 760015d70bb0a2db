"""Acknowledging from the message (issue #10): signed links in the assignment mail and a
Slack button, on a real SQLite store with the repository's pack, a real SMTP server
(aiosmtpd) and a real Slack webhook receiver on loopback, and the app of ``escalade
serve`` (:func:`escalade.runtime.web.api.create_app`) under Starlette's test client.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import re
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from starlette.testclient import TestClient

from escalade.runtime.app import new_engine
from escalade.runtime.clock import VirtualClock
from escalade.runtime.engine import Engine
from escalade.runtime.links import (
    AckLink,
    LevelKey,
    link_expiry,
    link_refusal,
    read_token,
    sign_token,
)
from escalade.runtime.notify.channels import PagerWebhook, SignedWebhook, SmtpEmail
from escalade.runtime.notify.router import ChannelNotifier
from escalade.runtime.server import EscaladeServer
from escalade.runtime.settings import SettingsError, parse_settings
from escalade.runtime.store import OutboxMessage
from escalade.runtime.store.sqlite import SQLiteStore
from escalade.runtime.web.api import create_app
from tests.runtime.conftest import T0, critical
from tests.runtime.test_notify_channels import (
    PAGER_SECRET,
    WEBHOOK_SECRET,
    Mailbox,
    Receiver,
    receiving,
    smtp_server,
)

PUBLIC_URL = "https://escalade.test"
LINK_SECRET = "link-secret-for-loopback-tests-0123456789"
SLACK_SECRET = "slack-signing-secret-for-loopback"
LINK = re.compile(r"^Acknowledge: (https://escalade\.test/ack/([A-Za-z0-9_.-]+))", re.MULTILINE)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The secrets by name, and loopback only: no HTTP proxy sees these requests."""
    monkeypatch.setenv("ESC_TEST_LINK_SECRET", LINK_SECRET)
    monkeypatch.setenv("ESC_TEST_SLACK_SIGNING", SLACK_SECRET)
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)


@dataclass
class Rig:
    """The runtime as ``escalade serve`` wires it, with the test's handles on it."""

    engine: Engine
    db: Path
    mailbox: Mailbox
    receiver: Receiver
    client: TestClient

    def mails_to(self, address: str) -> list[EmailMessage]:
        found = []
        for envelope in self.mailbox.messages:
            if address in envelope.rcpt_tos:
                raw = envelope.original_content or b""
                mail = email.message_from_bytes(raw, policy=email.policy.default)
                assert isinstance(mail, EmailMessage)
                found.append(mail)
        return found

    def link_for(self, address: str) -> str:
        """The acknowledgment link of the latest mail to ``address``."""
        mail = self.mails_to(address)[-1]
        body = mail.get_body(("plain",))
        assert body is not None
        found = LINK.search(body.get_content())
        assert found is not None, body.get_content()
        return found.group(1)

    def slack_messages(self, channel: str) -> list[dict[str, Any]]:
        return [r.json for r in self.receiver.on("/slack") if r.json.get("channel") == channel]

    def button(self, channel: str) -> dict[str, Any]:
        """The Acknowledge button of the latest Slack message to ``channel``."""
        [actions] = [
            b for b in self.slack_messages(channel)[-1]["blocks"] if b["type"] == "actions"
        ]
        [button] = actions["elements"]
        assert isinstance(button, dict)
        return button

    def fail_over(self, at: int) -> None:
        """Fire the timers due at ``at`` (the primary's ack is 5m, the backup's 10m)."""
        self.engine.advance(at)

    def dump(self) -> list[str]:
        """Every row of the store, as SQL (another connection: what is committed)."""
        with sqlite3.connect(self.db) as conn:
            return list(conn.iterdump())

    def audit(self, kind: str) -> list[Any]:
        return [r for r in self.engine.store.audit_rows() if r.kind == kind]

    def slack(
        self, payload: dict[str, Any], *, at: float | None = None, key: str = SLACK_SECRET
    ) -> Any:
        """POST ``payload`` to /slack/actions as Slack does, signed with ``key`` at ``at``."""
        body = urlencode({"payload": json.dumps(payload)}).encode()
        stamp = str(int(time.time() if at is None else at))
        mac = hmac.new(key.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
        headers = {
            "content-type": "application/x-www-form-urlencoded",
            "x-slack-request-timestamp": stamp,
            "x-slack-signature": "v0=" + mac.hexdigest(),
        }
        return self.client.post("/slack/actions", content=body, headers=headers)


def settings_text(smtp_port: int, receiver: Receiver) -> str:
    """Every channel configured (the pack addresses them all), the links signed."""
    return (
        "runtime:\n"
        f"  server: {{public_url: '{PUBLIC_URL}/', link_secret_env: ESC_TEST_LINK_SECRET}}\n"
        "  notifiers:\n"
        f"    email: {{host: 127.0.0.1, port: {smtp_port}, sender: escalade@example.com}}\n"
        "    slack:\n"
        "      webhook_url_env: ESC_TEST_SLACK_URL\n"
        "      signing_secret_env: ESC_TEST_SLACK_SIGNING\n"
        f"    webhook: {{url: '{receiver.url('/hook')}', secret_env: ESC_TEST_WEBHOOK_SECRET}}\n"
        f"    pager: {{url: '{receiver.url('/pager')}', secret_env: ESC_TEST_PAGER_SECRET}}\n"
    )


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """Slack, the webhook and the pager on loopback, checking the signatures themselves."""
    with receiving() as rec:
        yield rec


@pytest.fixture
def make_rig(
    tmp_path: Path, pack: dict[str, Any], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[], Rig]]:
    """A factory: a real SMTP server, the loopback receivers, links signed with the secret
    of ``runtime.server.link_secret_env``, the pack active at T0."""
    closing: list[Callable[[], None]] = []
    monkeypatch.setenv("ESC_TEST_SLACK_URL", receiver.url("/slack"))
    monkeypatch.setenv("ESC_TEST_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("ESC_TEST_PAGER_SECRET", PAGER_SECRET)

    def factory() -> Rig:
        smtp = smtp_server(auth_require_tls=False)
        mailbox, port = smtp.__enter__()
        closing.append(lambda: smtp.__exit__(None, None, None))
        settings = parse_settings(settings_text(port, receiver), tmp_path)
        assert settings.notifiers is not None
        db = tmp_path / "links.sqlite"
        store = SQLiteStore(str(db))
        closing.append(store.close)
        engine = new_engine(store, ChannelNotifier.from_settings(settings.notifiers), settings)
        engine.clock = VirtualClock(T0)
        engine.activate(pack, T0)
        server = EscaladeServer(engine, "127.0.0.1", 0)
        closing.append(server.stop)
        client = TestClient(create_app(server), base_url=PUBLIC_URL)  # no lifespan: no ticker
        return Rig(engine, db, mailbox, receiver, client)

    yield factory
    for close in reversed(closing):
        close()


@pytest.fixture
def rig(make_rig: Callable[[], Rig]) -> Rig:
    """T1 was just assigned to alice (on call for cust_ops_oncall), who got a Slack message."""
    made = make_rig()
    made.engine.receive(critical("T1", "e1", status="escalated"), T0)
    esc = made.engine.store.open_escalation("T1")
    assert esc is not None and (esc.state, esc.owner, esc.level) == ("assigned", "alice", "primary")
    return made


def block_actions(token: str, **user: str) -> dict[str, Any]:
    """A Slack ``block_actions`` payload: ``user`` clicked the Acknowledge button."""
    return {
        "type": "block_actions",
        "user": {"id": "U0ALICE", "username": "alice", "name": "alice", **user},
        "team": {"id": "T0TEAM", "domain": "example"},
        "actions": [
            {"action_id": "escalade_ack", "block_id": "b1", "type": "button", "value": token}
        ],
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/x",
    }


BACKUP_AT = T0 + 301  # the primary's ack timeout (5m) has passed: carol, the backup, by mail


# --- the mail and the page -----------------------------------------------------------


def test_the_assignment_mail_carries_a_link_and_get_writes_nothing(rig: Rig) -> None:
    rig.fail_over(BACKUP_AT)
    url = rig.link_for("carol@example.com")  # carol has no Slack: the mail reaches her
    esc = rig.engine.store.open_escalation("T1")
    assert esc is not None and (esc.owner, esc.level) == ("carol", "backup")
    # A pure function of the secret and the escalation: any process builds the same link.
    level = LevelKey("enterprise_critical", 1, 0, "backup")
    # Issued when the primary's 5m ran out; carol's ack is 10m: the link lives an hour.
    link = AckLink(esc.id, "carol", level, T0 + 300 + 3600)
    assert url == f"{PUBLIC_URL}/ack/{sign_token(LINK_SECRET.encode(), link)}"
    mail = rig.mails_to("carol@example.com")[-1]
    assert (
        str(mail["Subject"]).strip()
        == "[escalade] You are the backup owner of ticket T1 (enterprise_critical)"
    )

    before = rig.dump()
    page = rig.client.get(url)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "<h1>Acknowledge ticket T1?</h1>" in page.text
    assert "Carol Diaz (carol) is the backup owner of ticket T1" in page.text
    assert '<form method="post"><button type="submit">Acknowledge as carol</button>' in page.text
    assert "<script" not in page.text and "<style" not in page.text and "style=" not in page.text
    assert rig.client.head(url).status_code == 200
    assert rig.dump() == before  # a mail scanner following the link acknowledges nothing


def test_post_acknowledges_once_and_a_second_use_is_gone(rig: Rig) -> None:
    rig.fail_over(BACKUP_AT)
    url = rig.link_for("carol@example.com")
    done = rig.client.post(url)
    assert done.status_code == 200, done.text
    assert "ticket T1 acknowledged by carol." in done.text
    esc = rig.engine.store.open_escalation("T1")
    assert esc is not None and (esc.state, esc.owner) == ("acknowledged", "carol")
    [row] = rig.audit("acknowledged")
    assert (row.actor, row.detail) == ("carol", {"via": "link"})

    before = rig.dump()
    again = rig.client.post(url)
    assert again.status_code == 410
    assert "Already acknowledged" in again.text
    assert "ticket T1 was already acknowledged by carol at 2026-11-27T10:05:01Z" in again.text
    assert rig.client.get(url).status_code == 410
    assert rig.dump() == before
    assert len(rig.audit("acknowledged")) == 1


def test_a_tampered_or_foreign_link_is_forbidden(rig: Rig) -> None:
    token = rig.button("@alice")["value"]
    claims, _, mac = token.partition(".")
    esc = rig.engine.store.open_escalation("T1")
    assert esc is not None
    as_bob = AckLink(esc.id, "bob", LevelKey("enterprise_critical", 0, 0, "primary"), T0 + 7200)
    forged = [
        f"{claims[:-2]}{'A' if claims[-2] != 'A' else 'B'}{claims[-1]}.{mac}",  # claims altered
        f"{claims}.{mac[:-1]}{'A' if mac[-1] != 'A' else 'B'}",  # signature altered
        sign_token(b"another-key-of-32-bytes-0123456789", as_bob),  # signed with another key
        claims,  # no signature
        "not-a-token",
    ]
    before = rig.dump()
    for bad in forged:
        for answer in (rig.client.get(f"/ack/{bad}"), rig.client.post(f"/ack/{bad}")):
            assert answer.status_code == 403, bad
            assert "not one Escalade issued" in answer.text
    assert rig.dump() == before
    assert rig.client.post(f"/ack/{token}").status_code == 200  # the real one still works


def test_a_link_stops_working_when_the_escalation_fails_over(rig: Rig) -> None:
    rig.fail_over(BACKUP_AT)
    url = rig.link_for("carol@example.com")
    rig.fail_over(BACKUP_AT + 601)  # carol's ack 10m: dana, the escalation owner
    esc = rig.engine.store.open_escalation("T1")
    assert esc is not None and (esc.owner, esc.level) == ("dana", "escalation")
    gone = rig.client.post(url)
    assert gone.status_code == 410
    assert "moved on from the backup level this link was issued for" in gone.text
    assert "now: escalation owner dana" in gone.text
    dana = rig.client.post(rig.link_for("dana@example.com"))
    assert dana.status_code == 200 and "acknowledged by dana" in dana.text
    assert rig.client.post(f"/ack/{rig.button('@alice')['value']}").status_code == 410


def test_a_failover_that_is_due_refuses_the_link_before_it_acknowledges(rig: Rig) -> None:
    token = rig.button("@alice")["value"]
    clock = rig.engine.clock
    assert isinstance(clock, VirtualClock)
    clock.set(BACKUP_AT)  # the primary's ack timer is due; no tick fired it yet
    assert rig.client.get(f"/ack/{token}").status_code == 200  # the page only reads
    gone = rig.client.post(f"/ack/{token}")
    assert gone.status_code == 410 and "moved on from the primary level" in gone.text
    assert not rig.audit("acknowledged")


def test_a_link_whose_person_no_longer_holds_the_level_is_refused(rig: Rig) -> None:
    token = rig.button("@alice")["value"]
    rig.engine.absent("alice", T0 + 3 * 3600, T0 + 60, by="dana")  # on call passes to bob
    esc = rig.engine.store.open_escalation("T1")
    assert esc is not None and (esc.owner, esc.level, esc.level_index) == ("bob", "primary", 0)
    gone = rig.client.post(f"/ack/{token}")
    assert gone.status_code == 410
    assert "alice is no longer the assignee of ticket T1 (owner bob)" in gone.text
    bob = rig.client.post(f"/ack/{rig.button('@bob')['value']}")
    assert bob.status_code == 200 and "acknowledged by bob" in bob.text


def test_a_link_expires_at_its_time(rig: Rig) -> None:
    link = read_token(LINK_SECRET.encode(), rig.button("@alice")["value"])
    assert isinstance(link, AckLink)
    assert link.expires == link_expiry(T0, 300) == T0 + 3600  # ack 5m: at least an hour
    esc = rig.engine.store.open_escalation("T1")
    pack = rig.engine.active().pack
    assert link_refusal(link, esc, pack, T0 + 3599) is None
    late = link_refusal(link, esc, pack, T0 + 3600)
    assert late is not None and late.kind == "expired"
    assert late.reason == "this link expired at 2026-11-27T11:00:00Z"


def test_messages_carry_no_link_without_the_key(
    make_rig: Callable[[], Rig], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ESC_TEST_LINK_SECRET")
    rig = make_rig()
    rig.engine.receive(critical("T1", "e1", status="escalated"), T0)
    rig.fail_over(BACKUP_AT)
    [mail] = rig.mails_to("carol@example.com")
    assert "Acknowledge:" not in mail.as_string()
    assert "blocks" not in rig.slack_messages("@alice")[-1]
    assert all("ack_url" not in m.payload for m in rig.engine.store.outbox())
    answer = rig.client.get("/ack/anything.x")
    assert answer.status_code == 503 and "ESC_TEST_LINK_SECRET is not set" in answer.text


# --- Slack -------------------------------------------------------------------------


def test_the_slack_button_acknowledges_as_the_clicking_person(rig: Rig) -> None:
    [dm] = rig.slack_messages("@alice")
    assert "You are the primary owner of ticket T1" in dm["text"]
    button = rig.button("@alice")
    assert (button["action_id"], button["text"]["text"]) == ("escalade_ack", "Acknowledge")
    assert not rig.mails_to("alice@example.com")  # Slack reached her first
    [room] = rig.slack_messages("#cust-ops-oncall")
    assert "blocks" not in room  # a channel is not an assignee: no button

    answer = rig.slack(block_actions(button["value"]))
    assert answer.status_code == 200
    assert answer.json() == {"text": "ticket T1 acknowledged by alice."}
    [row] = rig.audit("acknowledged")
    assert (row.actor, row.detail) == ("alice", {"via": "slack"})
    again = rig.slack(block_actions(button["value"]))
    assert again.status_code == 200
    assert again.json()["text"].startswith("Not acknowledged: ticket T1 was already acknowledged")


def test_slack_requests_must_be_signed_and_fresh(rig: Rig) -> None:
    token = rig.button("@alice")["value"]
    before = rig.dump()
    forged = rig.slack(block_actions(token), key="not-the-signing-secret")
    assert forged.status_code == 401 and "not signed" in forged.json()["error"]
    stale = rig.slack(block_actions(token), at=time.time() - 6 * 60)
    assert stale.status_code == 401 and "more than 5 minutes" in stale.json()["error"]
    unsigned = rig.client.post("/slack/actions", content=b"payload=%7B%7D")
    assert unsigned.status_code == 401
    assert rig.dump() == before


def test_an_unknown_slack_user_is_told_why_and_nothing_changes(rig: Rig) -> None:
    token = rig.button("@alice")["value"]
    before = rig.dump()
    stranger = rig.slack(block_actions(token, id="U0MALLORY", username="mallory", name="mallory"))
    assert stranger.status_code == 200
    assert stranger.json() == {
        "text": "Not acknowledged: Slack user mallory is not a person of the directory"
        " (no matching slack contact)"
    }
    bob = rig.slack(block_actions(token, id="U0BOB", username="bob", name="bob"))
    assert bob.status_code == 200
    assert "this is alice's link, and Slack user U0BOB is bob" in bob.json()["text"]
    assert rig.dump() == before


# --- what each channel carries ---------------------------------------------------------


def _message(**payload: Any) -> OutboxMessage:
    base = {"policy": "enterprise_critical", "text": "You are the primary owner of ticket T1"}
    return OutboxMessage("esc-1/4", 1, "T1", "page", "carol", "person", base | payload, T0)


def test_webhooks_pages_and_mail_carry_the_link_and_only_a_plain_one() -> None:
    url = f"{PUBLIC_URL}/ack/abc.def"
    with_link = _message(ack_url=url)
    pager = PagerWebhook("http://127.0.0.1:9/pager", "UNSET").shape(with_link, "carol-diaz", T0)
    assert pager["ack_url"] == url
    assert pager["links"] == [{"href": url, "text": "Acknowledge"}]
    hook = SignedWebhook("http://127.0.0.1:9/hook", "UNSET").shape(with_link, None, T0)
    assert hook["ack_url"] == url and hook["payload"]["ack_url"] == url
    mail = SmtpEmail("127.0.0.1", "escalade@example.com").compose(with_link, "carol@example.com")
    assert f"\nAcknowledge: {url}\n" in mail.get_content()
    for bad in (f"{url}\nBcc: x@example.com", "javascript:alert(1)/ack/x", f"{url}<b>"):
        shaped = PagerWebhook("http://127.0.0.1:9/pager", "UNSET").shape(
            _message(ack_url=bad), "c", T0
        )
        assert "ack_url" not in shaped
        composed = SmtpEmail("127.0.0.1", "e@example.com").compose(_message(ack_url=bad), "c@x.y")
        assert "Acknowledge:" not in composed.get_content()


# --- settings ---------------------------------------------------------------------------


def test_link_settings_are_read_and_their_mistakes_located(tmp_path: Path) -> None:
    receiver = Receiver(secrets={}, port=9)
    settings = parse_settings(settings_text(2525, receiver), tmp_path)
    assert settings.server.public_url == f"{PUBLIC_URL}/"
    assert settings.server.link_secret_env == "ESC_TEST_LINK_SECRET"
    assert settings.notifiers is not None and settings.notifiers.slack is not None
    assert settings.notifiers.slack.signing_secret_env == "ESC_TEST_SLACK_SIGNING"
    bad = (
        "runtime:\n"
        "  server:\n"
        "    public_url: 'https://user:pw@escalade.test'\n"
        "    link_secret: hunter2hunter2hunter2\n"
        "  notifiers:\n"
        "    slack: {webhook_url_env: SLACK_URL, signing_secret: abc}\n"
    )
    with pytest.raises(SettingsError) as caught:
        parse_settings(bad, tmp_path)
    assert str(caught.value).splitlines() == [
        "escalade.yaml:3:17: runtime.server.public_url: credentials in a URL are an inline"
        " secret; links are signed with link_secret_env",
        "escalade.yaml:4:5: runtime.server.link_secret: secrets are never written in"
        " escalade.yaml; put it in an environment variable and use link_secret_env",
        "escalade.yaml:6:41: runtime.notifiers.slack.signing_secret: secrets are never written"
        " in escalade.yaml; put it in an environment variable and use signing_secret_env",
    ]
    assert "hunter2" not in str(caught.value)
    half = "runtime:\n  server:\n    public_url: 'ftp://escalade.test/<x>'\n"
    with pytest.raises(SettingsError) as caught:
        parse_settings(half, tmp_path)
    assert str(caught.value).splitlines() == [
        "escalade.yaml:3:5: runtime.server.public_url needs link_secret_env too",
        "escalade.yaml:3:17: runtime.server.public_url: must be an http:// or https:// URL"
        " without blanks, quotes or angle brackets",
    ]
