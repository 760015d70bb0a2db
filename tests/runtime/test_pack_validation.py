"""Pack loading reaches the verdicts it always reached, by faster roads (issue #12).

The reference is the loader as it was: the strict JSON reader, ``jsonschema``'s
Draft 2020-12 validator, the cross-references, and the content hash recomputed
from ``json.dumps``'s canonical bytes. Mutated packs, mutated bytes and random
JSON documents must get the same verdict, and the same worded problems, from
the fast roads: canonical bytes read by the plain parser, the compiled schema
validator, and one hash over intact bytes.

In ``make test`` the examples are derandomized (the same every run);
``ESCALADE_EXPLORE=1`` draws fresh ones.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalade.runtime import packschema
from escalade.runtime.canonical import (
    canonical_bytes,
    canonical_depth_at_most,
    parse_canonical,
    plain_json,
    reference_bytes,
)
from escalade.runtime.pack import FORMAT, PackError, RulePack, intact_hash, seal
from escalade.runtime.packrefs import reference_problems
from escalade.runtime.packschema import FAST_MAX_DEPTH, pack_schema, schema_problems
from escalade.runtime.textio import TextError, loads_json

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "generated" / "rulepack.json"
BASE: dict[str, Any] = json.loads(PACK.read_bytes())
EXPLORE = os.environ.get("ESCALADE_EXPLORE") == "1"
PROPERTY = settings(
    derandomize=not EXPLORE,
    database=None,
    max_examples=300 if EXPLORE else 120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
REFERENCE = jsonschema.Draft202012Validator(pack_schema())


def reference_problems_of(data: bytes) -> list[str]:
    """The loader as it was, step by step: [] when it loads ``data``."""
    try:
        raw = loads_json(data, "p.json")
    except TextError as exc:
        return [str(exc).removeprefix("p.json:").lstrip()]
    if not isinstance(raw, dict):
        return ["not an object"]
    if raw.get("format") != FORMAT:
        return ["another format"]
    problems = schema_problems(raw)  # jsonschema's verdict and words
    if not problems:
        problems = reference_problems(raw)
    if not problems:
        blank = {**raw, "metadata": {**raw["metadata"], "content_hash": "", "commit": None}}
        have = "sha256:" + hashlib.sha256(reference_bytes(blank)).hexdigest()
        if have != raw["metadata"]["content_hash"]:
            problems = [f"hash {have}"]
    return problems


def problems_of(data: bytes) -> list[str]:
    """What the loader says now: [] when it loads ``data``."""
    try:
        RulePack.from_bytes(data, source="p.json")
    except PackError as exc:
        return exc.problems
    return []


def same_verdict(data: bytes) -> None:
    want, got = reference_problems_of(data), problems_of(data)
    assert bool(got) == bool(want), (got, want)
    if want and not want[0].startswith(("not an object", "another format", "hash ")):
        assert got == want
    if want and want[0].startswith("hash "):
        assert "changed after it was built" in got[0]


# --------------------------------------------------------------------------- mutated packs

ODD_VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    7,
    1.0,
    2.5,
    -0.0,
    10**30,
    "",
    "x",
    "lower_name",
    "name\n",  # Python's `$` matches before a final newline; the compiled validator's does not
    "Bad Name",
    "ticket.severity",
    "ticket.severity\n",
    "sha256:" + "0" * 64,
    "/abs/path.esc",
    "C:\\policies\\a.esc",
    "primary",
    "enum",
    "weekly",
    [],
    ["a"],
    ["a", "a"],
    [1, 2],
    {},
    {"op": "cmp"},
    {"op": "and", "args": []},
    {"op": "not", "arg": {"op": "has", "field": "ticket.tags", "tag": "x"}},
    {"type": "enum"},
    {"type": "text", "values": ["a"]},
]
EXTRA_KEYS = ["extra", "values", "when", "ack", "kind", "postmortem", "ref", "text", "tag"]


def _paths(doc: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at] if at else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*at, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*at, i))
    return out


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def mutated_packs(draw: st.DrawFn) -> dict[str, Any]:
    """The committed pack with one to three edits: a value replaced by one of another
    type, range, pattern or enum; a key or an item dropped; a key or an item added."""
    doc = copy.deepcopy(BASE)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        parent, last = _at(doc, path[:-1]), path[-1]
        edit = draw(st.sampled_from(["replace", "replace", "drop", "add"]))
        if edit == "drop":
            del parent[last]
        elif edit == "add" and isinstance(parent[last], dict):
            parent[last][draw(st.sampled_from(EXTRA_KEYS))] = draw(st.sampled_from(ODD_VALUES))
        elif edit == "add" and isinstance(parent[last], list):
            parent[last].append(copy.deepcopy(draw(st.sampled_from(ODD_VALUES))))
        else:
            parent[last] = copy.deepcopy(draw(st.sampled_from(ODD_VALUES)))
    return doc


@PROPERTY
@given(mutated_packs())
def test_the_schema_verdict_is_jsonschemas(doc: dict[str, Any]) -> None:
    valid = REFERENCE.is_valid(doc)
    fast = packschema.fast_verdict(doc)
    assert not (fast and not valid), "the compiled validator accepted what jsonschema refuses"
    # The loader's verdict and words are jsonschema's, whichever validator answered.
    assert schema_problems(doc, json_typed=True) == schema_problems(doc)
    assert (schema_problems(doc, json_typed=True) == []) == valid


@PROPERTY
@given(mutated_packs())
def test_mutated_packs_get_the_reference_verdict(doc: dict[str, Any]) -> None:
    try:
        data = canonical_bytes(seal(doc))  # sealed, so only the edit can be wrong
    except (TypeError, AttributeError, ValueError):  # metadata edited into a non-object
        data = canonical_bytes(doc)
    same_verdict(data)


@pytest.mark.parametrize(
    "path",
    [("metadata", "content_hash"), ("schema", "events", 0), ("policies", 2, "triggers", 0)],
)
def test_where_the_compiled_validator_is_stricter_jsonschema_decides(path: tuple[Any, ...]) -> None:
    """A pattern's ``$`` matches before a final newline in Python, not in jsonschema-rs:
    such a value is valid for jsonschema, refused by the compiled validator, and valid
    for the loader's schema check (which then asks jsonschema)."""
    doc = copy.deepcopy(BASE)
    _at(doc, path[:-1])[path[-1]] += "\n"
    assert REFERENCE.is_valid(doc) and packschema.fast_verdict(doc) is False
    assert schema_problems(doc, json_typed=True) == []


def test_the_compiled_validator_is_installed_and_used() -> None:
    """Without it every verdict above is jsonschema's: the property would prove nothing."""
    assert packschema.fast_validator() is not None
    assert packschema.fast_verdict(BASE) is True
    assert packschema.fast_verdict({**BASE, "format": 1}) is False


def test_a_tuple_is_not_an_array(monkeypatch: pytest.MonkeyPatch) -> None:
    """jsonschema-rs reads a tuple as an array; jsonschema refuses it, and so does the loader."""
    doc = copy.deepcopy(BASE)
    doc["metadata"]["actions"] = tuple(doc["metadata"]["actions"])
    assert packschema.fast_verdict(doc) is True and not REFERENCE.is_valid(doc)
    with pytest.raises(PackError, match=r"/metadata/actions: .* is not of type 'array'"):
        RulePack.from_dict(doc, verify_hash=False)


def test_deep_packs_are_left_to_jsonschema(monkeypatch: pytest.MonkeyPatch) -> None:
    cond: dict[str, Any] = BASE["policies"][2]["when"]
    for _ in range(FAST_MAX_DEPTH):
        cond = {"op": "not", "arg": cond}
    doc = copy.deepcopy(BASE)
    doc["policies"][2]["when"] = cond
    data = canonical_bytes(seal(doc))
    assert not plain_json(doc, FAST_MAX_DEPTH)
    assert not canonical_depth_at_most(data, FAST_MAX_DEPTH)
    # Both measures of depth agree: the committed pack is 10 containers deep (schedules).
    depths = [d for d in range(1, 30) if plain_json(BASE, d)]
    assert depths == [d for d in range(1, 30) if canonical_depth_at_most(SEALED, d)]
    assert depths[0] == 10 and plain_json(BASE, FAST_MAX_DEPTH)

    def crash(_doc: Any) -> bool:
        raise AssertionError("asked the compiled validator about a deep pack")

    monkeypatch.setattr(packschema, "fast_verdict", crash)
    assert RulePack.from_bytes(data).policy("enterprise_critical").when == cond
    assert RulePack.from_dict(seal(doc)).policy("enterprise_critical").when == cond


# --------------------------------------------------------------------------- mutated bytes

SEALED = canonical_bytes(seal(BASE))


def _byte_edits() -> st.SearchStrategy[bytes]:
    at = st.integers(0, len(SEALED) - 1)
    line = st.sampled_from([n for n, c in enumerate(SEALED) if c == 0x0A])
    return st.one_of(
        at.map(lambda i: SEALED[:i] + b" " + SEALED[i:]),  # a space anywhere
        line.map(lambda i: SEALED[:i] + SEALED[i + 1 :]),  # a line break removed
        line.map(lambda i: SEALED[: i + 1] + b"  " + SEALED[i + 1 :]),  # indented wrongly
        st.just(SEALED.replace(b'"format": ', b'"format": "x",\n  "format": ', 1)),  # repeated
        st.just(SEALED.replace(b'"version": "', b'"version": "\\ud800', 1)),  # a surrogate
        st.just(SEALED.replace(b'"priority": 100', b'"priority": NaN', 1)),
        st.just(SEALED.replace(b'"priority": 100', b'"priority": 1e400', 1)),
        st.just(SEALED.replace(b'"priority": 100', b'"priority": 100.0', 1)),
        st.just(SEALED.replace(b'"title": "', b'"title": "\\u0041', 1)),  # an escape not needed
        st.just(SEALED.replace(b'"cooldown"', b'"cooldow\\u006e"', 1)),
        st.just(b"\xef\xbb\xbf" + SEALED),  # a byte-order mark
        st.just(SEALED.replace(b"\n", b"\r\n")),
        st.just(json.dumps(seal(BASE)).encode()),  # not indented, keys as written
        st.just(json.dumps(seal(BASE), indent=4, sort_keys=True).encode()),
    )


@PROPERTY
@given(_byte_edits())
def test_edited_bytes_get_the_reference_verdict(data: bytes) -> None:
    same_verdict(data)


def test_canonical_bytes_are_read_by_the_plain_parser() -> None:
    assert parse_canonical(SEALED) == loads_json(SEALED, "p")
    assert parse_canonical(SEALED.replace(b"\n", b"\n ", 1)) is None
    assert parse_canonical(b"\xff") is None and parse_canonical(b"{") is None


# --------------------------------------------------------------------------- the content hash


def test_intact_bytes_are_checked_by_one_hash() -> None:
    stated = seal(BASE)["metadata"]["content_hash"]
    assert intact_hash(SEALED) == (stated, b"null")
    stamped = copy.deepcopy(seal(BASE))
    stamped["metadata"]["commit"] = 'abc"def'
    assert intact_hash(canonical_bytes(stamped)) == (stated, b'"abc\\"def"')
    assert RulePack.from_bytes(canonical_bytes(stamped)).commit == 'abc"def'
    assert intact_hash(SEALED.replace(b'"priority": 100', b'"priority": 101', 1)) is None


def test_a_hash_of_other_bytes_than_the_canonical_is_refused() -> None:
    """Bytes laid out otherwise whose stated hash is the sha256 of exactly those bytes
    (blanked): not the content hash, refused as before (the hash is of canonical bytes)."""
    odd = SEALED.replace(b'  "format": ', b'  "format":  ', 1)  # one space more
    stated = seal(BASE)["metadata"]["content_hash"].encode()
    blank = odd.replace(stated, b"", 1)
    forged = odd.replace(stated, b"sha256:" + hashlib.sha256(blank).hexdigest().encode(), 1)
    assert intact_hash(forged) is not None  # the bytes do hash to what they state...
    with pytest.raises(PackError, match="changed after it was built"):
        RulePack.from_bytes(forged)  # ...but the content does not
    assert reference_problems_of(forged)


def test_a_reformatted_pack_with_the_right_hash_still_loads() -> None:
    data = json.dumps(seal(BASE), indent=4).encode()
    assert intact_hash(data) is None and parse_canonical(data) is None
    assert RulePack.from_bytes(data).content_hash == seal(BASE)["metadata"]["content_hash"]


# --------------------------------------------------------------------------- canonical bytes

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=8)
)
JSON_DOCS = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=4), inner, max_size=4)
        | st.dictionaries(st.integers(0, 3), inner, min_size=1, max_size=2)
    ),
    max_leaves=20,
)


def _outcome(encode: Any, doc: Any) -> Any:
    try:
        return encode(doc)
    except (TypeError, ValueError) as exc:  # UnicodeEncodeError is a ValueError
        return type(exc)


@PROPERTY
@given(JSON_DOCS)
def test_canonical_bytes_are_json_dumps_bytes(doc: Any) -> None:
    assert _outcome(canonical_bytes, doc) == _outcome(reference_bytes, doc)


def test_canonical_bytes_of_every_kind_of_value() -> None:
    class Text(str):
        pass

    doc = {"b": [1, 2.5, -0.0, 1e16, None, True, False, {}, []], "a": 'é\n"', Text("c"): (1,)}
    assert canonical_bytes(doc) == reference_bytes(doc)
    assert canonical_bytes(BASE) == PACK.read_bytes()
