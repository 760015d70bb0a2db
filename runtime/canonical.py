"""Canonical JSON bytes: sorted keys, 2-space indent, UTF-8 as is, a trailing newline.

``json.dumps(..., indent=2)`` runs the standard library's pure-Python encoder
(its C encoder has no indentation), a generator per nesting level for every
value: about 0.2 s for a 1,000-policy pack. :func:`canonical_bytes` writes the
same bytes in one recursive pass that appends to a list, and hands anything
unusual (a subclass of a JSON type, a tuple, a key that is not text, a float
that is not finite, nesting too deep) to ``json.dumps`` itself, so every input
gives exactly the bytes ``json.dumps`` gives, or raises what it raises.

>>> canonical_bytes({"b": [1, 2.5, None], "a": {}})
b'{\\n  "a": {},\\n  "b": [\\n    1,\\n    2.5,\\n    null\\n  ]\\n}\\n'
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from json.encoder import encode_basestring  # the C function when the accelerator is there
from typing import Any


class _Unusual(Exception):
    """A value the fast encoder leaves to ``json.dumps``."""


def reference_bytes(doc: Any) -> bytes:
    """The definition: what ``json.dumps`` writes, with a trailing newline, as UTF-8."""
    text = json.dumps(doc, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False)
    return (text + "\n").encode("utf-8")


def canonical_bytes(doc: Any) -> bytes:
    """The canonical bytes of ``doc``: byte for byte :func:`reference_bytes`, faster."""
    text = canonical_text(doc)
    return reference_bytes(doc) if text is None else text.encode("utf-8")


def canonical_text(doc: Any) -> str | None:
    """The canonical text of ``doc`` (:func:`reference_bytes` before UTF-8), or None for
    a document the fast encoder leaves to ``json.dumps`` (see the module's docstring)."""
    parts: list[str] = []
    try:
        _encode(doc, "", parts.append)
    except (_Unusual, RecursionError):
        return None
    parts.append("\n")
    return "".join(parts)


def parse_canonical(data: bytes) -> Any | None:
    """The document ``data`` holds when ``data`` is exactly its canonical bytes, else None.

    Canonical bytes have no repeated key, no unpaired surrogate, no NaN and no number
    too large for a float (the canonical form of what such text parses to differs from
    it), so the plain parser reads them as the strict one does
    (:func:`escalade.runtime.textio.loads_json`), in a third of the time."""
    try:
        text = data.decode("utf-8")
        doc = json.loads(text)
    except (ValueError, RecursionError):  # not UTF-8, not JSON: the strict reader says why
        return None
    return doc if canonical_text(doc) == text else None


def _encode(value: Any, indent: str, out: Callable[[str], None]) -> None:
    kind = type(value)
    if kind is str:
        out(encode_basestring(value))
    elif kind is dict:
        _encode_dict(value, indent, out)
    elif kind is list:
        if not value:
            out("[]")
            return
        inner = indent + "  "
        sep, then = "[\n" + inner, ",\n" + inner
        for item in value:
            out(sep)
            _encode(item, inner, out)
            sep = then
        out("\n" + indent + "]")
    elif value is None:
        out("null")
    elif value is True:
        out("true")
    elif value is False:
        out("false")
    elif kind is int:
        out(int.__repr__(value))
    elif kind is float and math.isfinite(value):
        out(float.__repr__(value))
    else:
        raise _Unusual


def _encode_dict(value: dict[Any, Any], indent: str, out: Callable[[str], None]) -> None:
    if not value:
        out("{}")
        return
    inner = indent + "  "
    sep, then = "{\n" + inner, ",\n" + inner
    try:
        keys = sorted(value)
    except TypeError:  # keys of mixed types: json.dumps says so
        raise _Unusual from None
    for key in keys:
        if type(key) is not str:
            raise _Unusual
        out(sep)
        out(encode_basestring(key))
        out(": ")
        _encode(value[key], inner, out)
        sep = then
    out("\n" + indent + "}")


_SCALARS = (str, int, float, bool, type(None))


def plain_json(doc: Any) -> bool:
    """True when ``doc`` is made of dict (with text keys), list, str, int, float, bool and
    None only, the exact types ``json.loads`` gives (no subclass, no tuple)."""
    try:
        return _plain(doc)
    except RecursionError:
        return False


def _plain(value: Any) -> bool:
    kind = type(value)
    if kind is dict:
        return all(type(k) is str for k in value) and all(map(_plain, value.values()))
    if kind is list:
        return all(map(_plain, value))
    return kind in _SCALARS
