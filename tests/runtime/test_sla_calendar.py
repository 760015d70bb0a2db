"""SLAs counted in a business calendar (issue #13): ``sla resolve 12h within support_hours``.

The bundled ``urgent_ticket_waiting`` counts both SLAs in ``support_hours`` (mon-fri
09:00-18:00 Europe/Berlin, closed 24-26 and 31 December and 1 January): its timers, its
breaches, ``status`` and the KPIs all use the calendar's due instant.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from escalade.runtime import kpi
from escalade.runtime.cli.reads import render_status
from escalade.runtime.clock import VirtualClock, format_time, parse_time
from escalade.runtime.engine import Engine
from escalade.runtime.engine.loaded import LoadedPack
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.pack import RulePack
from escalade.runtime.store import AuditRow
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime import test_pages
from tests.runtime.conftest import critical
from tests.runtime.test_pages import Site, element

FRIDAY_17H_BERLIN = "2026-12-04T16:00:00Z"
site = test_pages.site  # the served app's fixture, for the ticket page


@pytest.fixture
def engine_at(
    tmp_path: Path, pack: dict[str, Any]
) -> Iterator[Callable[[str], tuple[Engine, VirtualClock]]]:
    """A factory: an engine on a fresh SQLite file whose clock and pack start at ``at``."""
    stores: list[SQLiteStore] = []

    def factory(at: str) -> tuple[Engine, VirtualClock]:
        store = SQLiteStore(str(tmp_path / f"sla{len(stores)}.sqlite"))
        stores.append(store)
        start = parse_time(at)
        clock = VirtualClock(start)
        engine = Engine(store, clock, RecordingNotifier())
        engine.activate(pack, start)
        return engine, clock

    yield factory
    for store in stores:
        store.close()


def urgent(ticket: str, at: str) -> dict[str, Any]:
    """An urgent ticket of a pro account: ``urgent_ticket_waiting`` owns it."""
    data = {
        "ticket": {
            "id": ticket,
            "title": "Export broken",
            "priority": "urgent",
            "severity": "high",
        },
        "account": {"id": "acme", "tier": "pro"},
    }
    return {"id": f"{ticket}-created", "type": "ticket.created", "at": at, "data": data}


def opened(engine: Engine, ticket: str, at: str) -> dict[str, Any]:
    outcome = engine.receive(urgent(ticket, at), parse_time(at))
    assert outcome.status == "applied", outcome.message
    status = engine.status(ticket)
    assert status is not None and status["policy"] == "urgent_ticket_waiting"
    return status


def timer_due(status: dict[str, Any], kind: str) -> str:
    return next(t["due"] for t in status["timers"] if t["kind"] == kind)


def breaches(engine: Engine, ticket: str) -> list[tuple[str, str]]:
    status = engine.status(ticket)
    assert status is not None
    return [(h["at"], h["reason"]) for h in status["history"] if h["kind"] == "breach"]


def test_a_12h_business_sla_opened_friday_17h_falls_due_tuesday_11h(engine_at: Any) -> None:
    engine, _ = engine_at(FRIDAY_17H_BERLIN)
    status = opened(engine, "U1", FRIDAY_17H_BERLIN)
    assert status["sla"]["resolve"] == {
        "target": "12h",
        "due": "2026-12-08T10:00:00Z",  # Tuesday 11:00 Berlin
        "calendar": "support_hours",
        "zone": "Europe/Berlin",
        "due_local": "2026-12-08T11:00:00+01:00",
        "outcome": "open",
    }
    # 1 hour on Friday, 1 on Monday: Monday 10:00 Berlin.
    assert status["sla"]["acknowledge"]["due"] == "2026-12-07T09:00:00Z"
    assert timer_due(status, "sla_resolve") == "2026-12-08T10:00:00Z"
    assert timer_due(status, "sla_acknowledge") == "2026-12-07T09:00:00Z"
    triggered = next(r for r in engine.store.audit_rows() if r.kind == "triggered")
    assert triggered.detail["sla_due"] == {
        "acknowledge": parse_time("2026-12-07T09:00:00Z"),
        "resolve": parse_time("2026-12-08T10:00:00Z"),
    }
    assert triggered.detail["sla_calendar"] == {
        "acknowledge": "support_hours",
        "resolve": "support_hours",
    }


def test_the_breach_fires_at_the_calendar_due_not_12_wall_clock_hours_later(
    engine_at: Any,
) -> None:
    engine, _ = engine_at(FRIDAY_17H_BERLIN)
    opened(engine, "U1", FRIDAY_17H_BERLIN)
    engine.ack("U1", "marc", parse_time("2026-12-04T16:10:00Z"))
    engine.advance(parse_time(FRIDAY_17H_BERLIN) + 12 * 3600)  # Saturday 05:00 Berlin
    engine.advance(parse_time("2026-12-08T09:59:59Z"))
    assert breaches(engine, "U1") == []
    engine.advance(parse_time("2026-12-08T10:00:00Z"))
    assert breaches(engine, "U1") == [
        ("2026-12-08T10:00:00Z", "resolve SLA of 12h within support_hours breached")
    ]
    status = engine.status("U1")
    assert status is not None
    assert status["sla"]["resolve"]["outcome"] == "breached"
    assert status["sla"]["acknowledge"]["outcome"] == "met"


def test_a_dst_weekend_counts_business_hours_not_wall_clock_hours(engine_at: Any) -> None:
    # Berlin leaves summer time on Sunday 2026-10-25: Friday 17:00 is 15:00Z,
    # Tuesday 11:00 is 10:00Z, 91 wall-clock hours later (90 on other weekends).
    engine, _ = engine_at("2026-10-23T15:00:00Z")
    status = opened(engine, "D1", "2026-10-23T15:00:00Z")
    assert status["sla"]["resolve"]["due"] == "2026-10-27T10:00:00Z"
    assert status["sla"]["resolve"]["due_local"] == "2026-10-27T11:00:00+01:00"
    assert status["sla"]["acknowledge"]["due_local"] == "2026-10-26T10:00:00+01:00"
    engine.advance(parse_time("2026-10-27T09:59:59Z"))
    assert [reason for _, reason in breaches(engine, "D1")] == [
        "acknowledge SLA of 2h within support_hours breached"
    ]
    engine.advance(parse_time("2026-10-27T10:00:00Z"))
    assert breaches(engine, "D1")[-1][0] == "2026-10-27T10:00:00Z"


def test_holidays_and_the_weekend_are_skipped(engine_at: Any) -> None:
    # Wednesday 23 December 17:00 Berlin: 1 hour that day, 24-26 closed, Sunday,
    # 9 hours on Monday 28th, 2 on Tuesday 29th.
    engine, _ = engine_at("2026-12-23T16:00:00Z")
    status = opened(engine, "H1", "2026-12-23T16:00:00Z")
    assert status["sla"]["resolve"]["due_local"] == "2026-12-29T11:00:00+01:00"
    assert status["sla"]["acknowledge"]["due_local"] == "2026-12-28T10:00:00+01:00"


def test_status_text_shows_the_due_instant_in_the_calendars_zone(engine_at: Any) -> None:
    engine, _ = engine_at(FRIDAY_17H_BERLIN)
    opened(engine, "U1", FRIDAY_17H_BERLIN)
    status = engine.status("U1", parse_time("2026-12-04T16:00:00Z"))
    assert status is not None
    text = render_status(status)
    assert "  sla     resolve due 2026-12-08 11:00 Europe/Berlin (12h within support_hours)" in text
    assert "  sla     acknowledge due 2026-12-07 10:00 Europe/Berlin (2h within support_hours)" in (
        text
    )


def test_an_sla_without_a_calendar_shows_its_wall_clock_due(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(critical("C1", "c1"))
    status = engine.status("C1")
    assert status is not None
    for kind, sla in status["sla"].items():
        assert sla["calendar"] is None and "due_local" not in sla
        assert timer_due(status, f"sla_{kind}") == sla["due"]
    assert f"(wall clock {status['sla']['resolve']['target']})" not in render_status(status)
    assert f"resolve due {status['sla']['resolve']['due']} (" in render_status(status)


def test_the_kpis_judge_by_the_calendar_due(engine_at: Any) -> None:
    engine, _ = engine_at(FRIDAY_17H_BERLIN)
    opened(engine, "U1", FRIDAY_17H_BERLIN)
    # Acknowledged Monday 09:30 Berlin and resolved Tuesday 10:00 Berlin: both far past
    # 2h and 12h of wall-clock time, both within support hours.
    engine.ack("U1", "jon", parse_time("2026-12-07T08:30:00Z"))  # the chain ended at jon
    engine.resolve("U1", parse_time("2026-12-08T09:00:00Z"), by="jon")
    row = kpi.compute(engine.store)["sla_compliance"]["urgent_ticket_waiting"]
    assert row["acknowledge"]["met"] == 1 and row["acknowledge"]["breached"] == 0
    assert row["resolve"]["met"] == 1 and row["resolve"]["breached"] == 0


def _row(kind: str, at: int, detail: dict[str, Any]) -> AuditRow:
    return AuditRow(
        at=at,
        kind=kind,
        actor="engine",
        reason=kind,
        ticket="T",
        escalation_id=1,
        policy="p",
        pack_version=None,
        detail=detail,
    )


def test_a_kpi_counts_an_sla_done_past_its_recorded_due_as_breached() -> None:
    start = parse_time(FRIDAY_17H_BERLIN)
    due = parse_time("2026-12-07T09:00:00Z")
    lives: dict[int, kpi.Life] = {}
    detail = {"sla": {"acknowledge": 7200, "resolve": None}, "sla_due": {"acknowledge": due}}
    kpi.read_row(lives, _row("triggered", start, detail))
    kpi.read_row(lives, _row("acknowledged", due + 1, {}))
    assert kpi.sla_outcomes(lives[1]) == [("acknowledge", "breached")]
    # A trail written before due instants were recorded: its breach rows judge it.
    old: dict[int, kpi.Life] = {}
    kpi.read_row(old, _row("triggered", start, {"sla": {"acknowledge": 7200}}))
    kpi.read_row(old, _row("acknowledged", due + 1, {}))
    assert kpi.sla_outcomes(old[1]) == [("acknowledge", "met")]


def test_one_function_answers_when_an_sla_falls_due(pack: dict[str, Any]) -> None:
    loaded = LoadedPack.of(1, RulePack.trusted(pack))
    start = parse_time(FRIDAY_17H_BERLIN)
    urgent_rules = loaded.rules["urgent_ticket_waiting"]
    assert format_time(loaded.sla_due(urgent_rules, "resolve", start) or 0) == (
        "2026-12-08T10:00:00Z"
    )
    wall = next(
        r for r in loaded.rules.values() if r.sla("resolve") and not r.sla_calendar("resolve")
    )
    assert loaded.sla_due(wall, "resolve", start) == start + (wall.sla("resolve") or 0)
    assert loaded.sla_calendar_of(wall, "resolve") is None


def test_the_ticket_page_shows_the_due_instant_and_the_calendar(site: Site) -> None:
    # Friday 27 November 11:00 Berlin: 7 support hours on Friday, 5 on Monday.
    outcome = site.engine.receive(urgent("W1", "2026-11-27T10:00:00Z"))
    assert outcome.status == "applied", outcome.message
    page = site.signed_in("dana").get("/tickets/W1/view")
    assert page.status_code == 200, page.text
    resolve = re.sub(r"<[^>]+>", "", element(page.text, "sla-resolve"))
    assert "due 2026-11-30 14:00 Europe/Berlin (12h within support_hours)" in resolve
    assert 'datetime="2026-11-30T13:00:00Z"' in page.text
    acknowledge = re.sub(r"<[^>]+>", "", element(page.text, "sla-acknowledge"))
    assert "due 2026-11-27 13:00 Europe/Berlin (2h within support_hours)" in acknowledge


def test_a_reroute_keeps_the_start_and_counts_in_the_new_policys_time(engine_at: Any) -> None:
    engine, _ = engine_at(FRIDAY_17H_BERLIN)
    event = urgent("R1", FRIDAY_17H_BERLIN)
    event["data"]["account"]["tier"] = "enterprise"
    assert engine.receive(event, parse_time(FRIDAY_17H_BERLIN)).status == "applied"
    status = engine.status("R1")
    assert status is not None and status["policy"] == "urgent_ticket_waiting"
    assert status["sla"]["resolve"]["due"] == "2026-12-08T10:00:00Z"
    update = {
        "id": "R1-critical",
        "type": "ticket.updated",
        "at": "2026-12-04T16:30:00Z",
        "data": {
            "ticket": {"id": "R1", "priority": "urgent", "severity": "critical"},
            "account": {"id": "acme", "tier": "enterprise"},
        },
    }
    assert engine.receive(update, parse_time("2026-12-04T16:30:00Z")).status == "applied"
    status = engine.status("R1")
    assert status is not None and status["policy"] == "enterprise_critical"
    # enterprise_critical's 4h resolve SLA is wall-clock time from the original start.
    assert status["sla"]["resolve"]["due"] == "2026-12-04T20:00:00Z"
    assert status["sla"]["resolve"]["calendar"] is None
    assert timer_due(status, "sla_resolve") == "2026-12-04T20:00:00Z"
    rerouted = next(r for r in engine.store.audit_rows() if r.kind == "rerouted")
    assert rerouted.detail["sla_calendar"] == {"acknowledge": None, "resolve": None}
    assert rerouted.detail["sla_due"]["resolve"] == parse_time("2026-12-04T20:00:00Z")
