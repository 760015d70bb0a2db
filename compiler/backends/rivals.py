"""Which triggered policies compete for the same events, for the runbooks' precedence line.

Two triggered policies compete when they share an event kind and some event
matches both conditions; the higher priority then owns it. The conditions come
from the whole-set analysis ``escalade check`` has already run (its compiled
regions), so nothing is parsed or compiled again.

Scale: one page names at most ``named`` policies on each side and counts the
rest, so the answer never lists every pair. All triggered policies' cubes go
into one ``CubeIndex`` ordered by (priority descending, name), each policy's
cubes side by side; a policy's competitors on each side are then a few bit-set
operations (touching its cubes, sharing a kind, above or below its priority),
counted with a population count and named from the lowest bits.

A policy whose condition the analysis could not decide (W307) is taken to
compete with every policy of its kinds, as if it matched every event.

>>> rivals = policy_rivals(result.pset)           # doctest: +SKIP
>>> rivals["critical_default"]                    # doctest: +SKIP
Rivals(higher=('enterprise_critical',), higher_total=1, lower=(), lower_total=0)
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass

from escalade.compiler import model as m
from escalade.compiler.algebra import Cube, CubeIndex
from escalade.compiler.passes.analysis import analyse

# How many competitors a runbook names on each side; the rest are counted.
NAMED = 10


@dataclass(frozen=True, slots=True)
class Rivals:
    """The policies that can own an event this one matches: the first ``named`` on each
    side by priority (highest first, then name), and how many there are in all."""

    higher: tuple[str, ...] = ()  # they take precedence over it
    higher_total: int = 0
    lower: tuple[str, ...] = ()  # it takes precedence over them
    lower_total: int = 0


def policy_rivals(pset: m.PolicySet, *, named: int = NAMED) -> dict[str, Rivals]:
    """``{policy name: Rivals}`` for every policy of ``pset`` (empty for handoff-only ones)."""
    table = _Competition(pset)
    out = {name: Rivals() for name in sorted(pset.policies)}
    for i, name in enumerate(table.names):
        touching = table.touching(i)
        start, end = table.priority_range(i)
        higher = touching & ((1 << start) - 1)
        lower = touching >> end << end
        out[name] = Rivals(
            table.first(higher, named),
            higher.bit_count(),
            table.first(lower, named),
            lower.bit_count(),
        )
    return out


class _Competition:
    """Every triggered policy's cubes in one index, policies ordered by (-priority, name).

    Bit sets here are over *cubes*; :meth:`touching` folds them to one bit per
    policy (its first cube), so counting policies is a population count."""

    def __init__(self, pset: m.PolicySet) -> None:
        regions = analyse(pset).regions  # cached: the analysis `check` ran on this very set
        policies = sorted(
            (p for p in pset.policies.values() if p.triggers), key=lambda p: (-p.priority, p.name)
        )
        self.names = [p.name for p in policies]
        cubes: list[Cube] = []
        self.cubes_of: list[range] = []
        self.owner: list[int] = []  # cube -> policy position
        self.cube_priority: list[int] = []  # negated, so ascending along the index
        self.kinds: dict[str, int] = {}  # event kind -> cubes of the policies triggered by it
        for i, p in enumerate(policies):
            region = regions.get(p.name)
            # Undecided: compete with every policy of its kinds (one cube with no constraint).
            mine = region.cubes if region is not None else ({},)
            self.cubes_of.append(range(len(cubes), len(cubes) + len(mine)))
            cubes.extend(mine)
            self.owner.extend([i] * len(mine))
            self.cube_priority.extend([-p.priority] * len(mine))
        for i, p in enumerate(policies):
            span = self.cubes_of[i]
            bits = ((1 << span.stop) - 1) >> span.start << span.start
            for kind in p.triggers:
                self.kinds[kind] = self.kinds.get(kind, 0) | bits
        self.triggers = [p.triggers for p in policies]
        self.index = CubeIndex(cubes)
        self._later = self._later_in_policy(max((len(r) for r in self.cubes_of), default=1))

    def _later_in_policy(self, longest: int) -> list[int]:
        """``[d]``: the cubes at least ``2**d`` places after their policy's first cube."""
        masks = []
        step = 1
        while step < longest:
            bits = 0
            for span in self.cubes_of:
                if len(span) > step:
                    bits |= ((1 << span.stop) - 1) >> (span.start + step) << (span.start + step)
            masks.append(bits)
            step *= 2
        return masks

    def touching(self, i: int) -> int:
        """The policies (as their first touched cube) sharing a kind and an event with ``i``."""
        shared = 0
        for kind in self.triggers[i]:
            shared |= self.kinds[kind]
        hit = 0
        for k in self.cubes_of[i]:
            hit |= self.index.touching(self.index.cubes[k])
        hit &= shared  # itself included: the callers keep other priorities only
        # Keep only the first touched cube of each policy: a cube whose policy has an
        # earlier touched cube goes (a prefix OR within each policy's run of cubes).
        seen = hit
        step = 1
        for later in self._later:
            seen |= (seen << step) & later
            step *= 2
        return hit & ~((seen << 1) & (self._later[0] if self._later else 0))

    def priority_range(self, i: int) -> tuple[int, int]:
        """The cubes of exactly policy ``i``'s priority, as [start, end) along the index."""
        negated = self.cube_priority[self.cubes_of[i].start]
        return bisect_left(self.cube_priority, negated), bisect_right(self.cube_priority, negated)

    def first(self, bits: int, count: int) -> tuple[str, ...]:
        """The policies of the lowest ``count`` bits of ``bits`` (one bit per policy)."""
        found: list[str] = []
        while bits and len(found) < count:
            low = bits & -bits
            found.append(self.names[self.owner[low.bit_length() - 1]])
            bits ^= low
        return tuple(found)
