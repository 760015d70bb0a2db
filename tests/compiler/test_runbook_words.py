"""Runbooks in words: every condition shape, exact about missing fields; Markdown-safe
text; timelines for `after`, `repeat 0` and a last level without an ack timeout."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from escalade.compiler.backends.rivals import policy_rivals
from escalade.compiler.backends.rulepack import build_pack
from escalade.compiler.backends.runbooks import (
    PackFacts,
    Phrasing,
    markdown_cell,
    markdown_text,
    policy_view,
    render_runbooks,
)
from escalade.compiler.build import load_for_build
from escalade.runtime.conditions import evaluate
from escalade.runtime.pack import RulePack

REPO = Path(__file__).resolve().parents[2]
SHAPES = REPO / "tests" / "cases" / "backends" / "shapes"


@pytest.fixture(scope="module")
def shapes() -> tuple[RulePack, PackFacts]:
    result = load_for_build(SHAPES, REPO, "0.0.0")
    assert result.pset is not None and result.errors == 0
    pack = RulePack.from_dict(build_pack(result.pset))
    return pack, PackFacts.of(pack, policy_rivals(result.pset))


@pytest.fixture(scope="module")
def pack(shapes: tuple[RulePack, PackFacts]) -> RulePack:
    return shapes[0]


@pytest.fixture(scope="module")
def facts(shapes: tuple[RulePack, PackFacts]) -> PackFacts:
    return shapes[1]


def cmp(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"op": "cmp", "field": field, "cmp": op, "value": value}


def neg(c: dict[str, Any]) -> dict[str, Any]:
    return {"op": "not", "arg": c}


SEV_LOW = cmp("ticket.severity", "==", "low")
NOISE = {"op": "has", "field": "ticket.tags", "tag": "noise"}
DONE = {"op": "in", "field": "ticket.status", "values": ["resolved", "closed"]}
NOT_DONE = {"op": "not_in", "field": "ticket.status", "values": ["resolved", "closed"]}


@pytest.mark.parametrize(
    ("cond", "words"),
    [
        (SEV_LOW, "its severity is *low*"),
        (neg(SEV_LOW), "its severity is not *low* (or not set)"),
        (cmp("ticket.severity", "!=", "low"), "its severity is not *low*"),
        (neg(cmp("ticket.severity", "!=", "low")), "its severity is *low* (or not set)"),
        (NOISE, "it is tagged `noise`"),
        (neg(NOISE), "it is not tagged `noise`"),
        (DONE, "its status is *resolved* or *closed*"),
        (neg(DONE), "its status is neither *resolved* nor *closed* (or not set)"),
        (NOT_DONE, "its status is neither *resolved* nor *closed*"),
        (neg(NOT_DONE), "its status is *resolved* or *closed* (or not set)"),
        ({"op": "not_in", "field": "ticket.status", "values": ["new"]}, "its status is not *new*"),
        (cmp("ticket.score", "<", 3), "its score is below 3"),
        (neg(cmp("ticket.score", "<", 3)), "its score is at least 3 (or not set)"),
        (cmp("ticket.score", ">=", -1.5), "its score is at least -1.5"),
        (cmp("account.arr", ">", 100000.5), "the account's arr is above 100000.5"),
        (cmp("ticket.age", ">=", 5400), "its age is at least 1h 30m"),
        (cmp("ticket.opened_at", "<", 1780272000), "its opened at is before 2026-06-01T00:00:00Z"),
        (neg(cmp("ticket.opened_at", ">", 0)), "is at or before 1970-01-01T00:00:00Z (or not set)"),
        (cmp("ticket.vip", "==", True), "its vip is true"),
        (cmp("ticket.root_cause", "!=", ""), "its root cause is not empty"),
        (
            neg({"op": "or", "args": [SEV_LOW, NOISE]}),
            "its severity is not *low* (or not set) and it is not tagged `noise`",
        ),
        (
            neg({"op": "and", "args": [SEV_LOW, NOISE]}),
            "either its severity is not *low* (or not set) or it is not tagged `noise`",
        ),
        (
            {"op": "and", "args": [SEV_LOW, {"op": "or", "args": [NOISE, DONE]}]},
            "its severity is *low* and (either it is tagged `noise` or its status is *resolved*"
            " or *closed*)",
        ),
        (neg(neg(SEV_LOW)), "its severity is *low*"),
    ],
)
def test_condition_shapes_in_words(pack: RulePack, cond: dict[str, Any], words: str) -> None:
    assert Phrasing(pack, "ticket").cond(cond).endswith(words)


@pytest.mark.parametrize("cond", [neg(SEV_LOW), neg(DONE), neg(cmp("ticket.score", "<", 3))])
def test_or_not_set_matches_the_runtime(cond: dict[str, Any]) -> None:
    """'(or not set)' is said exactly when the condition holds on a missing field."""
    assert evaluate(cond, {"ticket": {}}) is True
    assert evaluate(cond["arg"], {"ticket": {}}) is False


def test_plain_words_for_diagrams(pack: RulePack) -> None:
    words = Phrasing(pack, None, md=False)
    assert words.cond(neg(NOISE)) == "the ticket is not tagged noise"
    assert words.cond(SEV_LOW) == "the ticket's severity is low"


def test_markdown_text_neutralises_markup() -> None:
    assert markdown_text("<b>a|b</b> *x* `y` [l](u) &amp; ~s~") == (
        "\\<b\\>a\\|b\\</b\\> \\*x\\* \\`y\\` \\[l\\](u) \\&amp; \\~s\\~"
    )
    assert markdown_cell("a \\| b | c") == "a \\| b \\| c"


def test_display_names_and_titles_cannot_inject_markup(tmp_path: Path) -> None:
    (tmp_path / "a.esc").write_text(
        "event ticket.created\nschema ticket { id: text  title: text }\n"
        'person p1 { name "Ann <img src=x> | *boss*" email "a@example.com" }\n'
        'person p2 { name "Ben" slack "@ben" }\n'
        'channel c1 { email "<img src=x>@example.com" }\n'
        "policy x {\n"
        '  title "A <script> | title\\n# H1\\r\\u2028"  approvers "@acme/ops", "<img>x@example.com"\n'
        "  trigger ticket.created\n"
        "  check delivery within 5m else retry 1 then c1\n"
        '  when ticket.title == "<b>`x`|"\n'
        "  owner primary p1 ack 5m  owner backup p2\n"
        "  exception unknown triage p2\n}\n"
    )
    result = load_for_build(tmp_path, tmp_path, "0.0.0")
    assert result.pset is not None and result.errors == 0, result.diagnostics
    pages = render_runbooks(RulePack.from_dict(build_pack(result.pset)), policy_rivals(result.pset))
    for text in pages.values():
        assert "\n# H1" not in text
        prose = text.split("```mermaid")[0] + text.split("```")[-1]
        assert not re.search(r"(?<!\\)<(img|script|b>)", prose), prose
    assert "**Ann \\<img src=x\\> \\| \\*boss\\***" in pages["x.md"]
    assert "its title is *\\<b\\>\\`x\\`\\|*" in pages["x.md"]
    assert "Approvers: @acme/ops, \\<img\\>x@example.com ·" in pages["x.md"]
    assert "then sent to \\<img src=x\\>@example.com" in pages["x.md"]


def test_after_trigger_timeline_counts_from_the_event(pack: RulePack, facts: PackFacts) -> None:
    view = policy_view(pack, pack.policy("numbers_and_times"), facts)
    assert view.timeline_note is not None and "starts 15m after it" in view.timeline_note
    rows = [(r.at, r.what) for r in view.timeline]
    assert rows[0][0] == "0m" and "nothing happens yet" in rows[0][1]
    assert rows[1][0] == "15m" and "assigned to **everyone in desk** (primary)" in rows[1][1]
    assert rows[-1] == (
        "1h 45m",
        "unacknowledged → Type B: **Cho Min** triages, post-mortem required",
    )
    assert "chain exhausted at 1h 45m" in view.mermaid


def test_last_level_without_ack_keeps_it(pack: RulePack, facts: PackFacts) -> None:
    view = policy_view(pack, pack.policy("negations"), facts)
    assert "stays with **Cho Min** until acknowledged" in view.timeline[-1].what
    assert "unacknowledged" not in " ".join(r.what for r in view.timeline)
    assert view.triage is not None and "nobody acknowledges" not in view.triage
    assert "If nobody in desk is available, Cho Min (escalation owner) takes it" in view.triage


def test_handoff_only_policy_names_its_sources(pack: RulePack, facts: PackFacts) -> None:
    view = policy_view(pack, pack.policy("quiet"), facts)
    assert view.starts == (
        "only by a handoff from [`negations`](negations.md) when the ticket is tagged `noise`, "
        "when an automated step fails or when a quality check fails"
    )
    assert "keeps the priority of the escalation it takes over" in view.precedence
    assert 'start("handoff from negations")' in view.mermaid
    assert view.timeline[-1].what == "unacknowledged → hand off to [`last_resort`](last_resort.md)"


def test_checks_say_what_happens_when_they_fail(pack: RulePack, facts: PackFacts) -> None:
    view = policy_view(pack, pack.policy("negations"), facts)
    assert view.checks[0].endswith("if one never is: hand off to [`quiet`](quiet.md)")
    assert "an event shows the ticket's status is *open*; if none does" in view.checks[1]
    assert view.checks[2].endswith("(close is refused until then)")


def test_rotation_says_who_is_on_call_when(pack: RulePack, facts: PackFacts) -> None:
    view = policy_view(pack, pack.policy("negations"), facts)
    assert view.rotations == (
        "**ops** hands over every Monday at 09:00 UTC, in this order: Ann Lee (from 2026-01-05),"
        " Ben Ruiz (from 2026-01-12), Cho Min (from 2026-01-19), then round again. "
        "Who is on call now: `escalade oncall ops`.",
    )
