"""The matcher's index decides exactly like the first-match loop, ``or`` included; the
disjunct expansion is bounded; the unindexable remainder is counted; and the embedding API
(load_pack, parse_event, Pack.owner) reads packs and events like the engine does."""

from __future__ import annotations

import json
import math
import os
from contextlib import nullcontext
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalade.runtime import EventError, PackError, load_pack, matchindex, parse_event
from escalade.runtime.clock import VirtualClock, parse_time
from escalade.runtime.engine import Engine
from escalade.runtime.matcher import Matcher
from escalade.runtime.matchindex import disjuncts, needs_of
from escalade.runtime.pack import RulePack, seal
from escalade.runtime.store.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parents[2]
BASE = json.loads((REPO / "generated" / "rulepack.json").read_text("utf-8"))
TEMPLATE = next(p for p in BASE["policies"] if p["name"] == "critical_default")
KIND = "ticket.created"
T0 = parse_time("2026-11-27T10:00:00Z")
EXPLORE = os.environ.get("ESCALADE_EXPLORE") == "1"  # fresh examples; else the same every run

Cond = dict[str, Any]


def cmp(path: str, op: str, value: Any) -> Cond:
    return {"op": "cmp", "field": path, "cmp": op, "value": value}


def pack_of(conditions: list[Cond | None], priorities: list[int] | None = None) -> RulePack:
    """A pack whose policies ``p000``... have these conditions (unvalidated: odd kinds too)."""
    policies = []
    for i, when in enumerate(conditions):
        prio = priorities[i] if priorities else i
        p = dict(TEMPLATE, name=f"p{i:03d}", priority=prio, triggers=[KIND], when=when)
        policies.append(p)
    return RulePack.trusted(seal(dict(BASE, policies=policies)))


# --- random policy sets and events ----------------------------------------------------

TEXT = {"ticket.queue": ["q0", "q1", "q2"], "ticket.severity": ["low", "high", "critical"]}
NUMBER = ["account.arr", "ticket.score"]
TAGS = ["vip", "security", "noise"]
TEXT_VALUES = sorted({v for vs in TEXT.values() for v in vs})
NUMBERS = [0, 1, 2.5, 5, 10, -3]


def _text_atoms(path: str) -> st.SearchStrategy[Cond]:
    values = st.sampled_from([*TEXT[path], "other"])
    return st.one_of(
        st.builds(cmp, st.just(path), st.sampled_from(["==", "!="]), values),
        st.builds(
            lambda vs, neg: {"op": "not_in" if neg else "in", "field": path, "values": vs},
            st.lists(values, max_size=3, unique=True),
            st.booleans(),
        ),
    )


text_atom = st.sampled_from(sorted(TEXT)).flatmap(_text_atoms)
number_atom = st.builds(
    cmp,
    st.sampled_from(NUMBER),
    st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
    st.sampled_from(NUMBERS),
)
odd_atom = st.one_of(  # comparisons the index cannot decide: it must leave them to the check
    st.builds(cmp, st.sampled_from(sorted(TEXT)), st.sampled_from(["<", ">="]), st.just("m")),
    st.builds(cmp, st.sampled_from(NUMBER), st.just("=="), st.booleans()),
    st.builds(
        lambda values: {"op": "in", "field": "ticket.score", "values": values},
        st.lists(st.sampled_from([1, 5, "q1"]), min_size=1, max_size=2),
    ),
)
tag_atom = st.builds(
    lambda tag: {"op": "has", "field": "ticket.tags", "tag": tag}, st.sampled_from(TAGS)
)
atom = st.one_of(text_atom, text_atom, text_atom, number_atom, number_atom, tag_atom, odd_atom)
conjunctions = st.lists(atom, min_size=1, max_size=4).map(
    lambda args: args[0] if len(args) == 1 else {"op": "and", "args": args}
)
nested = st.recursive(
    atom,
    lambda inner: st.one_of(
        st.builds(
            lambda args: {"op": "and", "args": args}, st.lists(inner, min_size=1, max_size=3)
        ),
        st.builds(lambda args: {"op": "or", "args": args}, st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda arg: {"op": "not", "arg": arg}, inner),
    ),
    max_leaves=8,
)
conditions = st.one_of(  # mostly the shape of real sets: conjunctions, an `or` of a few
    conjunctions,
    st.lists(conjunctions, min_size=2, max_size=3).map(lambda args: {"op": "or", "args": args}),
    nested,
)
# Values of every kind, missing ones and nulls: the index must never exclude what matches.
anything = st.one_of(
    st.sampled_from([*TEXT_VALUES, "other", ""]),
    st.sampled_from([*NUMBERS, 7, 10.0, math.nan, math.inf, True, False, None]),
    st.lists(st.sampled_from([*TAGS, "x"]), max_size=3),
    st.just(("vip",)),
    st.just(frozenset({"security"})),
    st.just("vip"),
)
MISSING = object()
usual = {
    **{path: st.sampled_from(values) for path, values in TEXT.items()},
    **{path: st.sampled_from(NUMBERS) for path in NUMBER},
    "ticket.tags": st.lists(st.sampled_from(TAGS), max_size=2, unique=True),
}


def to_state(flat: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``{"ticket.queue": "q1", ...}`` as a state, without the missing fields."""
    state: dict[str, dict[str, Any]] = {}
    for path, value in flat.items():
        obj, name = path.split(".")
        fields = state.setdefault(obj, {})
        if value is not MISSING:
            fields[name] = value
    return state


states = st.fixed_dictionaries(
    {  # mostly usual values; sometimes missing, null or of another kind
        path: st.one_of(*[values] * 6, st.just(MISSING), anything) for path, values in usual.items()
    }
).map(to_state)


FREE_MASKS = {"HEAD_SIZE": 0, "COST_GROUP": 0, "COST_MASK": 0, "COST_BIT": 0}
BOUNDS: dict[str, dict[str, Any]] = {
    "defaults": {},
    # masks cost nothing: every list of two or more is a group narrowed by exact masks
    "masks": FREE_MASKS,
    # splits pay: every list is split on every text field it can be, down to masked groups ...
    "splits": {**FREE_MASKS, "COST_SPLIT": -1.0},
    # ... or down to plain lists
    "lists": {"COST_SPLIT": -1.0, "COST_GROUP": 1e9},
    # masks, few disjuncts before a condition stays whole, coarse number cells (inexact)
    "tight": {**FREE_MASKS, "MAX_DISJUNCTS": 2, "MAX_CUTS": 1},
}


@pytest.mark.parametrize("bounds", list(BOUNDS))
@settings(max_examples=300 if EXPLORE else 100, deadline=None, derandomize=not EXPLORE)
@given(
    when=st.lists(conditions, min_size=1, max_size=30).map(lambda ws: [*ws, None]),
    priorities=st.randoms(use_true_random=False),
    events=st.lists(states, min_size=1, max_size=25),
)
def test_index_decides_like_the_first_match_loop(
    bounds: str, when: list[Cond | None], priorities: Any, events: list[Any]
) -> None:
    prios = [*priorities.sample(range(1000), len(when) - 1), -1]  # the last: no condition
    with mock.patch.multiple(matchindex, **BOUNDS[bounds]) if BOUNDS[bounds] else nullcontext():
        m = Matcher(pack_of(when, prios))
    for state in events:
        fast, slow = m.owner(KIND, state), m.first_match(KIND, state)
        assert fast is slow, (state, fast and fast.name, slow and slow.name)


# --- every atom against every kind of value, exhaustively ---------------------------------

Q = ["q0", "q1", "zz"]  # "zz": named by no policy but the one under test, at most
EDGE_ATOMS = [
    *(cmp("ticket.queue", op, q) for op in ("==", "!=") for q in Q[:2]),
    *(
        {"op": op, "field": "ticket.queue", "values": vs}
        for op in ("in", "not_in")
        for vs in (["q0"], ["q0", "q1"], [])
    ),
    *(cmp("account.arr", op, t) for op in ("==", "<", "<=", ">", ">=") for t in (1, 5)),
    {"op": "has", "field": "ticket.tags", "tag": "vip"},
]
EDGE_VALUES = {
    "ticket.queue": ["q0", "q1", "zz", "", None, 5, ["q0"]],
    "account.arr": [0, 1, 3, 5, 5.0, 7, True, None, math.nan, "5", math.inf],
    "ticket.tags": [[], ["vip"], ("vip",), frozenset({"vip"}), "vip", None, ["x"], [["vip"]]],
}
FILLERS = [  # below the policy under test; they make its group masked and name other values
    cmp("ticket.queue", "==", "q1"),
    {"op": "not_in", "field": "ticket.queue", "values": ["q1"]},
    cmp("account.arr", ">=", 3),
    cmp("account.arr", "<", 1),
    {"op": "has", "field": "ticket.tags", "tag": "x"},
]


def _edge_pairs() -> list[tuple[Cond, Cond | None]]:
    same_field = [
        (a, b)
        for i, a in enumerate(EDGE_ATOMS)
        for b in EDGE_ATOMS[i + 1 :]
        if a["field"] == b["field"]
    ]
    return [(a, None) for a in EDGE_ATOMS] + same_field


@pytest.mark.parametrize("bounds", ["defaults", "masks", "splits", "lists"])
def test_every_atom_and_pair_on_a_field_decides_like_the_loop_on_edge_values(
    bounds: str,
) -> None:
    checked = 0
    for a, b in _edge_pairs():
        when = a if b is None else {"op": "and", "args": [a, b]}
        conds: list[Cond | None] = [when, *FILLERS, None]
        with mock.patch.multiple(matchindex, **BOUNDS[bounds]) if BOUNDS[bounds] else nullcontext():
            m = Matcher(pack_of(conds, [100, *range(len(FILLERS), 0, -1), 0]))
        for value in EDGE_VALUES[a["field"]]:
            obj, name = a["field"].split(".")
            state = {obj: {name: value}}
            assert m.owner(KIND, state) is m.first_match(KIND, state), (when, value)
            checked += 1
    assert checked > 500


def test_a_split_without_rest_still_reaches_its_buckets() -> None:
    sev = {"op": "in", "field": "ticket.severity", "values": ["low", "high"]}
    conds: list[Cond | None] = [
        {"op": "and", "args": [cmp("ticket.queue", "==", q), sev]} for q in ("q0", "q1", "q2")
    ]
    with mock.patch.multiple(matchindex, **BOUNDS["lists"]):
        m = Matcher(pack_of(conds))
    root = m._index[KIND]
    assert isinstance(root, matchindex.Split) and root.rest is None and len(root.keys) == 1
    for q in ("q0", "q2", "q9"):
        for s in ("low", "critical"):
            state = {"ticket": {"queue": q, "severity": s}}
            found = m.owner(KIND, state)
            assert found is m.first_match(KIND, state)
            assert (found is not None) == (q != "q9" and s == "low")


def test_a_chain_of_splits_is_walked_in_one_node() -> None:
    queues = [
        {"op": "and", "args": [cmp("ticket.queue", "==", f"q{i % 3}"), cmp("account.arr", ">", i)]}
        for i in range(9)
    ]
    severities = [cmp("ticket.severity", "==", s) for s in ("low", "high", "critical")] * 2
    conds: list[Cond | None] = [
        *queues,
        *severities,
        {"op": "has", "field": "ticket.tags", "tag": "vip"},
    ]
    with mock.patch.multiple(matchindex, **BOUNDS["lists"]):
        m = Matcher(pack_of(conds, [(i * 7) % 17 for i in range(len(conds))]))
    root = m._index[KIND]
    assert isinstance(root, matchindex.Split)
    assert [f"{obj}.{name}" for obj, name, _ in root.keys] == ["ticket.queue", "ticket.severity"]
    for q in ("q0", "q2", "q9"):
        for sev in ("low", "critical", "none"):
            for arr in (0, 5, 10):
                for tags in ([], ["vip"]):
                    state = {"ticket": {"queue": q, "severity": sev, "tags": tags}}
                    state["account"] = {"arr": arr}
                    assert m.owner(KIND, state) is m.first_match(KIND, state), state


# --- the expansion, its bound and the remainder ----------------------------------------

A, B, C, D = (cmp("ticket.queue", "==", q) for q in ("q0", "q1", "q2", "q3"))


def test_disjuncts_distribute_and_over_or_and_keep_not_whole() -> None:
    cond = {"op": "and", "args": [{"op": "or", "args": [A, B]}, {"op": "or", "args": [C, D]}]}
    assert disjuncts(cond) == [[A, C], [A, D], [B, C], [B, D]]
    negated = {"op": "not", "arg": {"op": "or", "args": [A, B]}}
    assert disjuncts({"op": "or", "args": [negated, C]}) == [[negated], [C]]
    assert disjuncts(None) == [[]]


def test_disjuncts_past_the_bound_give_none() -> None:
    pair = {"op": "or", "args": [A, B]}
    cond = {"op": "and", "args": [pair, pair, pair]}  # 8 disjuncts
    assert len(disjuncts(cond, bound=8) or []) == 8
    assert disjuncts(cond, bound=7) is None
    assert disjuncts({"op": "or", "args": [A, B, C]}, bound=2) is None


def test_needs_combine_what_every_atom_of_a_conjunction_requires() -> None:
    needs = needs_of(
        [
            {"op": "in", "field": "ticket.queue", "values": ["q0", "q1", "q2"]},
            cmp("ticket.queue", "!=", "q1"),
            {"op": "not_in", "field": "ticket.severity", "values": ["low"]},
            cmp("ticket.severity", "!=", "high"),
            cmp("account.arr", ">=", 10),
            cmp("account.arr", "<", 20),
            cmp("account.arr", ">", 10),
            {"op": "has", "field": "ticket.tags", "tag": "vip"},
            {"op": "not", "arg": {"op": "has", "field": "ticket.tags", "tag": "noise"}},
            cmp("ticket.score", "!=", 3),  # not decided by the index: no need
        ]
    )
    assert needs.text == {
        "ticket.queue": (True, frozenset({"q0", "q2"})),
        "ticket.severity": (False, frozenset({"low", "high"})),
    }
    assert needs.numbers == {"account.arr": (10, False, 20, False)}
    assert needs.tags == {"ticket.tags": frozenset({"vip"})}


def test_stats_count_expanded_over_bound_and_remainder_policies() -> None:
    pair = {"op": "or", "args": [A, B]}
    noise = {"op": "not", "arg": {"op": "has", "field": "ticket.tags", "tag": "noise"}}
    when = [
        A,  # one entry
        pair,  # two entries
        {"op": "and", "args": [pair, pair, pair, pair, pair]},  # 32 > 16: whole, no key
        {"op": "and", "args": [C, pair, pair, pair, pair, pair]},  # whole, keyed on C
        noise,  # nothing to index
        {"op": "or", "args": [D, noise]},  # one disjunct unindexable: the policy is checked whole
        None,  # no condition: every event
    ]
    m = Matcher(pack_of(when))
    stats = m.stats()
    assert (stats.policies, stats.expanded, stats.over_bound) == (7, 1, 2)
    assert stats.entries == 8
    assert stats.remainder == 4  # the key-less whole one, `not`, `or` with `not`, None
    for state in (
        {"ticket": {"queue": q, "tags": t}} for q in ("q0", "q2", "zz") for t in ([], ["noise"])
    ):
        assert m.owner(KIND, state) is m.first_match(KIND, state)


def test_an_or_policy_is_found_through_each_of_its_disjuncts() -> None:
    either = {"op": "or", "args": [A, {"op": "and", "args": [B, cmp("account.arr", ">=", 5)]}]}
    m = Matcher(pack_of([*([C] * 30), either], [*range(30), 100]))
    assert m.stats().remainder == 0
    for state, owner in [
        ({"ticket": {"queue": "q0"}}, "p030"),
        ({"ticket": {"queue": "q1"}, "account": {"arr": 5}}, "p030"),
        ({"ticket": {"queue": "q1"}, "account": {"arr": 4}}, None),
        ({"ticket": {"queue": "q2"}}, "p029"),
    ]:
        found = m.owner(KIND, state)
        assert (found and found.name) == owner
        assert found is m.first_match(KIND, state)


# --- the embedding API --------------------------------------------------------------------

PACK_FILE = REPO / "generated" / "rulepack.json"


def raw_event(event_id: str, **ticket: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "type": "ticket.created",
        "at": "2026-11-27T10:00:00Z",
        "data": {"ticket": {"id": "T1", **ticket}, "account": {"tier": "enterprise"}},
    }


def test_load_pack_parse_event_and_owner() -> None:
    pack = load_pack(PACK_FILE)
    rules = RulePack.load(PACK_FILE)
    assert (pack.version, pack.content_hash) == (rules.version, rules.content_hash)
    assert [p.name for p in pack.policies] == [p.name for p in rules.policies]
    event = parse_event(json.dumps(raw_event("e1", severity="critical", mood="calm")), pack)
    owner = pack.owner(event)
    assert owner is not None and owner.name == "enterprise_critical"
    assert event.unknown == ("ticket.mood",)
    assert pack.explain(event).owner is owner
    assert pack.owner(parse_event(raw_event("e2", severity="low"), pack)) is None
    assert pack.stats.policies == len([p for p in rules.policies if p.triggers])
    # a RulePack reads events too
    assert parse_event(raw_event("e3"), rules).ticket == "T1"


def test_parse_event_raises_what_a_dead_letter_carries(tmp_path: Path) -> None:
    bad = raw_event("e9", severity="critcal")
    with pytest.raises(EventError) as caught:
        parse_event(bad, load_pack(PACK_FILE))
    assert caught.value.event_id == "e9" and "ticket.severity" in str(caught.value)
    store = SQLiteStore(str(tmp_path / "dead.db"))
    try:
        engine = Engine(store, VirtualClock(T0))
        engine.activate(json.loads(PACK_FILE.read_text("utf-8")), T0)
        assert engine.receive(json.dumps(bad), T0).status == "dead_letter"
        [letter] = store.dead_letters()
        assert (letter.error, letter.event_id) == (str(caught.value), "e9")
    finally:
        store.close()


def test_load_pack_refuses_a_changed_pack(tmp_path: Path) -> None:
    raw = json.loads(PACK_FILE.read_text("utf-8"))
    raw["policies"][0]["priority"] += 1
    changed = tmp_path / "rulepack.json"
    changed.write_text(json.dumps(raw), "utf-8")
    with pytest.raises(PackError, match="content_hash"):
        load_pack(changed)
    assert (
        load_pack(changed, verify_hash=False).policies[0].priority == raw["policies"][0]["priority"]
    )


def test_the_embedding_guide_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    guide = (REPO / "docs" / "embedding.md").read_text("utf-8")
    example = guide.split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(REPO)
    scope: dict[str, Any] = {"__name__": "guide"}
    exec(compile(example, "docs/embedding.md", "exec"), scope)  # noqa: S102 - our own docs
    assert scope["route"](json.dumps(raw_event("e1", severity="critical"))) == (
        "enterprise_critical"
    )
    assert scope["route"]("{") is None
