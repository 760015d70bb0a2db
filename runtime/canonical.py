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
    out = parts.append
    try:
        kind = type(doc)
        if kind is dict or kind is list:
            _container(doc, "", out)
        else:
            out(encode_basestring(doc) if kind is str else _scalar(doc, kind))
    except (_Unusual, TypeError, RecursionError):  # TypeError: a key that is not text
        return None
    out("\n")
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


def _container(value: dict[Any, Any] | list[Any], indent: str, out: Callable[[str], None]) -> None:
    """A dict or list at ``indent``; one string per item where it can (fewer appends)."""
    inner = indent + "  "
    sep = ",\n" + inner
    if type(value) is dict:
        if not value:
            out("{}")
            return
        lead = "{\n" + inner
        for key in sorted(value):
            item = value[key]
            kind = type(item)
            if kind is str:
                out(f"{lead}{encode_basestring(key)}: {encode_basestring(item)}")
            elif kind is dict or kind is list:
                out(f"{lead}{encode_basestring(key)}: ")
                _container(item, inner, out)
            else:
                out(f"{lead}{encode_basestring(key)}: {_scalar(item, kind)}")
            lead = sep
        out("\n" + indent + "}")
        return
    if not value:
        out("[]")
        return
    lead = "[\n" + inner
    for item in value:
        kind = type(item)
        if kind is str:
            out(lead + encode_basestring(item))
        elif kind is dict or kind is list:
            out(lead)
            _container(item, inner, out)
        else:
            out(lead + _scalar(item, kind))
        lead = sep
    out("\n" + indent + "]")


def _scalar(value: Any, kind: type) -> str:
    """null, true, false, an int or a finite float; anything else is unusual."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    raise _Unusual


_SCALARS = (str, int, float, bool, type(None))


def plain_json(doc: Any, max_depth: int) -> bool:
    """True when ``doc`` is made of dict (with text keys), list, str, int, float, bool and
    None only, the exact types ``json.loads`` gives (no subclass, no tuple), nested at
    most ``max_depth`` containers deep."""
    try:
        return _plain(doc, max_depth)
    except RecursionError:
        return False


def _plain(value: Any, depth: int) -> bool:
    kind = type(value)
    if kind is dict:
        if depth <= 0 or not all(type(k) is str for k in value):
            return False
        return all(_plain(v, depth - 1) for v in value.values())
    if kind is list:
        return depth > 0 and all(_plain(v, depth - 1) for v in value)
    return kind in _SCALARS


def canonical_depth_at_most(data: bytes, max_depth: int) -> bool:
    """For canonical bytes: no container nests deeper than ``max_depth`` (the contents
    of a container ``n`` deep are indented by ``2n`` spaces)."""
    return data.find(b"\n" + b" " * (2 * max_depth + 2)) < 0
