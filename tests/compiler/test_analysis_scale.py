"""The indexed forms the analyzer uses at scale give exactly the plain forms' answers.

``find_outside_indexed`` reads its probe off a ``CubeIndex`` instead of walking
every sub; ``bit_list`` lists the bits of large bit sets without a Python step
per bit. Both are compared here with the plain definitions: the same piece,
the same witness cube, the same search steps (so the same W307 verdicts).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import cast

from hypothesis import given, settings
from hypothesis import strategies as st

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


@settings(max_examples=300, deadline=None)
@given(
    subs=st.lists(cubes(), max_size=30),
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
    plain = _answer(lambda b: find_outside(domains, query, index.select(bits), b), plain_budget)
    indexed = _answer(
        lambda b: find_outside_indexed(domains, query, index, bits, b), indexed_budget
    )
    assert indexed == plain
    assert indexed_budget.remaining == plain_budget.remaining


@given(st.integers(min_value=0, max_value=2**3000), st.integers(0, 6))
def test_bit_list_lists_the_set_bits_lowest_first(x: int, thinning: int) -> None:
    for _ in range(thinning):  # sparse sets take the other path
        x &= x >> 7
    expected = [i for i in range(x.bit_length()) if x >> i & 1]
    assert bit_list(x) == expected
    assert list(iter_bits(x)) == expected
