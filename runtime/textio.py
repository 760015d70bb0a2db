"""Reading text and JSON from outside strictly, with located errors.

Events, rule packs, test and replay files all come from other systems; one
reader decides what is acceptable: strict UTF-8 (a leading BOM is dropped),
JSON without NaN or Infinity, and no crash on absurd nesting.
"""

from __future__ import annotations

import json
from typing import Any


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


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def loads_json(raw: bytes | str, shown: str) -> Any:
    """Parse JSON text strictly; :class:`TextError` says where and why it is not JSON."""
    text = decode_utf8(raw, shown) if isinstance(raw, bytes) else raw.removeprefix("\ufeff")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise TextError(f"{shown}:{exc.lineno}:{exc.colno}: not JSON: {exc.msg}") from None
    except RecursionError:
        raise TextError(f"{shown}: not JSON we accept: nested too deeply") from None
    except ValueError as exc:
        raise TextError(f"{shown}: not JSON: {exc}") from None
