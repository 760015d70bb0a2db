"""Reading events (and operator commands in replay files) against the pack schema.

Event format (pinned)::

    {"id": "evt-1", "type": "ticket.created", "at": "2026-11-27T10:00:00Z",
     "data": {"ticket": {"id": "T1", ...}, "account": {...}}}

Unknown objects, unknown fields and unknown top-level keys are ignored and
counted (upstream systems grow fields). Anything else wrong — not JSON we
accept (:func:`~escalade.runtime.textio.loads_json`: a repeated key at any
level, text that is not Unicode), no id or type, an id that is not printable
text of at most 200 characters (``id`` and every ``data.<object>.id``: they
are keys in the store), an ``at`` that is not an ISO-8601 text with a zone, an
event kind the pack does not declare, no ticket id, a known field with a value
of the wrong type — raises :class:`EventError` with a message that says which
field and why; the engine then dead-letters the input.

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
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from escalade.runtime.clock import TimeError, parse_duration, parse_time, read_time
from escalade.runtime.pack import EventSchema, FieldType, RulePack
from escalade.runtime.textio import TextError, loads_json, printable

TOP_LEVEL = ("id", "type", "at", "data")
MAX_ID = 200  # characters of an event or object id
# What a store cannot keep as text: NUL (PostgreSQL) and unpaired surrogates (UTF-8);
# the other controls JSON never holds literally go with NUL.
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")
TIME_EXAMPLE = "2026-11-27T10:00:00Z"
COMMANDS: dict[str, tuple[str, ...]] = {
    "ack": ("ticket", "by"),
    "resolve": ("ticket",),
    "close": ("ticket",),
    "transfer": ("ticket", "to", "reason", "sla"),
    "absent": ("person", "until"),
    "postmortem": ("ticket", "link"),
    "silence": ("scope", "name", "until", "reason"),  # scope: policy | team; from its `at`
    "revert": ("ticket", "reason"),
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
        seconds = _seconds(path, value, zoned_time if kind == "time" else parse_duration)
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


def zoned_time(text: str) -> int:
    """An ISO-8601 time that says its zone (``Z`` or an offset), as epoch seconds.

    Read as :func:`~escalade.runtime.clock.parse_time` reads it, except that a
    time without a zone is refused: upstream systems disagree on what it means.

    >>> zoned_time("2026-11-27T11:00:00+01:00")
    1795773600
    """
    seconds = parse_time(text)
    if read_time(text.strip().upper()) is None:  # upper: parse_time's lowercase z
        raise TimeError(
            f"{text!r} has no zone: add Z (UTC) or an offset such as +01:00 (e.g. {TIME_EXAMPLE})"
        )
    return seconds


def id_problem(value: Any) -> str | None:
    """Why ``value`` cannot be an id (of an event, a ticket, an account), or None.

    An id is a key in the store, on the command line and in URLs: non-empty
    printable text (no control characters, no unpaired surrogates) of at most
    :data:`MAX_ID` characters."""
    if not isinstance(value, str) or not value:
        return f"must be a non-empty string, not {_describe(value)}"
    if len(value) > MAX_ID:
        return f"is {len(value)} characters long (at most {MAX_ID})"
    if not value.isprintable():
        bad = next(c for c in value if not c.isprintable())
        return (
            f"must be printable text: {value!r} holds U+{ord(bad):04X}"
            " (a control character, or not a character at all)"
        )
    return None


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


def _event_time(value: Any) -> int:
    """An event's ``at``: ISO-8601 text with a zone (a number or a bare time is ambiguous)."""
    if not isinstance(value, str):
        raise EventError(
            f"at: expected an ISO-8601 time with a zone (e.g. {TIME_EXAMPLE}),"
            f" got {_describe(value)}"
        )
    try:
        return zoned_time(value)
    except TimeError as exc:
        raise EventError(f"at: {exc}") from None


def _time_of(value: Any, what: str) -> int:
    seconds = _seconds(what, value, parse_time)
    if seconds is None:
        raise EventError(f"{what}: expected an ISO-8601 time, got {_describe(value)}")
    return seconds


def load_json(raw: str | bytes | Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """Parse one JSON object; return it with its text (a mapping: its canonical text).

    A mapping is read back from its JSON text, so it meets the same rules as text."""
    source: str | bytes
    if isinstance(raw, Mapping):
        try:
            source = json.dumps(dict(raw))
        except (TypeError, ValueError, RecursionError) as exc:
            raise EventError(f"not JSON: {exc}") from None
    else:
        source = raw
    try:
        obj = loads_json(source, "event")
    except TextError as exc:
        raise EventError(str(exc).removeprefix("event").lstrip(":").lstrip()) from None
    if not isinstance(obj, dict):
        raise EventError(f"an event is a JSON object, not {_describe(obj)}")
    if isinstance(raw, Mapping):
        return obj, json.dumps(obj, sort_keys=True)
    # loads_json has read it: strict UTF-8
    text = (
        source.decode("utf-8-sig") if isinstance(source, bytes) else source.removeprefix("\ufeff")
    )
    return obj, text.strip()


def storable_text(raw: str | bytes | Mapping[str, Any]) -> str:
    """The input as text any store keeps (the ``raw`` of a dead letter).

    Bytes that are not UTF-8 are replaced (U+FFFD); NUL and the other control
    characters JSON text never holds literally, and unpaired surrogates, which
    PostgreSQL or UTF-8 refuse, become ``\\uXXXX`` escapes. Text that could be
    a valid event is returned unchanged, so a dead letter replays as it came."""
    if isinstance(raw, bytes):
        text = raw.decode("utf-8", "replace")
    elif isinstance(raw, str):
        text = raw
    else:
        try:
            text = json.dumps(raw, sort_keys=True)
        except (TypeError, ValueError, RecursionError):
            text = repr(raw)
    return _UNSTORABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def parse_event(raw: str | bytes | Mapping[str, Any], schema: RulePack | EventSchema) -> Event:
    """Validate one event against the schema of a pack."""
    obj, text = load_json(raw)
    event_id = obj.get("id")
    if "id" not in obj:
        raise EventError("missing `id` (a non-empty string)")
    problem = id_problem(event_id)
    if problem is not None or not isinstance(event_id, str):
        raise EventError(f"`id` {problem}")
    type_ = obj.get("type")
    if not isinstance(type_, str) or not type_:
        raise EventError("missing `type` (e.g. ticket.created)", event_id)
    events = schema.events
    if type_ not in events:
        raise EventError(f"unknown event type {type_!r} (known: {', '.join(events)})", event_id)
    if "at" not in obj:
        raise EventError("missing `at` (an ISO-8601 time)", event_id)
    try:
        at = _event_time(obj["at"])
        data = obj.get("data", {})
        if not isinstance(data, dict):
            raise EventError(f"`data` must be an object, got {_describe(data)}")
        objects = schema.objects
        unknown = [printable(k) for k in obj if k not in TOP_LEVEL]
        clean: dict[str, dict[str, Any]] = {}
        for name, fields in data.items():
            specs = objects.get(name)
            if specs is None:
                unknown.append(f"data.{printable(name)}")
                continue
            if not isinstance(fields, dict):
                raise EventError(f"data.{name} must be an object, got {_describe(fields)}")
            out: dict[str, Any] = {}
            for key, value in fields.items():
                spec = specs.get(key)
                if spec is None:
                    unknown.append(f"{name}.{printable(key)}")
                    continue
                out[key] = None if value is None else _convert(f"{name}.{key}", spec, value)
            given = out.get("id")
            if isinstance(given, str) and given and (problem := id_problem(given)):
                raise EventError(f"data.{name}.id {problem}")
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
        if name in ("absent", "silence"):
            args["until"] = parse_time(args["until"])
        if name == "silence" and args["scope"] not in ("policy", "team"):
            raise EventError(
                f"command silence: scope must be policy or team, not {args['scope']!r}"
            )
    except TimeError as exc:
        raise EventError(f"command {name}: {exc}") from None
    return Command(name=name, at=at, args=args)


def parse_line(
    raw: str | bytes | Mapping[str, Any], schema: RulePack | EventSchema
) -> Event | Command:
    """An event or, when it has a ``command`` key, an operator command."""
    obj, _ = load_json(raw)
    if "command" in obj:
        return parse_command(obj)
    return parse_event(raw, schema)
