"""The pages in a real browser (issue #10, "Tested in a real browser"): Debian's Chromium
under Playwright against ``escalade serve`` on loopback (see conftest.py).

Sign in with a personal API token; an event posted through the JSON API appears on
*Now* by itself (the page reloads itself); *Acknowledge* on the Ticket page; *Transfer*
refused beside its field without a reason, then done with one; *Reports*. A title
holding markup is text on every page, and no page shows a traceback. Each page is
screenshotted into the test's tmp dir and the PNG checked.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from escalade.runtime.web import pages
from tests.browser.conftest import (
    TIMEOUT,
    Browser,
    Served,
    check_page,
    check_png,
    require_chromium,
    sign_in,
    summary_value,
    timeline_row,
)

require_chromium()

MS = TIMEOUT * 1000


# --- signing in -----------------------------------------------------------------------


def test_sign_in_with_a_personal_token_and_out_again(
    page: Any, browser: Browser, served: Served
) -> None:
    page.goto(served.url + "/oncall")
    expect(page).to_have_url(served.url + "/signin?next=%2Foncall")
    check_page(page, browser, "Sign in · Escalade")

    page.locator("#signin-token").fill("esc_000000000000_not-a-real-token")
    page.locator("#signin-form button[type=submit]").click()
    expect(page.locator("#signin-token-error")).to_have_text("this token is unknown or revoked")
    expect(page.locator("#signin-token")).to_have_attribute("aria-invalid", "true")

    page.locator("#signin-token").fill(served.secrets["ingest"])
    page.locator("#signin-form button[type=submit]").click()
    expect(page.locator("#signin-token-error")).to_contain_text("only a person's token signs in")

    page.locator("#signin-token").fill(served.secrets["dana"])
    page.locator("#signin-form button[type=submit]").click()
    expect(page).to_have_url(served.url + "/oncall")  # back where they were going
    check_page(page, browser, "On call · Escalade")
    expect(page.locator("form.signout")).to_contain_text("Signed in as dana (lead)")
    expect(page.locator("nav[aria-label=Pages] a")).to_have_text(
        ["Now", "On call", "Reports", "Packs", "Dead letters"]
    )

    page.locator("form.signout button").click()
    expect(page).to_have_url(served.url + "/signin")
    page.goto(served.url + "/")
    expect(page).to_have_url(served.url + "/signin?next=%2F")


# --- Now ------------------------------------------------------------------------------


def test_a_posted_event_appears_on_now_by_itself(
    page: Any, browser: Browser, served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pages, "REFRESH", 1)  # the page's own reload, every second here
    sign_in(page, served, "dana")
    check_page(page, browser, "Now · Escalade")
    expect(page.locator("meta[http-equiv=refresh]")).to_have_attribute("content", "1")
    row = page.locator("#now-table tbody tr").filter(has=page.get_by_role("link", name="N-1"))
    expect(row).to_have_count(0)

    served.post_event("N-1", title="Payments failing for Acme")
    # No reload from the test: the page's meta refresh brings the new row.
    expect(row).to_have_count(1, timeout=MS)
    expect(row.locator("td[data-label=Policy]")).to_have_text("enterprise_critical")
    expect(row.locator("td[data-label=State]")).to_have_text("assigned")
    owner = served.owner("N-1")
    expect(row.locator("td[data-label=Owner]")).to_have_text(f"{owner} (for cust_ops_oncall)")
    expect(row.locator(".title")).to_have_text("Payments failing for Acme")

    monkeypatch.undo()  # back to the page's own interval, once it has reloaded again
    expect(page.locator("meta[http-equiv=refresh]")).to_have_attribute(
        "content", str(pages.REFRESH), timeout=MS
    )
    row.get_by_role("link", name="N-1").click()
    expect(page).to_have_url(served.url + "/tickets/N-1/view")
    check_page(page, browser, "Ticket N-1 · Escalade")


# --- the Ticket page ------------------------------------------------------------------


def test_acknowledge_on_the_ticket_page(page: Any, browser: Browser, served: Served) -> None:
    served.post_event("A-1")
    owner = served.owner("A-1")  # the on-call member of cust_ops_oncall this week
    sign_in(page, served, owner)
    row = page.locator("#now-table tbody tr").filter(has=page.get_by_role("link", name="A-1"))
    expect(row).to_have_count(1)  # a responder's Now shows the tickets they own
    row.get_by_role("link", name="A-1").click()
    check_page(page, browser, "Ticket A-1 · Escalade")
    expect(summary_value(page, "State")).to_have_text("assigned")

    page.locator("#ack-form").get_by_role("button", name="Acknowledge").click()
    expect(page).to_have_url(served.url + "/tickets/A-1/view?done=ack")
    check_page(page, browser, "Ticket A-1 · Escalade")
    expect(page.locator("#flash")).to_have_text("Acknowledged.")
    expect(summary_value(page, "State")).to_have_text("acknowledged")
    acked = timeline_row(page, "acknowledged")
    expect(acked).to_have_count(1)
    expect(acked.locator("td[data-label=Actor]")).to_have_text(owner)
    expect(page.locator("#ack-form")).to_have_count(0)  # nothing left to acknowledge
    assert served.status("A-1")["state"] == "acknowledged"


def test_a_transfer_without_a_reason_is_refused_beside_the_field_then_done(
    page: Any, browser: Browser, served: Served
) -> None:
    served.post_event("T-1")
    sign_in(page, served, "dana")
    page.goto(served.url + "/tickets/T-1/view")
    check_page(page, browser, "Ticket T-1 · Escalade")
    form = page.locator("#transfer-form")

    form.locator("#transfer-to").fill("carol")
    form.locator("#transfer-sla").fill("2h")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        form.get_by_role("button", name="Transfer").click()
    assert posted.value.status == 422
    check_page(page, browser, "Ticket T-1 · Escalade")
    error = page.locator("#transfer-reason-error")
    expect(error).to_contain_text("a transfer needs a reason")
    # beside its field: in the reason's own field block, and named by the input
    field = page.locator(".field").filter(has=page.locator("#transfer-reason"))
    expect(field.locator("#transfer-reason-error")).to_have_count(1)
    expect(field).to_have_class("field invalid")
    expect(page.locator("#transfer-reason")).to_have_attribute("aria-invalid", "true")
    described = page.locator("#transfer-reason").get_attribute("aria-describedby") or ""
    assert "transfer-reason-error" in described.split()
    expect(page.locator("#transfer-to")).to_have_value("carol")  # what was typed stays
    assert served.status("T-1")["owner"] != "carol"

    form.locator("#transfer-reason").fill("Needs the engineering lead")
    form.locator("#transfer-sla").fill("2h")
    form.get_by_role("button", name="Transfer").click()
    expect(page).to_have_url(served.url + "/tickets/T-1/view?done=transfer")
    check_page(page, browser, "Ticket T-1 · Escalade")
    expect(page.locator("#flash")).to_have_text("Transferred.")
    expect(summary_value(page, "State")).to_have_text("assigned")
    expect(summary_value(page, "Owner")).to_contain_text("carol")
    moved = timeline_row(page, "transfer")
    expect(moved).to_have_count(1)
    expect(moved.locator("td[data-label=Actor]")).to_have_text("dana")
    expect(moved.locator("td[data-label=Reason]")).to_contain_text("-> carol")
    expect(moved.locator("td[data-label=Reason]")).to_contain_text("Needs the engineering lead")
    status = served.status("T-1")
    assert (status["owner"], status["state"]) == ("carol", "assigned")


# --- Reports --------------------------------------------------------------------------


def test_reports_for_a_lead_and_an_error_page_for_a_responder(
    page: Any, browser: Browser, served: Served
) -> None:
    served.post_event("R-1")
    sign_in(page, served, "dana")
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Reports").click()
    expect(page).to_have_url(served.url + "/reports")
    check_page(page, browser, "Reports · Escalade")
    expect(page.locator("h1")).to_have_text("Reports")
    expect(page.locator("#kpi-table")).to_contain_text("Escalations")
    expect(page.locator("figure.chart").first).to_be_visible()

    page.locator("#report-from").fill("2026-12-31")
    page.locator("#report-to").fill("2026-01-01")
    page.get_by_role("button", name="Show").click()
    check_page(page, browser, "Reports · Escalade")

    page.locator("form.signout button").click()
    sign_in(page, served, "carol")  # a responder
    answer = page.goto(served.url + "/reports")
    assert answer is not None and answer.status == 403
    check_page(page, browser, "Error 403 · Escalade")
    expect(page.locator("#error-message")).to_contain_text("needs the lead role")


# --- markup in event values -----------------------------------------------------------

HOSTILE = "<script>alert('title')</script><img src=x onerror=\"alert('img')\"> & <b>bold</b>"


def test_markup_in_a_ticket_title_is_text_on_every_page(
    page: Any, browser: Browser, served: Served
) -> None:
    served.post_event("X-1", title=HOSTILE)
    sign_in(page, served, "dana")
    row = page.locator("#now-table tbody tr").filter(has=page.get_by_role("link", name="X-1"))
    expect(row.locator(".title")).to_have_text(HOSTILE)
    check_page(page, browser, "Now · Escalade")
    row.get_by_role("link", name="X-1").click()
    check_page(page, browser, "Ticket X-1 · Escalade")
    expect(page.locator("h1 .title")).to_have_text(HOSTILE)
    expect(page.locator("#snapshot")).to_contain_text("<script>alert('title')</script><img src=x")
    for where in ("Now", "Ticket"):
        if where == "Now":
            page.goto(served.url + "/")
        assert page.locator("img[src=x]").count() == 0, where
        assert page.locator("b", has_text="bold").count() == 0, where
        assert page.evaluate("document.querySelectorAll('script').length") == 0, where
    page.wait_for_timeout(300)  # an onerror handler would have run by now
    assert browser.dialogs == []


# --- the stylesheet -------------------------------------------------------------------


def test_the_stylesheet_applies(page: Any, browser: Browser, served: Served) -> None:
    sign_in(page, served, "dana")
    assert browser.failed_resources == []
    assert browser.console_errors == []
    background = page.evaluate(
        "getComputedStyle(document.querySelector('header.top')).backgroundColor"
    )
    assert background not in ("rgba(0, 0, 0, 0)", "transparent")


# --- screenshots ----------------------------------------------------------------------

SCREENS = {  # name -> (path, who signs in (None: nobody), expected <title>)
    "signin": ("/signin", None, "Sign in · Escalade"),
    "now": ("/", "dana", "Now · Escalade"),
    "ticket": ("/tickets/S-1/view", "dana", "Ticket S-1 · Escalade"),
    "oncall": ("/oncall", "dana", "On call · Escalade"),
    "reports": ("/reports", "dana", "Reports · Escalade"),
    "packs": ("/packs", "dana", "Packs · Escalade"),
    "deadletters": ("/deadletters", "dana", "Dead letters · Escalade"),
    "notfound": ("/tickets/NOPE/view", "dana", "Error 404 · Escalade"),
}


@pytest.mark.parametrize("name", SCREENS)
def test_each_page_renders_and_is_screenshotted(
    name: str, page: Any, browser: Browser, served: Served, tmp_path: Path
) -> None:
    path, who, title = SCREENS[name]
    if served.store_status("S-1") is None:
        served.post_event("S-1", title="Search returns nothing", root_cause="")
        served.post_dead_letter()
    if who is not None:
        sign_in(page, served, who)
    page.goto(served.url + path)
    check_page(page, browser, title)
    shot = tmp_path / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    check_png(shot, page.viewport_size["width"])
