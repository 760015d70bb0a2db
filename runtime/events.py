"""Reading events (and operator commands in replay files) against the pack schema.

Event format (pinned)::

    {"id": "evt-1", "type": "ticket.created", "at": "2026-11-27T10:00:00Z",
     "data": {"ticket": {"id": "T1", ...}, "account": {...}}}

Unknown objects, unknown fields and unknown top-level keys are ignored and
counted (upstream systems grow fields). Anything else wrong — not JSON, no id
or type, an event kind the pack does not declare, no ticket id, a known field
with a value of the wrong type — raises :class:`EventError` with a message
that says which field and why; the engine then dead-letters the input.

Replay files (``simulate``) may also hold operator commands, so a replayed day
includes what people did::

    {"command": "ack", "at": "...", "ticket": "T1", "by": "alice"}
    {"command": "resolve" | "close", "at": "...", "ticket": "T1"}
    {"command": "transfer", "at": "...", "ticket": "T1", "to": "dana", "reason": "...", "sla": "2h"}
    {"command": "absent", "at": "...", "person": "carol", "until": "..."}
    {"command": "postmortem", "at": "...", "ticket": "T1", "link": "https://..."}
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from escalade.runtime.clock import TimeError, parse_duration, parse_time
from escalade.runtime.pack import FieldType, RulePack
from escalade.runtime.textio import TextError, loads_json

TOP_LEVEL = ("id", "type", "at", "data")
COMMANDS: dict[str, tuple[str, ...]] = {
    "ack": ("ticket", "by"),
    "resolve": ("ticket",),
    "close": ("ticket",),
    "transfer": ("ticket", "to", "reason", "sla"),
    "absent": ("person", "until"),
    "postmortem": ("ticket", "link"),
}


class EventError(ValueError):
    """A malformed event: the message names the field and what was wrong."""

    def __init__(self, message: str, event_id: str | None = None) -> None:
        super().__init__(message)
        self.event_id = event_id


@dataclass(frozen=True, slots=True)
class Event:
    """A validated event: values converted (times to epoch seconds, sets to sorted lists)."""

    id: str
    type: str
    at: int
    ticket: str
    data: dict[str, dict[str, Any]]
    raw: str
    unknown: tuple[str, ...] = ()  # dotted paths that were ignored


@dataclass(frozen=True, slots=True)
class Command:
    """An operator action from a replay file."""

    name: str
    at: int
    args: dict[str, Any] = field(default_factory=dict)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a bool"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    return "an object"


def _convert(path: str, spec: FieldType, value: Any) -> Any:
    """Check ``value`` against the field's declared type and return the stored form."""
    kind = spec.kind
    if kind == "text":
        if isinstance(value, str):
            return value
    elif kind == "number":
        if isinstance(value, int | float) and not isinstance(value, bool):
            return value
    elif kind == "bool":
        if isinstance(value, bool):
            return value
    elif kind == "set":
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return sorted(set(value))
        raise EventError(f"{path}: expected a list of text tags, got {_describe(value)}")
    elif kind in ("time", "duration"):
        seconds = _seconds(path, value, parse_time if kind == "time" else parse_duration)
        if seconds is not None:
            return seconds
    elif kind == "enum":
        values = spec.values
        if isinstance(value, str) and value in values:
            return value
        if isinstance(value, str):
            raise EventError(f"{path}: {value!r} is not one of {', '.join(values)}")
        raise EventError(f"{path}: expected one of {', '.join(values)}, got {_describe(value)}")
    else:
        return value
    raise EventError(f"{path}: expected {kind}, got {_describe(value)}")


def _seconds(path: str, value: Any, read: Callable[[str], int]) -> int | None:
    """A number as whole seconds, or text read by ``read``; None for any other type."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return read(value)
        except TimeError as exc:
            raise EventError(f"{path}: {exc}") from None
    return None


def _time_of(value: Any, what: str) -> int:
    seconds = _seconds(what, value, parse_time)
    if seconds is None:
        raise EventError(f"{what}: expected an ISO-8601 time, got {_describe(value)}")
    return seconds


def load_json(raw: str | bytes | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """Parse one JSON object; return it with its canonical text."""
    if isinstance(raw, Mapping):
        obj = dict(raw)
        return obj, json.dumps(obj, sort_keys=True)
    try:
        obj = loads_json(raw, "event")
    except TextError as exc:
        raise EventError(str(exc).removeprefix("event").lstrip(":").lstrip()) from None
    text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw.removeprefix("\ufeff")
    if not isinstance(obj, dict):
        raise EventError(f"an event is a JSON object, not {_describe(obj)}")
    return obj, text.strip()


def parse_event(
    raw: str | bytes | Mapping[str, Any], schema: RulePack | Mapping[str, Any]
) -> Event:
    """Validate one event against the schema of a pack."""
    # the pack's raw `schema` section: compiler callers not yet moved to the typed pack
    view = schema if isinstance(schema, RulePack) else _schema_view(schema)
    obj, text = load_json(raw)
    event_id = obj.get("id")
    if "id" not in obj:
        raise EventError("missing `id` (a non-empty string)")
    if not isinstance(event_id, str) or not event_id:
        raise EventError(f"`id` must be a non-empty string, not {_describe(event_id)}")
    type_ = obj.get("type")
    if not isinstance(type_, str) or not type_:
        raise EventError("missing `type` (e.g. ticket.created)", event_id)
    events = view.events
    if type_ not in events:
        raise EventError(f"unknown event type {type_!r} (known: {', '.join(events)})", event_id)
    if "at" not in obj:
        raise EventError("missing `at` (an ISO-8601 time)", event_id)
    try:
        at = _time_of(obj["at"], "at")
        data = obj.get("data", {})
        if not isinstance(data, dict):
            raise EventError(f"`data` must be an object, got {_describe(data)}")
        objects = view.objects
        unknown = [k for k in obj if k not in TOP_LEVEL]
        clean: dict[str, dict[str, Any]] = {}
        for name, fields in data.items():
            specs = objects.get(name)
            if specs is None:
                unknown.append(f"data.{name}")
                continue
            if not isinstance(fields, dict):
                raise EventError(f"data.{name} must be an object, got {_describe(fields)}")
            out: dict[str, Any] = {}
            for key, value in fields.items():
                spec = specs.get(key)
                if spec is None:
                    unknown.append(f"{name}.{key}")
                    continue
                out[key] = None if value is None else _convert(f"{name}.{key}", spec, value)
            clean[name] = out
        subject = type_.split(".", 1)[0]
        ticket = clean.get(subject, {}).get("id")
        if not isinstance(ticket, str) or not ticket:
            raise EventError(f"a {type_} event needs data.{subject}.id (the ticket it concerns)")
    except EventError as exc:
        raise EventError(str(exc), event_id) from None
    return Event(
        id=event_id, type=type_, at=at, ticket=ticket, data=clean, raw=text, unknown=tuple(unknown)
    )


def parse_command(obj: Mapping[str, Any]) -> Command:
    """Validate an operator command line of a replay file."""
    name = obj.get("command")
    if not isinstance(name, str) or name not in COMMANDS:
        raise EventError(f"unknown command {name!r} (known: {', '.join(COMMANDS)})")
    at = _time_of(obj.get("at"), "at")
    args: dict[str, Any] = {}
    for key in COMMANDS[name]:
        value = obj.get(key)
        if not isinstance(value, str) or not value:
            raise EventError(f"command {name} needs `{key}` (text)")
        args[key] = value
    try:
        if name == "transfer":
            args["sla"] = parse_duration(args["sla"])
        if name == "absent":
            args["until"] = parse_time(args["until"])
    except TimeError as exc:
        raise EventError(f"command {name}: {exc}") from None
    return Command(name=name, at=at, args=args)


def parse_line(
    raw: str | bytes | Mapping[str, Any], schema: RulePack | Mapping[str, Any]
) -> Event | Command:
    """An event or, when it has a ``command`` key, an operator command."""
    obj, _ = load_json(raw)
    if "command" in obj:
        return parse_command(obj)
    return parse_event(raw, schema)


@dataclass(frozen=True, slots=True)
class _SchemaView:
    events: tuple[str, ...]
    objects: Mapping[str, Mapping[str, FieldType]]


def _schema_view(schema: Mapping[str, Any]) -> _SchemaView:
    return _SchemaView(
        tuple(schema.get("events") or ()),
        {
            obj: {k: FieldType(t["type"], tuple(t.get("values", ()))) for k, t in fields.items()}
            for obj, fields in (schema.get("objects") or {}).items()
        },
    )
