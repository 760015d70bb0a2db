"""On-call schedules and business calendars (runtime/schedule.py and its helpers):
DST-correct hand-offs and windows, overrides, absences, exact segments and gaps, due
times, horizons, words for gaps; random schedules against brute-force references."""

from __future__ import annotations

import dataclasses
import doctest
import importlib
import itertools
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalade.runtime import intervals as iv
from escalade.runtime.schedule import (
    DAYS,
    Calendar,
    Layer,
    Override,
    Schedule,
    ScheduleError,
    Segment,
    Slot,
    Window,
    check,
    describe_gap,
    horizon,
    layer_from_rotation,
    plan_horizon,
    problems,
    summarize_gaps,
)

H = 3600
DAY = 86400
WEEK = 7 * DAY
WEEKDAYS = (0, 1, 2, 3, 4)


def at(text: str, zone: str = "UTC") -> int:
    """Epoch seconds of a local 'YYYY-MM-DD HH:MM' in ``zone`` (fold=0)."""
    return int(datetime.fromisoformat(text).replace(tzinfo=ZoneInfo(zone)).timestamp())


def hand_offs(schedule: Schedule, lo: int, hi: int) -> list[int]:
    """Instants where the on-call person changes (segment starts after the first)."""
    return [s.start for s in schedule.segments(lo, hi)][1:]


@pytest.mark.parametrize("module", ["intervals", "localtime", "calendars", "schedule"])
def test_the_docstring_examples_hold(module: str) -> None:
    result = doctest.testmod(importlib.import_module(f"escalade.runtime.{module}"))
    assert result.failed == 0 and result.attempted > 0


# ---------------------------------------------------------------- interval sets


def test_interval_helpers() -> None:
    a = ((0, 10), (20, 30))
    b = ((5, 25),)
    assert iv.union(a, b) == ((0, 30),)
    assert iv.intersect(a, b) == ((5, 10), (20, 25))
    assert iv.subtract(a, b) == ((0, 5), (25, 30))
    assert iv.complement(a, -5, 40) == ((-5, 0), (10, 20), (30, 40))
    assert iv.complement((), 0, 5) == ((0, 5),)
    assert iv.clip(a, 8, 22) == ((8, 10), (20, 22))
    assert iv.measure(a) == 20
    assert iv.normalize([(3, 4), (0, 3), (7, 7)]) == ((0, 4),)
    assert [iv.contains(a, t) for t in (-1, 0, 9, 10, 20, 30)] == [0, 1, 1, 0, 1, 0]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), max_size=6),
    st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), max_size=6),
)
def test_interval_helpers_agree_with_sets_of_points(
    a_raw: list[tuple[int, int]], b_raw: list[tuple[int, int]]
) -> None:
    a, b = iv.normalize(a_raw), iv.normalize(b_raw)

    def points(x: iv.Intervals) -> set[int]:
        return {t for s, e in x for t in range(s, e)}

    pa, pb = points(a), points(b)
    assert points(iv.union(a, b)) == pa | pb
    assert points(iv.intersect(a, b)) == pa & pb
    assert points(iv.subtract(a, b)) == pa - pb
    assert points(iv.complement(a, 0, 50)) == set(range(50)) - pa
    for x in (iv.union(a, b), iv.intersect(a, b), iv.subtract(a, b)):
        assert iv.normalize(x) == x


# ---------------------------------------------------------------- DST


@pytest.mark.parametrize(
    ("zone", "day"),
    [
        ("Europe/Berlin", "2026-03-29"),
        ("Europe/Berlin", "2026-10-25"),
        ("America/New_York", "2026-03-08"),
        ("America/New_York", "2026-11-01"),
    ],
)
def test_a_daily_0900_hand_off_stays_at_0900_local_across_dst(zone: str, day: str) -> None:
    layer = Layer("day", ("ann", "bob", "cat"), DAY, 9 * 60, zone, "2026-01-01")
    first = datetime.fromisoformat(day) - timedelta(days=2)
    lo, hi = at(f"{first:%Y-%m-%d} 00:00", zone), at(f"{first:%Y-%m-%d} 00:00", zone) + 5 * DAY
    expected = [at(f"{first + timedelta(days=d):%Y-%m-%d} 09:00", zone) for d in range(5)]
    assert hand_offs(Schedule((layer,)), lo, hi) == expected
    lengths = {b - a for a, b in itertools.pairwise(expected)}
    assert lengths == {DAY, DAY + (H if day[5:7] in ("10", "11") else -H)}
    for b in expected:
        assert datetime.fromtimestamp(b, ZoneInfo(zone)).strftime("%H:%M") == "09:00"


def test_a_restricted_layer_keeps_local_hours_so_it_moves_in_utc() -> None:
    day = Layer(
        "eu", ("ann",), WEEK, 0, "Europe/Berlin", "2026-03-23", (Window(WEEKDAYS, 420, 1200),)
    )
    s = Schedule((day,))
    gaps = s.gaps(at("2026-03-27 00:00"), at("2026-03-31 00:00"))
    # Friday 07:00-20:00 CET = 06:00-19:00 UTC; Monday 07:00-20:00 CEST = 05:00-18:00 UTC.
    assert gaps == (
        (at("2026-03-27 00:00"), at("2026-03-27 06:00")),
        (at("2026-03-27 19:00"), at("2026-03-30 05:00")),
        (at("2026-03-30 18:00"), at("2026-03-31 00:00")),
    )
    ny = Layer(
        "us", ("bob",), WEEK, 0, "America/New_York", "2026-10-26", (Window(WEEKDAYS, 420, 1200),)
    )
    on = [
        (g.start, g.end)
        for g in Schedule((ny,)).segments(at("2026-10-30"), at("2026-11-03 06:00"))
        if g.person
    ]
    assert on == [
        (at("2026-10-30 11:00"), at("2026-10-31 00:00")),
        (at("2026-11-02 12:00"), at("2026-11-03 01:00")),
    ]


def test_a_hand_off_in_the_skipped_hour_lands_after_the_change() -> None:
    """02:30 on the spring-forward day does not exist in Berlin: fold=0 reads it as 03:30 CEST."""
    layer = Layer("x", ("ann", "bob"), DAY, 150, "Europe/Berlin", "2026-03-28")
    assert layer.boundary(1) == at("2026-03-29 01:30")
    assert layer.boundary(1) == at("2026-03-29 03:30", "Europe/Berlin")
    assert Schedule((layer,)).who(at("2026-03-29 01:29")) == "ann"
    assert Schedule((layer,)).who(at("2026-03-29 01:30")) == "bob"


# ---------------------------------------------------------------- shifts over midnight


def test_twelve_hour_shifts_handing_off_at_0800_and_2000() -> None:
    layer = Layer("12h", ("day", "night"), 12 * H, 8 * 60, "Europe/Berlin", "2026-06-01")
    s = Schedule((layer,))
    segs = s.segments(
        at("2026-06-01 00:00", "Europe/Berlin"), at("2026-06-03 00:00", "Europe/Berlin")
    )
    assert [(g.start, g.person) for g in segs] == [
        (at("2026-06-01 00:00", "Europe/Berlin"), None),  # before the first hand-off
        (at("2026-06-01 08:00", "Europe/Berlin"), "day"),
        (at("2026-06-01 20:00", "Europe/Berlin"), "night"),
        (at("2026-06-02 08:00", "Europe/Berlin"), "day"),
        (at("2026-06-02 20:00", "Europe/Berlin"), "night"),
    ]
    assert segs[-1].end == at("2026-06-03 00:00", "Europe/Berlin")


def test_a_night_window_spanning_midnight() -> None:
    night = Layer("night", ("owl",), WEEK, 0, "UTC", "2026-06-01", (Window((0,), 22 * 60, 6 * 60),))
    base = Layer("base", ("ann",), WEEK, 0, "UTC", "2026-06-01")
    segs = Schedule((base, night)).segments(at("2026-06-01 00:00"), at("2026-06-03 00:00"))
    assert [(g.start, g.end, g.person) for g in segs] == [
        (at("2026-06-01 00:00"), at("2026-06-01 22:00"), "ann"),
        (at("2026-06-01 22:00"), at("2026-06-02 06:00"), "owl"),  # Monday night into Tuesday
        (at("2026-06-02 06:00"), at("2026-06-03 00:00"), "ann"),
    ]


# ---------------------------------------------------------------- overrides


def daily() -> Layer:
    return Layer("primary", ("ann", "bob"), DAY, 9 * 60, "UTC", "2026-06-01")


def test_an_override_inside_one_shift() -> None:
    o = Override("cat", at("2026-06-01 12:00"), at("2026-06-01 14:00"))
    s = Schedule((daily(),), (o,))
    segs = s.segments(at("2026-06-01 09:00"), at("2026-06-02 09:00"))
    assert [(g.start, g.end, g.person, g.layer, g.source) for g in segs] == [
        (at("2026-06-01 09:00"), at("2026-06-01 12:00"), "ann", "primary", "layer"),
        (at("2026-06-01 12:00"), at("2026-06-01 14:00"), "cat", "primary", "policy"),
        (at("2026-06-01 14:00"), at("2026-06-02 09:00"), "ann", "primary", "layer"),
    ]
    assert s.on_call(at("2026-06-01 13:00")) == Slot("cat", "primary", True)
    assert s.on_call(at("2026-06-01 15:00")) == Slot("ann", "primary", False)


def test_an_override_across_a_shift_boundary_and_replaces() -> None:
    lo, hi = at("2026-06-02 06:00"), at("2026-06-02 12:00")
    whole = Schedule((daily(),), (Override("cat", lo, hi, source="store"),))
    assert [(g.person, g.source) for g in whole.segments(at("2026-06-02 00:00"), hi)] == [
        ("ann", "layer"),
        ("cat", "store"),
    ]
    only_ann = Schedule((daily(),), (Override("cat", lo, hi, replaces="ann"),))
    assert [(g.start, g.person) for g in only_ann.segments(lo, hi)] == [
        (lo, "cat"),
        (at("2026-06-02 09:00"), "bob"),  # bob's shift: the override does not apply
    ]
    later_wins = Schedule((daily(),), (Override("cat", lo, hi), Override("dan", lo, lo + H)))
    assert [g.person for g in later_wins.segments(lo, hi)] == ["dan", "cat"]
    away = {"dan": [(lo, lo + H)]}
    assert later_wins.who(lo, away) == "cat"  # an absent override person is ignored


def test_an_override_outside_every_layer_has_no_layer() -> None:
    s = Schedule((daily(),), (Override("cat", at("2026-05-31 00:00"), at("2026-05-31 01:00")),))
    assert s.on_call(at("2026-05-31 00:30")) == Slot("cat", "", True)
    assert s.segments(at("2026-05-31 00:00"), at("2026-05-31 02:00")) == [
        Segment(at("2026-05-31 00:00"), at("2026-05-31 01:00"), "cat", None, "policy"),
        Segment(at("2026-05-31 01:00"), at("2026-05-31 02:00"), None, None, "none"),
    ]


# ---------------------------------------------------------------- layers, gaps, absences


def follow_the_sun() -> Schedule:
    eu = Layer(
        "eu", ("ann", "bob"), WEEK, 0, "Europe/Berlin", "2026-01-05", (Window(WEEKDAYS, 480, 1080),)
    )
    us = Layer(
        "us",
        ("cat", "dan"),
        WEEK,
        0,
        "America/New_York",
        "2026-01-05",
        (Window(WEEKDAYS, 480, 1080),),
    )
    apac = Layer(
        "apac",
        ("eve", "fay", "gus"),
        WEEK,
        0,
        "Asia/Kolkata",
        "2026-01-05",
        (Window(WEEKDAYS, 480, 1080),),
    )
    return Schedule((apac, us, eu))


def test_layered_coverage_with_an_exact_gap() -> None:
    s = follow_the_sun()
    # Tuesday 2026-01-13: Kolkata 08:00-18:00 = 02:30-12:30 UTC, Berlin 08:00-18:00 = 07:00-17:00,
    # New York 08:00-18:00 = 13:00-23:00 UTC. Nobody from 23:00 to 02:30 UTC.
    gaps = s.gaps(at("2026-01-13 00:00"), at("2026-01-14 00:00"))
    assert gaps == (
        (at("2026-01-13 00:00"), at("2026-01-13 02:30")),
        (at("2026-01-13 23:00"), at("2026-01-14 00:00")),
    )
    segs = s.segments(at("2026-01-13 00:00"), at("2026-01-14 00:00"))
    # eu is the last layer: it covers apac from 07:00 UTC; us covers apac but not eu.
    assert [(g.start, g.person, g.layer) for g in segs] == [
        (at("2026-01-13 00:00"), None, None),
        (at("2026-01-13 02:30"), "fay", "apac"),
        (at("2026-01-13 07:00"), "bob", "eu"),  # the second week: everyone's second member
        (at("2026-01-13 17:00"), "dan", "us"),
        (at("2026-01-13 23:00"), None, None),
    ]
    assert s.gaps(
        at("2026-01-13 00:00"), at("2026-01-14 00:00"), reachable=lambda p: p != "dan"
    ) == (
        (at("2026-01-13 00:00"), at("2026-01-13 02:30")),
        (at("2026-01-13 17:00"), at("2026-01-14 00:00")),
    )


def test_absences_pass_to_the_next_member_then_to_a_lower_layer() -> None:
    base = Layer("base", ("zed",), WEEK, 0, "UTC", "2026-06-01")
    top = Layer("top", ("ann", "bob", "cat"), DAY, 0, "UTC", "2026-06-01")
    s = Schedule((base, top))
    t = at("2026-06-01 10:00")  # ann's shift
    assert s.on_call(t) == Slot("ann", "top", False)
    assert s.who(t, {"ann": [(t - H, t + H)]}) == "bob"
    assert s.who(t, {"ann": [(t - H, t + H)], "bob": [(t, t + 1)]}) == "cat"
    everyone = {p: [(t, t + H)] for p in ("ann", "bob", "cat")}
    assert s.on_call(t, everyone) == Slot("zed", "base", False)
    assert s.who(t, {**everyone, "zed": [(t, t + H)]}) is None
    segs = s.segments(t - H, t + 2 * H, {"ann": [(t, t + H)]})
    assert [(g.start, g.person) for g in segs] == [(t - H, "ann"), (t, "bob"), (t + H, "ann")]


def test_before_the_first_hand_off_nobody_answers_unless_before_start() -> None:
    layer = daily()
    assert Schedule((layer,)).who(at("2026-05-31 12:00")) is None
    old = dataclasses.replace(layer, before_start=True)
    assert Schedule((old,)).who(at("2026-05-31 12:00")) == "bob"


def old_rotation(
    members: tuple[str, ...], period: int, start: int, t: int, absent: str
) -> str | None:
    """The old ``rotation daily|weekly from`` answer: whole periods since the start
    (negative before it) modulo the member count, passing over an absent member."""
    first = (t - start) // period
    order = [members[(first + i) % len(members)] for i in range(len(members))]
    return next((m for m in order if m != absent), None)


def test_the_rotation_shorthand_maps_onto_one_layer_exactly() -> None:
    members = ("ann", "bob", "cat")
    start = at("2026-01-05 09:30")
    for period, seconds in (("daily", DAY), ("weekly", WEEK)):
        schedule = Schedule((layer_from_rotation(members, period, "2026-01-05T09:30:00Z"),))
        for t in range(start - 3 * WEEK, start + 5 * WEEK, 7 * H + 60):
            for absent in ("", "ann"):
                away = {absent: [(t, t + 1)]} if absent else {}
                assert schedule.who(t, away) == old_rotation(members, seconds, start, t, absent), t
    offset = layer_from_rotation(["a"], "daily", "2026-01-05T10:30:00+02:00")
    assert (offset.start, offset.handoff) == ("2026-01-05", 8 * 60 + 30)
    for bad in (
        ("daily", "soon"),
        ("hourly", "2026-01-05T09:00:00Z"),
        ("daily", "2026-01-05T09:00:30Z"),
    ):
        with pytest.raises(ScheduleError):
            layer_from_rotation(["a"], *bad)


def test_starts_and_cycle() -> None:
    s = follow_the_sun()
    assert s.earliest_start() == at("2026-01-05 00:00", "Asia/Kolkata")
    assert s.latest_start() == at("2026-01-05 00:00", "America/New_York")
    assert s.cycle() == 6 * WEEK  # lcm(2w, 2w, 3w)
    assert Schedule((daily(),)).cycle() == 2 * DAY
    with pytest.raises(ScheduleError):
        Schedule(()).latest_start()


# ---------------------------------------------------------------- calendars


def office(*holidays: str) -> Calendar:
    return Calendar("office", "Europe/Berlin", (Window(WEEKDAYS, 540, 1080),), holidays)


def test_due_friday_evening_plus_twelve_open_hours_is_tuesday_1100() -> None:
    berlin = "Europe/Berlin"
    assert office().due(at("2026-12-04 17:00", berlin), 12 * H) == at("2026-12-08 11:00", berlin)
    # Starting in closed time counts from the next opening.
    assert office().due(at("2026-12-05 12:00", berlin), 2 * H) == at("2026-12-07 11:00", berlin)
    # Ending exactly at a closing time answers the closing time.
    assert office().due(at("2026-12-04 17:00", berlin), H) == at("2026-12-04 18:00", berlin)


def test_due_skips_a_holiday_and_spans_a_dst_weekend() -> None:
    berlin = "Europe/Berlin"
    christmas = office("2026-12-25")
    assert christmas.due(at("2026-12-24 17:00", berlin), 12 * H) == at("2026-12-29 11:00", berlin)
    start = at("2026-10-23 17:00", berlin)  # CEST
    due = office().due(start, 2 * H)
    assert due == at("2026-10-26 10:00", berlin)  # CET
    assert due - start == 66 * H  # 65 wall-clock hours plus the repeated hour


def test_open_hours_minus_holidays() -> None:
    cal = office("2026-12-25")
    spans = cal.open(at("2026-12-24 00:00"), at("2026-12-27 00:00"))
    assert spans == ((at("2026-12-24 08:00"), at("2026-12-24 17:00")),)


def test_longest_by_hand_and_against_brute_force() -> None:
    utc = Calendar("c", "UTC", (Window(WEEKDAYS, 540, 1080),))
    weeks = (at("2026-06-01 00:00"), at("2026-06-29 00:00"))
    assert utc.longest(H, weeks) == 64 * H  # Friday 17:00(+) -> Monday 09:00(+) + 1h... 64h
    assert utc.longest(9 * H, weeks) == (9 + 63) * H  # Friday 09:00+ -> Monday 09:00+
    holiday = Calendar("c", "UTC", (Window(WEEKDAYS, 540, 1080),), ("2026-06-15",))
    assert holiday.longest(H, weeks) == 88 * H  # Friday 17:00 -> Tuesday 10:00
    berlin = office("2026-10-26")
    lo, hi = at("2026-10-19 00:00"), at("2026-11-02 00:00")
    for seconds in (H, 10 * H):
        brute = max(berlin.due(s, seconds) - s for s in range(lo, hi, 900))
        assert berlin.longest(seconds, (lo, hi)) == brute


def test_a_calendar_that_never_opens_is_an_error() -> None:
    closed = Calendar("closed", "UTC", ())
    with pytest.raises(ScheduleError, match="never open"):
        closed.due(0, 60)
    with pytest.raises(ScheduleError, match="never open"):
        closed.longest(60, (0, WEEK))
    assert closed.due(0, 0) == 0


# ---------------------------------------------------------------- horizon


def test_horizon_is_a_year_or_the_cycle_in_whole_weeks_from_the_latest_start() -> None:
    s = follow_the_sun()
    lo, hi = horizon([s], [office()])
    assert lo == s.latest_start()
    assert hi - lo == 53 * WEEK
    long = Schedule((Layer("odd", tuple("abcdefghijklm"), 5 * WEEK, 0, "UTC", "2026-01-05"),))
    planned = plan_horizon([long], [])
    assert (planned.end - planned.start, planned.capped) == (65 * WEEK, False)
    huge = Schedule(
        (
            Layer("x", tuple("abcdefghijklmnopqrstuvwxyzABCDE"), 5 * DAY, 0, "UTC", "2026-01-05"),
            Layer("y", tuple("abcdefghijklmnopqrstuvwxyzABC"), 3 * DAY, 0, "UTC", "2026-01-05"),
        )
    )
    capped = plan_horizon([huge], [])
    assert capped.cycle == 13485 * DAY  # lcm(155 days, 87 days), over five years
    assert capped.capped and capped.end - capped.start == 261 * WEEK


def test_horizon_widens_in_weeks_to_include_holidays_and_overrides() -> None:
    late = Override("x", at("2028-03-01 00:00"), at("2028-03-01 01:00"))
    s = Schedule((daily(),), (late,))
    lo, hi = horizon([s], [office("2025-12-25"), office("2027-12-25")])
    # later holidays and overrides widen the end; one before the schedules start does
    # not move the start (nobody is on call then anyway: no false gaps)
    assert lo == s.latest_start() and hi >= late.end
    assert hi >= at("2027-12-26 00:00", "Europe/Berlin")
    assert (hi - lo) % WEEK == 0
    lo, hi = horizon([], [office("2025-12-25")])  # calendars alone: the holiday is inside
    assert lo <= at("2025-12-25 00:00", "Europe/Berlin") < hi
    assert horizon([], []) == horizon([], [])  # deterministic: never "now"


# ---------------------------------------------------------------- problems


def test_problems_of_layers_calendars_and_schedules() -> None:
    bad = Layer("x", (), 0, 1500, "Mars/Olympus", "2026-02-30", (Window((), 60, 60),))
    codes = ["zone", "members", "shift", "handoff", "start", "window", "window"]
    assert [p.code for p in check(bad)] == codes
    assert (
        problems(bad)[0]
        == "unknown time zone 'Mars/Olympus' (fix: use an IANA name such as Europe/Berlin or UTC)"
    )
    overlap = Layer(
        "y", ("a",), DAY, 0, "UTC", "2026-01-01", (Window((0,), 600, 720), Window((0, 1), 660, 700))
    )
    assert problems(overlap) == [
        "restriction windows overlap (fix: merge the overlapping windows into one)"
    ]
    wrap = Layer(
        "y", ("a",), DAY, 0, "UTC", "2026-01-01", (Window((6,), 1320, 120), Window((0,), 60, 180))
    )
    assert [p.code for p in check(wrap)] == ["window"]  # Sunday night runs into Monday 01:00
    empty = Layer("y", ("a",), DAY, 0, "UTC", "2026-01-01", (Window((0,), 600, 600),))
    assert "starts and ends at the same time" in problems(empty)[0]
    assert check(daily()) == []
    cal = Calendar("c", "Nowhere/X", (), ("2026-13-01",))
    assert [p.code for p in check(cal)] == ["zone", "never-open", "holiday"]
    sched = Schedule((daily(), daily()), (Override("a", 10, 5),))
    assert [p.code for p in check(sched)] == ["layer-name", "override"]
    assert check(Override("a", 0, 1)) == []


# ---------------------------------------------------------------- words


def test_describe_gap() -> None:
    assert describe_gap(at("2026-03-29 01:00"), at("2026-03-29 02:00"), "Europe/Berlin") == (
        "2026-03-29 03:00\u201304:00 Europe/Berlin (01:00\u201302:00 UTC)"
    )
    assert describe_gap(at("2026-01-09 23:00"), at("2026-01-10 02:30"), "Asia/Kolkata") == (
        "2026-01-10 04:30\u201308:00 Asia/Kolkata (2026-01-09 23:00\u20132026-01-10 02:30 UTC)"
    )


def test_summarize_gaps_groups_weekly_repeats() -> None:
    eu = Layer(
        "eu", ("ann",), WEEK, 9 * 60, "Europe/Berlin", "2026-01-05", (Window(WEEKDAYS, 540, 1080),)
    )
    s = Schedule((eu,))
    lo = at("2026-01-05 09:00", "Europe/Berlin")
    gaps = s.gaps(lo, lo + 53 * WEEK)
    lines = summarize_gaps(gaps, "Europe/Berlin")
    assert lines[0] == (
        "Mondays 18:00\u2013Tuesdays 09:00 Europe/Berlin (every week, 53 times; "
        "first 2026-01-05 18:00 Europe/Berlin = 17:00 UTC)"
    )
    assert any(
        line.startswith("Fridays 18:00\u2013Mondays 09:00 Europe/Berlin (every week, 53 times")
        for line in lines
    )
    assert len(lines) == 5
    assert summarize_gaps([(0, 60)], "UTC") == [
        "1970-01-01 00:00\u201300:01 UTC (00:00\u201300:01 UTC)"
    ]


# ---------------------------------------------------------------- performance


def test_a_year_of_follow_the_sun_is_fast() -> None:
    s = follow_the_sun()
    lo = s.latest_start()
    began = time.perf_counter()
    segs = s.segments(lo, lo + 366 * DAY)
    took = time.perf_counter() - began
    assert len(segs) > 1000
    assert took < 0.5, took  # typically ~20 ms; generous for loaded CI machines


# ---------------------------------------------------------------- random schedules

ZONES = ("Europe/Berlin", "America/New_York", "UTC", "Asia/Kolkata")
# Two weeks around a clock change (Berlin/New York), 15-minute resolution (every edge is
# on a quarter hour: hand-offs, windows, overrides, absences, and all four zones' offsets).
STARTS = (
    at("2026-03-02 00:00"),
    at("2026-03-23 00:00"),
    at("2026-10-19 00:00"),
    at("2026-10-26 00:00"),
)
STEP = 900
SPAN = 14 * DAY
PEOPLE = ("ann", "bob", "cat", "dan")

windows = st.builds(
    Window,
    st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True).map(
        lambda d: tuple(sorted(d))
    ),
    st.integers(0, 95).map(lambda q: q * 15),
    st.integers(1, 96).map(lambda q: q * 15),
)
layers = st.builds(
    Layer,
    st.sampled_from(("l1", "l2", "l3")),
    st.lists(st.sampled_from(PEOPLE), min_size=1, max_size=4).map(tuple),
    st.integers(1, 72).map(lambda h: h * H),
    st.integers(0, 95).map(lambda q: q * 15),
    st.sampled_from(ZONES),
    st.sampled_from(("2026-02-20", "2026-03-05", "2026-03-27", "2026-10-20", "2026-10-30")),
    st.one_of(st.just(()), st.lists(windows, min_size=1, max_size=1).map(tuple)),
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[Schedule, int, dict[str, list[tuple[int, int]]]]:
    lo = draw(st.sampled_from(STARTS))
    quarter = st.integers(0, SPAN // STEP).map(lambda q: lo + q * STEP)
    spans = st.tuples(quarter, st.integers(1, 96).map(lambda q: q * STEP)).map(
        lambda p: (p[0], p[0] + p[1])
    )
    overrides = st.builds(
        lambda person, span, replaces, source: Override(person, span[0], span[1], replaces, source),
        st.sampled_from(PEOPLE),
        spans,
        st.one_of(st.none(), st.sampled_from(PEOPLE)),
        st.sampled_from(("policy", "store")),
    )
    schedule = Schedule(
        tuple(draw(st.lists(layers, min_size=1, max_size=3))),
        tuple(draw(st.lists(overrides, max_size=3))),
    )
    away = draw(st.dictionaries(st.sampled_from(PEOPLE), st.lists(spans, max_size=2), max_size=3))
    return schedule, lo, away


def naive_allowed(layer: Layer, t: int) -> bool:
    tz = ZoneInfo(layer.zone)
    today = datetime.fromtimestamp(t, tz).date()
    for back in (0, 1, 2):
        day = datetime(*(today - timedelta(days=back)).timetuple()[:3])
        for w in layer.restrict:
            if day.weekday() not in w.days:
                continue
            length = w.end - w.start if w.end > w.start else w.end + 1440 - w.start
            a = (day + timedelta(minutes=w.start)).replace(tzinfo=tz).timestamp()
            b = (day + timedelta(minutes=w.start + length)).replace(tzinfo=tz).timestamp()
            if a <= t < b:
                return True
    return False


def naive_k(layer: Layer, t: int) -> int | None:
    """Brute force: every hand-off from the first, the latest one at or before t."""
    tz = ZoneInfo(layer.zone)
    base = datetime.fromisoformat(layer.start) + timedelta(minutes=layer.handoff)
    limit = datetime.fromtimestamp(t, ZoneInfo("UTC")).replace(tzinfo=None) + timedelta(days=2)
    k, latest = 0, None
    while (naive := base + timedelta(seconds=k * layer.shift)) < limit:
        if int(naive.replace(tzinfo=tz).timestamp()) <= t:
            latest = k
        k += 1
    return latest


def naive_who(s: Schedule, t: int, away: dict[str, list[tuple[int, int]]]) -> str | None:
    def gone(p: str) -> bool:
        return any(a <= t < b for a, b in away.get(p, ()))

    layered = None
    for layer in reversed(s.layers):
        k = naive_k(layer, t)
        if k is None or (layer.restrict and not naive_allowed(layer, t)):
            continue
        n = len(layer.members)
        layered = next((p for i in range(n) if not gone(p := layer.members[(k + i) % n])), None)
        if layered is not None:
            break
    for o in reversed(s.overrides):
        if o.start <= t < o.end and not gone(o.person) and o.replaces in (None, layered):
            return o.person
    return layered


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_segments_and_gaps_agree_with_on_call_every_quarter_hour(
    case: tuple[Schedule, int, dict[str, list[tuple[int, int]]]],
) -> None:
    schedule, lo, away = case
    hi = lo + SPAN
    segs = schedule.segments(lo, hi, away)
    assert segs[0].start == lo and segs[-1].end == hi
    assert all(a.end == b.start for a, b in itertools.pairwise(segs))
    assert all(
        (a.person, a.layer, a.source) != (b.person, b.layer, b.source)
        for a, b in itertools.pairwise(segs)
    )
    by_time = iter(segs)
    seg = next(by_time)
    for t in range(lo, hi, STEP):
        while not seg.start <= t < seg.end:
            seg = next(by_time)
        slot = schedule.on_call(t, away)
        got = (slot.person, slot.layer or None, slot.override) if slot else (None, None, False)
        assert got == (seg.person, seg.layer, seg.source not in ("layer", "none")), t
    gaps = schedule.gaps(lo, hi, away)
    nobody = iv.normalize(
        (t, t + STEP) for t in range(lo, hi, STEP) if schedule.who(t, away) is None
    )
    assert gaps == nobody


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases(), st.lists(st.integers(0, SPAN), min_size=5, max_size=5))
def test_on_call_agrees_with_a_brute_force_reference(
    case: tuple[Schedule, int, dict[str, list[tuple[int, int]]]], offsets: list[int]
) -> None:
    schedule, lo, away = case
    for offset in offsets:
        t = lo + offset
        assert schedule.who(t, away) == naive_who(schedule, t, away), t


calendars = st.builds(
    Calendar,
    st.just("c"),
    st.sampled_from(ZONES),
    st.lists(windows, min_size=1, max_size=3).map(tuple),
    st.lists(
        st.sampled_from(("2026-03-09", "2026-03-27", "2026-03-30", "2026-10-26")), max_size=2
    ).map(tuple),
)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calendars, st.sampled_from(STARTS), st.integers(1, 40).map(lambda q: q * STEP))
def test_due_and_longest_agree_with_brute_force(cal: Calendar, lo: int, seconds: int) -> None:
    """due(s) is the first instant with ``seconds`` of open time since s; longest is the
    largest due(s) - s over every quarter hour (every breakpoint is on a quarter hour)."""
    hi = lo + SPAN
    for s in range(lo, hi, 7 * STEP):
        due = cal.due(s, seconds)
        assert iv.measure(cal.open(s, due)) == seconds
        assert iv.measure(cal.open(s, due - 1)) < seconds
    brute = max(cal.due(s, seconds) - s for s in range(lo, hi, STEP))
    assert cal.longest(seconds, (lo, hi)) == brute


def test_days_are_named_monday_first() -> None:
    assert DAYS[0] == "mon" and DAYS[6] == "sun" and len(DAYS) == 7
