"""Runbooks show schedules (layers, overrides, one week of who is on call) and the
calendars SLAs are counted in, with the longest wall-clock time they can take."""

from __future__ import annotations

from pathlib import Path

import pytest

from escalade.compiler.backends.oncall import days_text, longest_wall_clock, week_rows
from escalade.compiler.backends.rivals import policy_rivals
from escalade.compiler.backends.rulepack import build_pack
from escalade.compiler.backends.runbooks import render_runbooks
from escalade.compiler.build import load_for_build
from escalade.runtime.calendars import Calendar
from escalade.runtime.localtime import Window
from escalade.runtime.pack import RulePack
from escalade.runtime.schedule import Layer, Schedule

REPO = Path(__file__).resolve().parents[2]


def pages_of(root: Path) -> dict[str, str]:
    result = load_for_build(root, root, "0.0.0")
    assert result.pset is not None and result.errors == 0, result.diagnostics
    pack = RulePack.from_dict(build_pack(result.pset))
    return render_runbooks(pack, policy_rivals(result.pset))


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    return pages_of(REPO / "policies")


def test_support_oncall_schedule_on_the_page(pages: dict[str, str]) -> None:
    page = pages["urgent_ticket_waiting.md"]
    assert (
        "| primary | on-call member of **support_oncall** (europe: Lena Fischer, Marc Dubois; "
        "americas: Nora Reyes, Omar Haddad; schedule below) |" in page
    )
    assert (
        "- layer **europe**: 1w shifts handed off at 09:00 Europe/Berlin, starting 2026-01-05: "
        "Lena Fischer (from 2026-01-05), Marc Dubois (from 2026-01-12), then round again; "
        "only mon-sun 07:00-20:00\n" in page
    )
    assert "- layer **americas**: 1w shifts handed off at 09:00 America/New\\_York" in page
    assert "only mon-sun 13:00-02:00\n" in page
    # one week, days with the same hand-overs folded into one row
    assert "| Europe/Berlin | who is on call, from |" in page
    assert (
        "| Tue 2026-01-06 to Sun 01-11 | 00:00 Nora Reyes (americas) · 08:00 Lena Fischer "
        "(europe) · 19:00 Nora Reyes (americas) |" in page
    )
    assert (
        "| Mon 2026-01-12 | 00:00 Nora Reyes (americas) · 08:00 Lena Fischer (europe) · "
        "09:00 Marc Dubois (europe) · 19:00 Omar Haddad (americas) |" in page
    )
    assert "assigned to **on-call of support_oncall** (primary)" in page
    assert "everyone in support_oncall" not in page


def test_calendar_sla_on_the_page(pages: dict[str, str]) -> None:
    page = pages["urgent_ticket_waiting.md"]
    assert (
        "SLA: acknowledge 2h within `support_hours` (at most 4d 17h wall-clock), "
        "resolve 12h within `support_hours` (at most 5d 18h wall-clock). "
        "`support_hours` is open mon-fri 09:00-18:00 Europe/Berlin, closed 2026-12-24, "
        "2026-12-25, 2026-12-26, 2026-12-31, 2027-01-01." in page
    )
    assert (
        "| 12h of `support_hours` open hours | resolve SLA breached unless resolved by now |"
        in page
    )
    assert "| 12h | resolve SLA" not in page


def test_pages_stay_small(pages: dict[str, str]) -> None:
    for name, text in pages.items():
        assert len(text.encode()) < 5500, name


def test_rotation_teams_keep_their_sentence(pages: dict[str, str]) -> None:
    page = pages["enterprise_critical.md"]
    assert "**cust_ops_oncall** hands over every Monday at 09:00 UTC" in page
    assert "is on call by schedule" not in page


OVERRIDDEN = """event ticket.created
schema ticket {
  id: text
}
person ann { name "Ann" email "ann@example.com" }
person ben { name "Ben" email "ben@example.com" }
person cat { name "Cat" email "cat@example.com" }
team desk {
  layer day {
    members ann, ben
    shift 1d
    handoff 08:00
    zone "UTC"
    start "2026-01-05"
    restrict mon-fri 08:00-18:00
  }
  override cat for ben from "2026-01-06T08:00:00Z" to "2026-01-06T12:00:00Z"
}
policy p {
  approvers "@example/ops"
  trigger ticket.created
  owner primary desk ack 5m
  owner backup cat ack 5m
  exception unknown triage cat
}
"""


def test_overrides_and_gaps(tmp_path: Path) -> None:
    (tmp_path / "set.esc").write_text(OVERRIDDEN, "utf-8")
    page = pages_of(tmp_path)["p.md"]
    assert (
        "- override: Cat instead of Ben, from Tue 2026-01-06 08:00 to Tue 2026-01-06 12:00 UTC"
        in (page)
    )
    assert (
        "| Tue 2026-01-06 | 00:00 nobody · 08:00 Cat (override) · 12:00 Ben (day) · "
        "18:00 nobody |" in page
    )
    assert "| Sat 2026-01-10 to Sun 01-11 | 00:00 nobody |" in page


def test_words() -> None:
    assert days_text((0, 1, 2, 3, 4)) == "mon-fri"
    assert days_text((4, 5, 6, 0)) == "fri-mon"
    assert days_text((0, 2)) == "mon, wed"
    office = Calendar("office", "UTC", (Window((0, 1, 2, 3, 4), 540, 1020),))
    # the longest hour starts Friday 17:00 (closing) and ends Monday 10:00
    assert longest_wall_clock(office, 3600) == 65 * 3600


def test_week_rows_start_after_every_layer_started() -> None:
    s = Schedule((Layer("d", ("a", "b"), 86400, 0, "UTC", "2026-01-05"),))
    rows = week_rows(s, "UTC", str)
    assert [r.day for r in rows][:2] == ["Tue 2026-01-06", "Wed 2026-01-07"]
    assert rows[0].changes == "00:00 b (d)"
