"""Completion for the language server: what may be typed at the cursor.

    complete(text, line=12, col=30, pset)  # after `when ticket.severity == `: the enum's values

Names come from the checked set (fields after ``object.``, enum values after
``==``/``!=``/``in (``, people and teams after ``owner LEVEL``, channels after
``step notify``, policies after ``handoff``, templates after ``use``, durations
after ``ack``/``after``/``within``/``cooldown``/``sla KIND``). Keywords come from
the grammar itself: the parser is fed the text before the cursor and asked which
keywords it accepts next.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from lark.exceptions import LarkError
from lark.lexer import PatternStr

from escalade.compiler import model as m
from escalade.compiler import nodes as n
from escalade.compiler.parse import parser
from escalade.compiler.passes.checks import ACTIONS
from escalade.compiler.passes.lower import ON_MOMENTS, SLA_KINDS
from escalade.runtime.clock import format_duration

BOOL_VALUES = ("true", "false")
# offered after `ack`, `after`, ... when the set itself writes no duration yet
FALLBACK_DURATIONS = (300, 900, 1800, 3600, 4 * 3600, 86400)
_WORD = re.compile(r"[a-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class Item:
    """One completion: ``label`` replaces the word being typed (``start_col`` to the cursor)."""

    label: str
    kind: str  # field, value, person, team, channel, policy, template, event, ...
    detail: str = ""
    start_col: int = 0


def _fields(pset: m.PolicySet, obj: str) -> list[Item]:
    fields = pset.schema.objects.get(obj, {})
    return [
        Item(f.name, "field", f"enum({', '.join(f.values)})" if f.kind == "enum" else f.kind)
        for f in fields.values()
    ]


def _events(pset: m.PolicySet, obj: str) -> list[Item]:
    return [
        Item(e.partition(".")[2], "event", "event")
        for e in pset.schema.events
        if e.startswith(f"{obj}.")
    ]


def _values(pset: m.PolicySet, path: str, written: Iterable[str] = ()) -> list[Item]:
    obj, _, name = path.partition(".")
    info = pset.schema.field(obj, name)
    if info is None:
        return []
    values = info.values if info.kind == "enum" else BOOL_VALUES if info.kind == "bool" else ()
    return [Item(v, "value", info.path) for v in values if v not in set(written)]


def _refs(pset: m.PolicySet, kinds: Iterable[str]) -> list[Item]:
    tables: dict[str, Iterable[str]] = {
        "person": pset.people,
        "team": pset.teams,
        "channel": pset.channels,
        "policy": pset.policies,
        "template": pset.templates,
    }
    return [Item(name, kind, kind) for kind in kinds for name in tables.get(kind, ())]


def _set_durations(pset: m.PolicySet) -> Iterator[int | None]:
    for p in pset.policies.values():
        yield p.after
        yield p.sla_acknowledge
        yield p.sla_resolve
        yield p.cooldown
        yield from (o.ack for o in p.owners)
        yield from (c.within for c in p.delivery_checks)
        yield from (c.within for c in p.state_checks)


def _durations(pset: m.PolicySet) -> list[Item]:
    seen = sorted({s for s in _set_durations(pset) if s}) or list(FALLBACK_DURATIONS)
    return [Item(format_duration(s), "duration", "duration") for s in seen]


def _words(words: Iterable[str], kind: str) -> list[Item]:
    return [Item(w, kind, kind) for w in words]


def _step_refs(pset: m.PolicySet, action: str) -> list[Item]:
    shape = ACTIONS.get(action, ())
    if shape and shape[0].startswith("ref:"):
        return _refs(pset, shape[0].removeprefix("ref:").split(","))
    return []


# (pattern on the line before the word being typed, what completes there)
_Rule = tuple[re.Pattern[str], Callable[[m.PolicySet, re.Match[str]], list[Item]]]
_RULES: tuple[_Rule, ...] = (
    (re.compile(r"^\s*(trigger|coverage)\b.*?\b([a-z_]\w*)\.$"), lambda p, x: _events(p, x[2])),
    (re.compile(r"([a-z_]\w*)\.$"), lambda p, x: _fields(p, x[1])),
    (re.compile(r"([a-z_]\w*\.[a-z_]\w*)\s*(==|!=)\s*$"), lambda p, x: _values(p, x[1])),
    (
        re.compile(r"([a-z_]\w*\.[a-z_]\w*)\s+(?:not\s+)?in\s*\(([^()]*)$"),
        lambda p, x: _values(p, x[1], re.findall(r"\w+", x[2])),
    ),
    (re.compile(r"\bowner\s+[a-z_]\w*\s+$"), lambda p, x: _refs(p, ("person", "team"))),
    (re.compile(r"\bowner\s+$"), lambda p, x: _words(n.OWNER_LEVELS, "level")),
    (re.compile(r"\btriage\s+$"), lambda p, x: _refs(p, ("person", "team"))),
    (re.compile(r"\bhandoff\s+$"), lambda p, x: _refs(p, ("policy",))),
    (re.compile(r"\buse\s+$"), lambda p, x: _refs(p, ("template",))),
    (re.compile(r"\bthen\s+$"), lambda p, x: _refs(p, ("channel",))),
    (re.compile(r"^\s*members\b[\w\s,]*[\s,]$"), lambda p, x: _refs(p, ("person",))),
    (re.compile(r"\bstep\s+([a-z_]\w*)\s+$"), lambda p, x: _step_refs(p, x[1])),
    (re.compile(r"\bstep\s+$"), lambda p, x: _words(ACTIONS, "action")),
    (re.compile(r"^\s*sla\s+$"), lambda p, x: _words(SLA_KINDS, "keyword")),
    (re.compile(r"^\s*on\s+$"), lambda p, x: _words(ON_MOMENTS, "keyword")),
    (
        re.compile(r"\b(ack|after|within|cooldown|sla\s+[a-z_]\w*)\s+$"),
        lambda p, x: _durations(p),
    ),
    (
        re.compile(r"(\b(when|and|or|not|requires|state)\s+|\(\s*)$"),
        lambda p, x: [Item(f"{o}.", "object", "object") for o in p.schema.objects],
    ),
)


def keywords(before: str) -> list[str]:
    """The keywords the grammar accepts after ``before`` (none when it does not parse)."""
    try:
        ip = parser().parse_interactive(before)
        ip.exhaust_lexer()
        accepted: set[str] = ip.accepts()  # type: ignore[no-untyped-call]
    except LarkError:
        return []
    terminals = {t.name: t.pattern for t in parser().terminals}
    found = []
    for name in accepted:
        pattern = terminals.get(name)
        if isinstance(pattern, PatternStr) and pattern.value.isidentifier():
            found.append(pattern.value)
    return sorted(found)


def _before_cursor(text: str, line: int, col: int) -> str:
    lines = text.split("\n")
    if not 1 <= line <= len(lines):
        return text
    return "\n".join([*lines[: line - 1], lines[line - 1][: col - 1]])


def complete(text: str, line: int, col: int, pset: m.PolicySet | None) -> list[Item]:
    """Completions at the 1-based (line, col) of ``text``, given the set's symbols."""
    before = _before_cursor(text, line, col)
    prefix = before.rsplit("\n", 1)[-1]
    word = _WORD.search(prefix)
    typed = word.group(0) if word else ""
    head = prefix[: len(prefix) - len(typed)]
    start = col - len(typed)
    found: list[Item] = []
    if pset is not None:
        for pattern, make in _RULES:
            matched = pattern.search(head)
            if matched:
                found = make(pset, matched)
                break
    if not head.endswith("."):
        found += _words(keywords(before[: len(before) - len(typed)]), "keyword")
    return [Item(i.label, i.kind, i.detail, start) for i in found if i.label.startswith(typed)]
