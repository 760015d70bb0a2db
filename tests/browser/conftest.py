"""Browser tests: Debian's Chromium, driven by Playwright, against a real ``escalade serve``.

The server is what ``escalade serve`` runs: :class:`EscaladeServer` on 127.0.0.1:0 with
its timer thread, over a real SQLite file with the repository's ``generated/rulepack.json``
active, the engine wired by :func:`escalade.runtime.app.new_engine` (the wall clock, the
acknowledgment links of ``runtime.server.public_url`` and ``link_secret_env``) and the
notifier of ``runtime.notifiers``: a real SMTP server (aiosmtpd) and one HTTP receiver for
Slack, the webhook and the pager, all on loopback. People sign in with API tokens made
through :mod:`escalade.runtime.tokens`, as ``escalade token create`` makes them.

Chromium runs headless with a fresh user data dir and without its background networking
(a closed network: it would otherwise try to reach Google). The modules skip, saying
why, only when ``/usr/bin/chromium`` is missing: ``scripts/debian-tool-for-tests.sh /usr/bin/chromium chromium fonts-dejavu-core``
installs it, and CI runs that script.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import expect, sync_playwright

from escalade.runtime.app import new_engine
from escalade.runtime.clock import format_time
from escalade.runtime.links import link_config
from escalade.runtime.notify.router import ChannelNotifier
from escalade.runtime.pack import RulePack
from escalade.runtime.server import EscaladeServer
from escalade.runtime.settings import parse_settings
from escalade.runtime.store.sqlite import SQLiteStore
from escalade.runtime.tokens import create_token

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "generated" / "rulepack.json"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT = 10.0  # seconds for any one wait
LINK_SECRET = "browser-link-secret-0123456789abcdef"
SLACK_SECRET = "browser-slack-signing-secret"
WEBHOOK_SECRET = "browser-webhook-secret"
PAGER_SECRET = "browser-pager-secret"
ENVIRON = {
    "ESC_BROWSER_LINK_SECRET": LINK_SECRET,
    "ESC_BROWSER_SLACK_SIGNING": SLACK_SECRET,
    "ESC_BROWSER_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "ESC_BROWSER_PAGER_SECRET": PAGER_SECRET,
}
# People with a token: (principal, role). The on-call member of cust_ops_oncall (alice or
# bob, by the week) owns a new enterprise critical ticket; carol is a transfer target with
# mail only; dana is the lead.
PEOPLE = {"alice": "responder", "bob": "responder", "carol": "responder", "dana": "lead"}
LINK = re.compile(r"^Acknowledge: (http://\S+/ack/\S+)", re.MULTILINE)


def require_chromium() -> None:
    """Skip the calling test module, saying why, when Debian's Chromium is not installed."""
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is missing: run scripts/debian-tool-for-tests.sh /usr/bin/chromium chromium (as root on Debian;"
            " CI does) to install Debian's chromium package",
            allow_module_level=True,
        )


# --- the receivers: SMTP and HTTP on loopback ---------------------------------------


@dataclass
class Inbox:
    """What the loopback receivers got: mails (aiosmtpd) and posts (Slack and webhooks)."""

    mails: list[tuple[list[str], bytes]] = field(default_factory=list)
    posts: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd's hook: keep the envelope's recipients and the raw message."""
        with self.lock:
            self.mails.append((list(envelope.rcpt_tos), bytes(envelope.original_content or b"")))
        return "250 Message accepted for delivery"

    def mails_to(self, address: str) -> list[EmailMessage]:
        with self.lock:
            raw = [data for rcpt, data in self.mails if address in rcpt]
        found = []
        for data in raw:
            mail = message_from_bytes(data, policy=policy.default)
            assert isinstance(mail, EmailMessage)
            found.append(mail)
        return found

    def slack_to(self, channel: str) -> list[dict[str, Any]]:
        with self.lock:
            bodies = [json.loads(body) for path, body in self.posts if path == "/slack"]
        return [b for b in bodies if b.get("channel") == channel]


def _http_receiver(inbox: Inbox) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with inbox.lock:
                inbox.posts.append((self.path, body))
            answer = b"ok"  # Slack's answer; the webhook and the pager take any 2xx
            self.send_response(200)
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), Handler)


def settings_text(public_url: str | None, smtp_port: int, http_port: int) -> str:
    """The ``runtime:`` section of escalade.yaml this server runs with (the links only once
    ``public_url`` is known)."""
    receiver = f"http://127.0.0.1:{http_port}"
    server = (
        f"  server: {{public_url: '{public_url}', link_secret_env: ESC_BROWSER_LINK_SECRET}}\n"
        if public_url
        else ""
    )
    return (
        "runtime:\n"
        f"{server}"
        "  notifiers:\n"
        f"    email: {{host: 127.0.0.1, port: {smtp_port}, sender: escalade@example.com}}\n"
        "    slack:\n"
        "      webhook_url_env: ESC_BROWSER_SLACK_URL\n"
        "      signing_secret_env: ESC_BROWSER_SLACK_SIGNING\n"
        f"    webhook: {{url: '{receiver}/hook', secret_env: ESC_BROWSER_WEBHOOK_SECRET}}\n"
        f"    pager: {{url: '{receiver}/pager', secret_env: ESC_BROWSER_PAGER_SECRET}}\n"
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --- the server -----------------------------------------------------------------------


@dataclass
class Served:
    """A running server and the test's handles on it."""

    server: EscaladeServer
    inbox: Inbox
    secrets: dict[str, str]  # person or "ingest" -> API token secret

    @property
    def url(self) -> str:
        return self.server.url

    def api(self) -> httpx.Client:
        """An HTTP client for the JSON API (no proxy from the environment: loopback)."""
        return httpx.Client(base_url=self.url, timeout=TIMEOUT, trust_env=False)

    def post_event(self, ticket: str, title: str = "Checkout down", **fields: Any) -> None:
        """An enterprise critical ``ticket.created`` through ``POST /events`` (ingest token)."""
        data: dict[str, Any] = {
            "ticket": {"id": ticket, "title": title, "severity": "critical", "status": "new"},
            "account": {"id": "acme", "name": "Acme", "tier": "enterprise"},
        }
        data["ticket"].update(fields)
        event = {
            "id": f"e-{ticket}",
            "type": "ticket.created",
            "at": format_time(time.time()),
            "data": data,
        }
        with self.api() as client:
            answer = client.post("/events", json=event, headers=self.bearer("ingest"))
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] == "applied", answer.text

    def bearer(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[who]}"}

    def post_dead_letter(self) -> None:
        """An event that is not JSON: 422, kept in the dead letters."""
        with self.api() as client:
            answer = client.post(
                "/events",
                content=b"{not json",
                headers={**self.bearer("ingest"), "Content-Type": "application/json"},
            )
        assert answer.status_code == 422, answer.text

    def store_status(self, ticket: str) -> dict[str, Any] | None:
        """``GET /tickets/<id>`` as the lead (None for a ticket without an escalation)."""
        with self.api() as client:
            answer = client.get(f"/tickets/{ticket}", headers=self.bearer("dana"))
        if answer.status_code == 404:
            return None
        assert answer.status_code == 200, answer.text
        found = answer.json()
        assert isinstance(found, dict)
        return found

    def status(self, ticket: str) -> dict[str, Any]:
        """``GET /tickets/<id>`` as the lead."""
        found = self.store_status(ticket)
        assert found is not None, f"ticket {ticket} has no escalation"
        return found

    def owner(self, ticket: str) -> str:
        owner = self.status(ticket)["owner"]
        assert isinstance(owner, str)
        return owner

    def transfer(self, ticket: str, to: str, reason: str, sla: str = "2h") -> None:
        """A transfer through the JSON API, as the lead."""
        body = {"to": to, "reason": reason, "sla": sla}
        with self.api() as client:
            answer = client.post(
                f"/tickets/{ticket}/transfer", json=body, headers=self.bearer("dana")
            )
        assert answer.status_code == 200, answer.text

    def link_for(self, address: str, ticket: str) -> str:
        """The acknowledgment link of the latest mail to ``address`` about ``ticket``."""

        def found() -> str | None:
            for mail in reversed(self.inbox.mails_to(address)):
                body = mail.get_body(("plain",))
                text = body.get_content() if body is not None else ""
                link = LINK.search(text)
                if f"Ticket: {ticket}" in text and link is not None:
                    return link.group(1)
            return None

        return wait_for(found, f"a mail to {address} with a link for {ticket}")

    def slack_button(self, channel: str, ticket: str) -> str:
        """The token of the Acknowledge button in the latest Slack message about ``ticket``."""

        def found() -> str | None:
            for body in reversed(self.inbox.slack_to(channel)):
                for block in body.get("blocks", []):
                    for element in block.get("elements", []) if block["type"] == "actions" else []:
                        if f"ticket {ticket} " in body["text"]:
                            return str(element["value"])
            return None

        return wait_for(found, f"a Slack message to {channel} with a button for {ticket}")


def wait_for(probe: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """The first truthy answer of ``probe``, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = probe()
        if answer:
            return answer
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The server of this module, with tokens for :data:`PEOPLE` and an ingest service."""
    tmp = tmp_path_factory.mktemp("served")
    inbox = Inbox()
    receiver = _http_receiver(inbox)
    receiving = threading.Thread(
        target=receiver.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    receiving.start()
    smtp_port = free_port()  # aiosmtpd checks it is up by connecting to the port it was given
    smtp = Controller(inbox, hostname="127.0.0.1", port=smtp_port, ready_timeout=5.0)
    smtp.start()
    environ = {**ENVIRON, "ESC_BROWSER_SLACK_URL": f"http://127.0.0.1:{receiver.server_port}/slack"}
    store = SQLiteStore(str(tmp / "escalade.db"))
    server: EscaladeServer | None = None
    try:
        # public_url names the port, known once the server has bound it: the engine is wired
        # as escalade serve wires it, and the links are configured from the full settings.
        draft = parse_settings(settings_text(None, smtp_port, receiver.server_port), tmp)
        assert draft.notifiers is not None
        engine = new_engine(store, ChannelNotifier.from_settings(draft.notifiers, environ), draft)
        engine.activate(RulePack.load(PACK).raw, actor="operator", reason="browser tests")
        server = EscaladeServer(engine, "127.0.0.1", 0, environ=environ)
        settings = parse_settings(settings_text(server.url, smtp_port, receiver.server_port), tmp)
        engine.rt.links = link_config(settings, environ)
        now = int(time.time())
        secrets = {
            person: create_token(
                store, principal=f"person:{person}", role=role, by="operator", at=now
            ).secret
            for person, role in PEOPLE.items()
        }
        secrets["ingest"] = create_token(
            store, principal="service:zendesk", role="ingest", by="operator", at=now
        ).secret
        server.start()
        yield Served(server, inbox, secrets)
    finally:
        if server is not None:
            server.stop(timeout=TIMEOUT)
        store.close()
        smtp.stop()
        receiver.shutdown()
        receiver.server_close()
        receiving.join(TIMEOUT)


# --- the browser ----------------------------------------------------------------------


@dataclass
class Browser:
    """One Chromium with a fresh profile; a new page per test, with what it reported."""

    context: Any  # playwright.sync_api.BrowserContext
    dialogs: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    failed_resources: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    """Debian's Chromium, headless, with a fresh user data dir (no background networking)."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
            locale="en-US",
            timezone_id="UTC",
        )
        context.set_default_timeout(TIMEOUT * 1000)
        try:
            yield Browser(context)
        finally:
            context.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Any]:
    """A fresh page with no cookie; a dialog is recorded (and dismissed), and so is every
    console error (a script error, or a violation of the content security policy) and every
    stylesheet, image or script that failed to load (a page's own 4xx is its answer)."""
    browser.context.clear_cookies()
    browser.dialogs.clear()
    browser.console_errors.clear()
    browser.failed_resources.clear()
    tab = browser.context.new_page()

    def on_dialog(dialog: Any) -> None:
        browser.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    def on_console(message: Any) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            browser.console_errors.append(message.text)

    def on_response(response: Any) -> None:
        if response.request.resource_type != "document" and response.status >= 400:
            browser.failed_resources.append(f"{response.status} {response.url}")

    tab.on("dialog", on_dialog)
    tab.on("console", on_console)
    tab.on("response", on_response)
    tab.on("pageerror", lambda error: browser.console_errors.append(str(error)))
    try:
        yield tab
    finally:
        tab.close()


# --- what every page must be ---------------------------------------------------------

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRACEBACK_MARKS = ("Traceback (most recent call last)", 'File "/', "site-packages")


def check_page(page: Any, browser: Browser, title: str | None = None) -> None:
    """What every page must be: no traceback in it, no dialog opened, no script error or
    content-security-policy violation in the console, no image, script or stylesheet that
    failed to load; ``title`` when given."""
    text = page.locator("body").inner_text()
    for mark in TRACEBACK_MARKS:
        assert mark not in text, f"{page.url} shows a traceback:\n{text}"
    assert browser.dialogs == [], f"{page.url} opened a dialog"
    assert browser.console_errors == [], f"{page.url}: {browser.console_errors}"
    assert browser.failed_resources == [], f"{page.url}: {browser.failed_resources}"
    if title is not None:
        expect(page).to_have_title(title)


def sign_in(page: Any, served: Served, who: str) -> None:
    """Sign in on /signin with ``who``'s personal API token; lands on Now."""
    page.goto(served.url + "/signin")
    page.locator("#signin-token").fill(served.secrets[who])
    page.locator("#signin-form button[type=submit]").click()
    expect(page).to_have_url(served.url + "/")
    expect(page.locator("form.signout")).to_contain_text(f"Signed in as {who}")


def summary_value(page: Any, term: str) -> Any:
    """The ``<dd>`` after the ``<dt>`` ``term`` in the ticket's summary."""
    return page.locator(f"#ticket-summary dt:text-is('{term}') + dd")


def timeline_row(page: Any, kind: str) -> Any:
    """The timeline rows of ``kind``."""
    return page.locator("#timeline-table tbody tr").filter(
        has=page.locator(f"td[data-label=Kind]:text-is('{kind}')")
    )


def check_png(path: Path, width: int) -> None:
    """A non-empty PNG whose header says ``width`` pixels across."""
    data = path.read_bytes()
    assert len(data) > 1000, f"{path} is {len(data)} bytes"
    assert data[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    shot_width, shot_height = struct.unpack(">II", data[16:24])
    assert shot_width == width and shot_height > 0
