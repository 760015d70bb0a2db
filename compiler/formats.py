"""Rendering diagnostics for people (text) and for tools (JSON).

The JSON format is documented in the README and stable::

    {"version": 1, "summary": {"errors": 1, "warnings": 0, "files": 7},
     "diagnostics": [{"code": "E202", "name": "missing-backup", "severity": "error",
                      "message": "...", "file": "policies/x.esc", "line": 3, "column": 8,
                      "end_line": 3, "end_column": 17, "help": "...",
                      "notes": [{"file": ..., "line": ..., "column": ..., "message": ...}],
                      "witness": {...event...} or null}]}
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from escalade.compiler.diagnostics import Diagnostic, count

_WINDOW = 120


def detail_lines(d: Diagnostic) -> list[str]:
    """``note: ...``, ``witness: ...`` and ``help: ...`` lines, as text and annotations show them."""
    lines = [f"note: {note.span}: {note.message}" for note in d.notes]
    if d.witness is not None:
        lines.append(f"witness: {json.dumps(d.witness, sort_keys=True)}")
    if d.help:
        lines.append(f"help: {d.help}")
    return lines


class _SourceLines:
    """Line ``n`` of a file, each file split once (a file can have tens of thousands of
    findings: splitting it per finding made text output quadratic)."""

    def __init__(self, sources: Mapping[str, str]) -> None:
        self.sources = sources
        self.split: dict[str, list[str]] = {}

    def line(self, file: str, line: int) -> str | None:
        lines = self.split.get(file)
        if lines is None:
            text = self.sources.get(file)
            if text is None:
                return None
            lines = self.split[file] = text.split("\n")
        return lines[line - 1] if 1 <= line <= len(lines) else None


def _excerpt(line: str, col: int, width: int) -> tuple[str, int, int]:
    """Cut a long line to a window around the caret; returns (text, caret col, caret width)."""
    line = line.replace("\t", " ")
    if len(line) <= _WINDOW:
        return line, col, width
    start = max(0, col - 1 - _WINDOW // 2)
    piece = line[start : start + _WINDOW]
    prefix = "…" if start > 0 else ""
    suffix = "…" if start + _WINDOW < len(line) else ""
    return prefix + piece + suffix, col - start + len(prefix), min(width, _WINDOW)


def render_text(
    diags: Sequence[Diagnostic], sources: Mapping[str, str], *, color: bool = False
) -> str:
    """Compiler-style text: location, code, message, the source line and a caret."""
    out: list[str] = []
    source_lines = _SourceLines(sources)
    for d in diags:
        sev = d.severity
        head = f"{d.span}: {sev}[{d.code}] {d.name}: {d.message}"
        if color:
            tint = "\x1b[1;31m" if sev == "error" else "\x1b[1;33m"
            head = f"\x1b[1m{d.span}:\x1b[0m {tint}{sev}[{d.code}]\x1b[0m {d.name}: {d.message}"
        out.append(head)
        src = source_lines.line(d.span.file, d.span.line)
        if src is not None:
            gutter = len(str(d.span.line))
            width = (
                d.span.end_col - d.span.col
                if d.span.end_line == d.span.line
                else len(src) - d.span.col + 1
            )
            shown, caret_col, caret_width = _excerpt(src, d.span.col, max(1, width))
            out.append(f"{' ' * gutter} |")
            out.append(f"{d.span.line} | {shown}")
            out.append(f"{' ' * gutter} | {' ' * (caret_col - 1)}{'^' * max(1, caret_width)}")
        out.extend(f"  = {line}" for line in detail_lines(d))
        out.append("")
    errors, warnings = count(diags)
    out.append(f"{errors} error(s), {warnings} warning(s)")
    return "\n".join(out) + "\n"


def diagnostic_json(d: Diagnostic) -> dict[str, object]:
    """One diagnostic as a JSON object (the stable, documented shape)."""
    return {
        "code": d.code,
        "name": d.name,
        "severity": d.severity,
        "message": d.message,
        "file": d.span.file,
        "line": d.span.line,
        "column": d.span.col,
        "end_line": d.span.end_line,
        "end_column": d.span.end_col,
        "help": d.help,
        "notes": [
            {
                "file": note.span.file,
                "line": note.span.line,
                "column": note.span.col,
                "message": note.message,
            }
            for note in d.notes
        ],
        "witness": dict(d.witness) if d.witness is not None else None,
    }


def render_json(diags: Sequence[Diagnostic], files: int) -> str:
    """The documented JSON report."""
    errors, warnings = count(diags)
    doc = {
        "version": 1,
        "summary": {"errors": errors, "warnings": warnings, "files": files},
        "diagnostics": [diagnostic_json(d) for d in diags],
    }
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
