"""Evaluate rule-pack conditions against a ticket's state.

A condition is the JSON form from the pack (``escalade.rulepack/v1``)::

    {"op": "and", "args": [...]} | {"op": "or", "args": [...]} | {"op": "not", "arg": C}
    {"op": "cmp", "field": "ticket.severity", "cmp": "==", "value": "critical"}
    {"op": "in" | "not_in", "field": "...", "values": [...]}
    {"op": "has", "field": "ticket.tags", "tag": "vendor_outage"}

A state maps object names to field values: ``{"ticket": {...}, "account": {...}}``.

Missing-field semantics (SPEC §1): every comparison on a missing field is false
(``!=`` and ``not_in`` included), a missing set is empty (``has`` is false), and
``not`` is plain negation. ``None`` (JSON ``null``) counts as missing. A value of
the wrong kind (a number where text is expected, a bool where a number is) never
raises: it is treated like a missing value, so the comparison is false.

>>> cond = {"op": "cmp", "field": "ticket.severity", "cmp": "==", "value": "critical"}
>>> evaluate(cond, {"ticket": {"severity": "critical"}})
True
>>> evaluate({"op": "not", "arg": cond}, {})
True
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

State = Mapping[str, Mapping[str, Any]]
Predicate = Callable[[State], bool]
Condition = Mapping[str, Any]

CMP_OPS = ("==", "!=", "<", "<=", ">", ">=")
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_EMPTY: Mapping[str, Any] = {}
_SET_TYPES = (list, tuple, set, frozenset)


class ConditionError(ValueError):
    """A condition that is not well-formed (the pack schema normally rejects it first)."""


def _always(_state: State) -> bool:
    return True


def split_field(path: str) -> tuple[str, str]:
    """``"ticket.severity"`` -> ``("ticket", "severity")``."""
    obj, sep, name = path.partition(".")
    if not sep or not obj or not name:
        raise ConditionError(f"field {path!r} is not of the form object.field")
    return obj, name


def _same_kind(actual: Any, expected: Any) -> bool:
    """True when ``actual`` may be compared with ``expected`` (bool is not a number)."""
    if isinstance(expected, bool):
        return isinstance(actual, bool)
    if isinstance(expected, int | float):
        return isinstance(actual, int | float) and not isinstance(actual, bool)
    if isinstance(expected, str):
        return isinstance(actual, str)
    return False


def _compile_cmp(obj: str, name: str, cmp: str, value: Any) -> Predicate:
    if cmp == "==":
        if isinstance(value, str):
            # A str never equals a non-str, and a missing value (None) never equals a str.
            def eq_str(state: State) -> bool:
                return state.get(obj, _EMPTY).get(name) == value

            return eq_str

        def eq(state: State) -> bool:
            actual = state.get(obj, _EMPTY).get(name)
            return actual is not None and _same_kind(actual, value) and actual == value

        return eq
    if cmp == "!=":

        def ne(state: State) -> bool:
            actual = state.get(obj, _EMPTY).get(name)
            return actual is not None and _same_kind(actual, value) and actual != value

        return ne
    order = _ORDER.get(cmp)
    if order is None:
        raise ConditionError(f"unknown comparison {cmp!r}")

    def ordered(state: State) -> bool:
        actual = state.get(obj, _EMPTY).get(name)
        return actual is not None and _same_kind(actual, value) and order(actual, value)

    return ordered


def _compile_in(obj: str, name: str, values: Sequence[Any], negate: bool) -> Predicate:
    if all(isinstance(v, str) for v in values):
        members = frozenset(values)

        def in_text(state: State) -> bool:
            actual = state.get(obj, _EMPTY).get(name)
            if not isinstance(actual, str):
                return False
            return (actual in members) != negate

        return in_text

    listed = tuple(values)

    def in_any(state: State) -> bool:
        actual = state.get(obj, _EMPTY).get(name)
        comparable = [v for v in listed if _same_kind(actual, v)]
        if not comparable:  # missing, or a value of another kind: like `!=`, false
            return False
        return any(actual == v for v in comparable) != negate

    return in_any


def _compile_has(obj: str, name: str, tag: str) -> Predicate:
    def has(state: State) -> bool:
        actual = state.get(obj, _EMPTY).get(name)
        if not isinstance(actual, _SET_TYPES):
            return False
        try:
            return tag in actual
        except TypeError:  # an unhashable element in a set-typed value
            return False

    return has


def compile_condition(cond: Condition | None) -> Predicate:
    """Compile a condition to a closure ``state -> bool`` (``None`` -> always true).

    >>> f = compile_condition({"op": "in", "field": "account.tier", "values": ["pro", "enterprise"]})
    >>> f({"account": {"tier": "pro"}}), f({"account": {}})
    (True, False)
    """
    if cond is None:
        return _always
    if not isinstance(cond, Mapping):
        raise ConditionError(f"a condition must be an object, not {type(cond).__name__}")
    op = cond.get("op")
    if op in ("and", "or"):
        parts = [compile_condition(c) for c in _args(cond)]
        return _compile_junction(op, parts)
    if op == "not":
        inner = compile_condition(_arg(cond))

        def negated(state: State) -> bool:
            return not inner(state)

        return negated
    if op == "cmp":
        obj, name = split_field(_field(cond))
        cmp = cond.get("cmp")
        if cmp not in CMP_OPS:
            raise ConditionError(f"unknown comparison {cmp!r}")
        return _compile_cmp(obj, name, str(cmp), cond.get("value"))
    if op in ("in", "not_in"):
        obj, name = split_field(_field(cond))
        return _compile_in(obj, name, _values(cond), negate=op == "not_in")
    if op == "has":
        obj, name = split_field(_field(cond))
        tag = cond.get("tag")
        if not isinstance(tag, str):
            raise ConditionError("`has` needs a string tag")
        return _compile_has(obj, name, tag)
    raise ConditionError(f"unknown condition operator {op!r}")


def _compile_junction(op: str, parts: list[Predicate]) -> Predicate:
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:
        a, b = parts
        if op == "and":

            def and2(state: State) -> bool:
                return a(state) and b(state)

            return and2

        def or2(state: State) -> bool:
            return a(state) or b(state)

        return or2
    # Fold longer chains into nested pairs: cheaper per call than all()/any() over a generator.
    return _compile_junction(op, [_compile_junction(op, parts[:2]), *parts[2:]])


def _args(cond: Condition) -> list[Condition]:
    args = cond.get("args")
    if not isinstance(args, list) or not args:
        raise ConditionError(f"`{cond.get('op')}` needs a non-empty list of args")
    return args


def _arg(cond: Condition) -> Condition:
    arg = cond.get("arg")
    if not isinstance(arg, Mapping):
        raise ConditionError("`not` needs an arg")
    return arg


def _field(cond: Condition) -> str:
    path = cond.get("field")
    if not isinstance(path, str):
        raise ConditionError(f"`{cond.get('op')}` needs a field")
    return path


def _values(cond: Condition) -> list[Any]:
    values = cond.get("values")
    if not isinstance(values, list):
        raise ConditionError(f"`{cond.get('op')}` needs a list of values")
    return values


def evaluate(cond: Condition | None, state: State) -> bool:
    """Evaluate ``cond`` against ``state`` once (compile and call)."""
    return compile_condition(cond)(state)


# --- explanation -------------------------------------------------------------


def format_value(value: Any) -> str:
    """Render a literal the way policies write it: bare names, quoted text, numbers."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        if value and (value[0].isalpha() or value[0] == "_") and value.replace("_", "a").isalnum():
            return value if value.isascii() else json.dumps(value)
        return json.dumps(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return json.dumps(value) if value is not None else "missing"


def format_condition(cond: Condition | None) -> str:
    """Render a condition as policy source text.

    >>> format_condition({"op": "and", "args": [
    ...     {"op": "cmp", "field": "ticket.severity", "cmp": "==", "value": "critical"},
    ...     {"op": "has", "field": "ticket.tags", "tag": "vip"}]})
    'ticket.severity == critical and ticket.tags has "vip"'
    """
    if cond is None:
        return "true"
    return _format(cond, parent=None)


def _format(cond: Condition, parent: str | None) -> str:
    op = cond.get("op")
    if op in ("and", "or"):
        text = f" {op} ".join(_format(c, str(op)) for c in _args(cond))
        return f"({text})" if parent is not None and parent != op else text
    if op == "not":
        return f"not {_format(_arg(cond), 'not')}"
    if op == "cmp":
        return f"{_field(cond)} {cond.get('cmp')} {format_value(cond.get('value'))}"
    if op in ("in", "not_in"):
        word = "in" if op == "in" else "not in"
        values = ", ".join(format_value(v) for v in _values(cond))
        return f"{_field(cond)} {word} ({values})"
    if op == "has":
        return f"{_field(cond)} has {json.dumps(cond.get('tag'))}"
    raise ConditionError(f"unknown condition operator {op!r}")


def field_value(state: State, path: str) -> Any:
    """The value of ``object.field`` in ``state``, or ``None`` when missing."""
    obj, name = split_field(path)
    return state.get(obj, _EMPTY).get(name)


def atoms(cond: Condition | None) -> list[Condition]:
    """The comparison atoms of a condition, left to right."""
    found: list[Condition] = []

    def walk(c: Condition) -> None:
        op = c.get("op")
        if op in ("and", "or"):
            for sub in _args(c):
                walk(sub)
        elif op == "not":
            walk(_arg(c))
        else:
            found.append(c)

    if cond is not None:
        walk(cond)
    return found


def explain_condition(cond: Condition | None, state: State) -> list[tuple[str, bool]]:
    """Each atom of ``cond`` as source text with whether it holds on ``state``.

    Atoms are listed left to right; an atom directly under ``not`` is shown
    with its own truth value (the ``not`` is applied by the enclosing result).

    >>> explain_condition({"op": "cmp", "field": "ticket.severity", "cmp": "==",
    ...                    "value": "critical"}, {"ticket": {"severity": "low"}})
    [('ticket.severity == critical', False)]
    """
    return [(format_condition(a), evaluate(a, state)) for a in atoms(cond)]
