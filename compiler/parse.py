"""Source text to typed syntax tree.

``parse_source`` never raises on bad input: unreadable bytes, syntax errors
and over-deep conditions become E001 diagnostics in the collector, and the
declarations a syntax error is in are dropped while the rest of the file is
read on: every syntax error of a file is reported, each located, with what was
expected in words a policy author understands, and what was dropped is noted in
the collector so findings that only follow from it are left out.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Callable
from functools import cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import (
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
    VisitError,
)

from escalade.compiler import nodes as n
from escalade.compiler.diagnostics import Collector, Dropped
from escalade.compiler.parse_cache import ParseCache
from escalade.runtime.clock import read_duration

MAX_CONDITION_DEPTH = 200

_PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
_PLACEHOLDER_FIELD = re.compile(r"\s*([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\s*$")


@cache
def parser() -> Lark:
    """The LALR parser, built once per process."""
    grammar = resources.files("escalade.grammar").joinpath("escalade.lark").read_text("utf-8")
    return Lark(
        grammar,
        parser="lalr",
        lexer="contextual",
        propagate_positions=True,
        maybe_placeholders=True,
        cache=False,
    )


# --------------------------------------------------------------------------- reading


def decode_source(path: str, data: bytes, diags: Collector) -> str | None:
    """Turn raw bytes into text, or report why the file cannot be read as a policy file."""
    if b"\x00" in data:
        offset = data.index(b"\x00")
        line, col = _line_col_bytes(data, offset)
        diags.report(
            "E001",
            n.Span(path, line, col, line, col + 1),
            "this looks like a binary file, not a policy file (NUL byte)",
            help="policy files are UTF-8 text; remove the file or fix its encoding",
        )
        return None
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, col = _line_col_bytes(data, exc.start)
        diags.report(
            "E001",
            n.Span(path, line, col, line, col + 1),
            f"invalid UTF-8 (byte 0x{data[exc.start]:02x})",
            help="save the file as UTF-8",
        )
        return None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _line_col_bytes(data: bytes, offset: int) -> tuple[int, int]:
    line = data.count(b"\n", 0, offset) + 1
    start = data.rfind(b"\n", 0, offset) + 1
    return line, offset - start + 1


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- parsing


_Parsed = tuple[n.SourceFile | None, tuple[Any, ...], tuple[Dropped, ...]]
_PARSE_CACHE: dict[tuple[str, str], _Parsed] = {}


def parse_source(
    path: str, text: str, diags: Collector, cache: ParseCache | None = None
) -> n.SourceFile | None:
    """Parse one file's text. Results are cached by content hash in the process and,
    with ``cache``, on disk across processes, so re-checking a set after editing one
    file re-parses only that file."""
    diags.sources[path] = text
    digest = content_hash(text)
    key = (path, digest)
    cached = _PARSE_CACHE.get(key)
    if cached is None:
        cached = _parse_through(cache, path, text, digest)
        if len(_PARSE_CACHE) > 20000:
            _PARSE_CACHE.clear()
        _PARSE_CACHE[key] = cached
    tree, found, dropped = cached
    diags.extend(found)
    diags.note_dropped(dropped)
    return tree


def _parse_through(cache: ParseCache | None, path: str, text: str, digest: str) -> _Parsed:
    """Read the parse back from ``cache``, or parse (and keep the result there)."""
    entry = cache.key(path, digest) if cache is not None else ""
    stored = cache.load(entry) if cache is not None else None
    if stored is not None:
        decls, stored_found = stored
        found = tuple(d for d in stored_found if not isinstance(d, Dropped))
        dropped = tuple(d for d in stored_found if isinstance(d, Dropped))
        tree = n.SourceFile(path, decls, text) if decls is not None else None
        return tree, found, dropped
    local = Collector()
    tree = _parse_uncached(path, text, local)
    found = tuple(local.diagnostics())
    dropped = local.dropped
    if cache is not None:
        # what syntax errors dropped travels with the findings
        kept: tuple[Any, ...] = (*found, *dropped)
        cache.store(entry, (tree.decls if tree is not None else None, kept))
    return tree, found, dropped


def _parse_uncached(path: str, text: str, diags: Collector) -> n.SourceFile | None:
    depth_error = _paren_depth_error(path, text)
    if depth_error is not None:
        diags.report("E001", depth_error, _DEPTH_MESSAGE, help=_DEPTH_HELP)
        diags.note_dropped(_whole(text))
        return None
    tree, dropped = _parse_recovering(path, text, diags)
    diags.note_dropped(dropped)
    if tree is None:
        return None
    deep = _deepest_condition(tree, path)
    if deep is not None:
        diags.report("E001", deep, _DEPTH_MESSAGE, help=_DEPTH_HELP)
        diags.note_dropped(_whole(text))
        return None
    builder = _Builder(path, diags)
    try:
        decls = with_recursion_headroom(lambda: builder.transform(tree))
    except VisitError as exc:  # pragma: no cover - a builder bug, still no traceback for users
        diags.report(
            "E001",
            n.Span(path, 1, 1, 1, 1),
            f"internal error while reading this file: {exc.orig_exc}",
        )
        return None
    return n.SourceFile(path, tuple(decls), text)


MAX_SYNTAX_ERRORS = 50

_TOP_LEVEL = ("event", "schema", "person", "team", "channel", "template", "policy", "coverage")
_TOP_LEVEL_TOKENS = frozenset(k.upper() for k in _TOP_LEVEL) | {"$END"}
_HEADER = re.compile("(" + "|".join(_TOP_LEVEL) + r")[ \t]+([a-z_][a-z0-9_.]*)")
_WORD = re.compile(r"[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*")


def _parse_recovering(
    path: str, text: str, diags: Collector
) -> tuple[Tree[Token] | None, tuple[Dropped, ...]]:
    """Parse, reporting every syntax error of the file rather than the first.

    On an error the declaration it is in (from its first line to the next line
    that starts at column 1) is blanked out, keeping every other line and column
    where it was, and the rest is parsed again. What was dropped is returned, so
    the findings that only follow from the missing text can be left out."""
    work = text
    dropped: list[Dropped] = []
    for _ in range(MAX_SYNTAX_ERRORS):
        try:
            return parser().parse(work), tuple(dropped)
        except UnexpectedInput as exc:
            _report_syntax_error(path, work, exc, diags)
            lines = work.split("\n")
            first, stop = _failed_region(lines, exc)
            if all(not line.strip() for line in lines[first:stop]):
                return None, _whole(text)
            region = lines[first:stop]
            dropped.append(_dropped(region))
            lines[first:stop] = [" " * len(line) for line in region]
            work = "\n".join(lines)
    return None, _whole(text)


def _whole(text: str) -> tuple[Dropped, ...]:
    """Every declaration of a file none of which could be read."""
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line[:1].isalpha()] or [0]
    bounds = [*starts[1:], len(lines)]
    return tuple(_dropped(lines[a:b]) for a, b in zip(starts, bounds, strict=True))


def _failed_region(lines: list[str], exc: UnexpectedInput) -> tuple[int, int]:
    """The 0-based [first, stop) lines of the declaration a syntax error is in."""
    depth = _depths(lines)
    starts = [i for i, line in enumerate(lines) if line[:1].isalpha()]
    outer = [i for i in starts if depth[i] <= 0]
    at_end = isinstance(exc, UnexpectedEOF) or (
        isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    )
    if at_end:
        row = max((i for i, line in enumerate(lines) if line.split("#", 1)[0].strip()), default=0)
    else:
        row = max(0, min(len(lines) - 1, (getattr(exc, "line", 1) or 1) - 1))
    col = getattr(exc, "column", 0) or 0
    top_level = not at_end and _expected_of(exc) <= _TOP_LEVEL_TOKENS
    if top_level:
        # between declarations: drop the offending line up to the next declaration
        first = row
    elif row in starts and _opens_declaration(lines[row], col):
        # a declaration starts where the one before it is still open: drop that one
        first = max((i for i in outer if i < row), default=0)
        if first < row:
            return first, row
    else:
        first = max((i for i in outer if i <= row), default=0)
    stop = min((i for i in starts if i > row), default=len(lines))
    return first, stop


def _opens_declaration(line: str, col: int) -> bool:
    """True when a syntax error at ``col`` is in the header of a declaration on ``line``."""
    header = _HEADER.match(line)
    return col == 1 or (header is not None and col <= header.end())


def _depths(lines: list[str]) -> list[int]:
    """The ``{`` nesting depth at the start of each line (strings and comments skipped)."""
    out: list[int] = []
    depth = 0
    for line in lines:
        out.append(depth)
        code = re.sub(r'"([^"\\]|\\.)*"?', "", _strip_comment(line))
        depth += code.count("{") - code.count("}")
    return out


def _dropped(region: list[str]) -> Dropped:
    """The declaration a dropped region held (when its header could be read) and the
    names its text mentions."""
    head = region[0].strip() if region else ""
    header = _HEADER.match(head)
    code = "\n".join(_strip_comment(line) for line in region)
    words = frozenset(_WORD.findall(re.sub(r'"([^"\\]|\\.)*"', " ", code)))
    names = frozenset(m.group(2) for line in region if (m := _HEADER.match(line)))
    if header is None:
        return Dropped(None, None, words, names)
    return Dropped(header.group(1), header.group(2), words, names)


def comment_start(line: str) -> int | None:
    """Where the comment of ``line`` starts (its ``#`` outside any string), or None.
    Strings are single-line, so a line scan suffices."""
    if "#" not in line:
        return None
    in_string = escaped = False
    for i, ch in enumerate(line):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "#":
            return i
    return None


def _strip_comment(line: str) -> str:
    start = comment_start(line)
    return line if start is None else line[:start]


_DEPTH_MESSAGE = f"condition nested more than {MAX_CONDITION_DEPTH} levels deep"
_DEPTH_HELP = "split the condition into simpler parts; deeper nesting is refused"


def _paren_depth_error(path: str, text: str) -> n.Span | None:
    """Find the first parenthesis nested deeper than the limit, outside strings and comments.

    Parentheses do not show in the parse tree, so this runs on the text."""
    if text.count("(") <= MAX_CONDITION_DEPTH:
        return None
    depth = 0
    line, col = 1, 0
    in_string = in_comment = escaped = False
    for ch in text:
        col += 1
        if ch == "\n":
            line, col = line + 1, 0
            in_comment = in_string = False
            continue
        if in_comment:
            continue
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == "#":
            in_comment = True
        elif ch == '"':
            in_string = True
        elif ch == "(":
            depth += 1
            if depth > MAX_CONDITION_DEPTH:
                return n.Span(path, line, col, line, col + 1)
        elif ch == ")":
            depth = max(0, depth - 1)
    return None


_COND_RULES = {"or_", "and_", "not_"}


def _deepest_condition(tree: Tree[Token], path: str) -> n.Span | None:
    """Iteratively measure and/or/not nesting; report the first node past the limit."""
    stack: list[tuple[Tree[Token], int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if node.data in _COND_RULES:
            depth += 1
            if depth > MAX_CONDITION_DEPTH:
                m = node.meta
                return n.Span(path, m.line, m.column, m.end_line, m.end_column)
        for child in node.children:
            if isinstance(child, Tree):
                stack.append((child, depth))
    return None


# --------------------------------------------------------------------------- syntax errors

_WORDS = {
    "NAME": "a name",
    "DOTTED": "a field or event such as `ticket.severity`",
    "STRING": 'a string in double quotes ("...")',
    "NUMBER": "a number",
    "DURATION": "a duration such as 5m or 1h30m",
    "CMP": "a comparison (==, !=, <, <=, >, >=)",
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "COMMA": "`,`",
    "COLON": "`:`",
    "$END": "the end of the file",
    "POSTMORTEM_OWNER": "`postmortem owner`",
    "CLOCK": "a clock time such as 09:00",
    "HOURS": "hours such as 09:00-18:00",
    "DAYS": "days such as mon-fri",
}

_STATEMENT_KEYWORDS = {
    "TITLE",
    "DESCRIPTION",
    "APPROVERS",
    "PRIORITY",
    "TRIGGER",
    "WHEN",
    "OWNER",
    "REPEAT",
    "SLA",
    "STEP",
    "GUIDE",
    "ON",
    "CHECK",
    "EXCEPTION",
    "USE",
    "COOLDOWN",
    "GROUP",
    "POSTMORTEM_OWNER",
}
_DECL_KEYWORDS = {
    "EVENT",
    "SCHEMA",
    "PERSON",
    "TEAM",
    "CHANNEL",
    "TEMPLATE",
    "POLICY",
    "COVERAGE",
    "CALENDAR",
    "MAINTENANCE",
}


def _describe_expected(expected: set[str]) -> str:
    words: list[str] = []
    rest = set(expected)
    if len(rest & _STATEMENT_KEYWORDS) >= 5:
        rest -= _STATEMENT_KEYWORDS
        words.append("a policy statement (title, trigger, when, owner, step, check, exception ...)")
    if len(rest & _DECL_KEYWORDS) >= 5:
        rest -= _DECL_KEYWORDS
        words.append(
            "a declaration (event, schema, person, team, channel, template, policy, coverage,"
            " calendar, maintenance)"
        )
    for terminal in sorted(rest):
        name = terminal.removeprefix("_")
        word = _WORDS.get(name)
        if word is None:
            word = f"`{name.lower()}`" if name.isalpha() else name
        if word not in words:
            words.append(word)
    if not words:
        return "nothing more here"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _report_syntax_error(path: str, text: str, exc: UnexpectedInput, diags: Collector) -> None:
    line = exc.line if exc.line and exc.line > 0 else text.count("\n") + 1
    col = exc.column if exc.column and exc.column > 0 else 1
    offset = exc.pos_in_stream if isinstance(exc.pos_in_stream, int) else None
    rest = text[offset : offset + 80] if offset is not None else ""
    span = n.Span(path, line, col, line, col + 1)
    help_text: str | None = None

    bad_duration = re.match(r"-?[0-9]+(\.[0-9]+)?[A-Za-z_][A-Za-z0-9_]*", rest)
    at_end = isinstance(exc, UnexpectedEOF) or (
        isinstance(exc, UnexpectedToken) and exc.token.type == "$END"
    )
    if at_end:
        last = _last_code_position(text)
        span = n.Span(path, last[0], last[1], last[0], last[1] + 1)
        expected = _expected_of(exc)
        message = "unexpected end of file"
        if "RBRACE" in expected:
            message += ": a `{` block is not closed"
            help_text = "add the missing `}`"
        else:
            message += f"; expected {_describe_expected(expected)}"
    elif bad_duration and not re.match(
        r"-?[0-9]+(\.[0-9]+)?[smhd]([0-9]+[smhd])*$", bad_duration.group(0)
    ):
        word = bad_duration.group(0)
        span = n.Span(path, line, col, line, col + len(word))
        message = f"invalid duration '{word}': use s, m, h or d (for example 30s, 5m, 1h30m, 2d)"
    elif rest.startswith('"') and isinstance(exc, UnexpectedCharacters):
        eol = rest.find("\n")
        body = rest if eol < 0 else rest[:eol]
        span = n.Span(path, line, col, line, col + max(1, len(body)))
        if re.match(r'"([^"\\]|\\.)*"', body):
            message = 'invalid escape in string: use \\", \\\\, \\n, \\t or \\uXXXX'
        else:
            message = 'unterminated string: a string must end with `"` on the same line'
    elif isinstance(exc, UnexpectedCharacters):
        char = rest[:1]
        if re.match(r"[A-Z]", char):
            found = re.match(r"[A-Za-z0-9_]+", rest)
            shown = found.group(0) if found else char
            message = f"names are lower-case: '{shown}'"
            help_text = f"write '{shown.lower()}'"
            span = n.Span(path, line, col, line, col + len(shown))
        else:
            shown = char if char.isprintable() else repr(char)
            message = f"unexpected character '{shown}'"
            expected = _expected_of(exc)
            if expected:
                message += f"; expected {_describe_expected(expected)}"
    else:
        assert isinstance(exc, UnexpectedToken)
        token = exc.token
        shown = str(token)
        span = n.Span(path, line, col, line, col + max(1, len(shown)))
        label = _classify(exc)
        if label is not None:
            message, help_text = label
            message = message.format(token=shown)
        else:
            message = f"unexpected '{shown}'; expected {_describe_expected(_expected_of(exc))}"
    diags.report("E001", span, message, help=help_text)


def _expected_of(exc: UnexpectedInput) -> set[str]:
    expected = getattr(exc, "expected", None) or getattr(exc, "allowed", None) or set()
    return {str(e) for e in expected}


def _last_code_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    for i in range(len(lines) - 1, -1, -1):
        stripped = lines[i].split("#", 1)[0].rstrip()
        if stripped:
            return i + 1, len(stripped)
    return 1, 1


# Lark's match_examples: each label is an error state, shown by examples that
# fail in the same parser state. The message says what the author meant.
_EXAMPLES: dict[tuple[str, str | None], list[str]] = {
    (
        "an owner needs a level and who: `owner primary|backup|escalation PERSON_OR_TEAM [ack DURATION]`",
        None,
    ): ["policy p { owner alice }", "policy p { owner primary }"],
    (
        "`ack` needs a duration such as 5m",
        "for example: owner primary alice ack 5m",
    ): ["policy p { owner primary alice ack }", "policy p { owner primary alice ack alice }"],
    (
        'a condition compares a field: `object.field == value`, `in (...)` or `has "tag"`',
        None,
    ): [
        "policy p { when severity == critical }",
        "policy p { when ticket.severity }",
        "policy p { when ticket.severity = critical }",
    ],
    (
        "a comparison needs a value after the operator",
        None,
    ): ["policy p { when ticket.severity == }", "policy p { when ticket.severity == ( }"],
    (
        "unexpected '{token}': a declaration starts with event, schema, person, team, channel, "
        "template, policy or coverage",
        None,
    ): ["owner primary a", "when a.b == c", "polcy x { }"],
    (
        "unexpected '{token}' in a policy: each statement starts with a keyword such as "
        "title, trigger, when, owner, step, check or exception",
        None,
    ): ["policy p { alice }", "policy p { ownr primary alice }"],
    (
        "`trigger` names event kinds such as `ticket.created`",
        None,
    ): ["policy p { trigger created }", "policy p { trigger }"],
    ("a template call needs parentheses: `use NAME(args)`", None): ["policy p { use t }"],
}


def _classify(exc: UnexpectedToken) -> tuple[str, str | None] | None:
    def parse_fn(text: str) -> Any:
        return parser().parse(text)

    try:
        label = exc.match_examples(parse_fn, _EXAMPLES, use_accepts=True)
    except Exception:  # pragma: no cover - classification is best effort
        return None
    if label is None:
        return None
    message, help_text = label
    return message, help_text


# --------------------------------------------------------------------------- tree building


def _span_tok(path: str, tok: Token) -> n.Span:
    return n.Span(path, tok.line or 1, tok.column or 1, tok.end_line or 1, tok.end_column or 1)


MAX_DURATION = 3650 * 86400  # ten years: longer is a typo, and time arithmetic overflows


class _Builder(Transformer[Token, Any]):
    """Lark parse tree to ``nodes``; literal errors (bad durations) go to the collector."""

    def __init__(self, path: str, diags: Collector) -> None:
        super().__init__(visit_tokens=False)
        self.path = path
        self.diags = diags

    # helpers --------------------------------------------------------------
    def _span(self, meta: Any) -> n.Span:
        if getattr(meta, "empty", True):
            return n.Span(self.path, 1, 1, 1, 1)
        return n.Span(self.path, meta.line, meta.column, meta.end_line, meta.end_column)

    def _name(self, tok: Token) -> n.Name:
        return n.Name(str(tok), _span_tok(self.path, tok))

    def _text(self, tok: Token) -> n.Text:
        span = _span_tok(self.path, tok)
        value = json.loads(str(tok))
        return n.Text(value, span, _placeholders(value, span))

    def _duration(self, tok: Token) -> n.Duration:
        span = _span_tok(self.path, tok)
        text = str(tok)
        seconds = read_duration(text)
        if seconds is None:
            self.diags.report(
                "E001",
                span,
                f"invalid duration '{text}': units go from largest to smallest, each once (w, d, h, m, s)",
                help="for example 1h30m, 2d, 45s",
            )
            seconds = 0
        elif seconds > MAX_DURATION:
            self.diags.report(
                "E001",
                span,
                f"duration '{text}' is longer than ten years",
                help="durations are at most 3650d (522w)",
            )
            seconds = 0
        return n.Duration(seconds, text, span)

    def _int(self, tok: Token, what: str) -> int:
        text = str(tok)
        if not re.fullmatch(r"[0-9]+", text):
            self.diags.report(
                "E001",
                _span_tok(self.path, tok),
                f"{what} must be a whole number ≥ 0, not '{text}'",
            )
            return 0
        return int(text)

    # declarations -----------------------------------------------------------
    def start(self, children: list[Any]) -> list[n.Decl]:
        return children

    @v_args(meta=True)
    def event_decl(self, meta: Any, c: list[Any]) -> n.EventDecl:
        return n.EventDecl(self._name(c[0]), self._span(meta))

    @v_args(meta=True)
    def schema_decl(self, meta: Any, c: list[Any]) -> n.SchemaDecl:
        return n.SchemaDecl(self._name(c[0]), tuple(c[1:]), self._span(meta))

    @v_args(meta=True)
    def field_decl(self, meta: Any, c: list[Any]) -> n.FieldDecl:
        return n.FieldDecl(self._name(c[0]), c[1], self._span(meta))

    @v_args(meta=True)
    def simple_type(self, meta: Any, c: list[Any]) -> n.FieldType:
        return n.FieldType(self._name(c[0]), (), self._span(meta))

    @v_args(meta=True)
    def enum_type(self, meta: Any, c: list[Any]) -> n.FieldType:
        span = self._span(meta)
        values = tuple(self._name(t) for t in c if t is not None)
        return n.FieldType(n.Name("enum", span), values, span)

    @v_args(meta=True)
    def attr(self, meta: Any, c: list[Any]) -> n.Attr:
        return n.Attr(self._name(c[0]), self._text(c[1]), self._span(meta))

    @v_args(meta=True)
    def person_decl(self, meta: Any, c: list[Any]) -> n.PersonDecl:
        return n.PersonDecl(self._name(c[0]), tuple(c[1:]), self._span(meta))

    @v_args(meta=True)
    def channel_decl(self, meta: Any, c: list[Any]) -> n.ChannelDecl:
        return n.ChannelDecl(self._name(c[0]), tuple(c[1:]), self._span(meta))

    @v_args(meta=True)
    def members(self, meta: Any, c: list[Any]) -> tuple[str, Any, n.Span]:
        return ("members", tuple(self._name(t) for t in c if t is not None), self._span(meta))

    @v_args(meta=True)
    def rotation(self, meta: Any, c: list[Any]) -> tuple[str, Any, n.Span]:
        span = self._span(meta)
        return ("rotation", n.Rotation(self._name(c[0]), self._text(c[1]), span), span)

    @v_args(meta=True)
    def layer(self, meta: Any, c: list[Any]) -> tuple[str, Any, n.Span]:
        span = self._span(meta)
        items: dict[str, Any] = {}
        extra: list[n.Span] = []
        for kind, value, item_span in c[1:]:
            if kind in items:
                extra.append(item_span)
                continue
            items[kind] = value
        layer = n.LayerDecl(
            self._name(c[0]),
            items.get("members", ()),
            items.get("shift"),
            items.get("handoff"),
            items.get("zone"),
            items.get("start"),
            items.get("restrict", ()),
            span,
            tuple(extra),
        )
        return ("layer", layer, span)

    @v_args(meta=True)
    def team_override(self, meta: Any, c: list[Any]) -> tuple[str, Any, n.Span]:
        person, replaces, start, end = c
        span = self._span(meta)
        override = n.TeamOverride(
            self._name(person),
            self._name(replaces) if replaces is not None else None,
            self._text(start),
            self._text(end),
            span,
        )
        return ("override", override, span)

    @v_args(meta=True)
    def layer_members(self, meta: Any, c: list[Any]) -> tuple[str, Any, n.Span]:
        return ("members", tuple(self._name(t) for t in c if t is not None), self._span(meta))

    @v_args(meta=True)
    def layer_shift(self, meta: Any, c: list[Any]) -> tuple[str, Any, n.Span]:
        return ("shift", self._duration(c[0]), self._span(meta))

    @v_args(meta=True)
    def layer_handoff(self, meta: Any, c: list[Any]) -> tuple[str, Any, n.Span]:
        return ("handoff", self._name(c[0]), self._span(meta))

    @v_args(meta=True)
    def layer_zone(self, meta: Any, c: list[Any]) -> tuple[str, Any, n.Span]:
        return ("zone", self._text(c[0]), self._span(meta))

    @v_args(meta=True)
    def layer_start(self, meta: Any, c: list[Any]) -> tuple[str, Any, n.Span]:
        return ("start", self._text(c[0]), self._span(meta))

    @v_args(meta=True)
    def layer_restrict(self, meta: Any, c: list[Any]) -> tuple[str, Any, n.Span]:
        return ("restrict", tuple(c), self._span(meta))

    @v_args(meta=True)
    def window(self, meta: Any, c: list[Any]) -> n.Window:
        return n.Window(self._name(c[0]), self._name(c[1]), self._span(meta))

    @v_args(meta=True)
    def team_decl(self, meta: Any, c: list[Any]) -> n.TeamDecl:
        members: tuple[n.Name, ...] = ()
        rotation: n.Rotation | None = None
        members_span: n.Span | None = None
        extra: list[n.Span] = []
        layers: list[n.LayerDecl] = []
        overrides: list[n.TeamOverride] = []
        seen: set[str] = set()
        for kind, value, span in c[1:]:
            if kind == "layer":
                layers.append(value)
                continue
            if kind == "override":
                overrides.append(value)
                continue
            if kind in seen:
                extra.append(span)
                continue
            seen.add(kind)
            if kind == "members":
                members, members_span = value, span
            else:
                rotation = value
        return n.TeamDecl(
            self._name(c[0]),
            members,
            rotation,
            self._span(meta),
            members_span,
            tuple(extra),
            tuple(layers),
            tuple(overrides),
        )

    @v_args(meta=True)
    def calendar_decl(self, meta: Any, c: list[Any]) -> n.CalendarDecl:
        found: dict[str, list[Any]] = {"windows": [], "zones": [], "holidays": [], "files": []}
        for kind, values in c[1:]:
            if kind == "hours":
                found["windows"].extend(v for v in values if isinstance(v, n.Window))
                found["zones"].extend(v for v in values if isinstance(v, n.Text))
                continue
            found[kind].extend(values)
        return n.CalendarDecl(
            self._name(c[0]),
            tuple(found["windows"]),
            tuple(found["zones"]),
            tuple(found["holidays"]),
            tuple(found["files"]),
            self._span(meta),
        )

    def calendar_hours(self, c: list[Any]) -> tuple[str, list[Any]]:
        windows: list[Any] = [w for w in c if isinstance(w, n.Window)]
        zones = [self._text(t) for t in c if isinstance(t, Token) and t.type == "STRING"]
        return ("hours", windows + zones)

    def calendar_zone(self, c: list[Any]) -> tuple[str, list[Any]]:
        return ("zones", [self._text(c[0])])

    def calendar_except(self, c: list[Any]) -> tuple[str, list[Any]]:
        return ("holidays", [self._text(t) for t in c if t is not None])

    def calendar_except_file(self, c: list[Any]) -> tuple[str, list[Any]]:
        return ("files", [self._text(c[0])])

    @v_args(meta=True)
    def maintenance_decl(self, meta: Any, c: list[Any]) -> n.MaintenanceDecl:
        items: dict[str, Any] = {}
        extra: list[n.Span] = []
        for kind, value, span in c[1:]:
            if kind in items or (kind in ("policy", "team") and ({"policy", "team"} & set(items))):
                extra.append(span)
                continue
            items[kind] = value
        start, end = items.get("window", (None, None))
        return n.MaintenanceDecl(
            self._name(c[0]),
            items.get("policy"),
            items.get("team"),
            start,
            end,
            items.get("reason"),
            self._span(meta),
            tuple(extra),
        )

    @v_args(meta=True)
    def maintenance_policy(self, meta: Any, c: list[Any]) -> tuple[str, Any, n.Span]:
        return ("policy", self._name(c[0]), self._span(meta))

    @v_args(meta=True)
    def maintenance_team(self, meta: Any, c: list[Any]) -> tuple[str, Any, n.Span]:
        return ("team", self._name(c[0]), self._span(meta))

    @v_args(meta=True)
    def maintenance_window(self, meta: Any, c: list[Any]) -> tuple[str, Any, n.Span]:
        return ("window", (self._text(c[0]), self._text(c[1])), self._span(meta))

    @v_args(meta=True)
    def maintenance_reason(self, meta: Any, c: list[Any]) -> tuple[str, Any, n.Span]:
        return ("reason", self._text(c[0]), self._span(meta))

    @v_args(meta=True)
    def param(self, meta: Any, c: list[Any]) -> n.Param:
        return n.Param(self._name(c[0]), self._name(c[1]), self._span(meta))

    @v_args(meta=True)
    def template_decl(self, meta: Any, c: list[Any]) -> n.TemplateDecl:
        params = tuple(p for p in c[1:] if isinstance(p, n.Param))
        body = tuple(s for s in c[1:] if s is not None and not isinstance(s, n.Param))
        return n.TemplateDecl(self._name(c[0]), params, body, self._span(meta))

    @v_args(meta=True)
    def policy_decl(self, meta: Any, c: list[Any]) -> n.PolicyDecl:
        return n.PolicyDecl(self._name(c[0]), tuple(c[1:]), self._span(meta))

    @v_args(meta=True)
    def coverage_decl(self, meta: Any, c: list[Any]) -> n.CoverageDecl:
        events = tuple(self._name(t) for t in c[:-1])
        return n.CoverageDecl(events, c[-1], self._span(meta))

    # statements -------------------------------------------------------------
    @v_args(meta=True)
    def title_stmt(self, meta: Any, c: list[Any]) -> n.TitleStmt:
        return n.TitleStmt(self._text(c[0]), self._span(meta))

    @v_args(meta=True)
    def description_stmt(self, meta: Any, c: list[Any]) -> n.DescriptionStmt:
        return n.DescriptionStmt(self._text(c[0]), self._span(meta))

    @v_args(meta=True)
    def approvers_stmt(self, meta: Any, c: list[Any]) -> n.ApproversStmt:
        return n.ApproversStmt(tuple(self._text(t) for t in c), self._span(meta))

    @v_args(meta=True)
    def priority_stmt(self, meta: Any, c: list[Any]) -> n.PriorityStmt:
        text = str(c[0])
        if not re.fullmatch(r"-?[0-9]+", text):
            self.diags.report(
                "E001", _span_tok(self.path, c[0]), f"priority must be a whole number, not '{text}'"
            )
            return n.PriorityStmt(0, self._span(meta))
        return n.PriorityStmt(int(text), self._span(meta))

    @v_args(meta=True)
    def trigger_stmt(self, meta: Any, c: list[Any]) -> n.TriggerStmt:
        # maybe_placeholders gives [events..., AFTER|None, DURATION|None]
        *events, _after, dur = c
        after = self._duration(dur) if dur is not None else None
        return n.TriggerStmt(tuple(self._name(t) for t in events), after, self._span(meta))

    @v_args(meta=True)
    def when_stmt(self, meta: Any, c: list[Any]) -> n.WhenStmt:
        return n.WhenStmt(c[0], self._span(meta))

    @v_args(meta=True)
    def owner_stmt(self, meta: Any, c: list[Any]) -> n.OwnerStmt:
        level, ref, team, _ack, dur = c
        ack = self._duration(dur) if dur is not None else None
        if team is None:
            return n.OwnerStmt(self._name(level), self._name(ref), ack, self._span(meta))
        return n.OwnerStmt(
            self._name(level), self._name(team), ack, self._span(meta), strategy=self._name(ref)
        )

    @v_args(meta=True)
    def repeat_stmt(self, meta: Any, c: list[Any]) -> n.RepeatStmt:
        return n.RepeatStmt(self._int(c[0], "repeat"), self._span(meta))

    @v_args(meta=True)
    def sla_stmt(self, meta: Any, c: list[Any]) -> n.SlaStmt:
        kind, dur, _within, calendar = c
        return n.SlaStmt(
            self._name(kind),
            self._duration(dur),
            self._span(meta),
            calendar=self._name(calendar) if calendar is not None else None,
        )

    @v_args(meta=True)
    def step_stmt(self, meta: Any, c: list[Any]) -> n.StepStmt:
        cut = next((i for i, t in enumerate(c) if isinstance(t, Token) and t.type == "UNDO"), None)
        if cut is None:  # the optional `undo` part unmatched: two trailing Nones
            args = tuple(a for a in c[1:] if a is not None)
            return n.StepStmt(self._name(c[0]), args, self._span(meta))
        undo_action = c[cut + 1]
        undo_args = tuple(a for a in c[cut + 2 :] if a is not None)
        start = _span_tok(self.path, c[cut])
        end = undo_args[-1].span if undo_args else _span_tok(self.path, undo_action)
        undo = n.Undo(
            self._name(undo_action),
            undo_args,
            n.Span(self.path, start.line, start.col, end.end_line, end.end_col),
        )
        return n.StepStmt(self._name(c[0]), tuple(c[1:cut]), self._span(meta), undo=undo)

    @v_args(meta=True)
    def on_revert(self, meta: Any, c: list[Any]) -> n.OnRevertStmt:
        return n.OnRevertStmt(self._name(c[0]), self._span(meta))

    @v_args(meta=True)
    def group_stmt(self, meta: Any, c: list[Any]) -> n.GroupStmt:
        fields = tuple(_field(self.path, t) for t in c[:-2])
        return n.GroupStmt(fields, self._duration(c[-1]), self._span(meta))

    @v_args(meta=True)
    def postmortem_stmt(self, meta: Any, c: list[Any]) -> n.PostmortemStmt:
        _kw, owner, _within, dur = c
        return n.PostmortemStmt(self._name(owner), self._duration(dur), self._span(meta))

    @v_args(meta=True)
    def guide_stmt(self, meta: Any, c: list[Any]) -> n.GuideStmt:
        return n.GuideStmt(self._text(c[0]), self._span(meta))

    @v_args(meta=True)
    def on_stmt(self, meta: Any, c: list[Any]) -> n.OnStmt:
        return n.OnStmt(self._name(c[0]), tuple(c[1:]), self._span(meta))

    @v_args(meta=True)
    def check_delivery(self, meta: Any, c: list[Any]) -> n.CheckDelivery:
        within, retry, _then, channel = c
        return n.CheckDelivery(
            self._duration(within),
            self._int(retry, "retry"),
            self._name(channel) if channel is not None else None,
            self._span(meta),
        )

    @v_args(meta=True)
    def check_state(self, meta: Any, c: list[Any]) -> n.CheckState:
        cond, _within, dur = c
        return n.CheckState(
            cond, self._duration(dur) if dur is not None else None, self._span(meta)
        )

    @v_args(meta=True)
    def check_close(self, meta: Any, c: list[Any]) -> n.CheckClose:
        return n.CheckClose(c[0], self._span(meta))

    @v_args(meta=True)
    def check_close_postmortem(self, meta: Any, c: list[Any]) -> n.CheckClose:
        return n.CheckClose(None, self._span(meta))

    @v_args(meta=True)
    def exception_when(self, meta: Any, c: list[Any]) -> n.ExceptionStmt:
        return n.ExceptionStmt(self._name(c[0]), c[1], None, self._name(c[2]), self._span(meta))

    @v_args(meta=True)
    def exception_failure(self, meta: Any, c: list[Any]) -> n.ExceptionStmt:
        return n.ExceptionStmt(
            self._name(c[0]), None, self._name(c[1]), self._name(c[2]), self._span(meta)
        )

    @v_args(meta=True)
    def exception_triage(self, meta: Any, c: list[Any]) -> n.TriageStmt | n.ExceptionStmt:
        name, ref, pm, revert = c
        span = self._span(meta)
        if str(name) != "unknown":
            self.diags.report(
                "E001",
                _span_tok(self.path, name),
                f"only `exception unknown` takes `triage`; '{name}' is a known exception",
                help=f"write `exception {name} when CONDITION handoff POLICY`, "
                "or `exception unknown triage PERSON`",
            )
        return n.TriageStmt(self._name(ref), pm is not None, span, revert=revert is not None)

    @v_args(meta=True)
    def use_stmt(self, meta: Any, c: list[Any]) -> n.UseStmt:
        args = tuple(a for a in c[1:] if a is not None)
        return n.UseStmt(self._name(c[0]), args, self._span(meta))

    @v_args(meta=True)
    def cooldown_stmt(self, meta: Any, c: list[Any]) -> n.CooldownStmt:
        return n.CooldownStmt(self._duration(c[0]), self._span(meta))

    # arguments ----------------------------------------------------------------
    def arg_name(self, c: list[Any]) -> n.Name:
        return self._name(c[0])

    @v_args(meta=True)
    def arg_call(self, meta: Any, c: list[Any]) -> n.Pick:
        return n.Pick(self._name(c[0]), self._name(c[1]), self._span(meta))

    def arg_string(self, c: list[Any]) -> n.Text:
        return self._text(c[0])

    def arg_field(self, c: list[Any]) -> n.FieldRef:
        return _field(self.path, c[0])

    def arg_duration(self, c: list[Any]) -> n.Duration:
        return self._duration(c[0])

    def arg_number(self, c: list[Any]) -> n.Value:
        return _number_value(self.path, c[0])

    # conditions ----------------------------------------------------------------
    @v_args(meta=True)
    def or_(self, meta: Any, c: list[Any]) -> n.Or:
        return n.Or(tuple(c), self._span(meta))

    @v_args(meta=True)
    def and_(self, meta: Any, c: list[Any]) -> n.And:
        return n.And(tuple(c), self._span(meta))

    @v_args(meta=True)
    def not_(self, meta: Any, c: list[Any]) -> n.Not:
        return n.Not(c[0], self._span(meta))

    @v_args(meta=True)
    def compare(self, meta: Any, c: list[Any]) -> n.Compare:
        return n.Compare(_field(self.path, c[0]), str(c[1]), c[2], self._span(meta))  # type: ignore[arg-type]

    @v_args(meta=True)
    def in_list(self, meta: Any, c: list[Any]) -> n.InList:
        return n.InList(_field(self.path, c[0]), tuple(c[1:]), False, self._span(meta))

    @v_args(meta=True)
    def not_in_list(self, meta: Any, c: list[Any]) -> n.InList:
        return n.InList(_field(self.path, c[0]), tuple(c[1:]), True, self._span(meta))

    @v_args(meta=True)
    def has(self, meta: Any, c: list[Any]) -> n.Has:
        return n.Has(_field(self.path, c[0]), self._text(c[1]), self._span(meta))

    def value_name(self, c: list[Any]) -> n.Value:
        return n.Value("name", str(c[0]), _span_tok(self.path, c[0]))

    def value_string(self, c: list[Any]) -> n.Value:
        return n.Value("string", json.loads(str(c[0])), _span_tok(self.path, c[0]))

    def value_number(self, c: list[Any]) -> n.Value:
        return _number_value(self.path, c[0])

    def value_duration(self, c: list[Any]) -> n.Value:
        d = self._duration(c[0])
        return n.Value("duration", d.text, d.span, float(d.seconds))


def _field(path: str, tok: Token) -> n.FieldRef:
    obj, _, name = str(tok).partition(".")
    return n.FieldRef(obj, name, _span_tok(path, tok))


def _number_value(path: str, tok: Token) -> n.Value:
    return n.Value("number", str(tok), _span_tok(path, tok), float(str(tok)))


def _placeholders(value: str, span: n.Span) -> tuple[n.Placeholder, ...]:
    found: list[n.Placeholder] = []
    for m in _PLACEHOLDER.finditer(value):
        fm = _PLACEHOLDER_FIELD.match(m.group(1))
        # Columns inside a string are approximate when it has escapes; the
        # string's own span still locates the placeholder for the author.
        col = span.col + 1 + m.start()
        pspan = n.Span(span.file, span.line, col, span.line, col + len(m.group(0)))
        if fm:
            found.append(n.Placeholder(fm.group(1), fm.group(2), pspan, m.group(0)))
        else:
            found.append(n.Placeholder("", "", pspan, m.group(0)))
    tail = value[_last_end(value) :]
    if "{{" in tail:
        col = span.col + 1 + value.rindex("{{")
        pspan = n.Span(span.file, span.line, col, span.line, col + 2)
        found.append(n.Placeholder("", "", pspan, tail[tail.index("{{") :]))
    return tuple(found)


def _last_end(value: str) -> int:
    end = 0
    for m in _PLACEHOLDER.finditer(value):
        end = m.end()
    return end


def with_recursion_headroom(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` with room for conditions nested up to the limit in recursive passes."""
    old = sys.getrecursionlimit()
    if old < 10000:
        sys.setrecursionlimit(10000)
    try:
        return fn()
    finally:
        sys.setrecursionlimit(old)
