"""Whole-set analysis (SPEC section 2, E301-W307): the policy set as one routing function.

For each event kind the highest-priority matching policy owns the event;
policies without ``trigger`` own nothing and are entered only by handoffs.
The passes below answer exact questions about that function with the
condition algebra (``escalade.compiler.algebra``) and show a witness event
whenever the answer is "yes, this can happen"::

    policy a { trigger ticket.created  when ticket.severity == critical ... }
    policy b { trigger ticket.created  when account.tier == enterprise ... }
    # E302 ambiguous-route: ticket.severity = critical, account.tier = enterprise

Scale: per event kind, every policy's cubes go into one ``CubeIndex`` ordered
by priority, so "which equal-priority cubes overlap this one" and "which
higher-priority cubes touch this one" are bit-set lookups, never an
all-pairs product; exact checks then run only on the pairs that touch.
A question that exceeds its budget becomes W307, never a silent guess.
Conditions that already have an error (``PolicySet.bad_conditions``) are
skipped, and so is every question whose answer depends on them.
"""

from __future__ import annotations

import hashlib
import sys
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from itertools import pairwise
from operator import attrgetter
from pathlib import Path
from typing import TYPE_CHECKING

from escalade.compiler import algebra as algebra_module
from escalade.compiler import model as m
from escalade.compiler import nodes as n
from escalade.compiler.algebra import (
    DEFAULT_STEPS,
    Budget,
    Cube,
    CubeIndex,
    Domains,
    Region,
    Undecided,
    Witness,
    bit_list,
    find_outside_indexed,
    iter_bits,
    meet,
)
from escalade.compiler.diagnostics import Collector, Note
from escalade.compiler.passes.reachability import check_reachability

if TYPE_CHECKING:
    from escalade.compiler.parse_cache import Answers

Pass = Callable[[m.PolicySet, Collector], None]

# --------------------------------------------------------------------------- shared facts


@dataclass(frozen=True, slots=True)
class Ambiguity:
    """Two equal-priority policies that can own the same event of ``kind``."""

    first: m.Policy
    second: m.Policy
    kind: str
    witness: Witness


@dataclass(frozen=True, slots=True)
class Shadowing:
    """A triggered policy that never owns an event: ``by`` always match first."""

    policy: m.Policy
    by: tuple[m.Policy, ...]


@dataclass(frozen=True, slots=True)
class Gap:
    """Events a ``coverage`` promise names that no policy owns."""

    coverage: m.Coverage
    kinds: tuple[str, ...]
    witness: Witness


@dataclass(frozen=True, slots=True)
class Unknown:
    """A question the analysis could not decide (W307)."""

    span: n.Span
    message: str


class KindTable:
    """Every analysable triggered policy of one event kind, its cubes indexed by priority.

    Cubes are ordered by priority (highest first), so "priority above p" and
    "priority equal to p" are contiguous bit ranges of the index.
    """

    def __init__(self, kind: str, members: list[tuple[m.Policy, Region]]) -> None:
        self.kind = kind
        ordered = sorted(members, key=lambda pr: -pr[0].priority)
        cubes: list[Cube] = []
        self.owner: list[m.Policy] = []
        self.owner_names: list[str] = []
        self.cubes_of: dict[str, list[int]] = {}
        for policy, region in ordered:
            for cube in region.cubes:
                self.cubes_of.setdefault(policy.name, []).append(len(cubes))
                cubes.append(cube)
                self.owner.append(policy)
                self.owner_names.append(policy.name)
        self.index = CubeIndex(cubes)
        self.cubes = self.index.cubes
        # cube i has priority -self._negated[i]; ascending, so a priority's cubes are one range
        self._negated = [-policy.priority for policy in self.owner]
        self.priorities = sorted({policy.priority for policy in self.owner}, reverse=True)
        self.blocked: int | None = None  # highest priority of an unanalysable policy here
        self._digests: list[bytes] | None = None

    def above(self, priority: int) -> int:
        """Bit set of the cubes of strictly higher priority (a prefix of the index)."""
        return (1 << bisect_left(self._negated, -priority)) - 1

    def equal(self, priority: int) -> int:
        """Bit set of the cubes of exactly this priority."""
        start = bisect_left(self._negated, -priority)
        end = bisect_right(self._negated, -priority)
        return ((1 << end) - 1) & ~((1 << start) - 1)

    def digests(self, domains: Domains) -> list[bytes]:
        """Per cube, a digest of its variables (name, every cell, the cells it allows),
        in the order the search reads them: what a remembered answer is keyed by."""
        if self._digests is None:
            full = {}
            for var in {var for cube in self.cubes for var in cube}:
                v = domains.variables[var]
                full[var] = f"{v.path}|{v.tag}|{domains.full(var):x}|"
            self._digests = [
                hashlib.blake2b(
                    ";".join(f"{full[var]}{mask:x}" for var, mask in cube.items()).encode(),
                    digest_size=16,
                ).digest()
                for cube in self.cubes
            ]
        return self._digests

    def decidable_below(self, priority: int) -> bool:
        """False when an unanalysable policy of higher priority could change the answer."""
        return self.blocked is None or self.blocked <= priority


_Step = tuple[KindTable, int, int, list[int]]
"""One coverage question of a policy: table, its cube there, the higher cubes (bits, ids)."""


@dataclass
class SetAnalysis:
    """The facts every analysis pass shares for one policy set, computed once, lazily."""

    pset: m.PolicySet
    domains: Domains = field(init=False)
    regions: dict[str, Region] = field(init=False, default_factory=dict)
    coverage: list[tuple[m.Coverage, Region]] = field(init=False, default_factory=list)
    tables: dict[str, KindTable] = field(init=False, default_factory=dict)
    unknown: list[Unknown] = field(init=False, default_factory=list)
    _ambiguous: list[Ambiguity] | None = field(init=False, default=None)
    _shadowed: list[Shadowing] | None = field(init=False, default=None)
    _gaps: list[Gap] | None = field(init=False, default=None)
    _dead_exceptions: list[tuple[m.Policy, m.Handoff]] | None = field(init=False, default=None)
    _rank: dict[str, tuple[int, n.Span]] = field(init=False, default_factory=dict)
    answers: Answers | None = field(init=False, default=None)  # remembered across processes

    def __post_init__(self) -> None:
        self.answers = _REMEMBERED[0] if _REMEMBERED else None
        pset = self.pset
        policies = ordered_policies(pset)
        good = [p.when for p in policies if p.when is not None and not self.is_bad(p.when)]
        good += [c.cond for c in pset.coverage if not self.is_bad(c.cond)]
        self.domains = Domains.build(pset.schema, good)
        opaque: set[str] = set()
        for p in policies:
            if p.when is not None and self.is_bad(p.when):
                opaque.add(p.name)
                continue
            try:
                self.regions[p.name] = self.domains.compile(p.when)
            except Undecided as exc:
                opaque.add(p.name)
                where = exc.span or (p.when.span if p.when is not None else p.name_span)
                self.unknown.append(
                    Unknown(
                        where, f"cannot analyse the condition of policy '{p.name}': {exc.reason}"
                    )
                )
        for cov in pset.coverage:
            if self.is_bad(cov.cond):
                continue
            try:
                self.coverage.append((cov, self.domains.compile(cov.cond)))
            except Undecided as exc:
                self.unknown.append(
                    Unknown(exc.span or cov.span, f"cannot analyse this coverage: {exc.reason}")
                )
        members: dict[str, list[tuple[m.Policy, Region]]] = {}
        blocked: dict[str, int] = {}
        for p in policies:
            for kind in dict.fromkeys(p.triggers):
                if p.name in opaque:
                    blocked[kind] = max(blocked.get(kind, p.priority), p.priority)
                else:
                    members.setdefault(kind, []).append((p, self.regions[p.name]))
        for kind in sorted(set(members) | set(blocked)):
            table = KindTable(kind, members.get(kind, []))
            table.blocked = blocked.get(kind)
            self.tables[kind] = table

    def is_bad(self, cond: n.Cond) -> bool:
        """True when the condition already has an error (so the analysis skips it)."""
        return cond.span in self.pset.bad_conditions

    # -- E302 ---------------------------------------------------------------------
    def ambiguous(self) -> list[Ambiguity]:
        """Pairs of equal-priority triggered policies that can own one event of one kind."""
        if self._ambiguous is not None:
            return self._ambiguous
        found: dict[tuple[str, str], Ambiguity] = {}
        undecided: set[tuple[str, str]] = set()
        rank = {p.name: i for i, p in enumerate(ordered_policies(self.pset))}
        for kind, table in self.tables.items():
            for prio in table.priorities:
                if not table.decidable_below(prio):
                    continue
                above = table.above(prio)
                equal = table.equal(prio)
                pairs: dict[tuple[str, str], list[tuple[int, int]]] = {}
                for i in iter_bits(equal):
                    later = equal & ~((1 << (i + 1)) - 1)
                    if not later:
                        break
                    for j in iter_bits(table.index.touching(table.cubes[i]) & later):
                        a, b = table.owner[i], table.owner[j]
                        if a.name == b.name:
                            continue
                        key = (a.name, b.name) if rank[a.name] < rank[b.name] else (b.name, a.name)
                        if key not in found:
                            pairs.setdefault(key, []).append((i, j))
                for key, cube_pairs in pairs.items():
                    if key in found:
                        continue
                    try:
                        w = self._owned_by_both(table, cube_pairs, above)
                    except Undecided as exc:
                        if key not in undecided:
                            undecided.add(key)
                            second = self.pset.policies[key[1]]
                            self.unknown.append(
                                Unknown(
                                    second.name_span,
                                    f"could not decide whether '{key[0]}' and '{key[1]}' can "
                                    f"own the same {kind} event: {exc.reason}",
                                )
                            )
                        continue
                    if w is not None:
                        first, second = self.pset.policies[key[0]], self.pset.policies[key[1]]
                        found[key] = Ambiguity(first, second, kind, w)
        self._ambiguous = sorted(
            found.values(), key=lambda a: (rank[a.second.name], rank[a.first.name])
        )
        return self._ambiguous

    def _owned_by_both(
        self, table: KindTable, cube_pairs: list[tuple[int, int]], above: int
    ) -> Witness | None:
        budget = Budget(DEFAULT_STEPS)
        for i, j in cube_pairs:
            piece = meet(table.cubes[i], table.cubes[j])
            if piece is None:
                continue
            higher = table.index.touching(piece) & above
            rest = find_outside_indexed(self.domains, piece, table.index, higher, budget)
            if rest is not None:
                return self.domains.witness(rest)
        return None

    # -- W304 ---------------------------------------------------------------------
    def shadowed(self) -> list[Shadowing]:
        """Triggered, satisfiable policies that no event of any of their kinds reaches first."""
        if self._shadowed is not None:
            return self._shadowed
        out: list[Shadowing] = []
        for p in ordered_policies(self.pset):
            region = self.regions.get(p.name)
            if not p.triggers or region is None or region.is_empty():
                continue
            try:
                by = self._shadowed_by(p)
            except Undecided as exc:
                self.unknown.append(
                    Unknown(
                        p.name_span,
                        f"could not decide whether policy '{p.name}' is shadowed: {exc.reason}",
                    )
                )
                continue
            if by is not None:
                out.append(Shadowing(p, by))
        self._shadowed = out
        return out

    def _shadowed_by(self, p: m.Policy) -> tuple[m.Policy, ...] | None:
        """The higher-priority policies that cover ``p`` on every kind, or None if it wins somewhere."""
        steps: list[_Step | None] = []  # None: a kind an unanalysable policy decides
        for kind in dict.fromkeys(p.triggers):
            table = self.tables[kind]
            if not table.decidable_below(p.priority):
                steps.append(None)
                break
            above = table.above(p.priority)
            for i in table.cubes_of.get(p.name, []):
                higher = table.index.touching(table.cubes[i]) & above
                steps.append((table, i, higher, bit_list(higher)))
        if not self._covered(steps):
            return None
        by: dict[str, None] = {}
        for step in steps:
            assert step is not None  # a None step is never covered
            by.update(dict.fromkeys(map(step[0].owner_names.__getitem__, step[3])))
        if not self._rank:  # highest priority first, then source order
            self._rank = {q.name: (-q.priority, q.span) for q in self.pset.policies.values()}
        return tuple(map(self.pset.policies.__getitem__, sorted(by, key=self._rank.__getitem__)))

    def _covered(self, steps: list[_Step | None]) -> bool:
        """Whether each step's cube is covered by its higher cubes, in order, on one budget
        (raises ``Undecided`` when it runs out). With remembered answers, a question asked
        before (the same cubes, cells and subs in the same order) is not searched again."""
        key = self._question_key(steps) if self.answers is not None else None
        if key is not None and self.answers is not None:
            known = self.answers.get(key)
            if isinstance(known, str):
                raise Undecided(known)
            if known is not None:
                return bool(known)
        budget = Budget(DEFAULT_STEPS)
        covered = True
        try:
            for step in steps:
                if step is None:
                    covered = False
                    break
                table, i, higher, ids = step
                cube = table.cubes[i]
                found = find_outside_indexed(self.domains, cube, table.index, higher, budget, ids)
                if found is not None:
                    covered = False
                    break
        except Undecided as exc:
            if key is not None and self.answers is not None:
                self.answers.put(key, exc.reason)
            raise
        if key is not None and self.answers is not None:
            self.answers.put(key, int(covered))
        return covered

    def _question_key(self, steps: list[_Step | None]) -> str:
        """A digest of all a coverage question reads: per step the cube, and the higher
        cubes in order, each as its variables (names, every cell, the cells allowed)."""
        h = hashlib.blake2b(f"covered within {DEFAULT_STEPS} steps".encode(), digest_size=20)
        for step in steps:
            if step is None:
                h.update(b"undecidable kind;")
                continue
            table, i, _, ids = step
            digests = table.digests(self.domains)
            h.update(digests[i])
            h.update(b"<")
            h.update(b"".join(map(digests.__getitem__, ids)))
            h.update(b";")
        return h.hexdigest()

    # -- E303 ---------------------------------------------------------------------
    def dead_exceptions(self) -> list[tuple[m.Policy, m.Handoff]]:
        """Type A exceptions whose condition no ticket state can satisfy.

        Only the condition itself counts, not the policy's ``when``: condition
        exceptions are evaluated again on every later event, when the ticket
        may no longer match the trigger (``when severity == critical`` with
        ``exception downgraded when severity == low`` is a real path). Each
        condition is decided over its own literals, so the set's shared cells
        (and every other verdict) stay as they are."""
        if self._dead_exceptions is not None:
            return self._dead_exceptions
        out: list[tuple[m.Policy, m.Handoff]] = []
        for p in ordered_policies(self.pset):
            for h in p.handoffs:
                if h.cond is None or self.is_bad(h.cond):
                    continue
                try:
                    region = Domains.build(self.pset.schema, [h.cond]).compile(h.cond)
                except Undecided as exc:
                    self.unknown.append(
                        Unknown(
                            exc.span or h.cond.span,
                            f"cannot analyse exception '{h.name}' of policy '{p.name}': "
                            f"{exc.reason}",
                        )
                    )
                    continue
                if region.is_empty():
                    out.append((p, h))
        self._dead_exceptions = out
        return out

    def dead_coverage(self) -> list[m.Coverage]:
        """Coverage promises whose condition no event satisfies: they guarantee nothing."""
        return [cov for cov, region in self.coverage if region.is_empty()]

    # -- W305 ---------------------------------------------------------------------
    def gaps(self) -> list[Gap]:
        """Coverage promises with events no policy owns (no policy matches them at all)."""
        if self._gaps is not None:
            return self._gaps
        out: list[Gap] = []
        for cov, region in self.coverage:
            kinds: list[str] = []
            first: Witness | None = None
            for kind in dict.fromkeys(cov.events):
                table = self.tables.get(kind)
                try:
                    w = self._uncovered(region, table)
                except Undecided as exc:
                    self.unknown.append(
                        Unknown(
                            cov.span,
                            f"could not decide whether every {kind} event of this coverage "
                            f"is owned: {exc.reason}",
                        )
                    )
                    continue
                if w is not None:
                    kinds.append(kind)
                    first = first or w
            if first is not None:
                out.append(Gap(cov, tuple(kinds), first))
        self._gaps = out
        return out

    def _uncovered(self, region: Region, table: KindTable | None) -> Witness | None:
        if table is None:
            return region.witness()
        if table.blocked is not None:
            return None
        budget = Budget(DEFAULT_STEPS)
        for cube in region.cubes:
            subs = table.index.touching(cube)
            rest = find_outside_indexed(self.domains, cube, table.index, subs, budget)
            if rest is not None:
                return self.domains.witness(rest)
        return None


_ORDERED: list[tuple[m.PolicySet, list[m.Policy]]] = []


def ordered_policies(pset: m.PolicySet) -> list[m.Policy]:
    """Policies in source order (file, line), the order findings are reported in.

    Sorted once for the most recent set (every pass asks)."""
    if not _ORDERED or _ORDERED[0][0] is not pset:
        _ORDERED[:] = [(pset, sorted(pset.policies.values(), key=lambda p: (p.span, p.name)))]
    return list(_ORDERED[0][1])


_LAST: list[tuple[m.PolicySet, SetAnalysis]] = []
_REMEMBERED: list[Answers] = []


@contextmanager
def remembering(answers: Answers | None) -> Iterator[None]:
    """Analyses started inside reuse and record ``answers`` (from an earlier process)."""
    _REMEMBERED[:] = [answers] if answers is not None else []
    try:
        yield
    finally:
        _REMEMBERED.clear()


@cache
def answers_fingerprint() -> str:
    """The analysis code an answer was found with (a new one starts afresh)."""
    h = hashlib.sha256(b"analysis")
    for module in (algebra_module, sys.modules[__name__]):
        h.update(Path(str(module.__file__)).read_bytes())
    return h.hexdigest()


def analyse(pset: m.PolicySet) -> SetAnalysis:
    """The shared analysis of ``pset`` (cached for the most recent set, so passes share it)."""
    if _LAST and _LAST[0][0] is pset:
        return _LAST[0][1]
    result = SetAnalysis(pset)
    _LAST[:] = [(pset, result)]
    return result


# --------------------------------------------------------------------------- handoff graph


def handoff_edges(pset: m.PolicySet) -> dict[str, dict[str, m.Handoff]]:
    """policy -> handed-off-to policy -> the first Type A exception that does it."""
    edges: dict[str, dict[str, m.Handoff]] = {}
    for p in ordered_policies(pset):
        out = edges.setdefault(p.name, {})
        for h in p.handoffs:
            if h.policy in pset.policies:
                out.setdefault(h.policy, h)
    return edges


def _components(nodes: list[str], edges: dict[str, dict[str, m.Handoff]]) -> list[list[str]]:
    """Strongly connected components (iterative Tarjan), each in discovery order."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, Iterable[str]]] = [(root, iter(edges.get(root, {})))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(edges.get(child, {}))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                comp: list[str] = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    comp.append(top)
                    if top == node:
                        break
                out.append(comp)
    return out


def _shortest_cycle(
    start: str, members: set[str], edges: dict[str, dict[str, m.Handoff]]
) -> list[str]:
    """The shortest cycle through ``start`` inside one component: [start, ..., start]."""
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for child in edges.get(node, {}):
                if child not in members:
                    continue
                if child == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return [*reversed(path), start]
                if child not in parents:
                    parents[child] = node
                    nxt.append(child)
        frontier = nxt
    return [start, start]  # pragma: no cover - a component with a cycle always closes it


# --------------------------------------------------------------------------- passes


def check_handoff_loops(pset: m.PolicySet, diags: Collector) -> None:
    """E301: a cycle of Type A handoffs; every edge of the cycle is a note at its exception.

    ``first`` hands off to ``second`` on ``unacknowledged``, ``second`` back to
    ``first`` → E301 ``handoff loop: first → second → first``.
    """
    edges = handoff_edges(pset)
    names = [p.name for p in ordered_policies(pset)]
    order = {name: i for i, name in enumerate(names)}
    for comp in _components(names, edges):
        start = min(comp, key=order.__getitem__)
        if len(comp) == 1 and start not in edges.get(start, {}):
            continue
        cycle = _shortest_cycle(start, set(comp), edges)
        hops = [edges[a][b] for a, b in pairwise(cycle)]
        notes = [
            Note(h.span, f"'{a}' hands off to '{b}' here (exception {h.name})")
            for (a, b), h in zip(pairwise(cycle), hops, strict=True)
        ]
        diags.report(
            "E301",
            hops[0].span,
            f"handoff loop: {' → '.join(cycle)}",
            help="an escalation could be handed around this cycle forever; hand off to a "
            "policy that does not hand back, or end the path with `exception unknown triage`",
            notes=notes,
        )


def check_ambiguous_routes(pset: m.PolicySet, diags: Collector) -> None:
    """E302: two triggered policies of equal priority can own the same event of one kind.

    ``when ticket.severity == critical`` and ``when account.tier == enterprise``
    at priority 0 → witness ``account.tier = enterprise, ticket.severity = critical``.
    """
    for amb in analyse(pset).ambiguous():
        a, b = amb.first, amb.second
        diags.report(
            "E302",
            b.name_span,
            f"policies '{a.name}' and '{b.name}' have the same priority ({b.priority}) and can "
            f"both own the same {amb.kind} event: {amb.witness.describe()}",
            help="give one of them a higher priority, or make their conditions exclusive",
            notes=[
                Note(a.name_span, f"'{a.name}' (priority {a.priority}) is declared here"),
                *_when_notes(a, b),
            ],
            witness=amb.witness.event(amb.kind),
        )


def _when_notes(*policies: m.Policy) -> list[Note]:
    return [Note(p.when.span, f"condition of '{p.name}'") for p in policies if p.when is not None]


def check_never_matches(pset: m.PolicySet, diags: Collector) -> None:
    """E303: a condition that no event can satisfy, where it makes something dead.

    ``when ticket.severity == low and ticket.severity == high`` → E303: the policy
    never starts. The same for an exception's condition (the handoff never
    happens) and a coverage promise (it guarantees nothing, so W305 can never
    warn about it). An exception condition that merely contradicts the policy's
    ``when`` is not reported: it is evaluated again on later events, when the
    ticket may have changed.
    """
    result = analyse(pset)
    for p in ordered_policies(pset):
        region = result.regions.get(p.name)
        if p.when is None or region is None or not region.is_empty():
            continue
        diags.report(
            "E303",
            p.when.span,
            f"the condition of policy '{p.name}' can never be true, so the policy never starts",
            help=_contradiction_help(result.domains, p.when),
        )
    for p, h in result.dead_exceptions():
        assert h.cond is not None
        diags.report(
            "E303",
            h.cond.span,
            f"the condition of exception '{h.name}' in policy '{p.name}' can never be true, "
            f"so it never hands off to '{h.policy}'",
            help=_contradiction_help(Domains.build(pset.schema, [h.cond]), h.cond),
        )
    for cov in result.dead_coverage():
        diags.report(
            "E303",
            cov.cond.span,
            "this coverage condition can never be true, so the promise covers no event "
            "and no coverage gap can ever be reported",
            help=_contradiction_help(result.domains, cov.cond),
        )


def _contradiction_help(domains: Domains, cond: n.Cond) -> str:
    """Name two conjuncts that already contradict each other, when there are such."""
    if isinstance(cond, n.And):
        items = list(cond.items)
        for i, a in enumerate(items):
            for b in items[i + 1 :]:
                try:
                    ra, rb = domains.compile(a), domains.compile(b)
                except Undecided:
                    return "no event satisfies every part of it"
                if not ra.is_empty() and not rb.is_empty() and ra.intersect(rb).is_empty():
                    return (
                        f"'{_source(a)}' and '{_source(b)}' exclude each other "
                        "(a missing field makes every comparison false)"
                    )
    return "no event satisfies it (a missing field makes every comparison false)"


def _source(cond: n.Cond) -> str:
    if isinstance(cond, n.Compare):
        return f"{cond.field.path} {cond.op} {_literal(cond.value)}"
    if isinstance(cond, n.InList):
        word = "not in" if cond.negated else "in"
        return f"{cond.field.path} {word} ({', '.join(_literal(v) for v in cond.values)})"
    if isinstance(cond, n.Has):
        return f'{cond.field.path} has "{cond.tag.value}"'
    if isinstance(cond, n.Not):
        return f"not {_source(cond.item)}"
    word = " and " if isinstance(cond, n.And) else " or "
    return "(" + word.join(_source(c) for c in cond.items) + ")"


def _literal(v: n.Value) -> str:
    return f'"{v.raw}"' if v.kind == "string" else v.raw


def check_shadowed(pset: m.PolicySet, diags: Collector) -> None:
    """W304: every event a triggered policy could own is owned first by higher priorities.

    ``critical_default`` (priority 10, ``ticket.severity == critical``) under a
    priority-100 policy on ``ticket.severity in (high, critical)`` → W304.
    """
    found = analyse(pset).shadowed()
    # one note per shadowing policy, shared by every finding that names it
    notes = {
        q.name: Note(q.name_span, f"'{q.name}' (priority {q.priority}) matches first")
        for q in (pset.policies.values() if found else ())
    }
    for sh in found:
        p = sh.policy
        by = list(map(attrgetter("name"), sh.by))
        diags.report(
            "W304",
            p.name_span,
            f"policy '{p.name}' (priority {p.priority}) never owns an event: higher-priority "
            f"{'policy' if len(by) == 1 else 'policies'} {', '.join(map(_QUOTED, by))} "
            "always match first",
            help="raise its priority, narrow the higher-priority conditions, or remove it",
            notes=list(map(notes.__getitem__, by)),
        )


_QUOTED = "'{}'".format


def check_coverage(pset: m.PolicySet, diags: Collector) -> None:
    """W305: an event a ``coverage`` declaration promises that no policy owns (witness)."""
    for gap in analyse(pset).gaps():
        kinds = ", ".join(gap.kinds)
        diags.report(
            "W305",
            gap.coverage.span,
            f"coverage gap: no policy owns some {kinds} events this coverage promises, "
            f"e.g. {gap.witness.describe()}",
            help="add a policy (or widen one) that matches these events",
            witness=gap.witness.event(gap.kinds[0]),
        )


def check_unreachable(pset: m.PolicySet, diags: Collector) -> None:
    """W306: a policy without trigger that no handoff from a triggered policy reaches.

    A handoff whose condition can never hold (E303) is no way in."""
    dead = {(p.name, h.name) for p, h in analyse(pset).dead_exceptions()}
    edges: dict[str, set[str]] = {}
    for p in ordered_policies(pset):
        for h in p.handoffs:
            if h.policy in pset.policies and (p.name, h.name) not in dead:
                edges.setdefault(p.name, set()).add(h.policy)
    reached: set[str] = set()
    frontier = [p.name for p in ordered_policies(pset) if p.triggers]
    reached.update(frontier)
    while frontier:
        nxt = sorted({b for a in frontier for b in edges.get(a, set()) if b not in reached})
        reached.update(nxt)
        frontier = nxt
    for p in ordered_policies(pset):
        if p.name in reached:
            continue
        sources = [a for a, out in edges.items() if p.name in out and a != p.name]
        if sources:
            message = (
                f"policy '{p.name}' has no trigger, and only policies that are never entered "
                f"hand off to it ({', '.join(repr(s) for s in sources)})"
            )
        else:
            message = f"policy '{p.name}' has no trigger and no handoff reaches it"
        diags.report(
            "W306",
            p.name_span,
            message,
            help="add a `trigger`, or an `exception ... handoff "
            f"{p.name}` in a policy that is triggered",
        )


def check_undecided(pset: m.PolicySet, diags: Collector) -> None:
    """W307: every question the analysis could not decide within its budget, where it arose."""
    result = analyse(pset)
    result.ambiguous()
    result.shadowed()
    result.gaps()
    result.dead_exceptions()
    for u in result.unknown:
        diags.report(
            "W307",
            u.span,
            u.message,
            help="the verdict is unknown, not 'fine'; simplify the condition or split the policy",
        )


ANALYSIS_PASSES: tuple[Pass, ...] = (
    check_handoff_loops,
    check_ambiguous_routes,
    check_never_matches,
    check_shadowed,
    check_coverage,
    check_unreachable,
    check_undecided,
    check_reachability,
)
