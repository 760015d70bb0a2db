"""Assignment strategies in the compiler (issue #15 part 4): ``owner LEVEL round_robin(T)``,
``owner LEVEL all(T)`` and ``step notify all(T)`` are checked (a pick over an empty team is
a located E205 naming the owner line), the coverage proof counts a pick's candidates,
runbooks and ``explain`` say how each level picks."""

from __future__ import annotations

import json
from typing import Any

import pytest

from escalade.compiler import load_policy_set
from escalade.compiler.backends.rivals import policy_rivals
from escalade.compiler.backends.rulepack import build_pack
from escalade.compiler.backends.runbooks import render_runbooks
from escalade.compiler.diagnostics import Collector
from escalade.compiler.explain import explain_event, render_explanation
from escalade.compiler.model import PolicySet
from escalade.compiler.passes import reachability
from escalade.runtime.pack import RulePack

DIRECTORY = """\
event lead.updated
schema lead {
  id: text
  source: enum(organic, referral)
}
person ines { name "Ines Duarte" slack "@ines" }
person lena { name "Lena Fischer" slack "@lena" }
person kim { name "Kim Novak" email "kim@example.com" }
team sdr_queue {
  members ines, lena
}
team desk {
  layer office {
    members ines, lena
    shift 1w
    handoff 09:00
    zone "UTC"
    start "2026-01-05"
    restrict mon-fri 09:00-17:00
  }
}
"""

POLICY = """\
policy referral_lead {
  title "Referral lead"
  approvers "@example/revops"
  trigger lead.updated
  when lead.source == referral
  owner primary PRIMARY ack 1h
  owner backup kim
  step notify all(desk) "Referral lead {{ lead.id }}"
  exception unknown triage kim
}
"""


def load(primary: str, extra: str = "") -> Any:
    text = DIRECTORY + extra + POLICY.replace("PRIMARY", primary)
    return load_policy_set("x.esc", sources=[("x.esc", text)])


def pset_of(primary: str, extra: str = "") -> PolicySet:
    result = load(primary, extra)
    assert result.pset is not None and result.errors == 0, [
        (d.code, d.message) for d in result.diagnostics
    ]
    return result.pset


def line_of(needle: str, primary: str, extra: str = "") -> int:
    text = DIRECTORY + extra + POLICY.replace("PRIMARY", primary)
    return text[: text.index(needle)].count("\n") + 1


# --------------------------------------------------------------------------- checks


def test_a_round_robin_over_an_empty_team_is_located_at_the_team_and_the_owner() -> None:
    extra = "team nobody {\n  members\n}\n"
    result = load("round_robin(nobody)", extra)
    [empty] = [d for d in result.diagnostics if d.code == "E205"]
    assert empty.message == "team 'nobody' has no members"
    assert empty.span.line == line_of("team nobody", "round_robin(nobody)", extra)
    [note] = empty.notes
    assert note.span.line == line_of("owner primary", "round_robin(nobody)", extra)
    assert note.message == "round_robin(nobody) as primary owner of 'referral_lead' picks nobody"
    assert not [d for d in result.diagnostics if d.code in ("E208", "W209")]  # one defect


def test_a_pick_over_a_person_and_an_unknown_pick_are_e105() -> None:
    person = load("round_robin(ines)")
    assert [d.message for d in person.diagnostics if d.code == "E105"] == [
        "round_robin picks among a team's members; 'ines' is a person"
    ]
    unknown = load("random(sdr_queue)")  # never analysed by the coverage pass either
    assert [d.code for d in unknown.diagnostics if d.severity == "error"] == ["E105"]


def test_the_strategies_compile_into_the_pack() -> None:
    pack = build_pack(pset_of("round_robin(sdr_queue)"))
    [policy] = pack["policies"]
    assert policy["owners"][0] == {
        "level": "primary",
        "ref": "sdr_queue",
        "kind": "team",
        "ack": 3600,
        "pick": "round_robin",
    }
    assert policy["steps"][0]["args"][0] == {"ref": "desk", "kind": "team", "pick": "all"}


# --------------------------------------------------------------------------- coverage


def test_the_coverage_pass_asks_for_the_gaps_of_each_levels_pick(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    asked: list[tuple[str, str | None]] = []
    real = reachability.team_gaps

    def recording(pset: PolicySet, team: Any, lo: int, hi: int, strategy: str | None = None) -> Any:
        asked.append((team.name, strategy))
        return real(pset, team, lo, hi, strategy)

    monkeypatch.setattr(reachability, "team_gaps", recording)
    for pick in ("round_robin", "all"):
        result = load(f"{pick}(desk)")
        [w209] = [d for d in result.diagnostics if d.code == "W209"]
        assert w209.message.startswith("nobody in desk is reachable")  # nights, weekends
        assert w209.span.line == line_of("owner primary", f"{pick}(desk)")
        assert ("desk", pick) in asked
    pset = pset_of("round_robin(sdr_queue)")
    reach = reachability.Reach.build(pset, Collector({}))
    level = reach.level(pset.policies["referral_lead"].owners[0])
    assert level is not None and level.gaps == ()  # a team without a schedule: always
    with pytest.raises(ValueError, match="unknown pick"):
        real(pset, pset.teams["sdr_queue"], 0, 1, "random")


# --------------------------------------------------------------------------- runbooks


@pytest.fixture(scope="module")
def pages() -> dict[str, str]:
    extra = POLICY.replace("referral_lead", "organic_lead").replace("referral", "organic")
    extra = extra.replace("PRIMARY", "all(sdr_queue)").replace("Referral", "Organic")
    result = load("round_robin(sdr_queue)", extra)
    assert result.pset is not None and result.errors == 0
    pack = RulePack.from_dict(build_pack(result.pset))
    return render_runbooks(pack, policy_rivals(result.pset))


def test_runbooks_say_how_each_level_picks(pages: dict[str, str]) -> None:
    rr, everyone = pages["referral_lead.md"], pages["organic_lead.md"]
    assert (
        "| primary | round robin among **sdr_queue** (Ines Duarte, Lena Fischer): the next "
        "available member after the last one assigned |" in rr
    )
    assert "assigned to **next in sdr_queue (round robin)** (primary)" in rr
    assert "Notify every member of desk" in rr
    assert (
        "every member of **sdr_queue** (Ines Duarte, Lena Fischer) is paged; the first ack "
        "owns it" in everyone
    )
    assert "assigned to **everyone in sdr_queue (first ack owns it)** (primary)" in everyone
    index = pages["README.md"]
    assert "next in sdr_queue (round robin)" in index
    assert "everyone in sdr_queue (first ack owns it)" in index


def test_a_pick_over_a_scheduled_team_is_its_on_call_member_in_words() -> None:
    result = load("round_robin(desk)")
    assert result.pset is not None
    pack = RulePack.from_dict(build_pack(result.pset))
    page = render_runbooks(pack, policy_rivals(result.pset))["referral_lead.md"]
    assert "round robin among **desk**: the member on call by its schedule (schedule below)" in page


# --------------------------------------------------------------------------- explain


def test_explain_shows_who_a_round_robin_level_picks_among() -> None:
    pack = RulePack.from_dict(build_pack(pset_of("round_robin(sdr_queue)")))
    event = {
        "id": "e1",
        "type": "lead.updated",
        "at": "2026-11-27T10:00:00Z",
        "data": {"lead": {"id": "L1", "source": "referral"}},
    }
    doc = explain_event(pack, json.dumps(event))
    primary = doc["chain"][0]
    assert primary["pick"] == "round_robin"
    assert primary["who"] == (
        "round robin among sdr_queue (Ines Duarte, Lena Fischer): the next available member "
        "after the last one assigned"
    )
    assert "0m  primary: round robin among sdr_queue" in render_explanation(doc)
    pack = RulePack.from_dict(build_pack(pset_of("all(desk)")))
    doc = explain_event(pack, json.dumps(event))  # a Friday, 10:00 UTC: the office is open
    assert doc["chain"][0]["who"].startswith(
        "the member of desk on call by its schedule (now: "
    ) and doc["chain"][0]["who"].endswith(") is paged; any member's ack owns it")
