"""The condition algebra: exact verdicts, witnesses checked with the runtime's own evaluator.

Conditions are written as policy source, checked by the front end (so they
are well-typed), and every witness event goes through the runtime's event
parser (``runtime.events.parse_event``) and condition evaluator
(``runtime.conditions.evaluate``) — the same code that routes real events.
"""

from __future__ import annotations

import random
from functools import cache
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalade.compiler import load_policy_set
from escalade.compiler import nodes as n
from escalade.compiler.algebra import (
    MISSING,
    Budget,
    CubeIndex,
    Domains,
    Region,
    Undecided,
    Witness,
    difference,
    implies,
    iter_bits,
    overlap,
    satisfiable,
)
from escalade.compiler.backends.rulepack import lower_condition, schema_section
from escalade.compiler.model import PolicySet
from escalade.runtime.conditions import evaluate
from escalade.runtime.events import parse_event
from escalade.runtime.pack import EventSchema

SCHEMA = """
event ticket.created
event ticket.updated
schema ticket {
  id: text
  title: text
  severity: enum(low, medium, high, critical)
  tags: set
  urgent: bool
  age: duration
  opened: time
}
schema account {
  tier: enum(free, pro, enterprise)
  arr: number
}
"""

KIND = "ticket.created"


def load(*conds: str) -> tuple[PolicySet, list[n.Cond]]:
    """A policy set whose policies c0, c1, ... carry the given `when` conditions."""
    body = "".join(f"policy c{i} {{ when {c} }}\n" for i, c in enumerate(conds))
    result = load_policy_set("algebra", sources=[("t.esc", SCHEMA + body)], analyze=False)
    pset = result.pset
    assert pset is not None
    assert not pset.bad_conditions, [str(d) for d in result.diagnostics]
    out = []
    for i in range(len(conds)):
        when = pset.policies[f"c{i}"].when
        assert when is not None
        out.append(when)
    return pset, out


def regions(*conds: str) -> tuple[PolicySet, Domains, list[Region]]:
    pset, cs = load(*conds)
    d = Domains.build(pset.schema, cs)
    return pset, d, [d.compile(c) for c in cs]


@cache
def pack_schema() -> dict[str, Any]:
    """The rule-pack ``schema`` section of SCHEMA, as the runtime reads events against it."""
    pset, _ = load("ticket.severity == low")
    return schema_section(pset)


def runtime_state(w: Witness) -> dict[str, dict[str, Any]]:
    """The witness as an event, validated by the runtime, as the state conditions see."""
    event = parse_event(w.event(KIND), EventSchema.of(pack_schema()))
    return event.data


def holds(pset: PolicySet, cond: n.Cond, state: dict[str, dict[str, Any]]) -> bool:
    return evaluate(lower_condition(pset, cond), state)


# --------------------------------------------------------------------------- unit cases


def test_issue_example_disjoint_at_equal_priority() -> None:
    _, _, (a, b) = regions(
        'account.arr >= 100000 and ticket.tags has "vip"',
        'account.arr < 100000 or not ticket.tags has "vip"',
    )
    assert overlap(a, b) is None


def test_overlap_witness_satisfies_both() -> None:
    pset, _, (a, b) = regions("ticket.severity == critical", "account.tier == free")
    w = overlap(a, b)
    assert w is not None
    assert w.describe() == "account.tier = free, ticket.severity = critical"
    state = runtime_state(w)
    _, conds = load("ticket.severity == critical", "account.tier == free")
    assert all(holds(pset, c, state) for c in conds)


def test_missing_is_one_more_value() -> None:
    # `not x != v` holds for x == v and for a missing x; `x != v` alone never for missing.
    _, _, (neg, eq) = regions("not ticket.severity != critical", "ticket.severity == critical")
    w = difference(neg, eq)
    assert w is not None and w.values["ticket.severity"] is MISSING
    assert "ticket.severity missing" in w.describe()
    assert "severity" not in w.event(KIND)["data"]["ticket"]
    _, _, (ne, notin) = regions("ticket.severity != low", "ticket.severity not in (low)")
    assert implies(ne, notin) and implies(notin, ne)


def test_missing_set_is_empty() -> None:
    _, d, (has,) = regions('ticket.tags has "vip"')
    w = satisfiable(has.complement())
    assert w is not None and w.values["ticket.tags"] == []
    assert d.everything().minus(has).witness() is not None


def test_strict_and_non_strict_bounds() -> None:
    _, _, (ge, lt, le) = regions(
        "account.arr >= 100000", "account.arr < 100000", "account.arr <= 100000"
    )
    assert overlap(ge, lt) is None
    w = overlap(ge, le)
    assert w is not None and w.values["account.arr"] == 100000
    w = difference(le, lt)
    assert w is not None and w.values["account.arr"] == 100000


def test_whole_seconds_leave_no_room_between_adjacent_durations() -> None:
    # Durations are whole seconds at run time: nothing lies strictly between 5m and 5m1s.
    _, _, (r,) = regions("ticket.age > 5m and ticket.age < 5m1s")
    assert r.is_empty()
    _, _, (r2,) = regions("account.arr > 1 and account.arr < 2")
    w = r2.witness()
    assert w is not None and 1 < w.values["account.arr"] < 2


def test_text_other_value_and_time_witness() -> None:
    pset, _, (r,) = regions(
        'ticket.title != "" and ticket.title != "other" and ticket.opened >= "2026-03-01T00:00:00Z"'
    )
    w = r.witness()
    assert w is not None
    assert w.values["ticket.title"] not in ("", "other")
    event = w.event(KIND)
    assert event["data"]["ticket"]["opened"] == "2026-03-01T00:00:00Z"
    _, (cond,) = load(
        'ticket.title != "" and ticket.title != "other" and ticket.opened >= "2026-03-01T00:00:00Z"'
    )
    assert holds(pset, cond, runtime_state(w))


def test_implication_and_difference() -> None:
    _, _, (both, one, wide) = regions(
        "ticket.severity == critical and account.tier == enterprise",
        "ticket.severity == critical",
        "ticket.severity in (high, critical)",
    )
    assert implies(both, one) and implies(one, wide)
    assert not implies(wide, one)
    w = difference(wide, one)
    assert w is not None and w.values == {"ticket.severity": "high"}


def test_contradiction_is_unsatisfiable() -> None:
    _, _, (r,) = regions("ticket.severity == low and ticket.severity == high")
    assert r.is_empty() and satisfiable(r) is None


def test_budget_exhaustion_raises_undecided() -> None:
    _, _, (a, b) = regions(
        'ticket.tags has "a" or ticket.tags has "b" or ticket.tags has "c"',
        'ticket.tags has "a" or ticket.tags has "b" or ticket.tags has "c"',
    )
    with pytest.raises(Undecided):
        difference(a, b, Budget(1))


def test_oversized_dnf_is_undecided_not_guessed() -> None:
    clauses = " and ".join(f'(ticket.tags has "a{i}" or ticket.tags has "b{i}")' for i in range(13))
    pset, conds = load(clauses)
    d = Domains.build(pset.schema, conds)
    with pytest.raises(Undecided) as info:
        d.compile(conds[0])
    assert info.value.span is not None


def test_literal_outside_the_domains_is_refused() -> None:
    pset, (a, b) = load("account.arr > 5", "account.arr > 6")
    d = Domains.build(pset.schema, [a])
    with pytest.raises(Undecided):
        d.compile(b)


def test_event_carries_the_subject_id() -> None:
    _, _, (r,) = regions("account.tier == pro")
    w = r.witness()
    assert w is not None
    event = w.event("ticket.updated", id="witness-7")
    assert event == {
        "id": "witness-7",
        "type": "ticket.updated",
        "at": "2026-01-01T00:00:00Z",
        "data": {"account": {"tier": "pro"}, "ticket": {"id": "W1"}},
    }


# --------------------------------------------------------------------------- properties

ATOMS = [
    "ticket.severity == {sev}",
    "ticket.severity != {sev}",
    "ticket.severity in ({sev}, {sev2})",
    "ticket.severity not in ({sev})",
    "account.tier == {tier}",
    "account.tier not in ({tier}, {tier2})",
    "account.arr {cmp} {num}",
    "account.arr in ({num}, {num2})",
    'ticket.tags has "{tag}"',
    'ticket.title == "{text}"',
    'ticket.title != "{text}"',
    "ticket.urgent == {bool}",
    "ticket.urgent != {bool}",
    "ticket.age {cmp} {dur}",
    'ticket.opened {cmp} "{time}"',
]
SEVERITIES = ["low", "medium", "high", "critical"]
TIERS = ["free", "pro", "enterprise"]
NUMBERS = ["0", "100", "100000", "2.5", "-3"]
DURATIONS = ["5m", "5m1s", "1h", "30s"]
TIMES = ["2026-01-01T00:00:00Z", "2026-01-01T00:00:01Z", "2026-06-01T12:00:00Z"]
TAGS = ["vip", "beta", "vendor_outage"]
TEXTS = ["", "x", "other"]
CMPS = ["==", "!=", "<", "<=", ">", ">="]


@st.composite
def atom(draw: st.DrawFn) -> str:
    shape = draw(st.sampled_from(ATOMS))
    return shape.format(
        sev=draw(st.sampled_from(SEVERITIES)),
        sev2=draw(st.sampled_from(SEVERITIES)),
        tier=draw(st.sampled_from(TIERS)),
        tier2=draw(st.sampled_from(TIERS)),
        cmp=draw(st.sampled_from(CMPS)),
        num=draw(st.sampled_from(NUMBERS)),
        num2=draw(st.sampled_from(NUMBERS)),
        tag=draw(st.sampled_from(TAGS)),
        text=draw(st.sampled_from(TEXTS)),
        bool=draw(st.sampled_from(["true", "false"])),
        dur=draw(st.sampled_from(DURATIONS)),
        time=draw(st.sampled_from(TIMES)),
    )


conditions = st.recursive(
    atom(),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map(lambda t: f"({t[0]} and {t[1]})"),
        st.tuples(inner, inner).map(lambda t: f"({t[0]} or {t[1]})"),
        inner.map(lambda c: f"not ({c})"),
    ),
    max_leaves=6,
)


def random_state(rng: random.Random) -> dict[str, dict[str, Any]]:
    """A random event state drawn around the literals the conditions use (or missing)."""
    from escalade.runtime.clock import parse_time

    def maybe(value: Any) -> Any:
        return None if rng.random() < 0.2 else value

    nums = [float(x) for x in NUMBERS]
    durs = [300, 301, 3600, 30]
    times = [parse_time(t) for t in TIMES]
    ticket = {
        "severity": maybe(rng.choice(SEVERITIES)),
        "title": maybe(rng.choice([*TEXTS, "zzz"])),
        "tags": maybe(sorted({t for t in TAGS if rng.random() < 0.5})),
        "urgent": maybe(rng.random() < 0.5),
        "age": maybe(rng.choice(durs) + rng.choice([-1, 0, 1])),
        "opened": maybe(rng.choice(times) + rng.choice([-1, 0, 1])),
    }
    account = {
        "tier": maybe(rng.choice(TIERS)),
        "arr": maybe(rng.choice(nums) + rng.choice([-1, -0.25, 0, 0.25, 1])),
    }
    return {
        "ticket": {k: v for k, v in ticket.items() if v is not None},
        "account": {k: v for k, v in account.items() if v is not None},
    }


SAMPLES = 150


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=conditions, b=conditions, seed=st.integers(0, 2**32 - 1))
def test_witnesses_hold_and_verdicts_survive_sampling(a: str, b: str, seed: int) -> None:
    pset, (ca, cb) = load(a, b)
    d = Domains.build(pset.schema, [ca, cb])
    ra, rb = d.compile(ca), d.compile(cb)
    pa, pb = lower_condition(pset, ca), lower_condition(pset, cb)
    rng = random.Random(seed)
    states = [random_state(rng) for _ in range(SAMPLES)]

    w = overlap(ra, rb)
    if w is not None:
        state = runtime_state(w)
        assert evaluate(pa, state) and evaluate(pb, state), (w.describe(), state)
    else:
        assert not any(evaluate(pa, s) and evaluate(pb, s) for s in states)

    w = difference(ra, rb)
    if w is not None:
        state = runtime_state(w)
        assert evaluate(pa, state) and not evaluate(pb, state), (w.describe(), state)
    else:
        assert not any(evaluate(pa, s) and not evaluate(pb, s) for s in states)

    w = satisfiable(ra)
    if w is not None:
        assert evaluate(pa, runtime_state(w))
    else:
        assert not any(evaluate(pa, s) for s in states)

    w = satisfiable(ra.complement())
    if w is not None:
        assert not evaluate(pa, runtime_state(w))
    else:
        assert all(evaluate(pa, s) for s in states)

    # every sampled event lands in exactly the regions whose conditions accept it
    inter = ra.intersect(rb)
    for s in states[:40]:
        w_in = _region_accepts(d, inter, s)
        assert w_in == (evaluate(pa, s) and evaluate(pb, s))


def _region_accepts(d: Domains, region: Region, state: dict[str, dict[str, Any]]) -> bool:
    """Locate a concrete state in the cells and test cube membership (a second evaluator)."""
    from bisect import bisect_left

    cells: dict[int, int] = {}
    for i, v in enumerate(d.variables):
        obj, _, name = v.path.partition(".")
        value = state.get(obj, {}).get(name)
        if v.tag is not None:
            cells[i] = 1 if value is not None and v.tag in value else 0
        elif value is None:
            cells[i] = 0
        elif v.kind in ("enum", "bool"):
            cells[i] = v.values.index(value)
        elif v.kind == "text":
            cells[i] = v.literals.get(value, 1)
        else:
            k = bisect_left(v.points, value)
            on_point = k < len(v.points) and v.points[k] == value
            cells[i] = 2 * k + 2 if on_point else 2 * k + 1
    return any(all(mask >> cells[var] & 1 for var, mask in cube.items()) for cube in region.cubes)


@settings(max_examples=60, deadline=None)
@given(
    cubes=st.lists(st.dictionaries(st.integers(0, 3), st.integers(1, 14), max_size=3), max_size=12),
    query=st.dictionaries(st.integers(0, 3), st.integers(1, 14), max_size=3),
)
def test_cube_index_agrees_with_brute_force(
    cubes: list[dict[int, int]], query: dict[int, int]
) -> None:
    idx = CubeIndex(cubes)
    expected = {
        i
        for i, c in enumerate(cubes)
        if all(c.get(v, 15) & m for v, m in query.items())
        and all(query.get(v, 15) & m for v, m in c.items())
    }
    assert set(iter_bits(idx.touching(query))) == expected
