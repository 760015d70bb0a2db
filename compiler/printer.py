"""Canonical source text for syntax-tree fragments.

Two conditions that differ only in layout, comments or redundant parentheses
print the same, so the semantic diff can compare them and messages can quote
them::

    format_cond(parse("when (a.b == c)  and not(x.y in (p,q))"))
    == "a.b == c and not x.y in (p, q)"
"""

from __future__ import annotations

import json

from escalade.compiler import nodes as n
from escalade.runtime.clock import format_duration

# How tightly each operator binds (atoms: 4).
PRECEDENCE: dict[type, int] = {n.Or: 1, n.And: 2, n.Not: 3}


def format_string(value: str) -> str:
    """A string literal in canonical form: JSON-quoted, with every character that would
    not show (controls, zero-width and bidi marks, line separators, lone surrogates)
    as a ``\\uXXXX`` escape, so what a reviewer sees is what the string holds."""
    out: list[str] = []
    for ch in json.dumps(value, ensure_ascii=False):
        if ch.isprintable():
            out.append(ch)
        elif ord(ch) > 0xFFFF:
            out.append(json.dumps(ch)[1:-1])  # a surrogate pair, as JSON writes it
        else:
            out.append(f"\\u{ord(ch):04x}")
    return "".join(out)


def format_value(v: n.Value) -> str:
    """A literal as written in canonical form (strings JSON-quoted)."""
    if v.kind == "string":
        return format_string(v.raw)
    return v.raw


def format_cond(cond: n.Cond, *, keep_groups: bool = False) -> str:
    """The condition in canonical form, with only the parentheses precedence needs.

    With ``keep_groups`` an ``and`` written inside an ``and`` (or ``or`` inside
    ``or``) keeps its parentheses, so the text parses back to the same tree
    (the formatter needs that; comparisons want the flattened form).

    Runs without recursion, so the deepest accepted condition prints too."""
    out: list[str] = []
    # stack of (node or literal text, parent precedence)
    stack: list[tuple[n.Cond | str, int]] = [(cond, 0)]
    while stack:
        item, outer = stack.pop()
        if isinstance(item, str):
            out.append(item)
            continue
        prec = PRECEDENCE.get(type(item), 4)
        wrap = prec < outer or (keep_groups and prec == outer and prec < PRECEDENCE[n.Not])
        parts: list[tuple[n.Cond | str, int]] = []
        if isinstance(item, n.And | n.Or):
            joiner = " and " if isinstance(item, n.And) else " or "
            for i, sub in enumerate(item.items):
                if i:
                    parts.append((joiner, 0))
                # an `or` inside an `and` needs parentheses; same-kind nesting is flattened
                parts.append((sub, prec))
        elif isinstance(item, n.Not):
            parts = [("not ", 0), (item.item, prec)]
        elif isinstance(item, n.Compare):
            parts = [(f"{item.field.path} {item.op} {format_value(item.value)}", 0)]
        elif isinstance(item, n.InList):
            values = ", ".join(format_value(v) for v in item.values)
            word = "not in" if item.negated else "in"
            parts = [(f"{item.field.path} {word} ({values})", 0)]
        else:
            parts = [(f"{item.field.path} has {format_string(item.tag.value)}", 0)]
        if wrap:
            parts = [("(", 0), *parts, (")", 0)]
        stack.extend(reversed(parts))
    return "".join(out)


def format_arg(arg: n.Arg) -> str:
    """A step or template argument in canonical form."""
    if isinstance(arg, n.Name):
        return arg.value
    if isinstance(arg, n.Text):
        return format_string(arg.value)
    if isinstance(arg, n.FieldRef):
        return arg.path
    if isinstance(arg, n.Duration):
        return format_duration(arg.seconds)
    if isinstance(arg, n.Pick):
        return f"{arg.strategy.value}({arg.team.value})"
    return format_value(arg)
