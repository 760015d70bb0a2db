"""The published JSON Schema of ``escalade.rulepack/v1``: verdict fast, messages as always.

The verdict comes from a compiled validator (``jsonschema_rs``, Rust) when it is
installed: about 10 ms for a 1,000-policy pack where the ``jsonschema`` package
takes seconds. Only a pack it refuses is handed to ``jsonschema``, which words
every problem with its location, exactly as before; and when ``jsonschema``
finds nothing wrong the pack is valid. So a pack is refused exactly when
``jsonschema`` refuses it, provided the compiled validator never accepts what
``jsonschema`` refuses: it is stricter in one place (``$`` in a pattern does not
match before a final newline) and it reads a tuple as an array, so it is only
asked about documents made of JSON's own types (``json_typed``). It recurses on
the thread's stack (about 1 KB a level: a 256 KB thread stack overflows near 300
levels), so it is only asked about documents at most :data:`FAST_MAX_DEPTH` deep;
a deeper one (a condition nested a hundred times) is left to ``jsonschema``.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from functools import cache
from importlib import resources
from typing import Any

SCHEMA_RESOURCE = "rulepack.schema.json"
FAST_MAX_DEPTH = 128  # containers; packs built from real policies nest about 10 deep


@cache
def pack_schema() -> dict[str, Any]:
    """The published JSON Schema (Draft 2020-12) of ``escalade.rulepack/v1``."""
    text = resources.files("escalade.runtime").joinpath(SCHEMA_RESOURCE).read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@cache
def _validator() -> Any:
    """The ``jsonschema`` validator: the reference verdict and the worded problems."""
    import jsonschema

    return jsonschema.Draft202012Validator(pack_schema())


def compile_fast(schema: dict[str, Any]) -> Any | None:
    """A compiled validator of ``schema``, or None where ``jsonschema_rs`` is not installed."""
    try:
        import jsonschema_rs
    except ImportError:
        return None
    return jsonschema_rs.Draft202012Validator(schema)


@cache
def fast_validator() -> Any | None:
    """The compiled validator of the pack schema (None: ``jsonschema_rs`` not installed)."""
    return compile_fast(pack_schema())


def compiled_verdict(validator: Any | None, document: Any) -> bool | None:
    """True when the compiled ``validator`` accepts ``document``, False when it refuses it,
    None when it cannot tell (no validator, or a value it cannot read: only JSON's own types
    at most :data:`FAST_MAX_DEPTH` deep should be asked)."""
    if validator is None:
        return None
    try:
        return bool(validator.is_valid(document))
    except (ValueError, TypeError, OverflowError, RecursionError):
        return None


def fast_verdict(pack: Any) -> bool | None:
    """:func:`compiled_verdict` of the pack schema's compiled validator on ``pack``."""
    return compiled_verdict(fast_validator(), pack)


def _pointer(path: Sequence[Any]) -> str:
    return "/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path)


def schema_problems(pack: Any, *, json_typed: bool = False) -> list[str]:
    """Every place ``pack`` breaks the published schema, as ``/json/pointer: message``.

    ``json_typed``: ``pack`` holds only dict, list, str, int, float, bool and None and
    nests at most :data:`FAST_MAX_DEPTH` deep, so the compiled validator may give the
    verdict."""
    if json_typed and fast_verdict(pack):
        return []
    old = sys.getrecursionlimit()
    # Conditions nest up to 200 deep; each level costs the validator several frames.
    sys.setrecursionlimit(max(old, 20_000))
    try:
        errors = sorted(_validator().iter_errors(pack), key=lambda e: list(map(str, e.path)))
    finally:
        sys.setrecursionlimit(old)
    from jsonschema.exceptions import best_match

    out = []
    for err in errors:
        # A failed oneOf/if-then: the most relevant sub-error says what is wrong.
        best = best_match(err.context) if err.context else err
        if best is None or len(best.absolute_path) < len(err.absolute_path):
            best = err
        out.append(f"{_pointer(list(best.absolute_path))}: {best.message}")
    return out
