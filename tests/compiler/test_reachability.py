"""E208 / W209: the coverage proof in time, exact on interval sets.

Small layered schedules with known windows, daylight-saving changes that break a
follow-the-sun overlap for exactly the weeks between the two changes, members
without a contact point, calendars that widen the horizon but cover nobody, the
bundled policies with a layer removed (witness accepted by ``escalade explain``),
and a property test against a quarter-hour point-by-point reference.
"""

from __future__ import annotations

import calendar
import json
import re
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from escalade.compiler import load_policy_set
from escalade.compiler.cli import main
from escalade.compiler.diagnostics import Collector, Diagnostic
from escalade.compiler.model import Owner, PolicySet
from escalade.compiler.nodes import NO_SPAN
from escalade.compiler.passes.reachability import Reach, team_gaps
from escalade.runtime.intervals import Intervals, intersect, normalize, subtract
from escalade.runtime.localtime import Window
from escalade.runtime.schedule import Layer, Schedule

REPO = Path(__file__).resolve().parents[2]
HOUR = 3600
DAY = 86400

HEADER = """
event lead.updated
schema lead {
  id: text
  crm_status: enum(accepted, rejected)
}
person erin { email "erin@example.com" }
person ines { slack "@ines" }
person farid { email "farid@example.com" }
person kim { email "kim@example.com" }
person quinn { name "Quinn Ortiz" timezone "Europe/Berlin" }
"""

POLICY = """
policy lead_rejected {
  approvers "@example/revops"
  trigger lead.updated
  when lead.crm_status == rejected
  owner primary PRIMARY ack 1h
  owner backup BACKUP
  exception unknown triage kim
}
"""


def utc(text: str) -> int:
    """``2026-03-09 06:00`` (UTC) as epoch seconds."""
    return calendar.timegm(datetime.strptime(text, "%Y-%m-%d %H:%M").timetuple())


def layer(name: str, members: str, zone: str, restrict: str = "", handoff: str = "09:00") -> str:
    lines = [
        f"  layer {name} {{",
        f"    members {members}",
        "    shift 1w",
        f"    handoff {handoff}",
        f'    zone "{zone}"',
        '    start "2026-01-05"',
    ]
    if restrict:
        lines.append(f"    restrict {restrict}")
    return "\n".join([*lines, "  }"])


def team(name: str, *layers: str) -> str:
    return f"team {name} {{\n" + "\n".join(layers) + "\n}\n"


def check(source: str, primary: str = "desk", backup: str = "farid") -> list[Diagnostic]:
    text = HEADER + source + POLICY.replace("PRIMARY", primary).replace("BACKUP", backup)
    result = load_policy_set("x.esc", sources=[("x.esc", text)])
    return [d for d in result.diagnostics if d.code in ("E208", "W209")]


def pset_of(source: str, primary: str = "desk", backup: str = "farid") -> PolicySet:
    text = HEADER + source + POLICY.replace("PRIMARY", primary).replace("BACKUP", backup)
    result = load_policy_set("x.esc", sources=[("x.esc", text)])
    assert result.pset is not None
    return result.pset


def line_of(source: str, needle: str) -> int:
    """The line of ``needle`` in the checked file (header, source, policy)."""
    text = HEADER + source + POLICY
    return text[: text.index(needle)].count("\n") + 1


def codes(diags: list[Diagnostic]) -> list[str]:
    return [d.code for d in diags]


# --------------------------------------------------------------------------- exact windows


def test_a_weekday_office_layer_leaves_nights_and_weekends_exactly() -> None:
    source = team("desk", layer("office", "erin, ines", "UTC", "mon-fri 09:00-17:00"))
    pset = pset_of(source)
    horizon = Reach.build(pset, _no_diags()).horizon
    assert horizon.start == utc("2026-01-05 09:00")  # the first hand-off: a Monday
    assert (horizon.end - horizon.start) == 53 * 7 * DAY
    gaps = team_gaps(pset, pset.teams["desk"], horizon.start, horizon.end)
    assert gaps[:3] == (
        (utc("2026-01-05 17:00"), utc("2026-01-06 09:00")),
        (utc("2026-01-06 17:00"), utc("2026-01-07 09:00")),
        (utc("2026-01-07 17:00"), utc("2026-01-08 09:00")),
    )
    assert (utc("2026-01-09 17:00"), utc("2026-01-12 09:00")) in gaps  # the weekend
    assert len(gaps) == 53 * 5  # every weeknight; the horizon ends on a Monday 09:00
    [found] = check(source)
    assert found.code == "W209" and found.span.line == line_of(source, "owner primary")
    assert found.message.startswith(
        "nobody in desk is reachable Mondays\u2013Thursdays 17:00\u201309:00 UTC (212 times, "
        "2026-01-05 to 2027-01-07; first 2026-01-05 17:00 UTC), Fridays "
        "17:00\u2013Mondays 09:00 UTC (every week, 53 times; first 2026-01-09 17:00 UTC"
    )
    assert "used as primary by lead_rejected" in found.message
    assert found.witness is not None
    assert found.witness["at"] == "2026-01-05T17:00:00Z"
    assert found.witness["type"] == "lead.updated"
    assert found.witness["data"]["lead"]["crm_status"] == "rejected"


def test_a_second_layer_covering_the_rest_closes_the_gap() -> None:
    source = team(
        "desk",
        layer("base", "farid, kim", "UTC"),
        layer("office", "erin, ines", "UTC", "mon-fri 09:00-17:00"),
    )
    assert check(source) == []


def test_the_whole_chain_uncovered_is_e208_and_the_rest_w209_never_both() -> None:
    source = team("desk", layer("office", "erin, ines", "UTC", "mon-fri 09:00-17:00")) + team(
        "leads", layer("office", "farid, kim", "UTC", "mon-fri 08:00-16:00")
    )
    found = check(source, "desk", "leads")
    assert sorted(codes(found)) == ["E208", "W209", "W209"]
    chain = next(d for d in found if d.code == "E208")
    assert "(desk \u2192 leads)" in chain.message
    assert "Fridays 17:00\u2013Mondays 08:00 UTC" in chain.message
    assert [n.span.line for n in chain.notes] == [
        line_of(source, "owner primary"),
        line_of(source, "owner backup"),
    ]
    assert chain.witness is not None and chain.witness["at"] == "2026-01-05T17:00:00Z"
    desk, leads = (d for d in found if d.code == "W209")
    assert (
        "nobody in desk is reachable Mondays\u2013Fridays 08:00\u201309:00 UTC (265 times"
        in desk.message
    )
    assert "nobody in leads is reachable Mondays\u2013Fridays 16:00\u201317:00 UTC" in leads.message
    # the level windows are what the chain window is not
    pset = pset_of(source, "desk", "leads")
    h = Reach.build(pset, _no_diags()).horizon
    a = team_gaps(pset, pset.teams["desk"], h.start, h.end)
    b = team_gaps(pset, pset.teams["leads"], h.start, h.end)
    assert intersect(subtract(a, intersect(a, b)), intersect(a, b)) == ()


def test_strategies_pick_among_the_members_on_call() -> None:
    pset = pset_of(team("desk", layer("office", "erin, ines", "UTC", "mon-fri 09:00-17:00")))
    desk = pset.teams["desk"]
    lo, hi = utc("2026-01-05 09:00"), utc("2026-02-02 09:00")
    plain = team_gaps(pset, desk, lo, hi)
    assert plain and all(team_gaps(pset, desk, lo, hi, s) == plain for s in ("round_robin", "all"))


# --------------------------------------------------------------------------- daylight saving


def test_follow_the_sun_breaks_exactly_between_the_two_dst_changes() -> None:
    """Berlin 08:00-20:00 and New York 14:00-02:00 meet exactly while both zones keep the
    same kind of time; between the US and the EU change (March 8-29, October 25 -
    November 1, 2026) New York is an hour early and 06:00-07:00 UTC is uncovered."""
    source = team(
        "desk",
        layer("europe", "erin, ines", "Europe/Berlin", "mon-sun 08:00-20:00"),
        layer("americas", "farid, kim", "America/New_York", "mon-sun 14:00-02:00"),
    )
    pset = pset_of(source)
    h = Reach.build(pset, _no_diags()).horizon
    gaps = team_gaps(pset, pset.teams["desk"], h.start, h.end)
    days = [date(2026, 3, 9) + timedelta(days=i) for i in range(20)]  # March 9 .. 28
    days += [date(2026, 10, 25) + timedelta(days=i) for i in range(7)]  # October 25 .. 31
    expected = tuple((utc(f"{d} 06:00"), utc(f"{d} 07:00")) for d in days)
    assert gaps == expected
    [found] = check(source)
    assert found.code == "W209"
    assert found.message == (
        "nobody in desk is reachable daily 07:00\u201308:00 Europe/Berlin (27 times, "
        "2026-03-09 to 2026-10-31; first 2026-03-09 07:00 Europe/Berlin = 06:00 UTC); "
        "used as primary by lead_rejected"
    )
    assert found.witness is not None and found.witness["at"] == "2026-03-09T06:00:00Z"


# --------------------------------------------------------------------------- contact points


def test_a_member_without_a_contact_point_makes_their_shifts_a_gap() -> None:
    # quinn has a name and a timezone, which is not a contact point
    source = team("desk", layer("all_week", "erin, quinn", "UTC"))
    pset = pset_of(source)
    h = Reach.build(pset, _no_diags()).horizon
    gaps = team_gaps(pset, pset.teams["desk"], h.start, h.end)
    week = 7 * DAY
    assert gaps[:2] == (
        (h.start + week, h.start + 2 * week),
        (h.start + 3 * week, h.start + 4 * week),
    )
    assert all(b - a == week for a, b in gaps)
    [found] = check(source)
    assert found.code == "W209"
    assert "Mondays 09:00 for 7d UTC" in found.message


def test_a_team_without_schedule_is_reachable_when_any_member_is() -> None:
    assert check("team desk { members quinn, erin }\n") == []
    [found] = check("team desk { members quinn }\n")
    assert found.code == "W209" and "nobody in desk is reachable at any time" in found.message


def test_a_person_without_contact_is_e207_only() -> None:
    text = HEADER + POLICY.replace("PRIMARY", "quinn").replace("BACKUP", "farid")
    result = load_policy_set("x.esc", sources=[("x.esc", text)])
    assert "E207" in codes(result.diagnostics)
    assert not {"E208", "W209"} & set(codes(result.diagnostics))


# --------------------------------------------------------------------------- calendars, horizon


def test_a_calendar_widens_the_horizon_but_covers_nobody() -> None:
    covered = team("desk", layer("base", "farid, kim", "UTC"))
    hours = (
        'calendar office_hours {\n  mon-fri 09:00-18:00 "Europe/Berlin"\n  except "2027-06-01"\n}\n'
    )
    pset = pset_of(covered + hours)
    h = Reach.build(pset, _no_diags()).horizon
    assert h.end > utc("2027-06-02 00:00")  # the holiday lies inside
    assert [d.code for d in check(covered + hours) if d.code in ("E208", "W209")] == []
    office = team("desk", layer("office", "erin, ines", "UTC", "mon-fri 09:00-17:00"))
    with_calendar = [d for d in check(office + hours) if d.code == "W209"]
    assert len(with_calendar) == 1
    assert "Fridays 17:00\u2013Mondays 09:00 UTC (every week, 7" in with_calendar[0].message


def test_a_policy_without_trigger_gets_the_time_and_no_event() -> None:
    source = team("desk", layer("office", "erin, ines", "UTC", "mon-fri 09:00-17:00"))
    text = HEADER + source + POLICY.replace("PRIMARY", "desk").replace("BACKUP", "farid")
    text = text.replace("  trigger lead.updated\n  when lead.crm_status == rejected\n", "")
    result = load_policy_set("x.esc", sources=[("x.esc", text)])
    [found] = [d for d in result.diagnostics if d.code == "W209"]
    assert found.witness is None
    assert found.help is not None
    assert "first at 2026-01-05T17:00:00Z" in found.help and "handoff" in found.help


def test_output_is_deterministic() -> None:
    source = team("desk", layer("office", "erin, ines", "Europe/Berlin", "mon-fri 09:00-17:00"))
    first = [(d.code, d.message, d.help, d.witness) for d in check(source)]
    assert first == [(d.code, d.message, d.help, d.witness) for d in check(source)]


# --------------------------------------------------------------------------- bundled policies


def _without_layer(tmp_path: Path, name: str) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "policies", root / "policies")
    shutil.copy(REPO / "escalade.yaml", root / "escalade.yaml")
    directory = root / "policies" / "directory.esc"
    text = directory.read_text("utf-8")
    cut = re.sub(rf"  layer {name} \{{.*?\n  \}}\n", "", text, flags=re.S)
    assert cut != text
    directory.write_text(cut, "utf-8")
    return root


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_bundled_policies_are_covered_around_the_clock(policies_dir: Path) -> None:
    status, out = _run("check", "--strict", "--no-cache", str(policies_dir))
    assert status == 0, out


def test_removing_a_layer_of_support_oncall_is_reported_with_a_witness(tmp_path: Path) -> None:
    for name, zone in (("europe", "America/New_York"), ("americas", "Europe/Berlin")):
        root = _without_layer(tmp_path / name, name)
        policies = root / "policies"
        status, out = _run("check", "--no-cache", "--format", "json", str(policies))
        found = [d for d in json.loads(out)["diagnostics"] if d["code"] in ("E208", "W209")]
        assert found, out
        by_policy = {d["message"].rsplit("used as primary by ", 1)[-1]: d for d in found}
        assert set(by_policy) == {"high_priority_sla_breach", "urgent_ticket_waiting"}
        for d in found:
            assert d["code"] == "W209"  # ines (backup) is always reachable
            assert "nobody in support_oncall is reachable " in d["message"]
            assert zone in d["message"] and "UTC" in d["message"]
            witness = d["witness"]
            pset = load_policy_set(policies).pset
            assert pset is not None
            h = Reach.build(pset, _no_diags()).horizon
            gaps = team_gaps(pset, pset.teams["support_oncall"], h.start, h.end)
            at = calendar.timegm(datetime.strptime(witness["at"], "%Y-%m-%dT%H:%M:%SZ").timetuple())
            assert any(a <= at < b for a, b in gaps)
            event = tmp_path / name / "witness.json"
            event.write_text(json.dumps(witness), "utf-8")
            status, out = _run(
                "explain", str(event), "--policies", str(policies), "--format", "json"
            )
            assert status == 0, out
            policy = d["message"].rsplit("used as primary by ", 1)[-1]
            doc = json.loads(out)
            assert doc["owner"] == policy
            primary = doc["chain"][0]
            assert primary["ref"] == "support_oncall" and "on call now" not in primary["who"]


# --------------------------------------------------------------------------- property


def _no_diags() -> Collector:
    return Collector()


ZONES = ("UTC", "Europe/Berlin", "America/New_York")
ANCHORS = (utc("2026-03-02 00:00"), utc("2026-10-19 00:00"))  # both weeks hold DST changes
QUARTER = 900


@st.composite
def windows(draw: st.DrawFn) -> tuple[Window, ...]:
    if draw(st.booleans()):
        return ()
    days = tuple(sorted(draw(st.sets(st.integers(0, 6), min_size=1))))
    start = draw(st.integers(0, 95)) * 15
    length = draw(st.integers(1, 95)) * 15
    end = start + length if start + length <= 1440 else start + length - 1440
    return (Window(days, start, end),)


@st.composite
def layers(draw: st.DrawFn, name: str, anchor: int) -> Layer:
    members = tuple(draw(st.lists(st.sampled_from("abcd"), min_size=1, max_size=3, unique=True)))
    shift = draw(st.sampled_from((4 * 3600, 43200, DAY, 2 * DAY, 7 * DAY))) + draw(
        st.sampled_from((0, 0, QUARTER, 3 * QUARTER))
    )
    begin = datetime.fromtimestamp(anchor, UTC).date() + timedelta(days=draw(st.integers(-9, 6)))
    return Layer(
        name,
        members,
        shift,
        draw(st.integers(0, 95)) * 15,
        draw(st.sampled_from(ZONES)),
        begin.isoformat(),
        draw(windows()),
    )


@st.composite
def schedules(draw: st.DrawFn, anchor: int) -> Schedule:
    count = draw(st.integers(1, 2))
    return Schedule(tuple(draw(layers(f"l{i}", anchor)) for i in range(count)))


def _reference(schedule: Schedule, reachable: set[str], lo: int, hi: int) -> Intervals:
    """Quarter hour by quarter hour: who the schedule puts on call (point evaluation)."""
    out = []
    for t in range(lo, hi, QUARTER):
        who = schedule.who(t)
        if who is None or who not in reachable:
            out.append((t, t + QUARTER))
    return normalize(out)


@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_interval_gaps_equal_a_quarter_hour_reference(data: st.DataObject) -> None:
    anchor = data.draw(st.sampled_from(ANCHORS))
    first, second = data.draw(schedules(anchor)), data.draw(schedules(anchor))
    reachable = data.draw(st.sets(st.sampled_from("abcd")))
    lo, hi = anchor, anchor + 14 * DAY
    people = {p: ({"email": f"{p}@x"} if p in reachable else {}) for p in "abcd"}
    pset = _tiny_pset(people, first, second)
    a = team_gaps(pset, pset.teams["one"], lo, hi)
    b = team_gaps(pset, pset.teams["two"], lo, hi)
    assert all(x % QUARTER == 0 for span in a + b for x in span)
    assert a == _reference(first, reachable, lo, hi)
    assert b == _reference(second, reachable, lo, hi)
    chain = intersect(a, b)
    ref_a, ref_b = _reference(first, reachable, lo, hi), _reference(second, reachable, lo, hi)
    for t in range(lo, hi, QUARTER):
        in_a = any(x <= t < y for x, y in ref_a)
        in_b = any(x <= t < y for x, y in ref_b)
        assert any(x <= t < y for x, y in chain) == (in_a and in_b)
        assert any(x <= t < y for x, y in subtract(a, chain)) == (in_a and not in_b)


def _tiny_pset(people: dict[str, dict[str, str]], *schedules: Schedule) -> PolicySet:
    from escalade.compiler import model as m

    teams = {
        name: m.Team(name, tuple("abcd"), None, None, NO_SPAN, s)
        for name, s in zip(("one", "two"), schedules, strict=True)
    }
    return m.PolicySet(
        root=".",
        files=(),
        schema=m.Schema({}, {}),
        people={p: m.Person(p, p, c, NO_SPAN) for p, c in people.items()},
        teams=teams,
        channels={},
        templates={},
        policies={},
        coverage=(),
        bad_conditions=frozenset(),
    )


def test_owner_levels_of_unknown_refs_are_skipped() -> None:
    pset = pset_of(team("desk", layer("office", "erin, ines", "UTC", "mon-fri 09:00-17:00")))
    reach = Reach.build(pset, _no_diags())
    assert reach.level(Owner("primary", "nobody", "unknown", None, NO_SPAN)) is None
