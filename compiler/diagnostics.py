"""Diagnostics: what passes report, the collector they report into, suppressions.

A pass never raises on bad input; it calls ``Collector.report``. Rendering to
text, JSON, SARIF and GitHub annotations lives in ``escalade.compiler.formats``.
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from escalade.compiler.codes import CODES, Severity
from escalade.compiler.nodes import Span


@dataclass(frozen=True, slots=True)
class Note:
    """A secondary location with a message (``note: first declared here``)."""

    span: Span
    message: str


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding: a registered code, a primary span and a message.

    ``witness`` is a concrete event (the pinned event format) that shows the
    problem, for the whole-set checks that have one.
    """

    code: str
    message: str
    span: Span
    help: str | None = None
    notes: tuple[Note, ...] = ()
    witness: Mapping[str, Any] | None = None

    @property
    def name(self) -> str:
        return CODES[self.code].name

    @property
    def severity(self) -> Severity:
        return CODES[self.code].severity

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.span.file, self.span.line, self.span.col, self.code, self.message)


@dataclass(frozen=True, slots=True)
class Dropped:
    """Text a syntax error made the parser skip: the declaration it held (``kind`` and
    ``name`` when its header could be read) and every name the text mentions.

    Findings that only follow from the missing text are not reported: an unknown
    name the dropped declaration would have declared (E101), something only the
    dropped text used (W601), and coverage gaps (W305), which need the whole set."""

    kind: str | None
    name: str | None
    words: frozenset[str]
    # every declaration header among the dropped lines (an unclosed one swallows the next)
    declared: frozenset[str] = frozenset()


_QUOTED_NAME = re.compile(r"'([^']*)'")


def follows_from_dropped(dropped: Iterable[Dropped], code: str, message: str) -> bool:
    """True when a finding is only a consequence of text a syntax error dropped."""
    dropped = tuple(dropped)
    if not dropped:
        return False
    if code == "W305":
        return True
    quoted = set(_QUOTED_NAME.findall(message))
    if code in ("E101", "E103", "E104"):
        return any(d.name in quoted or quoted & d.declared for d in dropped) or any(
            d.kind is None and quoted & d.words for d in dropped
        )
    if code == "W601":
        return any(quoted & d.words for d in dropped)
    return False


_SUPPRESS = re.compile(r"#\s*escalade:\s*ignore\[([A-Z0-9, ]+)\]\s*(\S.*)?$")


def suppressions(text: str) -> dict[int, frozenset[str]]:
    """Line number -> the codes an ``# escalade: ignore[CODE, ...] reason`` comment on that
    line names (a comment without a reason suppresses nothing). Read once per file."""
    found: dict[int, frozenset[str]] = {}
    if "escalade" not in text:
        return found
    for lineno, line in enumerate(text.split("\n"), start=1):
        if "escalade" in line:
            m = _SUPPRESS.search(line)
            if m and m.group(2):
                found[lineno] = frozenset(c.strip() for c in m.group(1).split(","))
    return found


@dataclass
class Collector:
    """Accumulates diagnostics from every pass; applies inline suppressions at the end."""

    sources: dict[str, str] = field(default_factory=dict)
    # what syntax errors made the parser skip, in every file so far
    dropped: tuple[Dropped, ...] = ()
    _items: list[Diagnostic] = field(default_factory=list)
    # per file: the text the suppressions were read from, and what they suppress
    _suppressions: dict[str, tuple[str, dict[int, frozenset[str]]]] = field(
        default_factory=dict, repr=False
    )
    # per file: the sorted start positions of the findings so far (and how many items that was)
    _starts: tuple[int, dict[str, list[tuple[int, int]]]] = field(
        default_factory=lambda: (0, {}), repr=False
    )

    def report(
        self,
        code: str,
        span: Span,
        message: str,
        *,
        help: str | None = None,
        notes: Iterable[Note] = (),
        witness: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a finding; ``code`` must be registered in ``codes.py``."""
        if code not in CODES:  # pragma: no cover - programming error
            raise KeyError(f"unregistered diagnostic code {code}")
        if self.dropped and follows_from_dropped(self.dropped, code, message):
            return
        self._items.append(Diagnostic(code, message, span, help, tuple(notes), witness))

    def note_dropped(self, dropped: Iterable[Dropped]) -> None:
        """Remember text a syntax error dropped (see ``Dropped``)."""
        self.dropped = (*self.dropped, *dropped)

    def extend(self, items: Iterable[Diagnostic]) -> None:
        self._items.extend(items)

    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics())

    def errors_at(self, spans: Iterable[Span]) -> bool:
        """True when a diagnostic already points inside one of ``spans``.

        Answered from the findings' start positions, sorted per file once for all
        the questions asked between two reports."""
        count, starts = self._starts
        if count != len(self._items):
            starts = {}
            for d in self._items:
                starts.setdefault(d.span.file, []).append((d.span.line, d.span.col))
            for positions in starts.values():
                positions.sort()
            self._starts = (len(self._items), starts)
        for s in spans:
            inside = starts.get(s.file)
            if inside:
                k = bisect_left(inside, (s.line, s.col))
                if k < len(inside) and inside[k] <= (s.end_line, s.end_col):
                    return True
        return False

    def diagnostics(self) -> list[Diagnostic]:
        """Every finding not suppressed inline, sorted by location, without duplicates."""
        seen: set[tuple[str, Span, str]] = set()
        out: list[Diagnostic] = []
        for d in sorted(self._items, key=Diagnostic.sort_key):
            key = (d.code, d.span, d.message)
            if key in seen or self._suppressed(d):
                continue
            seen.add(key)
            out.append(d)
        return out

    def _suppressed(self, d: Diagnostic) -> bool:
        """True when a comment on the finding's line or the line above suppresses its code."""
        text = self.sources.get(d.span.file)
        if text is None:
            return False
        known = self._suppressions.get(d.span.file)
        if known is None or known[0] is not text:
            known = self._suppressions[d.span.file] = (text, suppressions(text))
        by_line = known[1]
        if not by_line:
            return False
        return d.code in by_line.get(d.span.line, ()) or d.code in by_line.get(d.span.line - 1, ())


def count(diags: Iterable[Diagnostic]) -> tuple[int, int]:
    """Return (errors, warnings)."""
    errors = warnings = 0
    for d in diags:
        if d.severity == "error":
            errors += 1
        else:
            warnings += 1
    return errors, warnings
