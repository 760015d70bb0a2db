"""The one strict reader for text and JSON from outside."""

from __future__ import annotations

from pathlib import Path

import pytest

from escalade.runtime.events import EventError, parse_event
from escalade.runtime.pack import EventSchema, PackError, RulePack
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
    schema = EventSchema.of(
        {"events": ["ticket.created"], "objects": {"ticket": {"id": {"type": "text"}}}}
    )
    with pytest.raises(EventError, match=r"`id` must be a non-empty string, not a number"):
        parse_event('{"id": 1, "type": "ticket.created"}', schema)
    with pytest.raises(EventError, match=r"nested too deeply"):
        parse_event(b"[" * 100_000, schema)
    with pytest.raises(EventError, match=r"not UTF-8"):
        parse_event(b'{"id": "\xff"}', schema)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ('{"a": 1, "a": 2}', r"^f: not JSON we accept: the key 'a' is repeated at the top level"),
        ('{"a": [{"b": {"c": 1, "c": 1}}]}', r"the key 'c' is repeated at /a/0/b \(keys must"),
        ('{"x/~y": {"k": 1, "k": 2}}', r"the key 'k' is repeated at /x~1~0y "),
        ('{"k\\u0000": {"q": 1, "q": 2}}', r"the key 'q' is repeated at /k\\u0000 "),
        (
            '["ok", "\\ud800"]',
            r"^f: not JSON we accept: the text at /1 holds an unpaired surrogate",
        ),
        ('"\\udfff"', r"the text at the top level holds an unpaired surrogate"),
        ('{"\\uDBFFx": 1}', r"the key '\\udbffx' at the top level holds an unpaired surrogate"),
        ('"\ud800"', r"the text at the top level holds an unpaired surrogate"),  # not an escape
        ("[1e400]", r"^f: not JSON: 1e400 is too large a number"),
        ("-1E+999", r"too large a number"),
    ],
)
def test_json_we_do_not_accept_is_refused_with_its_place(raw: str, message: str) -> None:
    with pytest.raises(TextError, match=message) as caught:
        loads_json(raw, "f")
    assert str(caught.value).isprintable()


def test_strict_json_still_reads_what_is_fine() -> None:
    text = '{"a": {"k": 1}, "b": {"k": 2}, "t": "\\ud83d\\udd25 \\\\ud800", "n": 1e300}'
    assert loads_json(text, "f") == {"a": {"k": 1}, "b": {"k": 2}, "t": "🔥 \\ud800", "n": 1e300}


def test_a_pack_with_a_repeated_key_is_refused_with_its_place() -> None:
    path = Path(__file__).resolve().parents[2] / "generated" / "rulepack.json"
    text = path.read_text("utf-8")
    assert RulePack.from_bytes(text.encode(), source="p.json").version
    repeated = text.replace('"metadata": {', '"metadata": {"content_hash": "x", ', 1)
    with pytest.raises(PackError) as caught:
        RulePack.from_bytes(repeated.encode(), source="p.json")
    assert "the key 'content_hash' is repeated at /metadata" in str(caught.value)
    assert str(caught.value).startswith("p.json")
