"""The indexed forms the analyzer uses at scale give exactly the plain forms' answers.

``find_outside_indexed`` reads its probe off a ``CubeIndex`` instead of walking
every sub, and a search over many subs finds each piece's next sub through an
index instead of a scan; ``bit_list`` lists the bits of large bit sets without
a Python step per bit. Both are compared here with the plain definitions: the same piece,
the same witness cube, the same search steps (so the same W307 verdicts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast
from unittest.mock import patch

from hypothesis import given, settings
from hypothesis import strategies as st

from escalade.compiler import algebra
from escalade.compiler.algebra import (
    Budget,
    Cube,
    CubeIndex,
    Domains,
    Undecided,
    bit_list,
    find_outside,
    find_outside_indexed,
    iter_bits,
)

# variable -> number of cells: two small (enum-like) ones, a tag, and two wide ones
# (text literals, numeric intervals) so both ways of reading the index are taken
SIZES = (5, 3, 2, 40, 200)


class _Domains:
    """The one thing the search asks of ``Domains``: each variable's full mask."""

    def full(self, var: int) -> int:
        return (1 << SIZES[var]) - 1


@st.composite
def cubes(draw: st.DrawFn) -> Cube:
    out: Cube = {}
    for var, size in enumerate(SIZES):
        if draw(st.booleans()):
            full = (1 << size) - 1
            if draw(st.booleans()):
                out[var] = 1 << draw(st.integers(0, size - 1))
            else:
                out[var] = draw(st.integers(1, full - 1))
    return out


def _answer(search: Callable[[Budget], Cube | None], budget: Budget) -> object:
    try:
        return search(budget)
    except Undecided:
        return "undecided"


@settings(max_examples=400, deadline=None)
@given(
    subs=st.lists(cubes(), max_size=40),
    query=cubes(),
    chosen=st.integers(min_value=0),
    steps=st.sampled_from([3, 20, 200_000]),
)
def test_indexed_probe_matches_find_outside(
    subs: list[Cube], query: Cube, chosen: int, steps: int
) -> None:
    index = CubeIndex(subs)
    bits = chosen & index.all
    domains = cast(Domains, _Domains())
    plain_budget, indexed_budget = Budget(steps), Budget(steps)
    with patch.object(algebra, "INDEXED_SEARCH_FROM", 10**9):  # the plain scan
        plain = _answer(lambda b: find_outside(domains, query, index.select(bits), b), plain_budget)
    with patch.object(algebra, "INDEXED_SEARCH_FROM", 0):  # every search indexed
        indexed = _answer(
            lambda b: find_outside_indexed(domains, query, index, bits, b), indexed_budget
        )
    assert indexed == plain
    assert indexed_budget.remaining == plain_budget.remaining


@st.composite
def narrow_cubes(draw: st.DrawFn) -> Cube:
    """Cubes over few variables: long searches that split pieces again and again. The
    wide one (like a queue name) mostly takes one of a few cells, so pieces lose cells
    to one-cell subs, and sometimes a run of cells (like a numeric range)."""
    out: Cube = {}
    for var in (0, 1):
        if draw(st.integers(0, 4)):
            out[var] = draw(st.integers(1, (1 << SIZES[var]) - 2))
    wide = draw(st.integers(0, 5))
    if wide >= 2:
        out[3] = 1 << draw(st.integers(0, 9))
    elif wide == 1:
        low = draw(st.integers(0, 12))
        out[3] = ((1 << draw(st.integers(2, 4))) - 1) << low
    return out


@settings(max_examples=300, deadline=None)
@given(subs=st.lists(narrow_cubes(), min_size=2, max_size=60), query=narrow_cubes())
def test_indexed_search_takes_the_plain_search_steps(subs: list[Cube], query: Cube) -> None:
    domains = cast(Domains, _Domains())
    answers = []
    for start in (10**9, 0):  # the plain scan, then every search indexed
        budget = Budget(100_000)
        with patch.object(algebra, "INDEXED_SEARCH_FROM", start):
            answers.append((find_outside(domains, query, subs, budget), budget.remaining))
    assert answers[0] == answers[1]


@settings(max_examples=300, deadline=None)
@given(
    subs=st.lists(narrow_cubes(), min_size=1, max_size=40),
    taken=st.sets(st.integers(0, 12), max_size=4) | st.none(),
    dropped=st.sets(st.integers(0, 12), min_size=1, max_size=5),
    others=st.integers(min_value=0),
)
def test_narrowing_a_touching_set_drops_exactly_the_cubes_that_no_longer_touch(
    subs: list[Cube], taken: set[int] | None, dropped: set[int], others: int
) -> None:
    # a piece that had lost the cells ``taken`` (None: free) loses ``dropped`` too
    index = CubeIndex(subs)
    full = 2**40 - 1
    before = None if taken is None else full & ~sum(1 << c for c in taken)
    mask = (full if before is None else before) & ~sum(1 << c for c in dropped)
    bits = others & index.all
    if before is not None:
        bits &= index.touching_var(3, before)
    assert index.narrow(bits, 3, before, mask) == bits & index.touching_var(3, mask)


def test_a_part_of_a_split_is_not_met_by_a_sub_that_only_met_its_piece() -> None:
    # {0: 0b0001, 1: 0b01} meets the cube but not its part outside {0: 0b0011}
    subs = [{0: 0b0011}, {0: 0b0001, 1: 0b01}]
    domains = cast(Domains, _Domains())
    answers = []
    for start in (10**9, 0):
        budget = Budget(100)
        with patch.object(algebra, "INDEXED_SEARCH_FROM", start):
            answers.append((algebra._search(domains, {0: 0b0111}, subs, budget), budget.remaining))
    assert answers[0] == answers[1] == ({0: 0b0100}, 98)


@given(st.integers(min_value=0, max_value=2**3000), st.integers(0, 6))
def test_bit_list_lists_the_set_bits_lowest_first(x: int, thinning: int) -> None:
    for _ in range(thinning):  # sparse sets take the other path
        x &= x >> 7
    expected = [i for i in range(x.bit_length()) if x >> i & 1]
    assert bit_list(x) == expected
    assert list(iter_bits(x)) == expected
