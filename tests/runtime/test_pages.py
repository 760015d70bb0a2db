"""The web pages of `escalade serve` (issue #10): the whole app (`create_app`) under Starlette's
TestClient, a real SQLite store, the committed generated/rulepack.json and API tokens made
through escalade.runtime.tokens. Forms are posted as a browser posts them."""

from __future__ import annotations

import copy
import re
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from escalade.runtime import tokens
from escalade.runtime.clock import VirtualClock, parse_time
from escalade.runtime.engine import Engine
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.pack import RulePack, seal
from escalade.runtime.server import EscaladeServer
from escalade.runtime.store.sqlite import SQLiteStore
from escalade.runtime.web import pages, panes
from escalade.runtime.web.api import create_app
from escalade.runtime.web.sessions import COOKIE
from tests.runtime.conftest import T0, critical

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "generated" / "rulepack.json"
MIN = 60
PAGES = {  # path -> (title, id of its main element)
    "/": ("Now", "now-table"),
    "/oncall": ("On call", "oncall-table"),
    "/reports": ("Reports", "kpi-table"),
    "/packs": ("Packs", "packs-table"),
    "/deadletters": ("Dead letters", "deadletters-table"),
}


@dataclass
class Site:
    """A served app over one engine, and the secrets of its people's tokens."""

    server: EscaladeServer
    engine: Engine
    clock: VirtualClock
    secrets: dict[str, str]
    client: Callable[..., TestClient]

    def bearer(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[who]}"}

    def signed_in(self, who: str, **options: Any) -> TestClient:
        """A client (a browser) with a session of ``who``."""
        client = self.client(**options)
        answer = client.post("/signin", data={"token": self.secrets[who]}, follow_redirects=False)
        assert answer.status_code == 303, answer.text
        return client

    def event(self, ticket: str, **extra: Any) -> None:
        outcome = self.engine.receive(critical(ticket, f"e-{ticket}", **extra))
        assert outcome.status == "applied", outcome.message


PEOPLE = {"alice": "responder", "bob": "responder", "dana": "lead", "erin": "admin"}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    store = SQLiteStore(str(tmp_path / "pages.db"))
    clock = VirtualClock(T0)
    engine = Engine(store, clock, RecordingNotifier())
    engine.activate(RulePack.load(PACK).raw, T0)
    secrets = {
        who: tokens.create_token(store, principal=f"person:{who}", role=role, by="t", at=T0).secret
        for who, role in PEOPLE.items()
    }
    secrets["zendesk"] = tokens.create_token(
        store, principal="service:zendesk", role="admin", by="t", at=T0
    ).secret
    server = EscaladeServer(engine, "127.0.0.1", 0, tick_interval=3600)
    app = create_app(server)
    clients: list[TestClient] = []

    def client(base_url: str = "http://testserver") -> TestClient:
        made = TestClient(app, base_url=base_url, follow_redirects=False)
        clients.append(made)
        return made

    yield Site(server, engine, clock, secrets, client)
    for made in clients:
        made.close()
    server.stop()
    store.close()


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def element(html: str, element_id: str) -> str:
    """The text of the element with ``id`` up to its closing tag (first level only)."""
    found = re.search(rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"[^>]*>(.*?)</\1>', html, re.S)
    assert found, f"no element #{element_id}"
    return re.sub(r"\s+", " ", found.group(2)).strip()


def title_of(html: str) -> str:
    found = re.search(r"<title>(.*?)</title>", html, re.S)
    assert found
    return found.group(1)


def state_of(site: Site, ticket: str) -> str:
    with site.server.engine_lock() as engine:
        esc = engine.store.latest_escalation(ticket)
    assert esc is not None
    return esc.state


# --- signing in and out ----------------------------------------------------------------


def test_signing_in_sets_a_strict_httponly_session_and_signing_out_ends_it(site: Site) -> None:
    client = site.client()
    form = client.get("/signin")
    assert form.status_code == 200 and title_of(form.text) == "Sign in · Escalade"
    assert 'id="signin-form"' in form.text and "ends when the server restarts" in form.text
    answer = client.post("/signin", data={"token": "esc_nope_x"})
    assert answer.status_code == 401
    assert "unknown or revoked" in element(answer.text, "signin-token-error")
    assert client.post("/signin", data={"token": " "}).status_code == 422
    answer = client.post("/signin", data={"token": site.secrets["dana"], "next": "/oncall"})
    assert answer.status_code == 303 and answer.headers["location"] == "/oncall"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    flags = {part.strip().lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= flags
    assert "secure" not in flags  # plain http: a Secure cookie would never come back
    assert site.secrets["dana"] not in cookie  # the session, never the token
    stolen = client.cookies[COOKIE]
    page = client.get("/")
    assert page.status_code == 200 and "Signed in as <strong>dana</strong> (lead)" in page.text
    assert client.post("/signout").status_code == 403  # no CSRF token
    answer = client.post("/signout", data={"csrf": csrf_of(page.text)})
    assert answer.status_code == 303 and answer.headers["location"] == "/signin"
    assert client.get("/").status_code == 303
    replay = site.client()
    replay.cookies.set(COOKIE, stolen)
    assert replay.get("/").status_code == 303  # a copy of the cookie ended with the session


def test_the_session_cookie_is_secure_over_https(site: Site) -> None:
    data = {"token": site.secrets["dana"]}
    behind_proxy = site.client().post("/signin", data=data, headers={"X-Forwarded-Proto": "https"})
    assert "secure" in behind_proxy.headers["set-cookie"].lower().split("; ")
    direct = site.client("https://testserver").post("/signin", data=data)
    assert "secure" in direct.headers["set-cookie"].lower().split("; ")


def test_a_page_without_a_session_redirects_to_sign_in_and_back(site: Site) -> None:
    site.event("T-1")
    client = site.client()
    for path in [*PAGES, "/tickets/T-1/view", "/reports?from=2026-11-27"]:
        answer = client.get(path)
        assert answer.status_code == 303 and answer.headers["location"].startswith("/signin?next=")
    answer = client.post("/tickets/T-1/view/ack", data={})
    assert answer.status_code == 303 and state_of(site, "T-1") == "assigned"
    assert (
        client.get("/tickets/T-1/view").headers["location"]
        == "/signin?next=%2Ftickets%2FT-1%2Fview"
    )
    for target, landing in [("/tickets/T-1/view", "/tickets/T-1/view"), ("//evil.example", "/")]:
        answer = site.client().post("/signin", data={"token": site.secrets["dana"], "next": target})
        assert answer.headers["location"] == landing
    garbage = site.client()
    garbage.cookies.set(COOKIE, "eyJ0IjoieCJ9.00")
    assert garbage.get("/").status_code == 303


def test_service_tokens_cannot_sign_in_nor_read_pages(site: Site) -> None:
    answer = site.client().post("/signin", data={"token": site.secrets["zendesk"]})
    assert answer.status_code == 403 and COOKIE not in answer.headers.get("set-cookie", "")
    assert "service:zendesk" in element(answer.text, "signin-token-error")
    answer = site.client().get("/", headers=site.bearer("zendesk"))
    assert answer.status_code == 403 and "pages are for people" in answer.text


def test_revoking_the_token_ends_its_sessions(site: Site) -> None:
    client = site.signed_in("dana")
    assert client.get("/").status_code == 200
    token_id = tokens.token_id_of(site.secrets["dana"])
    assert token_id is not None
    with site.server.engine_lock() as engine:
        tokens.revoke_token(engine.store, token_id, by="erin", at=T0)
    assert client.get("/").status_code == 303


# --- every page ----------------------------------------------------------------------


def test_every_page_renders_for_a_lead_with_its_own_title(site: Site) -> None:
    site.event("T-1")
    client = site.signed_in("dana")
    titles = set()
    for path, (title, main_id) in {
        **PAGES,
        "/tickets/T-1/view": ("Ticket T-1", "timeline-table"),
    }.items():
        answer = client.get(path)
        assert answer.status_code == 200, (path, answer.text)
        assert title_of(answer.text) == f"{title} · Escalade"
        assert f'id="{main_id}"' in answer.text
        assert 'href="/static/escalade.css"' in answer.text and "<script" not in answer.text
        assert answer.headers["cache-control"] == "no-store"
        titles.add(title)
    assert len(titles) == len(PAGES) + 1


def test_the_stylesheet_is_served(site: Site) -> None:
    css = site.client().get("/static/escalade.css")
    assert css.status_code == 200 and "@media" in css.text


def test_the_now_page_shows_owner_countdowns_and_breaches(site: Site) -> None:
    site.event("T-1")
    site.clock.set(T0 + 2 * MIN)
    client = site.signed_in("dana")
    page = client.get("/")
    assert '<meta http-equiv="refresh" content="15">' in page.text
    row = element(page.text, "now-row-1")
    assert 'href="/tickets/T-1/view"' in row and "Checkout down" in row
    assert "enterprise_critical" in row and "alice (for cust_ops_oncall)" in row
    assert "in 3m" in row  # the ack timer and the acknowledge SLA: 5m from the start
    assert "in 3h 58m" in row  # resolve SLA: 4h
    assert "breached" not in row
    site.clock.set(T0 + 6 * MIN)  # the display moves on; the ticker has not fired yet
    row = element(client.get("/").text, "now-row-1")
    assert "overdue 1m" in row and "breached" in row


def test_the_now_page_sorts_and_filters_by_query(site: Site) -> None:
    site.event("T-1")
    site.clock.set(T0 + MIN)
    site.event("T-2")
    client = site.signed_in("dana")
    with site.server.engine_lock() as engine:
        engine.transfer("T-1", "lena", "support knows it", 3600, by="dana")

    def tickets(query: str) -> list[str]:
        answer = client.get("/" + query)
        assert answer.status_code == 200
        table = element(answer.text, "now-table")
        return re.findall(r'href="/tickets/([^/]+)/view"', table)

    assert tickets("") == ["T-1", "T-2"]
    assert tickets("?sort=-ticket") == ["T-2", "T-1"]
    assert tickets("?sort=owner") == ["T-2", "T-1"]  # alice before lena
    assert tickets("?team=support_oncall") == ["T-1"]
    assert tickets("?team=cust_ops_oncall&policy=enterprise_critical") == ["T-2"]
    assert tickets("?state=acknowledged") == []
    assert tickets("?sort=nonsense") == ["T-1", "T-2"]
    page = client.get("/?sort=ticket").text
    assert 'aria-sort="ascending"' in page and 'href="?sort=-ticket"' in page


def test_a_responder_sees_only_what_it_may(site: Site) -> None:
    site.event("T-1")  # alice is on call: hers
    site.event("T-2")
    with site.server.engine_lock() as engine:
        engine.transfer("T-2", "bob", "bob knows", 3600, by="dana")
    client = site.signed_in("alice")
    page = client.get("/")
    assert "Showing the tickets you own" in page.text
    table = element(page.text, "now-table")
    assert "T-1" in table and "T-2" not in table
    nav = page.text.split("</nav>")[0]
    assert 'href="/oncall"' in nav and 'href="/reports"' not in nav
    assert client.get("/tickets/T-1/view").status_code == 200
    answer = client.get("/tickets/T-2/view")
    assert answer.status_code == 403 and "owned by bob" in element(answer.text, "error-message")
    for path in ("/reports", "/packs", "/deadletters"):
        answer = client.get(path)
        assert answer.status_code == 403 and "needs the lead role" in answer.text
    assert client.get("/oncall").status_code == 200
    ack = client.get("/tickets/T-1/view").text
    assert 'id="ack-form"' in ack and 'name="override"' not in ack  # overrides need a lead
    answer = client.post("/tickets/T-2/view/ack", data={"csrf": csrf_of(ack)})
    assert answer.status_code == 403 and state_of(site, "T-2") == "assigned"


def test_a_script_in_a_ticket_title_renders_as_text(site: Site) -> None:
    site.event("T-9", title='<script>alert("x")</script><img src=x onerror=alert(1)>')
    client = site.signed_in("dana")
    for path in ("/", "/tickets/T-9/view"):
        html = client.get(path).text
        assert "<script" not in html and "<img" not in html
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;img src=x" in html
    answer = site.client().get("/", headers=site.bearer("dana"))
    assert "script-src 'self'" in answer.headers["content-security-policy"]


# --- the ticket forms -------------------------------------------------------------------


def test_acknowledge_transfer_resolve_and_close_through_the_forms(site: Site) -> None:
    site.event("T-7", root_cause="disk")
    alice = site.signed_in("alice")
    page = alice.get("/tickets/T-7/view").text
    assert "generated/runbooks/enterprise_critical.md" in element(page, "runbook")
    assert "&#34;severity&#34;: &#34;critical&#34;" in element(page, "snapshot")
    answer = alice.post("/tickets/T-7/view/ack", data={"csrf": csrf_of(page)})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/tickets/T-7/view?done=ack"
    page = alice.get(answer.headers["location"]).text
    assert element(page, "flash") == "Acknowledged."
    assert state_of(site, "T-7") == "acknowledged" and 'id="ack-form"' not in page
    assert "acknowledged by alice" in element(page, "timeline-table")

    dana = site.signed_in("dana")
    token = csrf_of(dana.get("/tickets/T-7/view").text)
    answer = dana.post("/tickets/T-7/view/transfer", data={"csrf": token, "to": "bob", "sla": "2h"})
    assert answer.status_code == 422
    assert "a transfer needs a reason" in element(answer.text, "transfer-reason-error")
    assert 'aria-invalid="true"' in answer.text and 'value="bob"' in answer.text
    data = {"csrf": token, "to": "bob", "reason": "db", "sla": "soon"}
    answer = dana.post("/tickets/T-7/view/transfer", data=data)
    assert answer.status_code == 422 and "not a duration" in element(
        answer.text, "transfer-sla-error"
    )
    answer = dana.post("/tickets/T-7/view/transfer", data={**data, "to": "nobody", "sla": "2h"})
    assert answer.status_code == 409
    assert "neither a person nor a team" in element(answer.text, "transfer-to-error")
    answer = dana.post("/tickets/T-7/view/transfer", data={**data, "sla": "2h"})
    assert answer.status_code == 303
    with site.server.engine_lock() as engine:
        esc = engine.store.open_escalation("T-7")
    assert esc is not None and (esc.owner, esc.level) == ("bob", "transfer")

    page = dana.get("/tickets/T-7/view").text
    assert "it is assigned, not resolved" in element(page, "close-problems")
    answer = dana.post("/tickets/T-7/view/close", data={"csrf": token})
    assert answer.status_code == 409 and "refused" in element(answer.text, "close-error")
    assert dana.post("/tickets/T-7/view/resolve", data={"csrf": token}).status_code == 303
    page = dana.get("/tickets/T-7/view").text
    assert "Every close check holds" in element(page, "close-problems")
    answer = dana.post("/tickets/T-7/view/postmortem", data={"csrf": token, "link": " "})
    assert answer.status_code == 422
    assert "a post-mortem needs a link" in element(answer.text, "postmortem-link-error")
    link = "https://wiki.example.com/pm/7"
    answer = dana.post("/tickets/T-7/view/postmortem", data={"csrf": token, "link": link})
    assert answer.status_code == 303
    assert f'href="{link}"' in dana.get("/tickets/T-7/view").text
    assert dana.post("/tickets/T-7/view/close", data={"csrf": token}).status_code == 303
    page = dana.get("/tickets/T-7/view?done=close").text
    assert state_of(site, "T-7") == "closed" and element(page, "flash") == "Closed."
    assert 'id="close-form"' not in page
    history = [r.actor for r in site.engine.store.audit_rows() if r.ticket == "T-7"]
    assert {"alice", "dana"} <= set(history)


def test_a_lead_acknowledges_for_someone_else_only_with_an_override(site: Site) -> None:
    site.event("T-3")
    dana = site.signed_in("dana")
    token = csrf_of(dana.get("/tickets/T-3/view").text)
    answer = dana.post("/tickets/T-3/view/ack", data={"csrf": token})
    assert answer.status_code == 409
    assert "not the current assignee" in element(answer.text, "ack-error")
    answer = dana.post("/tickets/T-3/view/ack", data={"csrf": token, "override": "alice is out"})
    assert answer.status_code == 303 and state_of(site, "T-3") == "acknowledged"
    kinds = [r.kind for r in site.engine.store.audit_rows() if r.ticket == "T-3"]
    assert "ack_override" in kinds


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(site: Site) -> None:
    site.event("T-1")
    alice = site.signed_in("alice")
    for data in ({}, {"csrf": "0" * 64}, {"csrf": "é"}):
        answer = alice.post("/tickets/T-1/view/ack", data=data)
        assert answer.status_code == 403 and "CSRF" in element(answer.text, "error-message")
    token = csrf_of(alice.get("/").text)
    assert site.signed_in("dana").post("/signout", data={"csrf": token}).status_code == 403
    cross = alice.post(
        "/tickets/T-1/view/ack",
        data={"csrf": token},
        headers={"Origin": "https://evil.example"},
    )
    assert cross.status_code == 403 and "another site" in cross.text
    fetched = alice.post(
        "/tickets/T-1/view/ack", data={"csrf": token}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert fetched.status_code == 403
    login = site.client().post(
        "/signin", data={"token": site.secrets["dana"]}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert login.status_code == 403 and "set-cookie" not in login.headers
    answer = alice.post("/tickets/T-1/view/ack", content=b"csrf=" + token.encode())
    assert answer.status_code == 415  # not sent as a form
    assert state_of(site, "T-1") == "assigned"


def test_bearer_tokens_work_on_pages_and_their_forms_need_no_csrf(site: Site) -> None:
    site.event("T-1")
    client = site.client()
    page = client.get("/tickets/T-1/view", headers=site.bearer("alice"))
    assert page.status_code == 200 and "Ticket T-1" in title_of(page.text)
    answer = client.post("/tickets/T-1/view/ack", data={}, headers=site.bearer("alice"))
    assert answer.status_code == 303 and state_of(site, "T-1") == "acknowledged"
    wrong = client.get("/", headers={"Authorization": "Bearer esc_x_y"})
    assert wrong.status_code == 401 and "WWW-Authenticate" in wrong.headers


# --- on call, reports, packs, dead letters ---------------------------------------------------


def test_on_call_shows_now_next_and_absences(site: Site) -> None:
    with site.server.engine_lock() as engine:
        engine.absent("bob", T0 + 30 * 86400, by="dana")
    page = site.signed_in("bob").get("/oncall")
    assert page.status_code == 200
    table = element(page.text, "oncall-table")
    row = table.split("cust_ops_oncall", 1)[1].split("</tr>", 1)[0]
    # weekly from Monday 2026-01-05 09:00: alice this week; bob next, but absent -> alice
    assert '<td data-label="On call now">alice</td>' in row
    assert "no change this week" in row  # next: the next segment with another person
    assert "sdr_queue" in table and "none: any available member" in table
    absences = element(page.text, "absences-table")
    assert "Bob Tanaka" in absences and "2026-12-27T10:00:00Z" in absences


def test_reports_chart_the_kpis_of_a_date_range(site: Site) -> None:
    site.event("T-1")
    with site.server.engine_lock() as engine:
        engine.ack("T-1", "alice", at=T0 + 2 * MIN)
        engine.receive(critical("T-2", "e-2"), at=T0 + 86400)
    client = site.signed_in("dana")
    whole = client.get("/reports")
    assert "2 (2 open, 0 closed)" in element(whole.text, "kpi-table")
    for chart in ("chart-tta", "chart-ttr", "chart-sla", "chart-days"):
        assert f'<svg id="{chart}"' in whole.text or f'id="{chart}-figure"' in whole.text
    tta = whole.text.split('<svg id="chart-tta"', 1)[1].split("</svg>", 1)[0]
    assert "<title>1m to 5m: 1</title>" in tta and 'role="img"' in whole.text
    days = whole.text.split('<svg id="chart-days"', 1)[1].split("</svg>", 1)[0]
    assert "2026-11-27: 1" in days and "2026-11-28: 1" in days
    one_day = client.get("/reports?from=2026-11-28&to=2026-11-28")
    assert one_day.status_code == 200
    assert "1 (1 open, 0 closed)" in element(one_day.text, "kpi-table")
    bad = client.get("/reports?from=yesterday")
    assert bad.status_code == 422 and "not" in element(bad.text, "report-from-error")
    backwards = client.get("/reports?from=2026-11-28&to=2026-11-01")
    assert backwards.status_code == 422 and "after" in element(backwards.text, "report-to-error")


def test_packs_show_history_and_admins_roll_back_with_a_reason(site: Site) -> None:
    body = copy.deepcopy(RulePack.load(PACK).raw)
    body["metadata"]["version"] = "9.9.9"
    with site.server.engine_lock() as engine:
        engine.activate(seal(body), actor="erin", reason="a newer release")
    lead = site.signed_in("dana").get("/packs")
    assert "9.9.9" in element(lead.text, "active-pack")
    assert "a newer release" in element(lead.text, "pack-history-table")
    assert 'id="rollback-form"' not in lead.text  # admins only
    erin = site.signed_in("erin")
    page = erin.get("/packs").text
    token, target = csrf_of(page), re.findall(r'<option value="(\d+)"', page)
    assert target == ["1"]
    answer = erin.post("/packs/rollback", data={"csrf": token, "pack": "1", "reason": " "})
    assert answer.status_code == 422 and "needs a reason" in element(
        answer.text, "rollback-reason-error"
    )
    answer = erin.post(
        "/packs/rollback", data={"csrf": token, "pack": "1", "reason": "9.9.9 pages twice"}
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/packs?done=rollback"
    row = [r for r in site.engine.store.audit_rows() if r.kind == "pack_rolled_back"][-1]
    assert row.actor == "erin" and row.reason.endswith(": 9.9.9 pages twice")
    assert site.engine.active().pack.version != "9.9.9"
    dana = site.signed_in("dana")
    answer = dana.post(
        "/packs/rollback", data={"csrf": csrf_of(dana.get("/").text), "pack": "2", "reason": "x"}
    )
    assert answer.status_code == 403 and "admin" in answer.text


def test_dead_letters_are_listed_and_leads_replay_them(site: Site) -> None:
    site.engine.receive(b'{"id": "bad-1", "type": "ticket.created"}')
    site.engine.receive(b"<b>not json</b>")
    client = site.signed_in("dana")
    page = client.get("/deadletters").text
    table = element(page, "deadletters-table")
    assert "bad-1" in table and "&lt;b&gt;not json&lt;/b&gt;" in table
    answer = client.post("/deadletters/replay", data={"csrf": csrf_of(page)})
    assert answer.status_code == 303
    page = client.get(answer.headers["location"]).text
    assert element(page, "flash") == "Replayed 0; 2 still refused."


# --- errors -------------------------------------------------------------------------


def test_errors_are_pages_with_their_message_never_a_traceback(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = site.signed_in("dana")
    answer = client.get("/tickets/NOPE/view")
    assert answer.status_code == 404
    assert element(answer.text, "error-message") == "ticket NOPE has no escalation"
    assert title_of(answer.text) == "Error 404 · Escalade"
    site.event("T-1")
    token = csrf_of(client.get("/").text)
    answer = client.post("/tickets/T-1/view/explode", data={"csrf": token})
    assert answer.status_code == 404 and "no ticket action" in answer.text

    def broken(*_args: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(pages, "ticket_view", broken)
    answer = client.get("/tickets/T-1/view")
    assert answer.status_code == 500
    assert element(answer.text, "error-message") == (
        "internal error (RuntimeError); see the server log"
    )
    assert "Traceback" not in answer.text and "secret internals" not in answer.text


def test_a_busy_engine_is_a_503_page(site: Site) -> None:
    client = site.signed_in("dana")
    site.server.lock_timeout = 0.05
    with site.server.engine_lock():
        answer = client.get("/oncall")
    assert answer.status_code == 503 and "busy" in element(answer.text, "error-message")


def test_the_display_time_never_goes_before_the_store_clock(site: Site) -> None:
    site.event("T-1")
    with site.server.engine_lock() as engine:
        engine.advance(T0 + 10 * MIN)
        assert panes.display_time(engine) == T0 + 10 * MIN
    assert parse_time("2026-11-27T10:10:00Z") == T0 + 10 * MIN


def test_without_jinja2_the_api_serves_on_without_pages(
    site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "jinja2", None)  # import jinja2 -> ImportError
    assert pages.page_routes(site.server) == []
    assert "the web pages need jinja2" in caplog.text


def test_a_form_over_the_limit_is_413_before_anything_runs(site: Site) -> None:
    site.event("T-1")
    alice = site.signed_in("alice")
    token = csrf_of(alice.get("/").text)
    answer = alice.post("/tickets/T-1/view/ack", data={"csrf": token, "pad": "x" * 70_000})
    assert answer.status_code == 413 and "limit" in element(answer.text, "error-message")
    assert state_of(site, "T-1") == "assigned"


def test_now_page_shows_each_watched_source_and_a_silent_one(site: Site) -> None:
    from escalade.runtime.settings import parse_settings
    from escalade.runtime.web.sources import attach_sources
    from tests.runtime.test_sources import EXAMPLES

    text = (EXAMPLES / "salesforce.yaml").read_text("utf-8")
    text = text.replace("      auth:", "      expect_every: 15m\n      auth:", 1)
    sources = parse_settings(text, EXAMPLES, "salesforce.yaml").sources
    client = site.signed_in("dana")
    assert 'id="sources"' not in client.get("/").text  # no watched source: no line
    attach_sources(site.server, sources, wall=lambda: float(site.clock.now()))
    line = re.search(r'<p id="sources".*?</p>', client.get("/").text, re.S)
    assert line is not None and "salesforce" in line.group() and "silent" not in line.group()
    site.clock.set(T0 + 15 * MIN)
    site.engine.advance(T0 + 15 * MIN)  # the silence timer armed by attach_sources fires
    line = re.search(r'<p id="sources".*?</p>', client.get("/").text, re.S)
    assert line is not None and ">silent<" in line.group()


def test_the_ticket_page_shows_related_tickets_and_the_group_parent(site: Site) -> None:
    """Two vendor-outage tickets of one account: the second is attached to the first's
    escalation; each page says so and links the other (issue #15, grouping)."""
    for ticket in ("V-1", "V-2"):
        site.event(ticket, tags=["vendor_outage"])
    client = site.signed_in("dana")
    parent = client.get("/tickets/V-1/view").text
    assert element(parent, "related").startswith('<a href="/tickets/V-2/view">V-2</a> (open)')
    child = client.get("/tickets/V-2/view").text
    assert '<a href="/tickets/V-1/view">V-1</a>' in element(child, "grouped-into")
    assert 'href="/tickets/V-1/postmortem"' not in parent  # no post-mortem required yet
