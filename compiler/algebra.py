"""The condition algebra: exact set operations on ``when`` conditions, with witnesses.

A condition of the language (``nodes.Cond``) denotes a set of events. Every
field a set of conditions mentions has a *finite* number of value classes
("cells") that no condition can tell apart, so a condition is exactly a
Boolean function over finitely many variables:

- ``enum``: each declared value, plus *missing*;
- ``bool``: ``false``, ``true``, plus *missing*;
- ``text``: each literal the conditions mention, one cell for "any other
  text", plus *missing*;
- ``number`` / ``duration`` / ``time`` (as numbers: seconds, epoch seconds):
  the points the conditions mention and the open intervals between them,
  plus *missing*;
- ``set`` of tags: one two-celled variable per tag a ``has`` mentions
  (absent / present); a missing set is empty, i.e. every tag absent.

Missing is one more cell of each variable (SPEC §1): every comparison on a
missing field is false, ``!=`` and ``not in`` included, and ``not`` is plain
negation, so ``not x != v`` contains both ``x == v`` and "x missing".

A ``Region`` is a union of *cubes* (a DNF): a cube maps a variable index to a
bit mask of allowed cells; variables a cube does not mention are free.
Satisfiability, intersection, implication and difference are exact, and every
"non-empty" answer comes with a ``Witness``: a concrete assignment that can be
shown to people (``ticket.severity = critical, account.tier = free``) and
turned into an event in the pinned format.

Typical use (the analyzer, the semantic diff)::

    domains = Domains.build(pset.schema, [p.when for p in policies])
    a, b = domains.compile(p.when), domains.compile(q.when)
    w = overlap(a, b)                 # Witness | None
    if w: print(w.describe()); event = w.event("ticket.created")

Work is bounded: DNF size and search steps have budgets, and running out
raises ``Undecided`` (the analyzer reports W307) rather than guessing.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import reduce
from itertools import compress
from operator import or_
from typing import Any

from escalade.compiler import model as m
from escalade.compiler import nodes as n
from escalade.runtime.clock import format_duration, read_time

__all__ = [
    "MISSING",
    "Budget",
    "Cube",
    "CubeIndex",
    "Domains",
    "Region",
    "Undecided",
    "Variable",
    "Witness",
    "bit_list",
    "difference",
    "find_outside",
    "find_outside_indexed",
    "implies",
    "iter_bits",
    "meet",
    "overlap",
    "satisfiable",
]

MAX_CUBES = 4096
"""Largest DNF a single compiled condition may have before ``Undecided``."""

DEFAULT_STEPS = 200_000
"""Search steps one question (overlap, difference, ...) may take before ``Undecided``."""

Cube = dict[int, int]
"""Variable index -> bit mask of allowed cells (never 0, never the full mask).

Treat cubes as immutable: operations build new dicts.
"""


class _Missing:
    """The value of a field the event does not carry."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()
"""Witness value of a field that must be absent from the event."""


class Undecided(Exception):
    """The algebra cannot decide a question: outside the language it models, or over budget.

    ``span`` points at the construct responsible when there is one.
    """

    def __init__(self, reason: str, span: n.Span | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.span = span


@dataclass
class Budget:
    """A step counter shared by one question; ``tick`` raises ``Undecided`` when it runs out.

    >>> b = Budget(2); b.tick(); b.tick()
    >>> b.remaining
    0
    """

    remaining: int = DEFAULT_STEPS
    limit: int = field(init=False)

    def __post_init__(self) -> None:
        self.limit = self.remaining

    def tick(self, steps: int = 1) -> None:
        self.remaining -= steps
        if self.remaining < 0:
            raise Undecided(f"the analysis budget of {self.limit} search steps ran out")


def iter_bits(x: int) -> Iterator[int]:
    """Indices of the set bits of ``x``, lowest first: ``list(iter_bits(0b101)) == [0, 2]``.

    Each step costs the same whatever the size of ``x``: a bit set over thousands
    of cubes is scanned as text, not cut down one bit at a time (which copies it)."""
    if x.bit_count() <= 8 or x.bit_length() <= 128:
        while x:
            low = x & -x
            yield low.bit_length() - 1
            x ^= low
        return
    yield from bit_list(x)


_DIGIT_VALUES = bytes.maketrans(b"01", b"\x00\x01")
_POSITIONS: list[int] = []


def bit_list(x: int) -> list[int]:
    """``list(iter_bits(x))`` for bit sets of any size, at a cost that does not grow with
    the size of ``x`` per bit: dense sets in one pass at C speed, sparse ones by search."""
    size = x.bit_length()
    if size <= 128 or x.bit_count() <= 8:
        return list(iter_bits(x))
    if x.bit_count() * 32 >= size:
        flags = bin(x)[:1:-1].encode("ascii").translate(_DIGIT_VALUES)  # flags[i] = bit i
        if len(_POSITIONS) < size:  # reused, so no int is made for a bit that is not set
            _POSITIONS.extend(range(len(_POSITIONS), 2 * size))
        return list(compress(_POSITIONS, flags))
    digits = bin(x)  # "0b1...": bit i is digits[last - i]
    last = len(digits) - 1
    end = len(digits)
    out: list[int] = []
    while (at := digits.rfind("1", 2, end)) >= 0:
        out.append(last - at)
        end = at
    return out


# --------------------------------------------------------------------------- variables


@dataclass(frozen=True, slots=True)
class Variable:
    """One dimension of the event space: a field (or one tag of a set field) and its cells.

    Cell 0 is always "missing" (for a tag: "absent"). ``values`` holds, per
    cell, a representative value (``MISSING`` for cell 0) that lies in that
    cell and nowhere else.
    """

    path: str
    kind: m.FieldKind
    tag: str | None
    values: tuple[Any, ...]
    labels: tuple[str, ...]
    points: tuple[float, ...] = ()  # numeric kinds: the sorted thresholds
    literals: Mapping[Any, int] = field(default_factory=dict)  # value -> cell
    empty: int = 0  # cells no event can fall in (no whole second between two thresholds)

    @property
    def size(self) -> int:
        return len(self.values)

    @property
    def full(self) -> int:
        """Every possible cell."""
        return ((1 << len(self.values)) - 1) & ~self.empty

    @property
    def present(self) -> int:
        """Every cell except "missing"."""
        return self.full & ~1


def _number_repr(x: float) -> int | float:
    return int(x) if float(x).is_integer() else x


def _between(lo: float, hi: float, whole: bool) -> float | None:
    """A value strictly between two thresholds (an integer when one fits), or None."""
    cand = math.floor(lo) + 1
    if cand < hi:
        return cand
    return None if whole else (lo + hi) / 2


INTEGRAL_KINDS = ("time", "duration")
"""Kinds the runtime stores as whole seconds: an interval without a whole second is empty."""


def _numeric_variable(info: m.FieldInfo, points: Iterable[float]) -> Variable:
    pts = tuple(sorted(set(points)))
    whole = info.kind in INTEGRAL_KINDS
    numbers: list[float | None] = []
    if not pts:
        numbers.append(0)
    else:
        numbers.append(math.ceil(pts[0]) - 1)
        for i, p in enumerate(pts):
            numbers.append(None if whole and not float(p).is_integer() else p)
            numbers.append(
                _between(p, pts[i + 1], whole) if i + 1 < len(pts) else math.floor(p) + 1
            )
    empty = 0
    values: list[Any] = [MISSING]
    labels = ["missing"]
    for cell, x in enumerate(numbers, start=1):
        if x is None:
            empty |= 1 << cell
            values.append(MISSING)
            labels.append("(empty)")
        else:
            values.append(_number_repr(x))
            labels.append(_format_number(info.kind, x))
    return Variable(info.path, info.kind, None, tuple(values), tuple(labels), pts, empty=empty)


def _format_number(kind: str, v: float) -> str:
    if kind == "time":
        return _iso(v)
    if kind == "duration" and float(v).is_integer() and v >= 0:
        return format_duration(int(v))
    return str(_number_repr(v))


def _iso(epoch: float) -> str:
    t = datetime.fromtimestamp(epoch, UTC)
    text = t.isoformat(timespec="microseconds" if epoch % 1 else "seconds")
    return text.replace("+00:00", "Z")


def _other_text(literals: Iterable[str]) -> str:
    taken = set(literals)
    candidate, i = "other", 1
    while candidate in taken:
        i += 1
        candidate = f"other-{i}"
    return candidate


# --------------------------------------------------------------------------- domains


NUMERIC_KINDS = ("number", "duration", "time")
"""Kinds that compare with ``<``, ``<=``, ``>`` and ``>=``: cut into intervals."""


@dataclass(slots=True)
class _FieldLiterals:
    """What the atoms of a group of conditions say about each field they mention.

    A field is listed (``infos``) as soon as an atom names it; its cells come from
    the literals its atoms compare it with, of the right type.
    """

    infos: dict[str, m.FieldInfo] = field(default_factory=dict)
    numbers: dict[str, set[float]] = field(default_factory=dict)
    texts: dict[str, set[str]] = field(default_factory=dict)
    tags: dict[str, set[str]] = field(default_factory=dict)
    plain: set[str] = field(default_factory=set)  # enum and bool fields compared with

    def add(self, schema: m.Schema, atom: n.Atom) -> None:
        """Note the field ``atom`` tests and the literal it tests it against."""
        info = schema.field(atom.field.obj, atom.field.field)
        if info is None:
            return
        self.infos[info.path] = info
        if isinstance(atom, n.Has):
            if info.kind == "set":
                self.tags.setdefault(info.path, set()).add(atom.tag.value)
            return
        given = (atom.value,) if isinstance(atom, n.Compare) else atom.values
        if info.kind in NUMERIC_KINDS:
            bucket = self.numbers.setdefault(info.path, set())
            for v in given:
                num = _numeric_literal(info, v)
                if num is not None:
                    bucket.add(num)
        elif info.kind == "text":
            self.texts.setdefault(info.path, set()).update(
                v.raw for v in given if v.kind == "string"
            )
        elif info.kind in ("enum", "bool"):
            self.plain.add(info.path)

    def variables(self, path: str) -> list[Variable]:
        """The variables that cut the field at ``path`` into cells (one per tag of a set)."""
        info = self.infos[path]
        if info.kind in ("enum", "bool") and path in self.plain:
            return [_plain_variable(info)]
        if info.kind == "text" and path in self.texts:
            return [_text_variable(path, self.texts[path])]
        if info.kind in NUMERIC_KINDS and path in self.numbers:
            return [_numeric_variable(info, self.numbers[path])]
        if info.kind == "set" and path in self.tags:
            return [
                Variable(path, "set", tag, (False, True), ("absent", "present"))
                for tag in sorted(self.tags[path])
            ]
        return []


class Domains:
    """The variables (and their cells) of every field a group of conditions mentions.

    Build it once over *every* condition you will compare, so all of them are
    cut into the same cells; ``compile`` then turns each into a ``Region``.

    >>> d = Domains.build(schema, [cond_a, cond_b])     # doctest: +SKIP
    >>> d.compile(cond_a).is_empty()                    # doctest: +SKIP
    False
    """

    def __init__(self, schema: m.Schema, variables: Sequence[Variable]) -> None:
        self.schema = schema
        self.variables: tuple[Variable, ...] = tuple(variables)
        self._index: dict[tuple[str, str | None], int] = {
            (v.path, v.tag): i for i, v in enumerate(self.variables)
        }
        self._full = [v.full for v in self.variables]

    # -- building ---------------------------------------------------------------
    @classmethod
    def build(cls, schema: m.Schema, conds: Iterable[n.Cond | None]) -> Domains:
        """Collect the literals of ``conds`` and cut every mentioned field into cells.

        Atoms on unknown fields, or with values of the wrong type, are left
        out here; compiling a condition that holds one raises ``Undecided``.
        """
        literals = _FieldLiterals()
        for cond in conds:
            if cond is not None:
                for atom in _atoms(cond):
                    literals.add(schema, atom)
        variables = [v for path in sorted(literals.infos) for v in literals.variables(path)]
        return cls(schema, variables)

    # -- compiling ----------------------------------------------------------------
    def compile(self, cond: n.Cond | None) -> Region:
        """The exact set of events ``cond`` accepts (``None``: every event).

        Raises ``Undecided`` for an atom outside the modelled language (unknown
        field, wrong value type) or a DNF larger than ``MAX_CUBES``.
        """
        if cond is None:
            return Region(self, ({},))
        return Region(self, tuple(self._dnf(cond, False)))

    def _dnf(self, cond: n.Cond, negate: bool) -> list[Cube]:
        if isinstance(cond, n.Not):
            return self._dnf(cond.item, not negate)
        if isinstance(cond, n.And | n.Or):
            conjunction = isinstance(cond, n.And) != negate
            parts = [self._dnf(item, negate) for item in cond.items]
            if not conjunction:
                return _simplify([c for part in parts for c in part], cond.span, self)
            result: list[Cube] = [{}]
            for part in sorted(parts, key=len):
                product: list[Cube] = []
                for a in result:
                    for b in part:
                        c = meet(a, b)
                        if c is not None:
                            product.append(c)
                if len(product) > MAX_CUBES * 4:
                    raise Undecided(
                        f"the condition expands to more than {MAX_CUBES} cases", cond.span
                    )
                result = _simplify(product, cond.span, self)
                if not result:
                    break
            return result
        var, mask = self.atom_mask(cond)
        if negate:
            mask = self._full[var] & ~mask
        if mask == 0:
            return []
        if mask == self._full[var]:
            return [{}]
        return [{var: mask}]

    def atom_mask(self, atom: n.Atom) -> tuple[int, int]:
        """(variable index, mask of the possible cells where ``atom`` is true)."""
        var, mask = self._atom_mask(atom)
        return var, mask & self._full[var]

    def _atom_mask(self, atom: n.Atom) -> tuple[int, int]:
        info = self.schema.field(atom.field.obj, atom.field.field)
        if info is None:
            raise Undecided(f"unknown field '{atom.field.path}'", atom.span)
        if isinstance(atom, n.Has):
            if info.kind != "set":
                raise Undecided(f"`has` on the {info.kind} field '{info.path}'", atom.span)
            return self._var(info.path, atom.tag.value, atom.span), 0b10
        var = self._var(info.path, None, atom.span)
        v = self.variables[var]
        if isinstance(atom, n.InList):
            mask = 0
            for value in atom.values:
                mask |= self._point_mask(v, value, atom.span)
            return var, (v.present & ~mask) if atom.negated else mask
        op = atom.op
        if op in ("==", "!="):
            mask = self._point_mask(v, atom.value, atom.span)
            return var, mask if op == "==" else v.present & ~mask
        if v.kind not in NUMERIC_KINDS:
            raise Undecided(f"'{info.path}' is {info.kind}: `{op}` does not apply", atom.span)
        num = _numeric_literal(info, atom.value)
        if num is None:
            raise Undecided(f"'{atom.value.raw}' is not a {info.kind}", atom.value.span)
        if num not in v.points:
            raise Undecided(
                f"{atom.value.raw} was not among the literals these domains were built from",
                atom.value.span,
            )
        k = v.points.index(num)  # the point's cell is 2k+2; cells below it 1..2k+1
        point = 2 * k + 2
        below = ((1 << point) - 1) & ~1
        if op == "<":
            return var, below
        if op == "<=":
            return var, below | (1 << point)
        if op == ">":
            return var, v.present & ~below & ~(1 << point)
        return var, v.present & ~below

    def _var(self, path: str, tag: str | None, span: n.Span) -> int:
        idx = self._index.get((path, tag))
        if idx is None:
            raise Undecided(
                f"'{path}' was not among the conditions these domains were built from", span
            )
        return idx

    def _point_mask(self, v: Variable, value: n.Value, span: n.Span) -> int:
        if v.kind == "enum":
            if value.kind == "name" and value.raw in v.values:
                return 1 << v.values.index(value.raw)
        elif v.kind == "bool":
            if value.kind == "name" and value.raw in ("true", "false"):
                return 1 << (2 if value.raw == "true" else 1)
        elif v.kind == "text":
            if value.kind == "string" and value.raw in v.literals:
                return 1 << v.literals[value.raw]
        else:
            obj, _, name = v.path.partition(".")
            info = self.schema.field(obj, name)
            num = _numeric_literal(info, value) if info is not None else None
            if num is not None and num in v.points:
                return 1 << (2 * v.points.index(num) + 2)
        raise Undecided(f"'{value.raw}' is not a value of the {v.kind} '{v.path}'", span)

    # -- regions built directly -------------------------------------------------
    def everything(self) -> Region:
        """The region of every event."""
        return Region(self, ({},))

    def nothing(self) -> Region:
        """The empty region."""
        return Region(self, ())

    def full(self, var: int) -> int:
        """The mask of every cell of variable ``var``."""
        return self._full[var]

    # -- witnesses ------------------------------------------------------------------
    def witness(self, cube: Cube) -> Witness:
        """A concrete assignment inside ``cube`` (present values preferred over missing)."""
        values: dict[str, Any] = {}
        tags: dict[str, list[str]] = {}
        kinds: dict[str, str] = {}
        for var in sorted(cube, key=lambda i: (self.variables[i].path, self.variables[i].tag)):
            v = self.variables[var]
            mask = cube[var]
            kinds[v.path] = v.kind
            if v.tag is not None:
                present = tags.setdefault(v.path, [])
                if mask & 0b01 == 0:
                    present.append(v.tag)
                continue
            cell = _pick(mask)
            values[v.path] = v.values[cell]
        for path, present in tags.items():
            values[path] = sorted(present)
        return Witness(values, kinds)


def _pick(mask: int) -> int:
    """The lowest present cell of ``mask``; "missing" only when nothing else is allowed."""
    rest = mask & ~1
    if rest:
        return (rest & -rest).bit_length() - 1
    return 0


def _plain_variable(info: m.FieldInfo) -> Variable:
    if info.kind == "bool":
        return Variable(
            info.path, "bool", None, (MISSING, False, True), ("missing", "false", "true")
        )
    return Variable(info.path, "enum", None, (MISSING, *info.values), ("missing", *info.values))


def _text_variable(path: str, literals: Iterable[str]) -> Variable:
    """Cells of a text field: missing, any other text, then each literal compared with."""
    lits = sorted(literals)
    values: list[Any] = [MISSING, _other_text(lits), *lits]
    labels = ["missing", "other", *(_quote(s) for s in lits)]
    cells = {s: i + 2 for i, s in enumerate(lits)}
    return Variable(path, "text", None, tuple(values), tuple(labels), literals=cells)


def _quote(s: str) -> str:
    import json

    return json.dumps(s)


def _numeric_literal(info: m.FieldInfo | None, value: n.Value) -> float | None:
    if info is None:
        return None
    if info.kind == "time":
        return read_time(value.raw) if value.kind == "string" else None
    if info.kind == "number" and value.kind == "number":
        return value.number
    if info.kind == "duration" and value.kind == "duration":
        return value.number
    return None


def _atoms(cond: n.Cond) -> Iterator[n.Atom]:
    stack: list[n.Cond] = [cond]
    while stack:
        c = stack.pop()
        if isinstance(c, n.And | n.Or):
            stack.extend(c.items)
        elif isinstance(c, n.Not):
            stack.append(c.item)
        else:
            yield c


# --------------------------------------------------------------------------- cubes


def meet(a: Cube, b: Cube) -> Cube | None:
    """The cube of points in both, or None when they are disjoint: ``meet({0: 3}, {0: 6}) == {0: 2}``."""
    if len(a) < len(b):
        a, b = b, a
    out = dict(a)
    for var, mask in b.items():
        have = out.get(var)
        if have is None:
            out[var] = mask
        else:
            both = have & mask
            if not both:
                return None
            out[var] = both
    return out


def _touches(a: Cube, b: Cube) -> bool:
    """True when the cubes share at least one point."""
    if len(a) > len(b):
        a, b = b, a
    for var, mask in a.items():
        other = b.get(var)
        if other is not None and not (other & mask):
            return False
    return True


def _covers(big: Cube, small: Cube) -> bool:
    """True when every point of ``small`` lies in ``big``."""
    for var, mask in big.items():
        have = small.get(var)
        if have is None or have & ~mask:
            return False
    return True


def _key(c: Cube) -> tuple[tuple[int, int], ...]:
    return tuple(sorted(c.items()))


def _simplify(
    cubes: list[Cube], span: n.Span | None = None, domains: Domains | None = None
) -> list[Cube]:
    """Drop duplicate and absorbed cubes; merge cubes that differ in one variable."""
    seen: dict[tuple[tuple[int, int], ...], Cube] = {}
    for c in cubes:
        seen.setdefault(_key(c), c)
    out = list(seen.values())
    if len(out) > 1 and len(out) <= 256:
        out = _merge(out, domains)
        out.sort(key=len)
        kept: list[Cube] = []
        for c in out:
            if not any(_covers(k, c) for k in kept):
                kept.append(c)
        out = kept
    if len(out) > MAX_CUBES:
        raise Undecided(f"the condition expands to more than {MAX_CUBES} cases", span)
    return out


def _merge(cubes: list[Cube], domains: Domains | None) -> list[Cube]:
    """Merge cubes equal on all variables but one (``x in (a)`` or ``x in (b)``)."""
    changed = True
    while changed and len(cubes) > 1:
        changed = False
        groups: dict[tuple[Any, ...], int] = {}
        out: list[Cube | None] = list(cubes)
        dirty: set[int] = set()
        for i, c in enumerate(cubes):
            items = _key(c)
            for j, (var, _mask) in enumerate(items):
                key = (var, items[:j] + items[j + 1 :])
                other = groups.get(key)
                if other is not None and other not in dirty:
                    merged = dict(c)
                    merged[var] = c[var] | cubes[other][var]
                    if domains is not None and merged[var] == domains.full(var):
                        del merged[var]
                    out[other] = merged
                    out[i] = None
                    dirty.add(other)
                    changed = True
                    break
                groups.setdefault(key, i)
        cubes = [c for c in out if c is not None]
    return cubes


# --------------------------------------------------------------------------- regions


@dataclass(frozen=True, slots=True)
class Region:
    """A set of events: the union of ``cubes`` over the variables of ``domains``."""

    domains: Domains
    cubes: tuple[Cube, ...]

    def is_empty(self) -> bool:
        """True when no event lies in the region (cubes are never empty themselves)."""
        return not self.cubes

    def witness(self) -> Witness | None:
        """A concrete event assignment inside the region, or None when it is empty."""
        return self.domains.witness(self.cubes[0]) if self.cubes else None

    def intersect(self, other: Region, budget: Budget | None = None) -> Region:
        """Events in both regions (pairwise cube intersection)."""
        budget = budget or Budget()
        out: list[Cube] = []
        for a in self.cubes:
            for b in other.cubes:
                budget.tick()
                c = meet(a, b)
                if c is not None:
                    out.append(c)
        return Region(self.domains, tuple(_simplify(out, None, self.domains)))

    def union(self, other: Region) -> Region:
        """Events in either region."""
        return Region(
            self.domains, tuple(_simplify([*self.cubes, *other.cubes], None, self.domains))
        )

    def minus(self, other: Region, budget: Budget | None = None) -> Region:
        """Events in this region and not in ``other``, as disjoint cubes."""
        budget = budget or Budget()
        out: list[Cube] = []
        for c in self.cubes:
            out.extend(_subtract_all(self.domains, c, other.cubes, budget))
        return Region(self.domains, tuple(_simplify(out, None, self.domains)))

    def complement(self, budget: Budget | None = None) -> Region:
        """Every event not in the region."""
        return self.domains.everything().minus(self, budget)


def _split(domains: Domains, c: Cube, g: Cube) -> list[Cube]:
    """``c`` minus ``g`` as disjoint cubes (``c`` and ``g`` must touch)."""
    pieces: list[Cube] = []
    prefix = dict(c)
    for var, gmask in g.items():
        cmask = prefix.get(var, domains.full(var))
        rest = cmask & ~gmask
        if rest:
            piece = dict(prefix)
            piece[var] = rest
            pieces.append(piece)
        prefix[var] = cmask & gmask
    return pieces


def _subtract_all(domains: Domains, c: Cube, subs: Sequence[Cube], budget: Budget) -> list[Cube]:
    out: list[Cube] = []
    stack: list[tuple[Cube, int]] = [(c, 0)]
    while stack:
        cube, i = stack.pop()
        budget.tick()
        while i < len(subs) and not _touches(cube, subs[i]):
            i += 1
        if i == len(subs):
            out.append(cube)
            continue
        for piece in _split(domains, cube, subs[i]):
            stack.append((piece, i + 1))
    return out


def find_outside(
    domains: Domains, cube: Cube, subs: Sequence[Cube], budget: Budget | None = None
) -> Cube | None:
    """A sub-cube of ``cube`` that no cube of ``subs`` touches, or None when they cover it.

    First a cheap probe: per variable, the cells of ``cube`` that no sub allows
    (``account.id`` = a value no policy names) escape every sub that constrains
    that variable at once. Then an exact depth-first split: it stops at the
    first uncovered piece, so a "yes" is usually cheap; proving coverage
    explores the disjoint pieces of ``cube`` minus ``subs`` (bounded by ``budget``).

    >>> find_outside(d, {0: 0b110}, [{0: 0b010}])   # doctest: +SKIP
    {0: 4}
    """
    budget = budget or Budget()
    if not subs:
        budget.tick()
        return cube
    probe = _escape(domains, cube, subs)
    if probe is not None:
        piece, rest = probe
        found = _search(domains, piece, rest, budget)
        if found is not None:
            return found
    return _search(domains, cube, subs, budget)


def find_outside_indexed(
    domains: Domains,
    cube: Cube,
    index: CubeIndex,
    bits: int,
    budget: Budget | None = None,
    ids: Sequence[int] | None = None,
) -> Cube | None:
    """``find_outside(domains, cube, index.select(bits), budget)``: the same answer, the
    same steps, with the probe read off the index (a few bit operations per variable
    instead of a pass over every sub), for the analyzer's long lists of subs.
    ``ids`` is ``bit_list(bits)`` when the caller has it already."""
    budget = budget or Budget()
    if not bits:
        budget.tick()
        return cube
    if ids is None:
        ids = bit_list(bits)
    probe = index.escape(domains, cube, bits, ids)
    if probe is not None:
        piece, rest = probe
        found = _search(domains, piece, index.select(rest), budget)
        if found is not None:
            return found
    return _search(domains, cube, list(map(index.cubes.__getitem__, ids)), budget)


def _escape(domains: Domains, cube: Cube, subs: Sequence[Cube]) -> tuple[Cube, list[Cube]] | None:
    """Restrict ``cube`` to cells no sub allows, where there are such; (piece, subs it still meets)."""
    used: dict[int, int] = {}
    for g in subs:
        for var, mask in g.items():
            used[var] = used.get(var, 0) | mask
    piece = dict(cube)
    escaped: set[int] = set()
    for var, mask in used.items():
        free = cube.get(var, domains.full(var)) & ~mask
        if free:
            piece[var] = free
            escaped.add(var)
    if not escaped:
        return None
    return piece, [g for g in subs if escaped.isdisjoint(g)]


INDEXED_SEARCH_FROM = 48
"""From this many subs on, the search finds each piece's next sub through a ``CubeIndex``."""


def _search(domains: Domains, cube: Cube, subs: Sequence[Cube], budget: Budget) -> Cube | None:
    # Broad cubes first: one that covers the piece ends the search at once, and
    # splitting by narrow cubes before a broad one only multiplies the pieces.
    subs = sorted(subs, key=len)
    if len(subs) >= INDEXED_SEARCH_FROM:
        return _search_indexed(domains, cube, subs, budget)
    stack: list[tuple[Cube, int]] = [(cube, 0)]
    while stack:
        piece, i = stack.pop()
        budget.tick()
        while i < len(subs) and not _touches(piece, subs[i]):
            i += 1
        if i == len(subs):
            return piece
        g = subs[i]
        if _covers(g, piece):
            continue
        for part in reversed(_split(domains, piece, g)):
            stack.append((part, i + 1))
    return None


def _search_indexed(domains: Domains, cube: Cube, subs: list[Cube], budget: Budget) -> Cube | None:
    """``_search`` over many subs: the same pieces in the same order, the same steps.

    Each piece carries the bit set of the subs that touch it, so its next sub is
    its lowest set bit instead of a scan of every sub in between; a part of a
    split differs from its piece only on the splitting sub's variables, so its
    set is the piece's narrowed on those. The sets are exact, so a part's set
    holds no sub before the one it was split by, nor that one (the part lies
    outside it): the lowest bit is the plain search's next sub past ``i``."""
    index = CubeIndex(subs)
    stack: list[tuple[Cube, int, int]] = [(cube, 0, index.touching(cube))]
    while stack:
        piece, i, near = stack.pop()
        budget.remaining -= 1
        if budget.remaining < 0:
            budget.tick(0)  # raises Undecided, as tick() does
        if not near:
            return piece
        i = (near & -near).bit_length() - 1
        g = subs[i]
        if _covers(g, piece):
            continue
        # ``_split(domains, piece, g)``, each part with its touching set: the prefix's
        # set is narrowed once per variable, each part's once more for its own
        parts: list[tuple[Cube, int, int]] = []
        prefix, inherited, last = dict(piece), near, len(g) - 1
        for k, (var, gmask) in enumerate(g.items()):
            before = prefix.get(var)
            cmask = domains.full(var) if before is None else before
            rest = cmask & ~gmask
            if rest:
                part = dict(prefix)
                part[var] = rest
                parts.append((part, i + 1, index.narrow(inherited, var, before, rest)))
            both = cmask & gmask
            prefix[var] = both
            if both != before and k < last:
                inherited = index.narrow(inherited, var, before, both)
        stack.extend(reversed(parts))
    return None


# --------------------------------------------------------------------------- questions


def satisfiable(region: Region) -> Witness | None:
    """A witness that some event lies in ``region``, or None.

    >>> satisfiable(d.compile(parse("ticket.severity == low and ticket.severity == high")))  # doctest: +SKIP
    None
    """
    return region.witness()


def overlap(a: Region, b: Region, budget: Budget | None = None) -> Witness | None:
    """A witness event accepted by both regions, or None when they are disjoint.

    >>> overlap(d.compile(sev_critical), d.compile(tier_free)).describe()  # doctest: +SKIP
    'account.tier = free, ticket.severity = critical'
    """
    budget = budget or Budget()
    for x in a.cubes:
        for y in b.cubes:
            budget.tick()
            c = meet(x, y)
            if c is not None:
                return a.domains.witness(c)
    return None


def difference(a: Region, b: Region, budget: Budget | None = None) -> Witness | None:
    """A witness event in ``a`` but not in ``b``, or None when ``a`` implies ``b``.

    >>> difference(d.compile(sev_critical), d.compile(sev_high_or_critical))  # doctest: +SKIP
    None
    """
    budget = budget or Budget()
    for c in a.cubes:
        subs = [g for g in b.cubes if _touches(c, g)]
        piece = find_outside(a.domains, c, subs, budget)
        if piece is not None:
            return a.domains.witness(piece)
    return None


def implies(a: Region, b: Region, budget: Budget | None = None) -> bool:
    """True when every event of ``a`` is also in ``b``."""
    return difference(a, b, budget) is None


# --------------------------------------------------------------------------- index


class CubeIndex:
    """Bitmap index over a fixed list of cubes: which of them touch a query cube?

    ``touching(q)`` returns a bit set (an ``int``; bit ``i`` = cube ``i``) in
    time proportional to the variables ``q`` constrains, not to the number of
    cubes, so the analyzer never enumerates all pairs. Per variable it keeps
    the cubes that leave it free, and the cubes that constrain it grouped by
    their cell (single-cell masks) or by mask (the rest); answers are cached
    per (variable, mask).

    >>> idx = CubeIndex([{0: 0b010}, {0: 0b100}, {}])
    >>> list(iter_bits(idx.touching({0: 0b110})))
    [0, 1, 2]
    >>> list(iter_bits(idx.touching({0: 0b010})))
    [0, 2]
    """

    def __init__(self, cubes: Sequence[Cube]) -> None:
        self.cubes: tuple[Cube, ...] = tuple(cubes)
        self.all = (1 << len(self.cubes)) - 1
        self._constrained: dict[int, int] = {}
        self._single: dict[int, dict[int, int]] = {}
        self._multi: dict[int, dict[int, int]] = {}
        for i, cube in enumerate(self.cubes):
            bit = 1 << i
            for var, mask in cube.items():
                self._constrained[var] = self._constrained.get(var, 0) | bit
                if mask & (mask - 1) == 0:
                    cells = self._single.setdefault(var, {})
                    cell = mask.bit_length() - 1
                    cells[cell] = cells.get(cell, 0) | bit
                else:
                    groups = self._multi.setdefault(var, {})
                    groups[mask] = groups.get(mask, 0) | bit
        self._single_cells: dict[int, int] = {}  # var -> mask of the cells one-cell cubes take
        self._single_all: dict[int, int] = {}  # var -> every one-cell cube on it
        for var, cells in self._single.items():
            for cell, members in cells.items():
                self._single_cells[var] = self._single_cells.get(var, 0) | 1 << cell
                self._single_all[var] = self._single_all.get(var, 0) | members
        self._cache: dict[tuple[int, int], int] = {}
        self._masks: dict[int, list[int]] = {}  # var -> each cube's mask on it (0: free)
        self._with: dict[tuple[int, int], int] = {}  # (var, cell) -> cubes allowing it

    def select(self, bits: int) -> list[Cube]:
        """The cubes of the bit set ``bits``, in index order."""
        return list(map(self.cubes.__getitem__, bit_list(bits)))

    def escape(
        self, domains: Domains, cube: Cube, bits: int, ids: Sequence[int]
    ) -> tuple[Cube, int] | None:
        """The probe of ``find_outside`` over the subs ``bits``: ``cube`` restricted, on every
        variable some sub constrains, to the cells no such sub allows (where there are
        any), and the subs that constrain none of those variables; None when none escape.
        ``ids`` lists the subs (``bit_list(bits)``).

        Per variable, a few cells are looked up (cubes allowing each) or, for many
        cells, the subs' masks are combined without a Python step per sub."""
        piece = dict(cube)
        rest = bits
        escaped = False
        for var, constrained in self._constrained.items():
            members = constrained & bits
            if not members:
                continue
            allowed = cube.get(var)
            if allowed is None:
                allowed = domains.full(var)
            if allowed.bit_count() <= 8 and len(self._multi.get(var, ())) <= 32:
                free = 0
                for cell in iter_bits(allowed):
                    if not self._allowing(var, cell) & members:
                        free |= 1 << cell
            else:
                free = allowed & ~reduce(or_, map(self._masks_of(var).__getitem__, ids), 0)
            if free:
                piece[var] = free
                rest &= ~constrained
                escaped = True
        return (piece, rest) if escaped else None

    def _allowing(self, var: int, cell: int) -> int:
        """Bit set of the cubes that constrain ``var`` and allow ``cell``."""
        key = (var, cell)
        hit = self._with.get(key)
        if hit is None:
            hit = self._single.get(var, {}).get(cell, 0)
            for gmask, members in self._multi.get(var, {}).items():
                if gmask >> cell & 1:
                    hit |= members
            self._with[key] = hit
        return hit

    def _masks_of(self, var: int) -> list[int]:
        masks = self._masks.get(var)
        if masks is None:
            masks = self._masks[var] = [c.get(var, 0) for c in self.cubes]
        return masks

    def touching(self, q: Cube) -> int:
        """Bit set of the cubes that share a point with ``q``."""
        result = self.all
        for var, mask in q.items():
            result &= self.touching_var(var, mask)
            if not result:
                break
        return result

    def narrow(self, bits: int, var: int, before: int | None, mask: int) -> int:
        """``bits & self.touching_var(var, mask)`` for ``bits`` that touch ``before`` on
        ``var`` (None: free) and a ``mask`` inside it: only the cubes whose one cell was
        taken away (or whose cells all were) are dropped, when those are fewer."""
        hit = self._cache.get((var, mask))
        if hit is not None:
            return bits & hit
        cells = self._single_cells.get(var, 0)
        removed = cells & ~mask if before is None else cells & before & ~mask
        if removed.bit_count() >= min((cells & mask).bit_count(), (cells & ~mask).bit_count()):
            return bits & self.touching_var(var, mask)
        single = self._single[var] if cells else {}
        drop = 0
        for cell in iter_bits(removed):
            drop |= single[cell]
        for gmask, members in self._multi.get(var, {}).items():
            if not gmask & mask:
                drop |= members
        return bits & ~drop

    def touching_var(self, var: int, mask: int) -> int:
        """Bit set of the cubes that allow some cell of ``mask`` on ``var`` (or leave it free)."""
        key = (var, mask)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        bits = self.all & ~self._constrained.get(var, 0)
        single = self._single.get(var, {})
        if single:
            # a one-cell cube touches when its cell is in the mask: look up the cells in
            # the mask, or (for a mask of nearly every cell, as splitting leaves them)
            # take every one-cell cube but those whose cell is outside it
            cells = self._single_cells[var]
            inside, outside = cells & mask, cells & ~mask
            if inside.bit_count() <= outside.bit_count():
                for cell in iter_bits(inside):
                    bits |= single[cell]
            else:
                excluded = 0
                for cell in iter_bits(outside):
                    excluded |= single[cell]
                bits |= self._single_all[var] & ~excluded
        for gmask, members in self._multi.get(var, {}).items():
            if gmask & mask:
                bits |= members
        self._cache[key] = bits
        return bits


# --------------------------------------------------------------------------- witnesses


@dataclass(frozen=True, slots=True)
class Witness:
    """A concrete assignment: field path -> value (``MISSING`` = absent; sets as tag lists).

    Only fields the region constrains appear; every other field may take any
    value, so it is left out of the event (missing).
    """

    values: Mapping[str, Any]
    kinds: Mapping[str, str]

    def describe(self) -> str:
        """For people: ``ticket.severity = critical, account.tier = free``.

        An empty assignment (every event qualifies) reads ``any event``.
        """
        parts: list[str] = []
        for path in sorted(self.values):
            value = self.values[path]
            kind = self.kinds.get(path, "text")
            if value is MISSING:
                parts.append(f"{path} missing")
            elif kind == "set":
                parts.append(f"{path} = {{{', '.join(_quote(t) for t in value)}}}")
            elif kind == "text":
                parts.append(f"{path} = {_quote(value)}")
            elif kind == "bool":
                parts.append(f"{path} = {'true' if value else 'false'}")
            elif kind in NUMERIC_KINDS:
                parts.append(f"{path} = {_format_number(kind, value)}")
            else:
                parts.append(f"{path} = {value}")
        return ", ".join(parts) if parts else "any event"

    def state(self) -> dict[str, dict[str, Any]]:
        """The objects of the event as the runtime sees them (times as epoch seconds)."""
        out: dict[str, dict[str, Any]] = {}
        for path, value in self.values.items():
            if value is MISSING:
                continue
            obj, _, name = path.partition(".")
            out.setdefault(obj, {})[name] = value
        return out

    def event(
        self, kind: str, *, id: str = "witness-1", at: str = "2026-01-01T00:00:00Z"
    ) -> dict[str, Any]:
        """The witness as an event in the pinned format, e.g. for ``escalade explain``.

        The object the event kind names gets an ``id`` (``W1``) unless the
        witness fixes it, so the runtime knows which ticket it concerns.

        >>> Witness({"ticket.severity": "critical"}, {"ticket.severity": "enum"}).event(
        ...     "ticket.created")["data"]
        {'ticket': {'severity': 'critical', 'id': 'W1'}}
        """
        data: dict[str, dict[str, Any]] = {}
        for path in sorted(self.values):
            value = self.values[path]
            if value is MISSING:
                continue
            obj, _, name = path.partition(".")
            if self.kinds.get(path) == "time":
                value = _iso(value)
            data.setdefault(obj, {})[name] = value
        subject = kind.partition(".")[0]
        if f"{subject}.id" not in self.values:
            data.setdefault(subject, {})["id"] = "W1"
        return {"id": id, "type": kind, "at": at, "data": data}


def bisect_cell(points: Sequence[float], x: float) -> int:
    """The cell of number ``x`` in a numeric variable cut at ``points`` (for samplers/tests)."""
    k = bisect_left(points, x)
    if k < len(points) and points[k] == x:
        return 2 * k + 2
    return 2 * k + 1
