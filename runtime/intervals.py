"""Interval sets of epoch seconds: sorted tuples of disjoint, non-touching half-open spans.

The on-call calendar, business hours and gaps are all such sets. Every function takes
and returns the normal form (sorted, disjoint, no empty span, touching spans merged);
:func:`normalize` makes it from any spans.

>>> union(((0, 10),), ((5, 20), (30, 40)))
((0, 20), (30, 40))
>>> subtract(((0, 20),), ((5, 10),))
((0, 5), (10, 20))
>>> complement(((5, 10),), 0, 20)
((0, 5), (10, 20))
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

Span = tuple[int, int]
Intervals = tuple[Span, ...]


def normalize(spans: Iterable[Span]) -> Intervals:
    """Sort, drop empty spans and merge overlapping or touching ones.

    >>> normalize([(5, 8), (0, 3), (3, 4), (9, 9)])
    ((0, 4), (5, 8))
    """
    out: list[list[int]] = []
    for start, end in sorted(s for s in spans if s[1] > s[0]):
        if out and start <= out[-1][1]:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return tuple((a, b) for a, b in out)


def union(a: Intervals, b: Intervals) -> Intervals:
    """Spans in ``a`` or ``b``."""
    return normalize((*a, *b))


def intersect(a: Intervals, b: Intervals) -> Intervals:
    """Spans in both ``a`` and ``b`` (a linear merge).

    >>> intersect(((0, 10), (20, 30)), ((5, 25),))
    ((5, 10), (20, 25))
    """
    out: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def complement(a: Intervals, lo: int, hi: int) -> Intervals:
    """Spans of ``[lo, hi)`` outside ``a``."""
    out: list[Span] = []
    cursor = lo
    for start, end in a:
        if end <= cursor:
            continue
        if start >= hi:
            break
        if start > cursor:
            out.append((cursor, start))
        cursor = max(cursor, end)
    if cursor < hi:
        out.append((cursor, hi))
    return tuple(out)


def subtract(a: Intervals, b: Intervals) -> Intervals:
    """Spans in ``a`` and not in ``b``."""
    if not a:
        return ()
    return intersect(a, complement(b, a[0][0], a[-1][1]))


def clip(a: Intervals, lo: int, hi: int) -> Intervals:
    """The part of ``a`` inside ``[lo, hi)``."""
    return intersect(a, ((lo, hi),)) if lo < hi else ()


def measure(a: Intervals) -> int:
    """Total length in seconds."""
    return sum(end - start for start, end in a)


def contains(a: Intervals, at: int) -> bool:
    """Whether instant ``at`` lies in ``a`` (binary search).

    >>> contains(((0, 10),), 9), contains(((0, 10),), 10)
    (True, False)
    """
    i = bisect_right(a, (at, 2**62)) - 1
    return i >= 0 and a[i][0] <= at < a[i][1]
