"""The generated policy sets (``realistic.py``) as Cedar policies, decided by ``cedarpy``.

Each policy becomes one Cedar ``permit``, in spec order, so Cedar's policy id
``policy<i>`` is spec ``i``::

    @id("p00012")
    permit(principal, action in [Action::"ticket.created", Action::"ticket.updated"], resource)
    when { ((context.ticket has queue && context.ticket.queue == "q7") && ...) };

The condition keeps Escalade's semantics: every comparison on a missing field is
false (each one is guarded by ``has``, ``!=`` and ``not in`` included), a set is
tested with ``.contains``, ``not`` is plain negation. Cedar has no priorities, so
the owner is found the way Cedar does best: one ``is_authorized`` call evaluates
every policy and its diagnostics list the satisfied ones (``reasons``); the owner
is the one of highest priority among them (then by name, as the matcher does).
The policy set and the (empty) entity store are parsed once into cedarpy handles,
and each event's request is built before timing, so a timed decision is one
``is_authorized`` call plus picking the owner.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from realistic import Cond, Spec

USER = 'User::"escalade"'


def _quoted(text: str) -> str:
    return json.dumps(text)  # a Cedar string literal: the same escapes as JSON


def _present(path: str) -> tuple[str, str]:
    """(guard, expression) for ``ticket.severity``: the guard holds when the field is there."""
    obj, name = path.split(".", 1)
    return f"context has {obj} && context.{obj} has {name}", f"context.{obj}.{name}"


def _literal(value: Any) -> str:
    if isinstance(value, str):
        return _quoted(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"Cedar has no literal for {value!r} (integers and strings only)")


def condition(c: Cond) -> str:
    """A condition of the pack (``{"op": ...}``) as a Cedar expression, Escalade's semantics."""
    op = c["op"]
    if op in ("and", "or"):
        joined = f" {'&&' if op == 'and' else '||'} ".join(condition(a) for a in c["args"])
        return f"({joined})"
    if op == "not":
        return f"!{condition(c['arg'])}"
    guard, field = _present(c["field"])
    if op == "cmp":
        test = f"{field} {c['cmp']} {_literal(c['value'])}"
    elif op in ("in", "not_in"):
        members = ", ".join(_literal(v) for v in c["values"])
        test = f"{'!' if op == 'not_in' else ''}[{members}].contains({field})"
    elif op == "has":
        test = f"{field}.contains({_quoted(c['tag'])})"
    else:
        raise ValueError(f"unknown condition operator {op!r}")
    return f"({guard} && {test})"


def policy(spec: Spec) -> str:
    actions = ", ".join(f"Action::{_quoted(kind)}" for kind in spec.triggers)
    return (
        f"@id({_quoted(spec.name)})\n"
        f"permit(principal, action in [{actions}], resource)\n"
        f"when {{ {condition(spec.when)} }};\n"
    )


def context(state: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """An event's state as a Cedar context: a missing (null) field is left out."""
    return {
        obj: {k: v for k, v in fields.items() if v is not None} for obj, fields in state.items()
    }


class CedarOwner:
    """Cedar's answer to "who owns this event": the satisfied policy of highest priority."""

    def __init__(self, specs: Sequence[Spec]) -> None:
        import cedarpy  # the bench extra; the caller reports it missing

        self._cedar = cedarpy
        self.text = "\n".join(policy(s) for s in specs)
        self.policies = cedarpy.PolicySet.from_str(self.text)
        self.entities = cedarpy.Entities.from_json_str("[]")
        # policy<i> is specs[i]; the best of several is the highest priority, then the name
        self._rank = {f"policy{i}": (-s.priority, s.name) for i, s in enumerate(specs)}

    @staticmethod
    def request(event_type: str, ticket: str, state: dict[str, dict[str, Any]]) -> dict[str, Any]:
        return {
            "principal": USER,
            "action": f"Action::{_quoted(event_type)}",
            "resource": f"Ticket::{_quoted(ticket)}",
            "context": context(state),
        }

    def owner(self, request: dict[str, Any]) -> str | None:
        """The name of the owning policy for a request from :meth:`request` (None: nobody)."""
        result = self._cedar.is_authorized(request, self.policies, self.entities)
        satisfied = result.diagnostics.reasons
        if not satisfied:
            return None
        return min(self._rank[p] for p in satisfied)[1]

    def errors(self, request: dict[str, Any]) -> list[str]:
        """Cedar's evaluation errors for a request (a policy that errs is not satisfied)."""
        return list(
            self._cedar.is_authorized(request, self.policies, self.entities).diagnostics.errors
        )
