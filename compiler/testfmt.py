"""``escalade fmt`` for policy tests (``*_test.esc``): one canonical layout, comments kept.

The layout: one ``test "name" {`` block after another with one blank line
between them, one statement per line indented two spaces, single spaces
between words, ``{ a.b = 1, c.d = ["x", "y"] }`` for an event's fields, the
author's blank lines inside a block (at most one in a row), and ``test "x" {}``
for an empty block::

    format_test_source("t_test.esc", 'test "x" {  at 0m   expect no escalation }')
    == 'test "x" {\\n  at 0m expect no escalation\\n}\\n'

Every word is kept as written (strings, durations, names), so the tests read
the same: ``parse_tests(format(x))`` equals ``parse_tests(x)`` but for source
positions. Comments stay with the code they follow or precede, as in policy
files (:mod:`escalade.compiler.fmt`); a comment inside a statement written over
several lines moves above it. A file that ``escalade test`` cannot read is left
alone with the same located message.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

from lark import Lark, Token, Tree

from escalade.compiler.fmt import FormatResult, _Line, _place_comments, _render, scan_comments
from escalade.compiler.policytest import TestSyntaxError, parse_tests

__all__ = ["format_test_source"]

_NO_SPACE_BEFORE = frozenset({",", "]"})


@lru_cache(maxsize=1)
def _layout_parser() -> Lark:
    """The test grammar's parser keeping every token (keywords and punctuation too)."""
    text = resources.files("escalade.grammar").joinpath("escalade_test.lark").read_text()
    return Lark(
        text, parser="lalr", propagate_positions=True, maybe_placeholders=True, keep_all_tokens=True
    )


def _tokens(tree: Tree[Token]) -> list[Token]:
    """The tokens under ``tree`` in source order (optional parts that are absent are None)."""
    found: list[Token] = []
    stack: list[Tree[Token] | Token | None] = [tree]
    while stack:
        item = stack.pop()
        if isinstance(item, Token):
            found.append(item)
        elif isinstance(item, Tree):
            stack.extend(item.children)
    return sorted(found, key=lambda t: t.start_pos or 0)


def _words(tokens: list[Token]) -> str:
    """Tokens with single spaces between them, none inside ``[...]``, before ``,`` or ``]``
    or in ``{}``."""
    out = ""
    prev = None
    for tok in tokens:
        text = str(tok)
        joined = prev is None or text in _NO_SPACE_BEFORE or prev == "[" or prev + text == "{}"
        out += text if joined else " " + text
        prev = text
    return out


def _span_of(tokens: list[Token]) -> tuple[int, int, tuple[int, int]]:
    """First line, last line and end (line, column) of a run of tokens."""
    first, last = tokens[0], tokens[-1]
    end_line = last.end_line or last.line or 1
    return first.line or 1, end_line, (end_line, last.end_column or 1)


def _block_lines(index: int, test: Tree[Token], text: str) -> list[_Line]:
    """The output lines of one ``test`` block: its header, statements and ``}``."""
    kids = [k for k in test.children if k is not None]
    head = [k for k in kids[:3] if isinstance(k, Token)]  # test "name" {
    close = kids[-1]
    assert isinstance(close, Token) and len(head) == 3
    stmts = [k for k in kids[3:-1] if isinstance(k, Tree)]
    first, _, _ = _span_of(head)
    brace = head[2]
    bline, bcol = brace.line or 1, brace.column or 1
    comments_inside = any(
        (bline, bcol) < (c.line, c.col) < (close.line or 1, close.column or 1)
        for c in scan_comments(text)
    )
    if not stmts and not comments_inside:
        end = (close.line or 1, (close.column or 1) + 1)
        return [_Line(0, f"{_words(head[:2])} {{}}", first, end[0], end, "code", index)]
    lines = [_Line(0, _words(head), first, bline, (bline, bcol + 1), "open", index)]
    for stmt in stmts:
        toks = _tokens(stmt)
        start, stop, anchor = _span_of(toks)
        lines.append(_Line(1, _words(toks), start, stop, anchor, "code", index))
    cline = close.line or 1
    lines.append(_Line(0, "}", cline, cline, (cline, (close.column or 1) + 1), "close", index))
    return lines


def format_test_source(path: str, text: str) -> FormatResult:
    """Format one policy test file's text; a file that does not parse comes back with
    ``formatted is None`` and the located reason in ``refusal``. Never raises."""
    try:
        parse_tests(path, text)  # the messages `escalade test` gives
    except TestSyntaxError as exc:
        return FormatResult(path, text, None, refusal=str(exc))
    tree = _layout_parser().parse(text)
    lines: list[_Line] = []
    for index, test in enumerate(tree.children):
        assert isinstance(test, Tree)
        lines.extend(_block_lines(index, test, text))
    comments = scan_comments(text)
    at_end = _place_comments(lines, comments)
    blocks = set(range(len(tree.children)))  # a blank line between every two tests
    out, _placed, _where = _render(lines, at_end, text.split("\n"), blocks)
    return FormatResult(path, text, "\n".join(out) + "\n" if out else "")
