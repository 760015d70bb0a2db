"""Quick fixes from "did you mean" help lines: the edit that applies the suggestion.

A diagnostic carries its suggestion as help text (``did you mean 'critical'?``) and
names the wrong word in quotes in its message (``'critcal' is not a value of ...``).
The fix replaces that word, found inside the diagnostic's span, by the suggestion::

    fix = suggestion_fix(diag, text)   # Fix(span of 'critcal', "critical")
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from escalade.compiler import nodes as n
from escalade.compiler.diagnostics import Diagnostic

_SUGGESTION = re.compile(r"did you mean '([^']+)'\?")
_QUOTED = re.compile(r"'([^']+)'")


@dataclass(frozen=True, slots=True)
class Fix:
    """Replace the text at ``span`` by ``new_text``."""

    span: n.Span
    new_text: str
    title: str


def span_text(text: str, span: n.Span) -> str:
    """The characters of ``text`` that ``span`` covers (1-based, end exclusive)."""
    start = offset_of(text, span.line, span.col)
    end = offset_of(text, span.end_line, span.end_col)
    return text[start:end]


def offset_of(text: str, line: int, col: int) -> int:
    """Character offset of a 1-based (line, col), clamped to the text."""
    lines = text.split("\n")
    if line > len(lines):
        return len(text)
    before = sum(len(x) + 1 for x in lines[: max(line - 1, 0)])
    return before + min(max(col - 1, 0), len(lines[line - 1]))


def position_of(text: str, offset: int) -> tuple[int, int]:
    """1-based (line, col) of a character offset."""
    head = text[:offset]
    line = head.count("\n") + 1
    return line, offset - (head.rfind("\n") + 1) + 1


def _word(word: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])")


def suggestion_fix(diag: Diagnostic, text: str) -> Fix | None:
    """The edit that applies the diagnostic's "did you mean" suggestion, if it has one."""
    found = _SUGGESTION.search(diag.help or "")
    if found is None:
        return None
    suggestion = found.group(1)
    inside = span_text(text, diag.span)
    best: tuple[float, str, int] | None = None
    quoted = _QUOTED.findall(diag.message)
    for wrong in [*quoted, *(w for q in quoted if " " in q for w in q.split())]:
        hit = _word(wrong).search(inside)
        if wrong == suggestion or hit is None:
            continue
        score = difflib.SequenceMatcher(None, wrong, suggestion).ratio()
        if best is None or score > best[0]:
            best = (score, wrong, hit.start())
    if best is None:
        return None
    _, wrong, at = best
    start = offset_of(text, diag.span.line, diag.span.col) + at
    line, col = position_of(text, start)
    end_line, end_col = position_of(text, start + len(wrong))
    span = n.Span(diag.span.file, line, col, end_line, end_col)
    return Fix(span, suggestion, f"Replace '{wrong}' with '{suggestion}'")
