"""Acknowledging from the message in a real browser (issue #10): the link of a mail caught
by a real SMTP server on loopback opens a confirm page that writes nothing; Confirm
acknowledges once, and a second visit is refused with a page that says why. A Slack
action signed as Slack signs acknowledges; a bad signature is 401.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from playwright.sync_api import expect

from tests.browser.conftest import (
    SLACK_SECRET,
    Browser,
    Served,
    check_page,
    check_png,
    require_chromium,
    sign_in,
    timeline_row,
)

require_chromium()


def history(served: Served, ticket: str, kind: str) -> list[dict[str, Any]]:
    return [h for h in served.status(ticket)["history"] if h["kind"] == kind]


def test_a_mailed_link_confirms_then_acknowledges_once_and_then_says_why_not(
    page: Any, browser: Browser, served: Served, tmp_path: Path
) -> None:
    served.post_event("L-1")
    served.transfer("L-1", "carol", "Needs the engineering lead")  # carol: mail only
    url = served.link_for("carol@example.com", "L-1")
    assert url.startswith(served.url + "/ack/")

    answer = page.goto(url)  # nobody signed in: the link is the credential
    assert answer is not None and answer.status == 200
    check_page(page, browser, "Acknowledge ticket L-1? · Escalade")
    expect(page.locator("h1")).to_have_text("Acknowledge ticket L-1?")
    expect(page.locator("main")).to_contain_text("Carol Diaz (carol) is the transfer owner")
    page.screenshot(path=str(tmp_path / "ack-confirm.png"), full_page=True)
    check_png(tmp_path / "ack-confirm.png", page.viewport_size["width"])
    assert served.status("L-1")["state"] == "assigned"  # showing the page wrote nothing

    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Acknowledge as carol").click()
    assert posted.value.status == 200
    check_page(page, browser, "Acknowledged · Escalade")
    expect(page.locator("main")).to_contain_text("ticket L-1 acknowledged by carol")
    status = served.status("L-1")
    assert (status["state"], status["owner"]) == ("acknowledged", "carol")
    [acked] = history(served, "L-1", "acknowledged")
    assert acked["actor"] == "carol"

    again = page.goto(url)
    assert again is not None and again.status == 410
    check_page(page, browser, "Already acknowledged · Escalade")
    expect(page.locator("main")).to_contain_text("ticket L-1 was already acknowledged by carol")
    expect(page.get_by_role("button")).to_have_count(0)  # nothing left to press
    page.screenshot(path=str(tmp_path / "ack-used.png"), full_page=True)
    check_png(tmp_path / "ack-used.png", page.viewport_size["width"])
    assert len(history(served, "L-1", "acknowledged")) == 1

    claims, _, mac = url.rpartition("/ack/")[2].partition(".")
    forged = f"{served.url}/ack/{claims}.{mac[:-2]}{'AA' if mac[-2:] != 'AA' else 'BB'}"
    refused = page.goto(forged)
    assert refused is not None and refused.status == 403
    check_page(page, browser, "Not a valid link · Escalade")
    expect(page.locator("main")).to_contain_text("not one Escalade issued")

    # The lead sees the acknowledgment, by carol, on the ticket's page.
    sign_in(page, served, "dana")
    page.goto(served.url + "/tickets/L-1/view")
    check_page(page, browser, "Ticket L-1 · Escalade")
    expect(timeline_row(page, "acknowledged").locator("td[data-label=Actor]")).to_have_text("carol")


def slack_request(
    token: str, user: str, secret: str = SLACK_SECRET
) -> tuple[bytes, dict[str, str]]:
    """The body and headers Slack sends when ``user`` presses the Acknowledge button."""
    payload = {
        "type": "block_actions",
        "user": {"id": f"U0{user.upper()}", "username": user, "name": user},
        "team": {"id": "T0TEAM", "domain": "example"},
        "actions": [{"action_id": "escalade_ack", "type": "button", "value": token}],
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/x",
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    stamp = str(int(time.time()))
    mac = hmac.new(secret.encode(), b"v0:" + stamp.encode() + b":" + body, hashlib.sha256)
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": stamp,
        "X-Slack-Signature": "v0=" + mac.hexdigest(),
    }
    return body, headers


def test_a_signed_slack_action_acknowledges_and_a_bad_signature_is_401(
    page: Any, browser: Browser, served: Served
) -> None:
    served.post_event("K-1")
    owner = served.owner("K-1")  # alice or bob, on call this week: reached on Slack
    token = served.slack_button(f"@{owner}", "K-1")

    with served.api() as client:
        body, headers = slack_request(token, owner, secret="not-the-signing-secret")
        unsigned = client.post("/slack/actions", content=body, headers=headers)
        assert unsigned.status_code == 401, unsigned.text
        assert served.status("K-1")["state"] == "assigned"

        body, headers = slack_request(token, owner)
        signed = client.post("/slack/actions", content=body, headers=headers)
    assert signed.status_code == 200, signed.text
    assert f"ticket K-1 acknowledged by {owner}" in signed.json()["text"]
    assert served.status("K-1")["state"] == "acknowledged"
    [acked] = history(served, "K-1", "acknowledged")
    assert acked["actor"] == owner

    sign_in(page, served, owner)
    page.goto(served.url + "/tickets/K-1/view")
    check_page(page, browser, "Ticket K-1 · Escalade")
    expect(page.locator("#ticket-summary")).to_contain_text("acknowledged")
    expect(timeline_row(page, "acknowledged").locator("td[data-label=Actor]")).to_have_text(owner)
