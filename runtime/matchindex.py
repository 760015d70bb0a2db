"""The matcher's index: which entries an event can satisfy, without checking every policy.

A condition is expanded into its *disjuncts* (:func:`disjuncts`): an ``or`` of
conjunctions of atoms, ``and``/``or`` distributed, ``not`` kept whole. Each
disjunct of a policy is one *entry* (a policy holds when one of its disjuncts
does); a condition that would expand past :data:`MAX_DISJUNCTS` stays one entry,
indexed on the atoms of its top-level ``and`` and checked with its whole
predicate.

Per event kind the entries, in precedence order (their *rank*), are arranged as:

- a *split* on a text field (``ticket.queue == "q7"``, ``ticket.severity in
  (high, critical)``): a dict from value to the entries naming that value, and a
  *rest* for entries that name none. An event visits the bucket of its value and
  the rest;
- a *list*: entries checked one by one;
- a *group*: a list that first narrows itself with bit masks, one bit per entry:
  per text field the entries a value admits (``==``, ``in``, ``!=``, ``not
  in``), per number field the entries the value's interval admits (``<`` ...
  ``>=``, found by bisection), per set field the entries whose ``has`` tags are
  all present.

Which of the three holds a set of entries is decided by what each would cost
an event (the ``COST_*`` estimates, measured): the index is built bottom-up,
keeping the cheaper of a split and a list or group at every step.

Every atom a split or a mask decides exactly is dropped from the entry's
predicate there, so most admitted entries need no check at all. The owner is
the entry of best rank, over every group visited, whose remaining predicate
holds: exactly the first match of a loop over the policies in precedence order.

An entry with no indexable atom is part of the *remainder*: every event of its
kind checks it. States hold JSON values (text, numbers, booleans, lists,
``None``), as :func:`~escalade.runtime.events.parse_event` gives them.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from escalade.runtime.conditions import Condition, Predicate, State, split_field

MAX_DISJUNCTS = 16  # a condition expanding into more disjuncts stays one entry
HEAD_SIZE = 4  # a masked group checks this many entries one by one before its masks
MAX_COPIES = 8  # a split's buckets hold at most this many copies per entry (`in` lists)
MAX_CUTS = 256  # number thresholds per field and group; beyond, coarser cells (still sound)
# What an event's decision costs, in microseconds (CPython 3.11, measured on this repository's
# bench machine): per list of entries, the index keeps the cheaper of checking them one by one,
# masking them and splitting them. Checks usually fail on their first atom.
COST_LIST = 0.08  # visiting a short list
COST_ENTRY = 0.03  # stepping to one of its entries
COST_ATOM = 0.075  # calling an atom left to check (about 1.5 of them run per check, at most)
COST_CONJ = 0.03  # calling a conjunction of several
WHOLE_ATOMS = 3  # atoms in a condition checked whole, as a guess
COST_SPLIT = 0.10  # visiting a split
COST_KEY = 0.08  # looking a field's value up
COST_GROUP = 0.6  # visiting a masked group, starting and walking its mask
COST_MASK = 0.15  # ... per field it masks
COST_BIT = 0.00003  # ... per entry and field (masks are ints as wide as the group)

T = TypeVar("T")  # what an entry stands for (the matcher's Policy)
Interval = tuple[float, bool, float, bool]  # low, low included, high, high included
TextNeed = tuple[bool, frozenset[str]]  # (True: one of the values | False: a text, none of them)
Compile = Callable[[Sequence[Condition]], Predicate | None]  # atoms -> predicate (None: true)
AtomKey = tuple[str | None, str]  # how the index decides an atom (None: it cannot), its field
Keyed = tuple[AtomKey, Condition]

_INF = float("inf")
NO_RANK = 1 << 62
_EMPTY: Mapping[str, Any] = {}
_SET_TYPES = (list, tuple, set, frozenset)
_INTERVALS: dict[str, Callable[[float], Interval]] = {
    "==": lambda v: (v, True, v, True),
    "<": lambda v: (-_INF, True, v, False),
    "<=": lambda v: (-_INF, True, v, True),
    ">": lambda v: (v, False, _INF, True),
    ">=": lambda v: (v, True, _INF, True),
}


# --------------------------------------------------------------------------- disjuncts


def disjuncts(cond: Condition | None, bound: int | None = None) -> list[list[Condition]] | None:
    """``cond`` as an ``or`` of conjunctions of atoms; None past ``bound`` (:data:`MAX_DISJUNCTS`).

    >>> a, b, c = ({"op": "has", "field": "t.tags", "tag": t} for t in "abc")
    >>> [len(d) for d in disjuncts({"op": "and", "args": [a, {"op": "or", "args": [b, c]}]})]
    [2, 2]
    """
    if cond is None:
        return [[]]
    bound = MAX_DISJUNCTS if bound is None else bound
    op = cond["op"]
    if op == "or":
        out: list[list[Condition]] = []
        for arg in cond["args"]:
            part = disjuncts(arg, bound)
            if part is None or len(out) + len(part) > bound:
                return None
            out += part
        return out
    if op == "and":
        out = [[]]
        for arg in cond["args"]:
            part = disjuncts(arg, bound)
            if part is None or len(out) * len(part) > bound:
                return None
            out = [x + y for x in out for y in part]
        return out
    return [[cond]]


def top_atoms(cond: Condition | None) -> list[Condition]:
    """The atoms of the top-level ``and`` (nested ``and`` flattened): each one is necessary."""
    if cond is None or cond["op"] == "or":
        return []
    if cond["op"] == "and":
        return [atom for arg in cond["args"] for atom in top_atoms(arg)]
    return [cond]


def atom_kind(atom: Condition) -> str | None:
    """``text``, ``number`` or ``tag``: how the index can decide ``atom`` (None: it cannot)."""
    op = atom["op"]
    if op == "has":
        return "tag"
    if op in ("in", "not_in"):
        return "text" if all(isinstance(v, str) for v in atom["values"]) else None
    if op != "cmp":
        return None
    value = atom["value"]
    if isinstance(value, str):
        return "text" if atom["cmp"] in ("==", "!=") else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return "number" if atom["cmp"] in _INTERVALS else None
    return None


@dataclass(slots=True)
class Needs:
    """What a conjunction of atoms requires of an event, per field; all of it is necessary."""

    text: dict[str, TextNeed] = field(default_factory=dict)
    numbers: dict[str, Interval] = field(default_factory=dict)
    tags: dict[str, frozenset[str]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.text or self.numbers or self.tags)

    def without(self, path: str) -> Needs:
        """The same needs but the text need on ``path`` (a split has decided it)."""
        return Needs({f: v for f, v in self.text.items() if f != path}, self.numbers, self.tags)


def _meet(a: Interval, b: Interval) -> Interval:
    lo, lo_in = max((a[0], a[1]), (b[0], b[1]), key=lambda x: (x[0], not x[1]))
    hi, hi_in = min((a[2], a[3]), (b[2], b[3]), key=lambda x: (x[0], x[1]))
    return lo, lo_in, hi, hi_in


def _both(a: TextNeed, b: TextNeed) -> TextNeed:
    (a_one, a_vals), (b_one, b_vals) = a, b
    if a_one and b_one:
        return True, a_vals & b_vals
    if a_one:
        return True, a_vals - b_vals
    if b_one:
        return True, b_vals - a_vals
    return False, a_vals | b_vals


def keyed(atoms: Sequence[Condition]) -> tuple[Keyed, ...]:
    """Each atom with what decides it: (its :func:`atom_kind`, its field)."""
    return tuple(((atom_kind(a), a.get("field", "")), a) for a in atoms)


def needs_of(atoms: Sequence[Condition]) -> Needs:
    """The needs of a conjunction of atoms (atoms of no :func:`atom_kind` add none)."""
    needs = Needs()
    for atom in atoms:
        kind, path = atom_kind(atom), atom.get("field", "")
        if kind == "tag":
            needs.tags[path] = needs.tags.get(path, frozenset()) | {atom["tag"]}
        elif kind == "number":
            interval = _INTERVALS[atom["cmp"]](atom["value"])
            was = needs.numbers.get(path)
            needs.numbers[path] = interval if was is None else _meet(was, interval)
        elif kind == "text":
            if atom["op"] == "cmp":
                text = (atom["cmp"] == "==", frozenset([atom["value"]]))
            else:
                text = (atom["op"] == "in", frozenset(atom["values"]))
            old = needs.text.get(path)
            needs.text[path] = text if old is None else _both(old, text)
    return needs


# --------------------------------------------------------------------------- the index

Entry = tuple[int, T, Predicate | None]  # rank, what it stands for, what is left to check
TextMask = tuple[str, str, Mapping[str, int], int, int]  # obj, name, by value, other text, absent
NumberMask = tuple[str, str, list[float], tuple[int, ...], int]  # obj, name, cuts, cells, absent
TagMask = tuple[str, str, tuple[tuple[str, int], ...], int]  # obj, name, (tag, keep)..., absent


@dataclass(frozen=True, slots=True)
class Item(Generic[T]):
    """One entry while the index is built: its atoms (None: check ``whole``) and needs."""

    rank: int
    value: T
    atoms: tuple[Keyed, ...] | None
    whole: Predicate | None
    needs: Needs


@dataclass(frozen=True, slots=True)
class Split(Generic[T]):
    """Entries naming a value of a field, by that value; the others in ``rest``.

    ``keys`` holds one ``(obj, name, buckets)`` per field: the first field's
    buckets hold the entries naming it, the second's those of the others that
    name the second field, and so on (a chain of splits, walked in one step).
    """

    keys: tuple[tuple[str, str, Mapping[Any, Node[T]]], ...]  # text keys
    rest: Node[T] | None
    first: int  # the best rank under the split


@dataclass(frozen=True, slots=True)
class Group(Generic[T]):
    """A long list of entries in rank order; bit ``i`` of a mask stands for ``entries[i]``.

    (A short list is a plain tuple of entries, checked one by one.)
    """

    head: tuple[Entry[T], ...]  # the first entries, checked one by one before any mask
    first: int  # the best rank here: the group is skipped once an owner of better rank is found
    entries: tuple[Entry[T], ...]  # every entry, checked on what the masks leave open
    ranks: tuple[int, ...]  # of the entries: only those ranked before an owner are masked
    text: tuple[TextMask, ...] = ()
    numbers: tuple[NumberMask, ...] = ()
    tags: tuple[TagMask, ...] = ()

    def owner(self, state: State, best: int) -> tuple[int, T] | None:
        """The first entry ranked before ``best`` that holds on ``state`` (None: none)."""
        for rank, value, check in self.head:
            if rank >= best:
                return None
            if check is None or check(state):
                return rank, value
        entries = self.entries
        mask = self.admitted(state, best)
        while mask:
            low = mask & -mask
            rank, value, check = entries[low.bit_length() - 1]
            if check is None or check(state):
                return rank, value
            mask ^= low
        return None

    def admitted(self, state: State, best: int) -> int:
        """The entries past the head, ranked before ``best``, whose indexed needs hold."""
        mask = (1 << bisect_left(self.ranks, best)) - (1 << len(self.head))
        if mask <= 0:
            return 0
        for obj, name, by_value, other, absent in self.text:
            value = state.get(obj, _EMPTY).get(name)
            mask &= by_value.get(value, other) if isinstance(value, str) else absent
        for obj, name, cuts, cells, absent in self.numbers:
            x = state.get(obj, _EMPTY).get(name)
            if isinstance(x, int | float) and not isinstance(x, bool) and x == x:
                i = bisect_left(cuts, x)
                mask &= cells[2 * i + 1 if i < len(cuts) and cuts[i] == x else 2 * i]
            else:  # missing, NaN or another kind: every comparison is false
                mask &= absent
        for obj, name, checks, absent in self.tags:
            tags = state.get(obj, _EMPTY).get(name)
            if isinstance(tags, _SET_TYPES):
                for tag, keep in checks:
                    if tag not in tags:
                        mask &= keep
            else:
                mask &= absent
        return mask


Node = Split[T] | Group[T] | tuple[Entry[T], ...]


def first_owner(node: Node[T], state: State) -> T | None:
    """What the entry of best rank that holds on ``state`` stands for (None: no entry holds)."""
    best, found = NO_RANK, None
    todo: list[Node[T]] = []
    while True:
        if isinstance(node, tuple):  # a short list: checked in rank order
            for rank, value, check in node:
                if rank >= best:
                    break
                if check is None or check(state):
                    best, found = rank, value
                    break
        elif isinstance(node, Split):
            if node.rest is not None:
                todo.append(node.rest)
            for obj, name, buckets in node.keys:
                try:  # text values pick a bucket; other kinds none (an unhashable one raises)
                    child = buckets.get(state.get(obj, _EMPTY).get(name))
                except TypeError:
                    continue
                if child is not None:
                    todo.append(child)
        elif node.first < best:  # a long list that may hold a better owner
            hit = node.owner(state, best)
            if hit is not None:
                best, found = hit
        if not todo:
            return found
        node = todo.pop()


def build(items: Sequence[Item[T]], compile_atoms: Compile) -> Node[T]:
    """The index of ``items`` (in rank order); ``compile_atoms`` makes what is left to check."""
    return _plan(items, compile_atoms)[0]


def _plan(items: Sequence[Item[T]], compile_atoms: Compile) -> tuple[Node[T], float]:
    """The cheaper of a leaf (a list, or a masked group) and a split, with its cost."""
    leaf_cost, masked = _leaf_cost(items)
    path = _split_field(items) if len(items) > 1 else None
    if path is not None:
        split, cost = _split(items, path, compile_atoms)
        if cost < leaf_cost:
            return split, cost
    return _group(items, compile_atoms) if masked else _list(items, compile_atoms), leaf_cost


def _split(items: Sequence[Item[T]], path: str, compile_atoms: Compile) -> tuple[Node[T], float]:
    buckets: dict[str, list[Item[T]]] = {}
    rest: list[Item[T]] = []
    for item in items:
        one_of, values = item.needs.text.get(path, (False, frozenset()))
        if not one_of:
            rest.append(item)
            continue
        decided = Item(
            item.rank,
            item.value,
            _undecided(item.atoms, {("text", path)}),
            item.whole,
            item.needs.without(path),
        )
        for v in values:
            buckets.setdefault(v, []).append(decided)
    planned = {v: _plan(b, compile_atoms) for v, b in sorted(buckets.items())}
    other, rest_cost = _plan(rest, compile_atoms) if rest else (None, 0.0)
    if not planned:  # every entry named a value and none could be (`in ()`): none can hold
        return other or (), rest_cost
    cost = COST_SPLIT + COST_KEY + rest_cost + sum(c for _, c in planned.values()) / len(planned)
    nodes = {v: node for v, (node, _) in planned.items()}
    first = min(_first(n) for n in [*nodes.values(), *([other] if other is not None else [])])
    obj, name = split_field(path)
    if isinstance(other, Split):  # a chain of splits: one node
        return Split(((obj, name, nodes), *other.keys), other.rest, first), cost - COST_SPLIT
    return Split(((obj, name, nodes),), other, first), cost


def _undecided(atoms: tuple[Keyed, ...] | None, decided: set[AtomKey]) -> tuple[Keyed, ...] | None:
    if atoms is None:
        return None
    return tuple(a for a in atoms if a[0] not in decided)


def _split_field(items: Sequence[Item[T]]) -> str | None:
    """The text field whose split leaves an event the fewest entries (None: none helps)."""
    named: dict[str, int] = {}
    copies: dict[str, int] = {}
    values: dict[str, set[str]] = {}
    for item in items:
        for path, (one_of, vals) in item.needs.text.items():
            if one_of:
                named[path] = named.get(path, 0) + 1
                copies[path] = copies.get(path, 0) + len(vals)
                values.setdefault(path, set()).update(vals)
    n = len(items)

    def share(path: str) -> float:  # the rest, plus an average bucket
        return n - named[path] + copies[path] / max(1, len(values[path]))

    fit = [f for f in sorted(named) if copies[f] <= MAX_COPIES * n]
    best = min(fit, key=share, default=None)
    return best if best is not None and share(best) < n else None


def _check_cost(item: Item[T], decided: set[AtomKey] | None = None) -> float:
    """Stepping to an entry and checking what is left of it."""
    if item.atoms is None:
        left = WHOLE_ATOMS
    else:
        left = sum(1 for key, _ in item.atoms if decided is None or key not in decided)
    if not left:
        return COST_ENTRY
    return COST_ENTRY + COST_ATOM * min(left, 1.5) + (COST_CONJ if left > 1 else 0.0)


def _leaf_cost(items: Sequence[Item[T]]) -> tuple[float, bool]:
    """What checking ``items`` costs an event at most, as a list or as a masked group."""
    as_list = COST_LIST + sum(_check_cost(i) for i in items)
    if len(items) <= HEAD_SIZE + 1:
        return as_list, False
    keys: set[AtomKey] = {("text", p) for i in items for p in i.needs.text}
    keys |= {("tag", p) for i in items for p in i.needs.tags}
    keys |= {("number", p) for i in items for p in i.needs.numbers}
    rest = items[HEAD_SIZE:]
    as_group = (
        COST_GROUP
        + (COST_MASK + COST_BIT * len(items)) * len(keys)
        + sum(_check_cost(i) for i in items[:HEAD_SIZE])
        + sum(_check_cost(i, keys) for i in rest) / len(rest)  # an admitted entry, on average
    )
    return (as_group, True) if as_group < as_list else (as_list, False)


def _first(node: Node[T]) -> int:
    if isinstance(node, tuple):
        return node[0][0] if node else NO_RANK
    return node.first


def _list(items: Sequence[Item[T]], compile_atoms: Compile) -> tuple[Entry[T], ...]:
    return tuple(_entry(i, None, compile_atoms) for i in items)


def _group(items: Sequence[Item[T]], compile_atoms: Compile) -> Group[T]:
    text = tuple(_text_mask(items, p) for p in sorted({p for i in items for p in i.needs.text}))
    tags = tuple(_tag_mask(items, p) for p in sorted({p for i in items for p in i.needs.tags}))
    numbers = []
    decided: set[AtomKey] = {("text", p) for p in (m[0] + "." + m[1] for m in text)}
    decided |= {("tag", p) for p in (m[0] + "." + m[1] for m in tags)}
    for path in sorted({p for i in items for p in i.needs.numbers}):
        mask, exact = _number_mask(items, path)
        numbers.append(mask)
        if exact:
            decided.add(("number", path))
    head = _list(items[:HEAD_SIZE], compile_atoms)
    entries = tuple(_entry(i, decided, compile_atoms) for i in items)
    ranks = tuple(i.rank for i in items)
    return Group(head, items[0].rank, entries, ranks, text, tuple(numbers), tags)


def _entry(item: Item[T], decided: set[AtomKey] | None, compile_atoms: Compile) -> Entry[T]:
    if item.atoms is None:
        return item.rank, item.value, item.whole
    left = item.atoms if decided is None else _undecided(item.atoms, decided)
    return item.rank, item.value, compile_atoms([atom for _, atom in left or ()])


def _text_mask(items: Sequence[Item[T]], path: str) -> TextMask:
    free = negated = 0
    one_of: dict[str, int] = {}
    none_of: dict[str, int] = {}
    for i, item in enumerate(items):
        need = item.needs.text.get(path)
        if need is None:
            free |= 1 << i
            continue
        if not need[0]:
            negated |= 1 << i
        target = one_of if need[0] else none_of
        for v in need[1]:
            target[v] = target.get(v, 0) | 1 << i
    by_value = {
        v: free | one_of.get(v, 0) | (negated & ~none_of.get(v, 0))
        for v in sorted(one_of.keys() | none_of.keys())
    }
    return (*split_field(path), by_value, free | negated, free)


def _cells(cuts: list[float], interval: Interval) -> tuple[int, int]:
    """First and last cell meeting ``interval``: cell 2i+1 is ``cuts[i]``, 2i is just below it."""
    lo, lo_in, hi, hi_in = interval
    first, last = 0, 2 * len(cuts)
    if lo != -_INF:
        j = bisect_left(cuts, lo)
        exact = j < len(cuts) and cuts[j] == lo
        first = (2 * j + 1 if lo_in else 2 * j + 2) if exact else 2 * j
    if hi != _INF:
        k = bisect_left(cuts, hi)
        exact = k < len(cuts) and cuts[k] == hi
        last = (2 * k + 1 if hi_in else 2 * k) if exact else 2 * k
    return first, last


def _number_mask(items: Sequence[Item[T]], path: str) -> tuple[NumberMask, bool]:
    """The cells of ``path`` and whether they decide its atoms exactly (no coarsening)."""
    bounds = {b for i in items if path in i.needs.numbers for b in i.needs.numbers[path][::2]}
    cuts = sorted(b for b in bounds if b not in (_INF, -_INF))
    exact = len(cuts) <= MAX_CUTS
    if not exact:  # coarser cells: an entry admitted anywhere in a cell is admitted in it
        cuts = cuts[:: -(-len(cuts) // MAX_CUTS)]
    size = 2 * len(cuts) + 1
    opens, closes = [0] * size, [0] * size
    free = 0
    for i, item in enumerate(items):
        interval = item.needs.numbers.get(path)
        if interval is None:
            free |= 1 << i
            continue
        first, last = _cells(cuts, interval)
        if first <= last:  # else never true (e.g. `x > 5 and x < 3`): admitted nowhere
            opens[first] |= 1 << i
            closes[last] |= 1 << i
    cells = []
    current = free
    for c in range(size):
        current |= opens[c]
        cells.append(current)
        current &= ~closes[c]
    return (*split_field(path), cuts, tuple(cells), free), exact


def _tag_mask(items: Sequence[Item[T]], path: str) -> TagMask:
    free = 0
    need: dict[str, int] = {}
    for i, item in enumerate(items):
        tags = item.needs.tags.get(path)
        if not tags:
            free |= 1 << i
        for tag in tags or ():
            need[tag] = need.get(tag, 0) | 1 << i
    full = (1 << len(items)) - 1
    checks = tuple((tag, full & ~bits) for tag, bits in sorted(need.items()))
    return (*split_field(path), checks, free)


def groups(node: Node[T] | None) -> list[Group[T] | tuple[Entry[T], ...]]:
    """Every list of entries under ``node``, long (a :class:`Group`) or short (a tuple)."""
    if node is None:
        return []
    if not isinstance(node, Split):
        return [node]
    below = [g for _, _, buckets in node.keys for child in buckets.values() for g in groups(child)]
    return below + groups(node.rest)
