"""Which policy owns an event, and why (SPEC §1, §4).

For each event kind, the highest-priority matching policy owns the event;
policies without a trigger own nothing. Equal priorities are an error the
compiler reports (E302); should a pack still hold a tie, the runtime breaks it
by policy name, deterministically, and :meth:`Matcher.explain` says so.

Decisions are fast and exactly those of a first-match loop over the policies in
precedence order (:meth:`Matcher.first_match`, kept as the reference). Each
``when`` is expanded into its disjuncts, ``or`` included, and every disjunct is
indexed on its own fields (:mod:`escalade.runtime.matchindex`): an event visits
a dict bucket per selective text field (a queue, a severity), and each group it
reaches narrows itself with bit masks per text, number and tag field, so only a
few predicates run, already in precedence order. :meth:`Matcher.stats` says how
the pack was indexed, including the *remainder* every event must check.

>>> m = Matcher(pack)                                             # doctest: +SKIP
>>> m.owner("ticket.created", {"ticket": {"severity": "critical"}}).name  # doctest: +SKIP
'critical_default'
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from escalade.runtime.clock import duration_words
from escalade.runtime.conditions import (
    Condition,
    ConditionError,
    Predicate,
    State,
    compile_condition,
    explain_condition,
)
from escalade.runtime.matchindex import (
    Group,
    Item,
    Keyed,
    Needs,
    Node,
    build,
    disjuncts,
    first_owner,
    groups,
    keyed,
    needs_of,
    top_atoms,
)
from escalade.runtime.pack import Policy, RulePack


def required_keys(cond: Mapping[str, Any] | None) -> dict[str, frozenset[str]]:
    """Text values each field *must* take for ``cond`` to hold (from its top-level ``and``).

    >>> required_keys({"op": "and", "args": [
    ...     {"op": "cmp", "field": "t.s", "cmp": "==", "value": "x"},
    ...     {"op": "in", "field": "a.t", "values": ["p", "q"]}]})["a.t"] == {"p", "q"}
    True
    """
    needs = needs_of(top_atoms(cond))
    return {path: values for path, (one_of, values) in needs.text.items() if one_of}


@dataclass(frozen=True, slots=True)
class IndexStats:
    """How a matcher indexed its pack, over the policies that have a trigger."""

    policies: int
    entries: int  # one per disjunct: an `or` policy counts once per disjunct
    expanded: int  # policies indexed as several disjuncts
    over_bound: int  # conditions past MAX_DISJUNCTS: indexed on their top-level `and` only
    remainder: int  # policies the index cannot narrow: every event of their kinds checks them
    groups: int  # lists of entries the splits lead to
    largest_group: int


@dataclass(frozen=True, slots=True)
class Candidate:
    """One policy considered for an event, with its condition atom by atom."""

    policy: Policy
    matched: bool
    atoms: tuple[tuple[str, bool], ...]
    note: str  # why it did or did not win


@dataclass(frozen=True, slots=True)
class Explanation:
    """Everything ``escalade explain`` prints about one decision."""

    event_type: str
    owner: Policy | None
    candidates: tuple[Candidate, ...]
    tie_broken_by_name: tuple[str, ...]  # names at the owner's priority that also matched
    reason: str  # one line: who owns it, or why nobody does
    delayed: int | None  # seconds: the owner starts only after this, if still matching


def _junction(op: str, parts: Sequence[Predicate]) -> Predicate:
    """``and``/``or`` of predicates, as flat as three at a time (fewer calls than pairs)."""
    if len(parts) > 3:
        return _junction(op, [_junction(op, parts[:3]), _junction(op, parts[3:])])
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        if op == "and":
            return lambda state: a(state) and b(state)
        return lambda state: a(state) or b(state)
    a, b, c = parts
    if op == "and":
        return lambda state: a(state) and b(state) and c(state)
    return lambda state: a(state) or b(state) or c(state)


def _falsity(atom: Condition) -> int:
    """How likely ``atom`` is true, roughly (0: rarely): conjunctions test the unlikely first."""
    op = atom.get("op")
    if op == "cmp":
        return 0 if atom.get("cmp") == "==" else 3 if atom.get("cmp") == "!=" else 2
    if op == "in":
        return 0 if len(atom.get("values") or ()) <= 1 else 1
    return {"has": 1, "not_in": 3}.get(str(op), 4)  # `not` last: usually true


class _Compiler:
    """Compiles conditions from shared atoms: equal atoms of any policy are compiled once."""

    def __init__(self) -> None:
        self._atoms: dict[str, Predicate] = {}
        self._conjunctions: dict[tuple[int, ...], Predicate] = {}

    def __call__(self, atoms: Sequence[Condition]) -> Predicate | None:
        """The conjunction of ``atoms`` (None when there is none: nothing left to check)."""
        if not atoms:
            return None
        parts = [self.atom(a) for a in sorted(atoms, key=_falsity)]
        key = tuple(map(id, parts))
        done = self._conjunctions.get(key)
        if done is None:
            done = self._conjunctions[key] = _junction("and", parts)
        return done

    def atom(self, atom: Condition) -> Predicate:
        try:
            key = json.dumps(atom, sort_keys=True)
        except (TypeError, ValueError):  # not JSON: compiled (or refused) on its own
            return compile_condition(atom)
        done = self._atoms.get(key)
        if done is None:
            done = self._atoms[key] = compile_condition(atom)
        return done

    def condition(self, cond: Condition | None) -> Predicate:
        """``cond`` as :func:`~escalade.runtime.conditions.compile_condition` compiles it."""
        if cond is None or not isinstance(cond, Mapping) or cond.get("op") not in ("and", "or"):
            return compile_condition(cond) if cond is None else self.atom(cond)
        args = cond.get("args")
        if not isinstance(args, list) or not args:
            raise ConditionError(f"`{cond['op']}` needs a non-empty list of args")
        return _junction(cond["op"], [self.condition(a) for a in args])


Disjuncts = tuple[list[tuple[tuple[Keyed, ...] | None, Needs]], str]


def _disjuncts(policy: Policy) -> Disjuncts:
    """A policy's entries (atoms, or None: check the whole ``when``) and how it was indexed."""
    parts = disjuncts(policy.when)
    if parts is None:
        return [(None, needs_of(top_atoms(policy.when)))], "over_bound"
    needs = [needs_of(atoms) for atoms in parts]
    if len(parts) > 1 and not all(needs):  # a disjunct every event checks: check it whole
        return [(None, Needs())], "remainder"
    how = "expanded" if len(parts) > 1 else "remainder" if not needs[0] else "one"
    return [(keyed(a), n) for a, n in zip(parts, needs, strict=True)], how


class Matcher:
    """Decides the owning policy of an event from a validated :class:`RulePack`."""

    def __init__(self, pack: RulePack) -> None:
        self.pack = pack
        by_kind: dict[str, list[Policy]] = {}
        for p in pack.policies:
            for kind in p.triggers:
                by_kind.setdefault(kind, []).append(p)
        compiler = _Compiler()
        self._compiled: dict[str, Predicate] = {
            p.name: compiler.condition(p.when) for p in pack.policies
        }
        self._ordered: dict[str, tuple[Policy, ...]] = {}
        self._index: dict[str, Node[Policy]] = {}
        shapes = {p.name: _disjuncts(p) for p in pack.policies if p.triggers}
        for kind, policies in by_kind.items():
            ordered = sorted(policies, key=lambda p: (-p.priority, p.name))
            self._ordered[kind] = tuple(ordered)
            items = [
                Item(rank, p, part, self._compiled[p.name], needs)
                for rank, p in enumerate(ordered)
                for part, needs in shapes[p.name][0]
            ]
            self._index[kind] = build(items, compiler)
        self._stats = self._measure(shapes)

    def _measure(self, shapes: Mapping[str, Disjuncts]) -> IndexStats:
        found = [g for node in self._index.values() for g in groups(node)]
        how = [h for _, h in shapes.values()]
        return IndexStats(
            policies=len(shapes),
            entries=sum(len(e) for e, _ in shapes.values()),
            expanded=how.count("expanded"),
            over_bound=how.count("over_bound"),
            remainder=how.count("remainder")
            + sum(1 for e, h in shapes.values() if h == "over_bound" and not e[0][1]),
            groups=len(found),
            largest_group=max(
                (len(g.entries if isinstance(g, Group) else g) for g in found), default=0
            ),
        )

    def stats(self) -> IndexStats:
        """How the index holds the pack: entries, expanded disjunctions, the remainder."""
        return self._stats

    def predicate(self, name: str) -> Predicate:
        """The compiled ``when`` of policy ``name`` (KeyError when the pack has none)."""
        return self._compiled[name]

    def candidates(self, event_type: str) -> tuple[Policy, ...]:
        """Policies triggered by ``event_type``, in precedence order (priority, then name)."""
        return self._ordered.get(event_type, ())

    def owner(self, event_type: str, state: State) -> Policy | None:
        """The policy that owns an event of ``event_type`` on ``state`` (None: nobody)."""
        node = self._index.get(event_type)
        return None if node is None else first_owner(node, state)

    def first_match(self, event_type: str, state: State) -> Policy | None:
        """The same decision without the index: a loop over every candidate (the reference)."""
        compiled = self._compiled
        for policy in self._ordered.get(event_type, ()):
            if compiled[policy.name](state):
                return policy
        return None

    def explain(self, event_type: str, state: State) -> Explanation:
        """Evaluate every candidate atom by atom and say who owns the event and why."""
        ordered = self.candidates(event_type)
        matched = [p for p in ordered if self._compiled[p.name](state)]
        owner = matched[0] if matched else None
        ties = tuple(p.name for p in matched[1:] if owner and p.priority == owner.priority)
        cands = []
        for p in ordered:
            ok = p in matched
            if p is owner:
                note = "owns the event (highest priority match)"
                if ties:
                    note = (
                        f"owns the event: ties at priority {p.priority} with {', '.join(ties)} "
                        "(E302 in the compiler); the runtime picks the first by name"
                    )
            elif ok and owner is not None:
                note = f"matched, but {owner.name} (priority {owner.priority}) comes first"
            else:
                note = "condition is false"
            cands.append(Candidate(p, ok, tuple(explain_condition(p.when, state)), note))
        if owner is not None:
            reason = f"{owner.name} owns this {event_type} event (priority {owner.priority})"
            if owner.after is not None:
                reason += (
                    f"; it would start after {duration_words(owner.after)} "
                    "if the condition still holds then"
                )
        elif not ordered:
            known = event_type in self.pack.events
            reason = (
                f"no policy triggers on {event_type}"
                if known
                else f"{event_type} is not an event kind of this pack"
            )
        else:
            reason = (
                f"no owner: none of the {len(ordered)} policies triggered by {event_type} matched"
            )
        return Explanation(
            event_type,
            owner,
            tuple(cands),
            ties,
            reason,
            owner.after if owner is not None else None,
        )
