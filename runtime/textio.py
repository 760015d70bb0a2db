"""Reading text and JSON from outside strictly, with located errors.

Events, rule packs, test and replay files all come from other systems; one
reader decides what is acceptable: strict UTF-8 (a leading BOM is dropped),
JSON without NaN, Infinity or numbers too large for a float, every key unique
in its object, no text that is not Unicode (an unpaired surrogate such as the
escape ``\\ud800``), and no crash on absurd nesting. These are the rules of
I-JSON (RFC 7493) minus its limit on integers.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Cheap test on the text: only then is the decoded document searched.
_MAY_HOLD_SURROGATE = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")

Path = tuple[str | int, ...]


class TextError(ValueError):
    """Bytes or text that cannot be read; the message starts with ``shown[:line:col]``."""


def decode_utf8(data: bytes, shown: str) -> str:
    """Strict UTF-8 (a leading BOM is dropped); :class:`TextError` names ``shown:line:col``.

    >>> decode_utf8(b"caf\\xc3\\xa9", "x")
    'café'
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise TextError(
            f"{shown}:{line}:{column}: not UTF-8 text (byte 0x{data[exc.start]:02x})"
        ) from None


def printable(text: str) -> str:
    """``text`` safe to show on one line and to store anywhere: unprintable characters
    (controls, unpaired surrogates, ...) as ``\\uXXXX`` escapes.

    >>> printable("T1\\x00\\ud800é")
    'T1\\\\u0000\\\\ud800é'
    """
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() else f"\\u{ord(c):04x}" if ord(c) <= 0xFFFF else f"\\U{ord(c):08x}"
        for c in text
    )


def where(path: Path) -> str:
    """Words for a place in a JSON document: ``the top level``, else its JSON Pointer
    (RFC 6901) with unprintable characters escaped.

    >>> where(("data", "a/b", 0)), where(())
    ('/data/a~1b/0', 'the top level')
    """
    if not path:
        return "the top level"
    return "".join("/" + printable(str(p)).replace("~", "~0").replace("/", "~1") for p in path)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text[:40]} is too large a number")
    return value


def _values(document: Any) -> Iterator[tuple[Path, Any]]:
    """Every value of a decoded document with its path, in document order (no recursion)."""
    stack: list[tuple[Path, Any]] = [((), document)]
    while stack:
        path, value = stack.pop()
        yield path, value
        if isinstance(value, dict):
            stack.extend(((*path, k), v) for k, v in reversed(value.items()))
        elif isinstance(value, list):
            stack.extend(((*path, i), v) for i, v in reversed(list(enumerate(value))))


def _not_unicode(document: Any) -> str | None:
    """Where the first text holding an unpaired surrogate is (a value or a key), if any."""
    for path, value in _values(document):
        if isinstance(value, str) and _SURROGATE.search(value):
            return f"the text at {where(path)}"
        if isinstance(value, dict):
            for key in value:
                if _SURROGATE.search(key):
                    return f"the key {key!r} at {where(path)}"
    return None


def _path_of(document: Any, target: object) -> Path:
    return next((path for path, value in _values(document) if value is target), ())


def _repeated_key(pairs: list[tuple[str, Any]]) -> str:
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            return key
        seen.add(key)
    raise AssertionError("called only when a key repeats")


def loads_json(raw: bytes | str, shown: str) -> Any:
    """Parse JSON text strictly; :class:`TextError` says where and why it is not JSON
    we accept (the line and column of a syntax error, the JSON Pointer of a repeated
    key or of text that is not Unicode)."""
    text = decode_utf8(raw, shown) if isinstance(raw, bytes) else raw.removeprefix("\ufeff")
    repeated: list[tuple[dict[str, Any], str]] = []

    def unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj = dict(pairs)
        if len(obj) < len(pairs) and not repeated:
            repeated.append((obj, _repeated_key(pairs)))
        return obj

    try:
        document = json.loads(
            text, parse_constant=_no_constant, parse_float=_finite, object_pairs_hook=unique_keys
        )
    except json.JSONDecodeError as exc:
        raise TextError(f"{shown}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    except RecursionError:
        raise TextError(f"{shown}: not JSON we accept: nested too deeply") from None
    except ValueError as exc:
        raise TextError(f"{shown}: not JSON: {exc}") from None
    if repeated:
        obj, key = repeated[0]
        raise TextError(
            f"{shown}: not JSON we accept: the key {key!r} is repeated at"
            f" {where(_path_of(document, obj))} (keys must be unique)"
        )
    if _MAY_HOLD_SURROGATE.search(text):
        found = _not_unicode(document)
        if found is not None:
            raise TextError(
                f"{shown}: not JSON we accept: {found} holds an unpaired surrogate"
                " (such as \\ud800), which is not a Unicode character"
            )
    return document
