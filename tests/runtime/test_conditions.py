"""The condition evaluator: SPEC §1 missing-field semantics, kinds, explanation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from escalade.runtime.conditions import (
    ConditionError,
    compile_condition,
    evaluate,
    explain_condition,
    format_condition,
)


def cmp(field: str, op: str, value: Any) -> dict[str, Any]:
    return {"op": "cmp", "field": field, "cmp": op, "value": value}


SEV_CRIT = cmp("ticket.severity", "==", "critical")
TIER_ENT = cmp("account.tier", "==", "enterprise")


def test_none_is_always_true() -> None:
    assert evaluate(None, {}) is True


@pytest.mark.parametrize(
    ("cond", "state", "expected"),
    [
        (SEV_CRIT, {"ticket": {"severity": "critical"}}, True),
        (SEV_CRIT, {"ticket": {"severity": "low"}}, False),
        (SEV_CRIT, {"ticket": {}}, False),
        (SEV_CRIT, {}, False),
        (cmp("ticket.severity", "!=", "low"), {"ticket": {"severity": "high"}}, True),
        # missing: every comparison is false, `!=` included
        (cmp("ticket.severity", "!=", "low"), {"ticket": {}}, False),
        (cmp("ticket.severity", "!=", "low"), {"ticket": {"severity": None}}, False),
        (cmp("ticket.age", "<", 10), {"ticket": {"age": 3}}, True),
        (cmp("ticket.age", "<=", 10), {"ticket": {"age": 10}}, True),
        (cmp("ticket.age", ">", 10), {"ticket": {"age": 10.5}}, True),
        (cmp("ticket.age", ">=", 10), {"ticket": {"age": 9}}, False),
        (cmp("ticket.age", ">=", 10), {}, False),
        # wrong kinds never raise and never match
        (cmp("ticket.age", "<", 10), {"ticket": {"age": "3"}}, False),
        (cmp("ticket.flag", "==", True), {"ticket": {"flag": 1}}, False),
        (cmp("ticket.n", "==", 1), {"ticket": {"n": True}}, False),
        (cmp("ticket.flag", "==", False), {"ticket": {"flag": False}}, True),
        (cmp("ticket.title", "!=", ""), {"ticket": {"title": ["x"]}}, False),
    ],
)
def test_cmp(cond: dict[str, Any], state: dict[str, Any], expected: bool) -> None:
    assert evaluate(cond, state) is expected


@pytest.mark.parametrize(
    ("op", "values", "state", "expected"),
    [
        ("in", ["resolved", "closed"], {"ticket": {"status": "closed"}}, True),
        ("in", ["resolved", "closed"], {"ticket": {"status": "open"}}, False),
        ("in", ["resolved", "closed"], {"ticket": {}}, False),
        ("not_in", ["resolved", "closed"], {"ticket": {"status": "open"}}, True),
        ("not_in", ["resolved", "closed"], {"ticket": {"status": "closed"}}, False),
        # not_in on a missing field is false, unlike not(in)
        ("not_in", ["resolved", "closed"], {"ticket": {}}, False),
        ("in", [1, 2], {"ticket": {"status": 2}}, True),
        ("in", [1, 2], {"ticket": {"status": True}}, False),
        ("not_in", [1, 2], {"ticket": {"status": 3}}, True),
        ("in", ["a"], {"ticket": {"status": ["a"]}}, False),
    ],
)
def test_in(op: str, values: list[Any], state: dict[str, Any], expected: bool) -> None:
    cond = {"op": op, "field": "ticket.status", "values": values}
    assert evaluate(cond, state) is expected


def test_not_in_differs_from_not_of_in_on_missing() -> None:
    inn = {"op": "in", "field": "ticket.status", "values": ["closed"]}
    assert evaluate({"op": "not", "arg": inn}, {}) is True
    assert evaluate({"op": "not_in", "field": "ticket.status", "values": ["closed"]}, {}) is False


@pytest.mark.parametrize(
    ("tags", "expected"),
    [
        (["vendor_outage", "x"], True),
        (["x"], False),
        ([], False),
        (None, False),
        ("vendor_outage", False),
    ],
)
def test_has(tags: Any, expected: bool) -> None:
    cond = {"op": "has", "field": "ticket.tags", "tag": "vendor_outage"}
    assert evaluate(cond, {"ticket": {"tags": tags}}) is expected
    assert evaluate(cond, {"ticket": {"tags": set(tags) if isinstance(tags, list) else tags}}) is (
        expected
    )


def test_and_or_not_with_many_args() -> None:
    state = {"ticket": {"severity": "critical"}, "account": {"tier": "enterprise"}}
    low = cmp("ticket.severity", "==", "low")
    assert evaluate({"op": "and", "args": [SEV_CRIT, TIER_ENT]}, state)
    assert not evaluate({"op": "and", "args": [SEV_CRIT, TIER_ENT, low]}, state)
    assert evaluate({"op": "or", "args": [low, low, TIER_ENT]}, state)
    assert not evaluate({"op": "or", "args": [low, low]}, state)
    assert evaluate({"op": "and", "args": [SEV_CRIT]}, state)
    assert not evaluate({"op": "not", "arg": SEV_CRIT}, state)


def test_deep_nesting_within_the_language_limit() -> None:
    cond: dict[str, Any] = SEV_CRIT
    for _ in range(200):
        cond = {"op": "not", "arg": cond}
    assert evaluate(cond, {"ticket": {"severity": "critical"}}) is True


@pytest.mark.parametrize(
    "bad",
    [
        {"op": "xor", "args": []},
        {"op": "and", "args": []},
        {"op": "cmp", "field": "severity", "cmp": "==", "value": 1},
        {"op": "cmp", "field": "ticket.x", "cmp": "=~", "value": 1},
        {"op": "in", "field": "ticket.x", "values": "a"},
        {"op": "has", "field": "ticket.x", "tag": 3},
        {"op": "not"},
        ["not", "a", "condition"],
    ],
)
def test_malformed_conditions_raise_condition_error(bad: Any) -> None:
    with pytest.raises(ConditionError):
        compile_condition(bad)


def test_explain_lists_atoms_with_results() -> None:
    cond = {
        "op": "and",
        "args": [
            SEV_CRIT,
            {"op": "or", "args": [TIER_ENT, {"op": "has", "field": "ticket.tags", "tag": "vip"}]},
        ],
    }
    state = {"ticket": {"severity": "critical", "tags": []}, "account": {"tier": "free"}}
    assert explain_condition(cond, state) == [
        ("ticket.severity == critical", True),
        ("account.tier == enterprise", False),
        ('ticket.tags has "vip"', False),
    ]
    assert (
        format_condition(cond)
        == 'ticket.severity == critical and (account.tier == enterprise or ticket.tags has "vip")'
    )


def test_format_quotes_text_that_is_not_a_name() -> None:
    assert format_condition(cmp("ticket.root_cause", "!=", "")) == 'ticket.root_cause != ""'
    assert format_condition(cmp("ticket.n", ">", 2.0)) == "ticket.n > 2"
    assert (
        format_condition({"op": "not_in", "field": "t.s", "values": ["a", "b c"]})
        == 't.s not in (a, "b c")'
    )


# --- property: compiled closures agree with a direct reference reading of SPEC §1 ---

SEVERITIES = ["low", "medium", "high", "critical"]
values = st.one_of(st.none(), st.sampled_from(SEVERITIES), st.integers(-3, 3), st.booleans())


def reference(cond: dict[str, Any], state: dict[str, Any]) -> bool:
    op = cond["op"]
    if op == "and":
        return all(reference(c, state) for c in cond["args"])
    if op == "or":
        return any(reference(c, state) for c in cond["args"])
    if op == "not":
        return not reference(cond["arg"], state)
    obj, name = cond["field"].split(".")
    actual = state.get(obj, {}).get(name)
    if actual is None:
        return False
    if op == "has":
        return isinstance(actual, list) and cond["tag"] in actual

    def same(a: Any, b: Any) -> bool:
        return type(a) is type(b) or (
            {type(a), type(b)} <= {int, float} and not isinstance(a, bool)
        )

    if op in ("in", "not_in"):
        comparable = [v for v in cond["values"] if same(actual, v)]
        if not comparable:
            return False
        return any(actual == v for v in comparable) == (op == "in")
    if not same(actual, cond["value"]):
        return False
    ops = {
        "==": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
    }
    return bool(ops[cond["cmp"]](actual, cond["value"]))


atom = st.one_of(
    st.builds(
        lambda v: (
            cmp("ticket.severity", "==", v) if isinstance(v, str) else cmp("ticket.n", "==", v)
        ),
        st.one_of(st.sampled_from(SEVERITIES), st.integers(-3, 3)),
    ),
    st.builds(
        lambda o, v: cmp("ticket.n", o, v),
        st.sampled_from(["<", "<=", ">", ">=", "!="]),
        st.integers(-3, 3),
    ),
    st.builds(
        lambda op, vs: {"op": op, "field": "ticket.severity", "values": vs},
        st.sampled_from(["in", "not_in"]),
        st.lists(st.sampled_from(SEVERITIES), min_size=1, max_size=3),
    ),
)
conds = st.recursive(
    atom,
    lambda sub: st.one_of(
        st.builds(lambda a: {"op": "not", "arg": a}, sub),
        st.builds(lambda xs: {"op": "and", "args": xs}, st.lists(sub, min_size=1, max_size=3)),
        st.builds(lambda xs: {"op": "or", "args": xs}, st.lists(sub, min_size=1, max_size=3)),
    ),
    max_leaves=8,
)


@settings(max_examples=150, deadline=None)
@given(cond=conds, sev=values, num=values)
def test_compiled_agrees_with_reference(cond: dict[str, Any], sev: Any, num: Any) -> None:
    state = {"ticket": {"severity": sev, "n": num}}
    assert compile_condition(cond)(state) == reference(cond, state)
