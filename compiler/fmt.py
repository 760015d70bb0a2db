"""``escalade fmt``: one canonical layout for policy files, comments kept.

The layout: two-space indentation inside blocks, one statement per line,
conditions and strings as ``escalade.compiler.printer`` writes them,
durations in the author's units without zero parts (``1h00m`` → ``1h``), one
blank line around every multi-line declaration, the author's blank lines
elsewhere (at most one in a row), a short ``person`` or ``channel`` on one
line, and a condition that would make its line longer than 100 characters
wrapped before each ``and`` / ``or``, one indentation deeper (a parenthesised
group that is still too long wraps inside, deeper again)::

    policy p {
      when ticket.severity == critical
        and (account.tier == enterprise
          or account.tier == premium)
    }

and, in short::

    format_source("p.esc", 'policy p{when a.b==c  # why\\n}')
    == "policy p {\\n  when a.b == c  # why\\n}\\n"

Comments stay with the code they follow (a comment after code on a line) or
precede (a comment on its own line). A comment inside a statement that now
fits on one line moves to its own line above the statement. Suppression
comments (``# escalade: ignore[CODE] reason``) stay on the line of, or the line
above, every construct they covered (a statement with one is never wrapped);
when a layout cannot keep that, the file is left as it is and the reason
reported. Policy tests (``*_test.esc``) have a layout of their own
(:mod:`escalade.compiler.testfmt`).

The formatter keeps the syntax tree: ``parse(format(x))`` equals ``parse(x)``
but for source positions, zero parts of durations and string escapes.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from escalade.compiler import nodes as n
from escalade.compiler.diagnostics import Collector, Diagnostic
from escalade.compiler.parse import comment_start, decode_source, parse_source
from escalade.compiler.printer import PRECEDENCE, format_arg, format_cond, format_string
from escalade.runtime.clock import format_duration, read_duration

__all__ = ["FormatResult", "files_to_format", "format_file", "format_source"]

INDENT = "  "
# A person or channel longer than this gets one attribute per line; a statement whose
# condition makes it longer is wrapped.
ONE_LINE_WIDTH = 100
MAX_WRAP_DEPTH = 8  # groups nested deeper than this stay on one line
_DURATION_PART = re.compile(r"([0-9]+)([wsmhd])")
_SUPPRESSION = re.compile(r"#\s*escalade:\s*ignore\[")


@dataclass(frozen=True, slots=True)
class Comment:
    """A ``#`` comment: where it starts, its text, and whether code precedes it on its line."""

    line: int
    col: int
    text: str
    trailing: bool

    @property
    def suppression(self) -> bool:
        return _SUPPRESSION.match(self.text) is not None


def scan_comments(text: str) -> list[Comment]:
    """Every comment of a file that parses (strings are single-line, so a line scan suffices)."""
    found: list[Comment] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        i = comment_start(line)
        if i is not None:
            body = line[i:].rstrip(" \t\f\r")
            found.append(Comment(lineno, i + 1, body, bool(line[:i].strip(" \t\f\r"))))
    return found


# --------------------------------------------------------------------------- layout lines

LineKind = Literal["code", "open", "close"]


@dataclass(slots=True)
class _Line:
    """One output line of code, with the source lines it stands for.

    ``anchor`` is where the construct it shows ends in the source (for an
    opening line of a block written over several lines: its ``{``); a comment
    after code on a source line goes to the line whose construct ends last there.
    """

    depth: int
    text: str
    first: int
    last: int
    anchor: tuple[int, int]
    kind: LineKind
    decl: int
    trailing: Comment | None = None
    leading: list[Comment] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class FormatResult:
    """The formatted text, or why the file was left alone (``diagnostics`` or ``refusal``)."""

    path: str
    original: str
    formatted: str | None
    diagnostics: tuple[Diagnostic, ...] = ()
    sources: dict[str, str] = field(default_factory=dict)
    refusal: str | None = None

    @property
    def changed(self) -> bool:
        return self.formatted is not None and self.formatted != self.original


class _Printer:
    """Turns one parsed file into ``_Line`` objects, in source order."""

    def __init__(self, tree: n.SourceFile, comments: list[Comment]) -> None:
        self.tree = tree
        self.src = tree.text.split("\n")
        self.comments = comments  # in source order
        self.positions = [(c.line, c.col) for c in comments]
        self.lines: list[_Line] = []
        self.decl = 0
        self.blocks: set[int] = set()  # declarations with a block of their own

    # helpers ---------------------------------------------------------------
    def emit(self, depth: int, text: str, span: n.Span, kind: LineKind = "code") -> None:
        anchor = (span.end_line, span.end_col)
        self.lines.append(_Line(depth, text, span.line, span.end_line, anchor, kind, self.decl))

    def brace(self, span: n.Span) -> tuple[int, int]:
        """Line and column of the block's ``{``: the first one after the start of ``span``
        outside comments (headers hold no strings)."""
        line, col = span.line, span.col
        while line <= len(self.src):
            text = self.src[line - 1]
            for i in range(col - 1, len(text)):
                if text[i] == "#":
                    break
                if text[i] == "{":
                    return line, i + 1
            line, col = line + 1, 1
        return span.line, span.col  # pragma: no cover - the parser saw a `{`

    def open_block(self, depth: int, header: str, span: n.Span, empty: bool) -> None:
        """``header {`` (or ``header {}`` for an empty block without comments)."""
        bline, bcol = self.brace(span)
        if empty and not self.comments_inside(span):
            self.emit(depth, f"{header} {{}}", span)
            return
        anchor = (span.end_line, span.end_col) if bline == span.end_line else (bline, bcol + 1)
        self.lines.append(_Line(depth, f"{header} {{", span.line, bline, anchor, "open", self.decl))

    def close_block(self, depth: int, span: n.Span, empty: bool) -> None:
        if empty and not self.comments_inside(span):
            return
        end = n.Span(span.file, span.end_line, span.end_col - 1, span.end_line, span.end_col)
        self.emit(depth, "}", end, "close")

    def comments_inside(self, span: n.Span) -> bool:
        """A comment between the block's ``{`` and its ``}`` (comments before the ``{``
        go above the declaration, one after the ``}`` stays after it)."""
        at = bisect.bisect_right(self.positions, self.brace(span))
        if at == len(self.comments):
            return False
        c = self.comments[at]  # the first after the `{`: any inside comes no later
        after_end = c.trailing and c.line == span.end_line
        return c.line <= span.end_line and not after_end

    def suppressed_at_end(self, span: n.Span) -> bool:
        return any(c.line == span.end_line and c.trailing and c.suppression for c in self.comments)

    # declarations -------------------------------------------------------------
    def file(self) -> list[_Line]:
        for index, decl in enumerate(self.tree.decls):
            self.decl = index
            before = len(self.lines)
            self.declaration(decl)
            if len(self.lines) - before > 1 or not isinstance(
                decl, n.EventDecl | n.CoverageDecl | n.PersonDecl | n.ChannelDecl
            ):
                self.blocks.add(index)
        return self.lines

    def declaration(self, d: n.Decl) -> None:
        if isinstance(d, n.EventDecl):
            self.emit(0, f"event {d.name.value}", d.span)
        elif isinstance(d, n.CoverageDecl):
            events = ", ".join(e.value for e in d.events)
            self.emit(0, self.wrapped(0, d.span, (f"coverage {events} when ", d.cond, "")), d.span)
        elif isinstance(d, n.SchemaDecl):
            self.open_block(0, f"schema {d.name.value}", d.span, not d.fields)
            for f in d.fields:
                self.emit(1, f"{f.name.value}: {field_type(f.type)}", f.span)
            self.close_block(0, d.span, not d.fields)
        elif isinstance(d, n.PersonDecl | n.ChannelDecl):
            self.contact(d)
        elif isinstance(d, n.TeamDecl):
            self.team(d)
        elif isinstance(d, n.CalendarDecl):
            self.calendar(d)
        elif isinstance(d, n.MaintenanceDecl):
            self.maintenance(d)
        elif isinstance(d, n.TemplateDecl):
            params = ", ".join(f"{p.name.value}: {p.kind.value}" for p in d.params)
            self.open_block(0, f"template {d.name.value}({params})", d.span, not d.body)
            self.statements(1, d.body)
            self.close_block(0, d.span, not d.body)
        else:
            self.open_block(0, f"policy {d.name.value}", d.span, not d.body)
            self.statements(1, d.body)
            self.close_block(0, d.span, not d.body)

    def contact(self, d: n.PersonDecl | n.ChannelDecl) -> None:
        word = "person" if isinstance(d, n.PersonDecl) else "channel"
        attrs = [f"{a.key.value} {format_string(a.value.value)}" for a in d.attrs]
        one_line = f"{word} {d.name.value} {{ {' '.join(attrs)} }}" if attrs else None
        fits = one_line is not None and len(one_line) <= ONE_LINE_WIDTH
        keep = fits or self.suppressed_at_end(d.span)
        if one_line is not None and keep and not self.comments_inside(d.span):
            self.emit(0, one_line, d.span)
            return
        self.open_block(0, f"{word} {d.name.value}", d.span, not d.attrs)
        for a, text in zip(d.attrs, attrs, strict=True):
            self.emit(1, text, a.span)
        self.close_block(0, d.span, not d.attrs)

    def team(self, d: n.TeamDecl) -> None:
        items: list[tuple[n.Span, str]] = []
        if d.members_span is not None:
            names = ", ".join(m.value for m in d.members)
            items.append((d.members_span, f"members {names}" if names else "members"))
        if d.rotation is not None:
            r = d.rotation
            items.append((r.span, f"rotation {r.period.value} from {format_string(r.start.value)}"))
        # repeated items are an error the checker reports; keep them as written
        items.extend((span, self.source_words(span)) for span in d.extra)
        items.extend((o.span, override_words(o)) for o in d.overrides)
        blocks: list[tuple[n.Span, str | n.LayerDecl]] = [*items, *((x.span, x) for x in d.layers)]
        blocks.sort(key=lambda item: (item[0].line, item[0].col))
        self.open_block(0, f"team {d.name.value}", d.span, not blocks)
        for span, item in blocks:
            if isinstance(item, n.LayerDecl):
                self.layer(item)
            else:
                self.emit(1, item, span)
        self.close_block(0, d.span, not blocks)

    def layer(self, d: n.LayerDecl) -> None:
        items = layer_items(d)
        items.extend((span, self.source_words(span)) for span in d.extra)
        self.items_block(1, f"layer {d.name.value}", d.span, items)

    def items_block(
        self, depth: int, header: str, span: n.Span, items: list[tuple[n.Span, str]]
    ) -> None:
        """A block of one-line items, in source order."""
        items.sort(key=lambda item: (item[0].line, item[0].col))
        self.open_block(depth, header, span, not items)
        for item_span, text in items:
            self.emit(depth + 1, text, item_span)
        self.close_block(depth, span, not items)

    def calendar(self, d: n.CalendarDecl) -> None:
        items: list[tuple[n.Span, str]] = []
        if d.windows:
            zone = f" {format_string(d.zones[0].value)}" if len(d.zones) == 1 else ""
            items.append((d.windows[0].span, windows_words(d.windows) + zone))
        if len(d.zones) != 1 or not d.windows:
            items.extend((z.span, f"zone {format_string(z.value)}") for z in d.zones)
        if d.holidays:
            dates = ", ".join(format_string(h.value) for h in d.holidays)
            items.append((d.holidays[0].span, f"except {dates}"))
        items.extend((f.span, f"except file {format_string(f.value)}") for f in d.holiday_files)
        self.items_block(0, f"calendar {d.name.value}", d.span, items)

    def maintenance(self, d: n.MaintenanceDecl) -> None:
        items: list[tuple[n.Span, str]] = []
        if d.policy is not None:
            items.append((d.policy.span, f"policy {d.policy.value}"))
        if d.team is not None:
            items.append((d.team.span, f"team {d.team.value}"))
        if d.start is not None and d.end is not None:
            window = f"from {format_string(d.start.value)} to {format_string(d.end.value)}"
            items.append((d.start.span, window))
        if d.reason is not None:
            items.append((d.reason.span, f"reason {format_string(d.reason.value)}"))
        items.extend((span, self.source_words(span)) for span in d.extra)
        self.items_block(0, f"maintenance {d.name.value}", d.span, items)

    def source_words(self, span: n.Span) -> str:
        """The code of ``span`` with its white space and comments collapsed."""
        rows = self.src[span.line - 1 : span.end_line]
        rows[-1] = rows[-1][: span.end_col - 1]
        rows[0] = rows[0][span.col - 1 :]
        words: list[str] = []
        for row in rows:
            for m in re.finditer(r'"(?:[^"\\]|\\.)*"|#.*|,|[^\s,#"]+', row):
                word = m.group(0)
                if word.startswith("#"):
                    break
                if word == "," and words:
                    words[-1] += ","
                else:
                    words.append(word)
        return " ".join(words)

    # statements ---------------------------------------------------------------
    def statements(self, depth: int, body: tuple[n.Stmt, ...]) -> None:
        for s in body:
            if isinstance(s, n.OnStmt):
                self.open_block(depth, f"on {s.moment.value}", s.span, not s.body)
                self.statements(depth + 1, s.body)
                self.close_block(depth, s.span, not s.body)
            else:
                parts = condition_parts(s)
                text = statement(s) if parts is None else self.wrapped(depth, s.span, parts)
                self.emit(depth, text, s.span)

    def wrapped(self, depth: int, span: n.Span, parts: tuple[str, n.Cond, str]) -> str:
        """A construct with a condition, wrapped when its line would be longer than
        :data:`ONE_LINE_WIDTH` (never when a suppression comment covers it)."""
        prefix, c, suffix = parts
        text = f"{prefix}{cond(c)}{suffix}"
        width = ONE_LINE_WIDTH - len(INDENT) * depth
        if len(text) <= width or self.suppressed_near(span):
            return text
        pieces = wrap_cond(c, len(prefix), len(INDENT), width, MAX_WRAP_DEPTH, len(suffix))
        return prefix + "\n".join(pieces) + suffix

    def suppressed_near(self, span: n.Span) -> bool:
        """A suppression comment on the construct's lines, or alone on the line above them.
        (One trailing the line above belongs to that line's code, which the layout may
        move away: counting it made a second fmt wrap what the first left whole.)"""
        return any(
            c.suppression
            and (
                span.line <= c.line <= span.end_line or (c.line == span.line - 1 and not c.trailing)
            )
            for c in self.comments
        )


def cond(c: n.Cond) -> str:
    return format_cond(c, keep_groups=True)


def condition_parts(s: n.Stmt) -> tuple[str, n.Cond, str] | None:
    """A statement with a condition as (the words before it, it, the words after it)."""
    if isinstance(s, n.WhenStmt):
        return "when ", s.cond, ""
    if isinstance(s, n.CheckState):
        within = f" within {duration(s.within)}" if s.within is not None else ""
        return "check state ", s.cond, within
    if isinstance(s, n.CheckClose) and s.cond is not None:
        return "check close requires ", s.cond, ""
    if isinstance(s, n.ExceptionStmt) and s.cond is not None:
        return f"exception {s.name.value} when ", s.cond, f" handoff {s.handoff.value}"
    return None


def wrap_cond(c: n.Cond, col: int, indent: int, width: int, depth: int, tail: int = 0) -> list[str]:
    """``c`` laid out from column ``col`` within ``width``, ``tail`` characters to follow
    it: the first piece continues the current line, each further one is a whole line
    (its indentation included) starting with ``and`` / ``or`` at ``indent``. A part that
    is a parenthesised group (``not`` included) and still too long wraps inside its
    parentheses, one level deeper (``depth`` levels at most)."""
    one = cond(c)
    if col + len(one) + tail <= width or depth <= 0:
        return [one]
    if isinstance(c, n.Not):
        grouped = isinstance(c.item, n.And | n.Or)  # format_cond's parentheses again
        lead = "not (" if grouped else "not "
        pieces = wrap_cond(c.item, col + len(lead), indent, width, depth - 1, tail + grouped)
        pieces[0] = lead + pieces[0]
        if grouped:
            pieces[-1] += ")"
        return pieces
    if not isinstance(c, n.And | n.Or):
        return [one]
    word = "and " if isinstance(c, n.And) else "or "
    lines: list[str] = []
    last = len(c.items) - 1
    for i, sub in enumerate(c.items):
        # the parentheses format_cond writes: an `or` in an `and`, same-kind groups
        grouped = isinstance(sub, n.And | n.Or) and PRECEDENCE[type(sub)] <= PRECEDENCE[type(c)]
        lead = ("" if i == 0 else word) + ("(" if grouped else "")
        start = col if i == 0 else indent
        after = grouped + (tail if i == last else 0)
        pieces = wrap_cond(sub, start + len(lead), indent + len(INDENT), width, depth - 1, after)
        pieces[0] = lead + pieces[0]
        if grouped:
            pieces[-1] += ")"
        if i:
            pieces[0] = " " * indent + pieces[0]
        lines.extend(pieces)
    return lines


def duration(d: n.Duration) -> str:
    """The author's units, without zero parts or leading zeros: ``1h00m`` → ``1h``, ``24h``
    stays ``24h`` (an SLA of 24h reads as written, not as ``1d``)."""
    parts = [(int(amount), unit) for amount, unit in _DURATION_PART.findall(d.text)]
    kept = "".join(f"{amount}{unit}" for amount, unit in parts if amount)
    if read_duration(kept) != d.seconds:  # pragma: no cover - the parser refused such texts
        return format_duration(d.seconds)
    return kept or "0s"


def windows_words(windows: tuple[n.Window, ...]) -> str:
    """``mon-fri 09:00-18:00, sat 10:00-14:00``."""
    return ", ".join(f"{w.days.value} {w.hours.value}" for w in windows)


def override_words(o: n.TeamOverride) -> str:
    instead = f" for {o.replaces.value}" if o.replaces is not None else ""
    start, end = format_string(o.start.value), format_string(o.end.value)
    return f"override {o.person.value}{instead} from {start} to {end}"


def layer_items(d: n.LayerDecl) -> list[tuple[n.Span, str]]:
    """A layer's items as (span, canonical text), in the canonical order."""
    items: list[tuple[n.Span, str]] = []
    if d.members:
        span = n.Span(
            d.members[0].span.file,
            d.members[0].span.line,
            d.members[0].span.col,
            d.members[-1].span.end_line,
            d.members[-1].span.end_col,
        )
        items.append((span, "members " + ", ".join(m.value for m in d.members)))
    if d.shift is not None:
        items.append((d.shift.span, f"shift {duration(d.shift)}"))
    if d.handoff is not None:
        items.append((d.handoff.span, f"handoff {d.handoff.value}"))
    if d.zone is not None:
        items.append((d.zone.span, f"zone {format_string(d.zone.value)}"))
    if d.start is not None:
        items.append((d.start.span, f"start {format_string(d.start.value)}"))
    if d.restrict:
        items.append((d.restrict[0].span, "restrict " + windows_words(d.restrict)))
    return items


def field_type(t: n.FieldType) -> str:
    if t.kind.value == "enum":
        return f"enum({', '.join(v.value for v in t.values)})"
    return t.kind.value


def statement(s: n.Stmt) -> str:
    """One policy statement (not ``on``) in canonical form."""
    words = _STATEMENT_WORDS.get(type(s))
    if words is None:  # pragma: no cover - every statement kind but ``on`` is in the table
        raise AssertionError(f"unhandled statement {type(s).__name__}")
    return words(s)


def _title_words(s: n.TitleStmt) -> str:
    return f"title {format_string(s.text.value)}"


def _description_words(s: n.DescriptionStmt) -> str:
    return f"description {format_string(s.text.value)}"


def _approvers_words(s: n.ApproversStmt) -> str:
    return "approvers " + ", ".join(format_string(a.value) for a in s.approvers)


def _priority_words(s: n.PriorityStmt) -> str:
    return f"priority {s.value}"


def _trigger_words(s: n.TriggerStmt) -> str:
    after = f" after {duration(s.after)}" if s.after is not None else ""
    return "trigger " + ", ".join(e.value for e in s.events) + after


def _when_words(s: n.WhenStmt) -> str:
    return f"when {cond(s.cond)}"


def _owner_words(s: n.OwnerStmt) -> str:
    ack = f" ack {duration(s.ack)}" if s.ack is not None else ""
    ref = s.ref.value if s.strategy is None else f"{s.strategy.value}({s.ref.value})"
    return f"owner {s.level.value} {ref}{ack}"


def _repeat_words(s: n.RepeatStmt) -> str:
    return f"repeat {s.count}"


def _sla_words(s: n.SlaStmt) -> str:
    within = f" within {s.calendar.value}" if s.calendar is not None else ""
    return f"sla {s.kind.value} {duration(s.duration)}{within}"


def _step_words(s: n.StepStmt) -> str:
    words = ["step", s.action.value, *(format_arg(a) for a in s.args)]
    if s.undo is not None:
        words += ["undo", s.undo.action.value, *(format_arg(a) for a in s.undo.args)]
    return " ".join(words)


def _on_revert_words(s: n.OnRevertStmt) -> str:
    return f"on {s.moment.value} revert"


def _group_words(s: n.GroupStmt) -> str:
    fields = ", ".join(f.path for f in s.fields)
    return f"group by {fields} within {duration(s.within)}"


def _postmortem_words(s: n.PostmortemStmt) -> str:
    return f"postmortem owner {s.owner.value} within {duration(s.within)}"


def _guide_words(s: n.GuideStmt) -> str:
    return f"guide {format_string(s.text.value)}"


def _delivery_words(s: n.CheckDelivery) -> str:
    then = f" then {s.then.value}" if s.then is not None else ""
    return f"check delivery within {duration(s.within)} else retry {s.retry}{then}"


def _state_words(s: n.CheckState) -> str:
    within = f" within {duration(s.within)}" if s.within is not None else ""
    return f"check state {cond(s.cond)}{within}"


def _close_words(s: n.CheckClose) -> str:
    return "check close requires " + ("postmortem" if s.cond is None else cond(s.cond))


def _exception_words(s: n.ExceptionStmt) -> str:
    why = cond(s.cond) if s.cond is not None else s.failure.value if s.failure else ""
    return f"exception {s.name.value} when {why} handoff {s.handoff.value}"


def _triage_words(s: n.TriageStmt) -> str:
    pm = " postmortem" if s.postmortem else ""
    revert = " revert" if s.revert else ""
    return f"exception unknown triage {s.ref.value}{pm}{revert}"


def _use_words(s: n.UseStmt) -> str:
    return f"use {s.template.value}({', '.join(format_arg(a) for a in s.args)})"


def _cooldown_words(s: n.CooldownStmt) -> str:
    return f"cooldown {duration(s.duration)}"


# How each kind of statement is written; ``on`` blocks are laid out by the printer.
_STATEMENT_WORDS: dict[type, Callable[[Any], str]] = {
    n.TitleStmt: _title_words,
    n.DescriptionStmt: _description_words,
    n.ApproversStmt: _approvers_words,
    n.PriorityStmt: _priority_words,
    n.TriggerStmt: _trigger_words,
    n.WhenStmt: _when_words,
    n.OwnerStmt: _owner_words,
    n.RepeatStmt: _repeat_words,
    n.SlaStmt: _sla_words,
    n.StepStmt: _step_words,
    n.GuideStmt: _guide_words,
    n.CheckDelivery: _delivery_words,
    n.CheckState: _state_words,
    n.CheckClose: _close_words,
    n.ExceptionStmt: _exception_words,
    n.TriageStmt: _triage_words,
    n.UseStmt: _use_words,
    n.CooldownStmt: _cooldown_words,
    n.OnRevertStmt: _on_revert_words,
    n.GroupStmt: _group_words,
    n.PostmortemStmt: _postmortem_words,
}


# --------------------------------------------------------------------------- comments


class _Refused(Exception):
    """The layout would detach a suppression comment from what it suppresses."""


def _covering(lines: list[_Line]) -> dict[int, list[int]]:
    """Source line → the output lines standing for it (blocks cover only their header
    and their ``}``, so this is about as big as the file)."""
    index: dict[int, list[int]] = {}
    for i, ln in enumerate(lines):
        for line in range(ln.first, ln.last + 1):
            index.setdefault(line, []).append(i)
    return index


def _place_comments(lines: list[_Line], comments: list[Comment]) -> list[Comment]:
    """Attach each comment to a line (as trailing or leading); return those left for the end."""
    at_end: list[Comment] = []
    index = _covering(lines)
    firsts = [ln.first for ln in lines]  # non-decreasing: lines come in source order
    for c in comments:
        covering = index.get(c.line, [])
        if c.trailing and covering:
            if c.suppression:
                target = lines[covering[0]]
                if target.trailing is None:
                    target.trailing = c
                else:
                    target.leading.append(c)
                continue
            ending = [i for i in covering if lines[i].anchor[0] == c.line]
            if ending:
                best = max(ending, key=lambda i: (lines[i].anchor, -i))
                if lines[best].trailing is None:
                    lines[best].trailing = c
                    continue
            lines[covering[0]].leading.append(c)
            continue
        if covering:
            lines[covering[0]].leading.append(c)
            continue
        after = bisect.bisect_right(firsts, c.line)
        if after == len(lines):
            at_end.append(c)
        else:
            lines[after].leading.append(c)
    return at_end


def _render(
    lines: list[_Line], at_end: list[Comment], src: list[str], blocks: set[int]
) -> tuple[list[str], dict[int, int], dict[Comment, int]]:
    """The output text lines, where each code line went, where each comment went.

    ``blocks`` are the declarations that get a blank line before and after."""
    out: list[str] = []
    placed: dict[int, int] = {}
    where: dict[Comment, int] = {}
    prev_last = 0  # the last source line of what was emitted last
    prev_kind: LineKind | None = None
    prev_decl = -1

    def blank_between(a: int, b: int) -> bool:
        return any(not src[i - 1].strip(" \t\f\r") for i in range(a + 1, b))

    def put(text: str, first: int, last: int, kind: LineKind, forced: bool) -> None:
        nonlocal prev_last, prev_kind
        gap = out and prev_kind != "open" and kind != "close" and out[-1] != ""
        if gap and (forced or blank_between(prev_last, first)):
            out.append("")
        out.append(text)
        prev_last, prev_kind = max(prev_last, last), kind

    for index, ln in enumerate(lines):
        new_decl = ln.depth == 0 and ln.kind != "close" and ln.decl != prev_decl
        forced = new_decl and prev_decl >= 0 and (ln.decl in blocks or prev_decl in blocks)
        depth = ln.depth + 1 if ln.kind == "close" else ln.depth
        for c in ln.leading:
            put(INDENT * depth + c.text, c.line, c.line, "code", forced)
            where[c] = len(out) - 1
            forced = False
        text = "\n".join(INDENT * ln.depth + part for part in ln.text.split("\n"))
        if ln.trailing is not None:
            text += "  " + ln.trailing.text
        put(text, ln.first, ln.last, ln.kind, forced)
        placed[index] = len(out) - 1
        if ln.trailing is not None:
            where[ln.trailing] = len(out) - 1
        if ln.depth == 0 and ln.kind != "close":
            prev_decl = ln.decl
    for c in at_end:
        put(c.text, c.line, c.line, "code", False)
        where[c] = len(out) - 1
    return out, placed, where


def _check_suppressions(
    path: str, lines: list[_Line], placed: dict[int, int], where: dict[Comment, int]
) -> None:
    """Each construct a suppression comment covered (on its line, or the line below a
    comment on its own line) must end up on the comment's line or the next one."""
    index: dict[int, list[int]] | None = None
    for c, row in where.items():
        if not c.suppression:
            continue
        index = _covering(lines) if index is None else index
        target = c.line if c.trailing else c.line + 1
        for i in index.get(target, []):
            ln = lines[i]
            if placed[i] not in (row, row + 1):
                raise _Refused(
                    f"{path}:{c.line}:{c.col}: left unformatted: the canonical layout would "
                    f"move this suppression comment away from `{ln.text}`, which it covers; "
                    "give each suppressed construct a line of its own (the comment after it, "
                    "or alone on the line above) and run fmt again"
                )


# --------------------------------------------------------------------------- entry points


def format_source(path: str, text: str) -> FormatResult:
    """Format one policy file's text. Never raises on bad input: a file that does not
    parse comes back with its E001 diagnostics and ``formatted is None``."""
    diags = Collector()
    tree = parse_source(path, text, diags)
    found = tuple(diags.diagnostics())
    if tree is None or found:
        return FormatResult(path, text, None, found, dict(diags.sources))
    comments = scan_comments(text)
    printer = _Printer(tree, comments)
    lines = printer.file()
    at_end = _place_comments(lines, comments)
    out, placed, where = _render(lines, at_end, tree.text.split("\n"), printer.blocks)
    try:
        _check_suppressions(path, lines, placed, where)
    except _Refused as exc:
        return FormatResult(path, text, None, refusal=str(exc))
    return FormatResult(path, text, "\n".join(out) + "\n" if out else "")


def format_file(file: Path, shown: str) -> FormatResult:
    """Read and format one file, a policy test (``*_test.esc``) in its own layout
    (unreadable or non-UTF-8 files are E001 diagnostics)."""
    from escalade.compiler.testfmt import format_test_source  # it builds on this module

    diags = Collector()
    try:
        data = file.read_bytes()
    except OSError as exc:
        diags.report("E001", n.Span(shown, 1, 1, 1, 1), f"cannot read file: {exc.strerror}")
        return FormatResult(shown, "", None, tuple(diags.diagnostics()))
    text = decode_source(shown, data, diags)
    if text is None:
        return FormatResult(shown, "", None, tuple(diags.diagnostics()))
    layout = format_test_source if file.name.endswith("_test.esc") else format_source
    result = layout(shown, text)
    if result.formatted is not None and data != result.formatted.encode("utf-8"):
        # CRLF line ends or a byte-order mark are layout too
        return FormatResult(shown, data.decode("utf-8", "replace"), result.formatted)
    return result


def files_to_format(paths: tuple[Path, ...]) -> list[Path]:
    """The ``.esc`` files under ``paths``, policy tests (``*_test.esc``) included, each once."""
    from escalade.compiler import policy_files

    found: dict[Path, None] = {}
    for p in paths:
        if not p.is_dir():
            found[p] = None
            continue
        tests = (f for f in p.rglob("*_test.esc") if f.is_file() and ".git" not in f.parts)
        for f in sorted([*policy_files(p), *tests]):
            found[f] = None
    return list(found)
