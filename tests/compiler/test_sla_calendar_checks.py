"""E401 and W402 compare an SLA counted in a calendar (``sla resolve 12h within CAL``) by
the longest wall-clock time it can take over the analysis horizon."""

from __future__ import annotations

from pathlib import Path

from escalade.compiler import load_policy_set
from tests.conftest import CASES

CALENDARS = """
calendar office {
  mon-fri 09:00-18:00 "Europe/Berlin"
}

calendar daily {
  mon-sun 09:00-18:00 "UTC"
}
"""


def timing(replace: dict[str, str]) -> list[tuple[str, int, str]]:
    """The timing case (E401 and W402 in wall-clock time) with its SLAs rewritten."""
    text = (CASES / "timing.esc").read_text("utf-8")
    for old, new in replace.items():
        assert old in text
        text = text.replace(old, new)
    text += CALENDARS
    path = Path("cases/timing_calendar.esc")
    result = load_policy_set(path, sources=[("timing_calendar", text)])
    return [
        (d.code, d.span.line, d.message)
        for d in result.diagnostics
        if d.code in ("E401", "W402") or d.severity == "error"
    ]


def test_wall_clock_slas_still_report() -> None:
    assert [c for c, _, _ in timing({})] == ["E401", "W402"]


def test_business_hours_give_a_short_sla_room_over_nights_and_weekends() -> None:
    # 10 office minutes can take from Friday 18:00 to Monday 09:10: a 30m ack fits,
    # and so does a 7h30m chain in 1 office hour (up to Friday 18:00 -> Monday 10:00).
    found = timing(
        {
            "sla acknowledge 10m": "sla acknowledge 10m within office",
            "sla resolve 4h": "sla resolve 1h within office",
        }
    )
    assert found == []


def test_the_longest_wall_clock_length_decides() -> None:
    # Daily 09:00-18:00: 10 open minutes take at most 18:00 -> 09:10 (15h10m).
    found = timing(
        {
            "owner primary ann ack 30m": "owner primary ann ack 16h",
            "sla acknowledge 10m": "sla acknowledge 10m within daily",
            "sla resolve 4h": "sla resolve 1h within daily",
        }
    )
    assert [(c, line) for c, line, _ in found] == [("E401", 31), ("W402", 35)]
    assert found[0][2].endswith(
        "the acknowledge SLA is 10m within daily (up to 15h10m of wall-clock time)"
    )
    # the chain: (16h + 2h) x 3 = 54h; 1 daily hour takes at most 18:00 -> 10:00
    assert found[1][2].endswith("the resolve SLA of 1h within daily (up to 16h of wall-clock time)")
    fits = timing(
        {
            "owner primary ann ack 30m": "owner primary ann ack 15h",
            "sla acknowledge 10m": "sla acknowledge 10m within daily",
        }
    )
    assert [c for c, _, _ in fits] == ["W402"]
