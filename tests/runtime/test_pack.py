"""Rule-pack loading: schema, cross-references, content hash, located errors."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from escalade.runtime.pack import (
    FORMAT,
    PackError,
    RulePack,
    canonical_bytes,
    compute_content_hash,
    seal,
)

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "generated" / "rulepack.json"


@pytest.fixture
def raw() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(PACK.read_bytes())
    return loaded


def test_committed_pack_loads_with_typed_accessors() -> None:
    pack = RulePack.load(PACK)
    assert pack.version == "1.0.0"
    assert pack.content_hash.startswith("sha256:") and pack.commit is None
    ec = pack.policy("enterprise_critical")
    assert (ec.priority, ec.triggers, ec.repeat) == (100, ("ticket.created", "ticket.updated"), 1)
    assert [(o.level, o.ref, o.kind, o.ack) for o in ec.owners] == [
        ("primary", "cust_ops_oncall", "team", 300),
        ("backup", "carol", "person", 600),
        ("escalation", "dana", "person", 900),
    ]
    assert (ec.sla_acknowledge, ec.sla_resolve) == (300, 14400)
    assert ec.handoffs[0].policy == "vendor_outage" and ec.triage is not None
    assert pack.display_name("carol") == "Carol Diaz"
    assert pack.field_type("ticket.severity") is not None
    assert pack.teams["cust_ops_oncall"].rotation == "weekly"
    assert [p.name for p in pack.policies] == sorted(p.name for p in pack.policies)
    assert pack.to_bytes() == PACK.read_bytes()


def test_chain_schedule_walks_the_chain_and_repeats() -> None:
    ec = RulePack.load(PACK).policy("enterprise_critical")
    sched = ec.chain_schedule()
    assert [(s.at, s.owner.level, s.round) for s in sched.stops] == [
        (0, "primary", 1),
        (300, "backup", 1),
        (900, "escalation", 1),
        (1800, "primary", 2),
        (2100, "backup", 2),
        (2700, "escalation", 2),
    ]
    assert sched.exhausted_at == 3600
    # a final level without ack timeout keeps the escalation: never exhausted
    cd = RulePack.load(PACK).policy("critical_default").chain_schedule()
    assert cd.exhausted_at is None and cd.stops[-1].owner.ack is None


def test_on_call_follows_the_rotation() -> None:
    team = RulePack.load(PACK).teams["cust_ops_oncall"]
    start = 1767603600  # 2026-01-05T09:00:00Z
    assert team.on_call(start) == "alice"
    assert team.on_call(start + 7 * 86400) == "bob"
    assert team.on_call(start + 14 * 86400 + 5) == "alice"
    assert team.on_call(start - 1) == "bob"  # the week before the start: one period back
    # an absent member passes to the next available one; nobody available: None
    assert team.on_call(start, absent={"alice"}) == "bob"
    assert team.on_call(start + 7 * 86400, absent={"bob"}) == "alice"
    assert team.on_call(start, absent={"alice", "bob"}) is None


def test_content_hash_ignores_commit_and_itself(raw: dict[str, Any]) -> None:
    h = compute_content_hash(raw)
    assert h == raw["metadata"]["content_hash"]
    stamped = copy.deepcopy(raw)
    stamped["metadata"]["commit"] = "0123abc"
    assert compute_content_hash(stamped) == h
    RulePack.from_dict(stamped)  # a release build's commit stamp keeps the pack valid


def test_tampered_pack_is_refused(raw: dict[str, Any]) -> None:
    raw["policies"][0]["priority"] = 999
    with pytest.raises(PackError, match=r"content_hash: .* changed after it was built"):
        RulePack.from_bytes(canonical_bytes(raw), source="p.json")
    assert RulePack.from_dict(raw, verify_hash=False).policies[0].priority == 999


def _mutate(raw: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    doc = copy.deepcopy(raw)
    *parents, last = path.strip("/").split("/")
    node: Any = doc
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    elif value is KeyError:
        del node[last]
    else:
        node[last] = value
    return seal(doc)


@pytest.mark.parametrize(
    ("path", "value", "expect"),
    [
        ("/policies/2/owners/0/ack", -5, "/policies/2/owners/0/ack"),
        ("/policies/2/priority", "high", "/policies/2/priority: 'high' is not of type 'integer'"),
        ("/policies/2/when/op", "xor", "/policies/2/when"),
        ("/policies/2/owners/1/ref", "nobody", "/policies/2/owners/1/ref: no person 'nobody'"),
        ("/policies/2/exceptions/0/handoff", "gone", "no policy 'gone'"),
        ("/policies/2/triggers/0", "ticket.deleted", "'ticket.deleted' is not in /schema/events"),
        ("/policies/2/when/args/0/field", "ticket.sev", "field 'ticket.sev' is not in"),
        ("/policies/2/source/file", "/abs/path.esc", "/policies/2/source/file"),
        ("/metadata", KeyError, "'metadata' is a required property"),
        ("/directory/teams/cust_ops_oncall/members/0", "zed", "no person 'zed'"),
    ],
)
def test_bad_packs_get_located_errors(
    raw: dict[str, Any], path: str, value: Any, expect: str
) -> None:
    assert raw["policies"][2]["name"] == "enterprise_critical"
    if path == "/metadata":
        doc = copy.deepcopy(raw)
        del doc["metadata"]
    else:
        doc = _mutate(raw, path, value)
    with pytest.raises(PackError) as info:
        RulePack.from_bytes(canonical_bytes(doc), source="bad.json")
    assert expect in str(info.value)
    assert str(info.value).startswith("bad.json: ")


@pytest.mark.parametrize(
    ("data", "expect"),
    [
        (b"{not json", "1:2: not JSON"),
        (b"[1, 2]", "a pack is a JSON object, not an array"),
        (b'{"format": "escalade.rulepack/v0"}', "expected 'escalade.rulepack/v1'"),
        (b'{"format": "escalade.rulepack/v1", "x": NaN}', "NaN is not a JSON number"),
        (b"\xff\xfe", "not UTF-8"),
        (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    ],
)
def test_unparseable_packs_are_refused_without_traceback(data: bytes, expect: str) -> None:
    with pytest.raises(PackError, match=expect):
        RulePack.from_bytes(data, source="x.json")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PackError, match="cannot read the pack"):
        RulePack.load(tmp_path / "nope.json")


def test_deeply_nested_condition_validates(raw: dict[str, Any]) -> None:
    cond: dict[str, Any] = raw["policies"][2]["when"]
    for _ in range(200):
        cond = {"op": "not", "arg": {"op": "not", "arg": cond}}
    doc = copy.deepcopy(raw)
    doc["policies"][2]["when"] = cond
    pack = RulePack.from_dict(seal(doc))
    assert pack.policy("enterprise_critical").when == cond


def test_format_constant() -> None:
    assert FORMAT == "escalade.rulepack/v1"


def test_the_content_hash_definition_is_frozen() -> None:
    """Stores keep packs by this hash and rollbacks name it: it must never change. The
    definition: sha256 of the canonical bytes (sorted keys, 2-space indent, UTF-8 as is,
    a trailing newline) with ``content_hash`` empty and ``commit`` null."""
    tiny = {
        "format": "escalade.rulepack/v1",
        "metadata": {"version": "1.0.0", "content_hash": "x", "commit": "abc"},
        "policies": [],
        "schema": {"events": ["ticket.created"], "objects": {}},
        "directory": {"people": {"ana": {"name": "Ana \u00c9"}}, "teams": {}, "channels": {}},
    }
    expected = "sha256:b5f926412fa112fa16930c15c954821916ec33cf258c6bc97d392cb929fe25cc"
    assert compute_content_hash(tiny) == expected
    blank = copy.deepcopy(tiny)
    blank["metadata"].update(content_hash="", commit=None)
    text = json.dumps(blank, sort_keys=True, indent=2, ensure_ascii=False) + "\n"
    assert "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest() == expected
