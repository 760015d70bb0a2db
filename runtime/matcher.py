"""Which policy owns an event, and why (SPEC §1, §4).

For each event kind, the highest-priority matching policy owns the event;
policies without a trigger own nothing. Equal priorities are an error the
compiler reports (E302); should a pack still hold a tie, the runtime breaks it
by policy name, deterministically, and :meth:`Matcher.explain` says so.

Decisions are fast: per event kind the matcher builds a decision tree over the
most selective *required* equality fields (``field == "v"`` or ``field in
(...)`` conjuncts of a policy's ``when``). Each event walks one path of dict
lookups to a short candidate list, already in precedence order, and only those
candidates' compiled conditions run. A policy without a constraint on a field
sits in every branch of it, so the index only ever filters out policies whose
condition is certainly false.

>>> m = Matcher(pack)                                             # doctest: +SKIP
>>> m.owner("ticket.created", {"ticket": {"severity": "critical"}}).name  # doctest: +SKIP
'critical_default'
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from escalade.runtime.clock import duration_words
from escalade.runtime.conditions import Predicate, State, compile_condition, explain_condition
from escalade.runtime.pack import Policy, RulePack

LEAF_SIZE = 4  # stop splitting at this many candidates (measured: 4 beat 6 and 8)
MAX_DEPTH = 8

Entry = tuple[Policy, Predicate]


def required_keys(cond: Mapping[str, Any] | None) -> dict[str, frozenset[str]]:
    """Text values each field *must* take for ``cond`` to hold (from its top-level ``and``).

    >>> required_keys({"op": "and", "args": [
    ...     {"op": "cmp", "field": "t.s", "cmp": "==", "value": "x"},
    ...     {"op": "in", "field": "a.t", "values": ["p", "q"]}]})["a.t"] == {"p", "q"}
    True
    """
    if cond is None:
        return {}
    parts = cond["args"] if cond["op"] == "and" else [cond]
    keys: dict[str, frozenset[str]] = {}
    for part in parts:
        values: frozenset[str] | None = None
        if part["op"] == "cmp" and part["cmp"] == "==" and isinstance(part["value"], str):
            values = frozenset([part["value"]])
        elif part["op"] == "in" and all(isinstance(v, str) for v in part["values"]):
            values = frozenset(part["values"])
        if values is not None:
            field = part["field"]
            keys[field] = keys[field] & values if field in keys else values
    return keys


@dataclass(frozen=True, slots=True)
class _Branch:
    """Split on ``obj.name``: a bucket per value, ``default`` for other or missing values."""

    obj: str
    name: str
    buckets: Mapping[str, _Branch | tuple[Entry, ...]]
    default: _Branch | tuple[Entry, ...]


Node = _Branch | tuple[Entry, ...]


def _build(entries: list[tuple[Entry, dict[str, frozenset[str]]]], depth: int) -> Node:
    leaf = tuple(e for e, _ in entries)
    if len(entries) <= LEAF_SIZE or depth >= MAX_DEPTH:
        return leaf
    counts: dict[str, int] = {}
    for _, keys in entries:
        for f in keys:
            counts[f] = counts.get(f, 0) + 1
    if not counts:
        return leaf

    def worst_bucket(f: str) -> int:
        # Size of the largest branch when splitting on f: policies that name the value,
        # plus those that do not constrain f at all.
        free = sum(1 for _, k in entries if f not in k)
        per: dict[str, int] = {}
        for _, k in entries:
            for v in k.get(f, ()):
                per[v] = per.get(v, 0) + 1
        return free + max(per.values(), default=0)

    field = min(counts, key=lambda f: (worst_bucket(f), -counts[f], f))
    if worst_bucket(field) >= len(entries):
        return leaf
    rest = [(e, {f: vs for f, vs in k.items() if f != field}) for e, k in entries]
    # One pass groups the entries by value (a bucket per value would rescan them all).
    named: dict[str, list[int]] = {}
    free: list[int] = []
    for i, (_, k) in enumerate(entries):
        if field in k:
            for v in k[field]:
                named.setdefault(v, []).append(i)
        else:
            free.append(i)
    buckets = {
        # a value's policies plus the unconstrained ones, still in precedence order
        v: _build([rest[i] for i in sorted(named[v] + free)], depth + 1)
        for v in sorted(named)
    }
    default = _build([rest[i] for i in free], depth + 1)
    obj, _, name = field.partition(".")
    return _Branch(obj, name, buckets, default)


_EMPTY: Mapping[str, Any] = {}


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


class Matcher:
    """Decides the owning policy of an event from a validated :class:`RulePack`."""

    def __init__(self, pack: RulePack) -> None:
        self.pack = pack
        by_kind: dict[str, list[Policy]] = {}
        for p in pack.policies:
            for kind in p.triggers:
                by_kind.setdefault(kind, []).append(p)
        self._compiled: dict[str, Predicate] = {
            p.name: compile_condition(p.when) for p in pack.policies
        }
        self._ordered: dict[str, tuple[Policy, ...]] = {}
        self._trees: dict[str, Node] = {}
        for kind, policies in by_kind.items():
            ordered = sorted(policies, key=lambda p: (-p.priority, p.name))
            self._ordered[kind] = tuple(ordered)
            entries = [((p, self._compiled[p.name]), required_keys(p.when)) for p in ordered]
            self._trees[kind] = _build(entries, 0)

    def predicate(self, name: str) -> Predicate:
        """The compiled ``when`` of policy ``name`` (KeyError when the pack has none)."""
        return self._compiled[name]

    def candidates(self, event_type: str) -> tuple[Policy, ...]:
        """Policies triggered by ``event_type``, in precedence order (priority, then name)."""
        return self._ordered.get(event_type, ())

    def owner(self, event_type: str, state: State) -> Policy | None:
        """The policy that owns an event of ``event_type`` on ``state`` (None: nobody)."""
        node = self._trees.get(event_type)
        if node is None:
            return None
        while type(node) is _Branch:
            value = state.get(node.obj, _EMPTY).get(node.name)
            nxt = node.buckets.get(value) if type(value) is str else None
            node = node.default if nxt is None else nxt
        for policy, predicate in node:  # type: ignore[union-attr]
            if predicate(state):
                return policy
        return None

    def first_match(self, event_type: str, state: State) -> Policy | None:
        """The same decision without the index: a loop over every candidate (a baseline)."""
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
