"""Diagnostics: what passes report, the collector they report into, suppressions.

A pass never raises on bad input; it calls ``Collector.report``. Rendering to
text, JSON, SARIF and GitHub annotations lives in ``escalade.compiler.formats``.
"""

from __future__ import annotations

import re
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


_SUPPRESS = re.compile(r"#\s*escalade:\s*ignore\[([A-Z0-9, ]+)\]\s*(\S.*)?$")


@dataclass
class Collector:
    """Accumulates diagnostics from every pass; applies inline suppressions at the end."""

    sources: dict[str, str] = field(default_factory=dict)
    _items: list[Diagnostic] = field(default_factory=list)

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
        self._items.append(Diagnostic(code, message, span, help, tuple(notes), witness))

    def extend(self, items: Iterable[Diagnostic]) -> None:
        self._items.extend(items)

    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.diagnostics())

    def errors_at(self, spans: Iterable[Span]) -> bool:
        """True when a diagnostic already points inside one of ``spans``."""
        wanted = list(spans)
        for d in self._items:
            for s in wanted:
                if d.span.file == s.file and _inside(d.span, s):
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
        text = self.sources.get(d.span.file)
        if text is None:
            return False
        lines = text.split("\n")
        for lineno in (d.span.line, d.span.line - 1):
            if 1 <= lineno <= len(lines):
                m = _SUPPRESS.search(lines[lineno - 1])
                if m and m.group(2):
                    codes = {c.strip() for c in m.group(1).split(",")}
                    if d.code in codes:
                        return True
        return False


def _inside(inner: Span, outer: Span) -> bool:
    return (outer.line, outer.col) <= (inner.line, inner.col) <= (outer.end_line, outer.end_col)


def count(diags: Iterable[Diagnostic]) -> tuple[int, int]:
    """Return (errors, warnings)."""
    errors = warnings = 0
    for d in diags:
        if d.severity == "error":
            errors += 1
        else:
            warnings += 1
    return errors, warnings
