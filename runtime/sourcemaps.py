"""Field maps of inbound sources: from a vendor's webhook payload to an Escalade event.

A map (``runtime.sources.<name>.map`` in ``escalade.yaml``) names where each part of
the event comes from::

    map:
      id:   {template: "zendesk-{/id}"}          # text with {JSON pointers} filled in
      type: {pointer: /type, values: {"zen:event-type:ticket.created": ticket.created}}
      at:   /time                                 # a bare string is a JSON pointer (RFC 6901)
      fields:
        ticket.id: /detail/id
        ticket.severity: {pointer: /detail/priority, values: {URGENT: critical, HIGH: high}}
        account.tier: {value: enterprise}         # a constant

An entry is a pointer, ``{pointer: P}`` (with ``values`` to translate an enum,
``default`` when the value is absent or unmapped, ``required: true`` to refuse a
payload without it, ``format: epoch_s | epoch_ms`` to read a number as a time),
``{value: V}`` or ``{template: "...{/p}..."}``. ``id``, ``type`` and the ``<object>.id``
fields are required; ``at`` absent means the time the source's request arrived.
A field whose pointer finds nothing (or null) is left out of the event.

:func:`apply_map` raises :class:`MapError` naming the entry and the pointer. No I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_TEMPLATE = re.compile(r"\{(/[^{}]*)\}")
MISSING: Any = object()
TIME_FORMATS = ("epoch_s", "epoch_ms")


class MapError(ValueError):
    """The payload does not give what the map needs: the message says which entry and why."""


@dataclass(frozen=True, slots=True)
class Entry:
    """Where one value of the event comes from (see the module)."""

    pointer: str | None = None
    value: Any = MISSING
    template: str | None = None
    values: Mapping[str, Any] | None = None
    default: Any = MISSING
    required: bool = False
    format: str | None = None


@dataclass(frozen=True, slots=True)
class SourceMap:
    """The map of one source: the event's id, type and at, and its fields by ``object.field``."""

    id: Entry
    type: Entry
    fields: Mapping[str, Entry]
    at: Entry | None = None


def entry_of(raw: Any) -> Entry:
    """An :class:`Entry` from its settings form (already checked by :func:`entry_problems`)."""
    if isinstance(raw, str):
        return Entry(pointer=raw)
    return Entry(
        pointer=raw.get("pointer"),
        value=raw.get("value", MISSING),
        template=raw.get("template"),
        values=raw.get("values"),
        default=raw.get("default", MISSING),
        required=bool(raw.get("required", False)),
        format=raw.get("format"),
    )


def map_of(raw: Mapping[str, Any]) -> SourceMap:
    """A :class:`SourceMap` from ``runtime.sources.<name>.map`` (already checked)."""
    at = raw.get("at")
    return SourceMap(
        id=entry_of(raw["id"]),
        type=entry_of(raw["type"]),
        fields={str(k): entry_of(v) for k, v in (raw.get("fields") or {}).items()},
        at=None if at is None else entry_of(at),
    )


def pointer_problem(pointer: str) -> str | None:
    """Why ``pointer`` is not a JSON pointer (RFC 6901), or None."""
    if pointer and not pointer.startswith("/"):
        return f"a JSON pointer starts with / (got {pointer!r})"
    if re.search(r"~[^01]|~$", pointer):
        return f"~ must be followed by 0 or 1 in a JSON pointer (got {pointer!r})"
    return None


def entry_problems(raw: Any) -> list[tuple[list[str], str]]:
    """What is wrong with one entry: (the key below the entry, the message) pairs."""
    if isinstance(raw, str):
        problem = pointer_problem(raw)
        return [([], problem)] if problem else []
    kinds = [k for k in ("pointer", "value", "template") if k in raw]
    if len(kinds) != 1:
        given = ", ".join(kinds) or "none"
        return [([], f"give exactly one of pointer, value or template (got {given})")]
    found: list[tuple[list[str], str]] = []
    if "pointer" in raw and (problem := pointer_problem(str(raw["pointer"]))):
        found.append((["pointer"], problem))
    if "template" in raw:
        for pointer in _TEMPLATE.findall(str(raw["template"])):
            if problem := pointer_problem(pointer):
                found.append((["template"], problem))
        if not _TEMPLATE.search(str(raw["template"])):
            found.append((["template"], "a template names at least one {/json/pointer}"))
    extra = [k for k in ("values", "default", "format", "required") if k in raw]
    if "pointer" not in raw and extra:
        found.append(([extra[0]], f"{extra[0]} applies to a pointer entry only"))
    return found


def resolve(doc: Any, pointer: str) -> Any:
    """The value at ``pointer`` in ``doc`` (:data:`MISSING` when there is none)."""
    if pointer == "":
        return doc
    here = doc
    for token in pointer[1:].split("/"):
        step = token.replace("~1", "/").replace("~0", "~")
        if isinstance(here, dict):
            if step not in here:
                return MISSING
            here = here[step]
        elif isinstance(here, list) and step.isdigit() and int(step) < len(here):
            here = here[int(step)]
        else:
            return MISSING
    return here


def _scalar_text(value: Any, where: str) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        raise MapError(f"{where}: expected text or a number, got {type(value).__name__}")
    return str(value)


def evaluate(entry: Entry, payload: Any, where: str) -> Any:
    """The value ``entry`` gives for ``payload`` (:data:`MISSING` for an absent optional one)."""
    if entry.value is not MISSING:
        return entry.value
    if entry.template is not None:

        def fill(found: re.Match[str]) -> str:
            value = resolve(payload, found.group(1))
            if value is MISSING or value is None:
                raise MapError(f"{where}: the payload has nothing at {found.group(1)}")
            return _scalar_text(value, f"{where} ({found.group(1)})")

        return _TEMPLATE.sub(fill, entry.template)
    pointer = entry.pointer or ""
    value = resolve(payload, pointer)
    if value is None:
        value = MISSING
    if value is not MISSING and entry.values is not None:
        key = _scalar_text(value, f"{where} ({pointer})")
        value = entry.values.get(key, MISSING)
        if value is MISSING and entry.default is MISSING:
            known = ", ".join(map(str, entry.values))
            raise MapError(f"{where}: {key!r} at {pointer} has no mapping (mapped: {known})")
    if value is MISSING and entry.default is not MISSING:
        value = entry.default
    if value is MISSING:
        if entry.required:
            raise MapError(f"{where}: the payload has nothing at {pointer}")
        return MISSING
    if entry.format in TIME_FORMATS:
        value = _time_text(value, entry.format, f"{where} ({pointer})")
    return value


def _time_text(value: Any, fmt: str, where: str) -> str:
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MapError(f"{where}: expected a number of {fmt} seconds, got {value!r}")
    seconds = value / 1000 if fmt == "epoch_ms" else value
    try:
        moment = datetime.fromtimestamp(int(seconds), UTC)
    except (OverflowError, OSError, ValueError):
        raise MapError(f"{where}: {value!r} is not a time") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def apply_map(source_map: SourceMap, payload: Any, received_at: str) -> dict[str, Any]:
    """The Escalade event ``payload`` maps to (``received_at``: its ``at`` without an ``at``
    entry). Raises :class:`MapError`; the event itself is checked by the engine's reader."""
    if not isinstance(payload, dict):
        raise MapError(f"the payload must be a JSON object, not {type(payload).__name__}")
    head: dict[str, Any] = {}
    for name, entry in (("id", source_map.id), ("type", source_map.type)):
        value = evaluate(entry, payload, f"map.{name}")
        if value is MISSING:
            raise MapError(f"map.{name}: the payload has nothing at {entry.pointer}")
        head[name] = _scalar_text(value, f"map.{name}")
    at: Any = received_at
    if source_map.at is not None:
        at = evaluate(source_map.at, payload, "map.at")
        if at is MISSING:
            raise MapError(f"map.at: the payload has nothing at {source_map.at.pointer}")
    data: dict[str, dict[str, Any]] = {}
    for path, entry in source_map.fields.items():
        obj, _, field = path.partition(".")
        where = f"map.fields.{path}"
        value = evaluate(entry, payload, where)
        if value is MISSING:
            if field == "id":
                raise MapError(f"{where}: the payload has nothing at {entry.pointer}")
            continue
        if field == "id":
            value = _scalar_text(value, where)
        data.setdefault(obj, {})[field] = value
    return {**head, "at": at, "data": data}


__all__ = [
    "Entry",
    "MapError",
    "SourceMap",
    "apply_map",
    "entry_problems",
    "map_of",
    "resolve",
]
