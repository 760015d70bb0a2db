"""The one strict reader for text and JSON from outside."""

from __future__ import annotations

import pytest

from escalade.runtime.events import EventError, parse_event
from escalade.runtime.textio import TextError, decode_utf8, loads_json


def test_strict_utf8_with_location() -> None:
    assert decode_utf8(b"\xef\xbb\xbfok", "f") == "ok"
    with pytest.raises(TextError, match=r"^f:2:3: not UTF-8 text \(byte 0xff\)"):
        decode_utf8(b"a\nbc\xff", "f")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{", r"^f:1:2: not JSON"),
        ('{"a": NaN}', r"^f: not JSON: NaN is not a JSON number"),
        ("[" * 100_000, r"nested too deeply"),
    ],
)
def test_json_errors_are_located(raw: str, message: str) -> None:
    with pytest.raises(TextError, match=message):
        loads_json(raw, "f")


def test_event_errors_name_what_is_wrong() -> None:
    schema = {"events": ["ticket.created"], "objects": {"ticket": {"id": {"type": "text"}}}}
    with pytest.raises(EventError, match=r"`id` must be a non-empty string, not a number"):
        parse_event('{"id": 1, "type": "ticket.created"}', schema)
    with pytest.raises(EventError, match=r"nested too deeply"):
        parse_event(b"[" * 100_000, schema)
    with pytest.raises(EventError, match=r"not UTF-8"):
        parse_event(b'{"id": "\xff"}', schema)
