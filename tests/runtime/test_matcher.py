"""The indexed matcher agrees with a plain first-match loop, and explains itself."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from escalade.runtime.matcher import Matcher, required_keys
from escalade.runtime.pack import RulePack, seal

REPO = Path(__file__).resolve().parents[2]
PACK = RulePack.load(REPO / "generated" / "rulepack.json")
EVENTS = REPO / "examples" / "events"


def state(sev: str | None, tier: str | None, tags: list[str] | None = None) -> dict[str, Any]:
    ticket: dict[str, Any] = {"id": "T1"}
    if sev is not None:
        ticket["severity"] = sev
    if tags is not None:
        ticket["tags"] = tags
    account = {} if tier is None else {"tier": tier}
    return {"ticket": ticket, "account": account}


def test_owners_of_the_bundled_policies() -> None:
    m = Matcher(PACK)
    owner = m.owner("ticket.created", state("critical", "enterprise"))
    assert owner is not None and owner.name == "enterprise_critical"
    owner = m.owner("ticket.updated", state("critical", "free"))
    assert owner is not None and owner.name == "critical_default"
    assert m.owner("ticket.created", state("low", "enterprise")) is None
    assert m.owner("ticket.created", state(None, "enterprise")) is None
    assert m.owner("no.such_event", state("critical", "enterprise")) is None
    # policies without trigger own nothing
    assert all(p.name != "vendor_outage" for kind in PACK.events for p in m.candidates(kind))


def test_explain_lists_atoms_and_reasons() -> None:
    ex = Matcher(PACK).explain("ticket.created", state("low", "enterprise"))
    assert ex.owner is None
    assert "none of the 3 policies" in ex.reason
    first = ex.candidates[0]
    assert first.policy.name == "enterprise_critical"
    assert first.atoms == (
        ("ticket.severity == critical", False),
        ("account.tier == enterprise", True),
    )
    ex = Matcher(PACK).explain(
        "ticket.sla_breached", {"ticket": {"priority": "high", "status": "open"}}
    )
    assert ex.owner is not None and ex.delayed == 1800
    assert "would start after 30m" in ex.reason


def _tie_pack() -> RulePack:
    raw = json.loads(json.dumps(PACK.raw))
    for p in raw["policies"]:
        if p["name"] == "enterprise_critical":
            p["priority"] = 10  # now ties with critical_default
    return RulePack.from_dict(seal(raw))


def test_ties_are_broken_by_name_and_explained() -> None:
    m = Matcher(_tie_pack())
    owner = m.owner("ticket.created", state("critical", "enterprise"))
    assert owner is not None and owner.name == "critical_default"  # c < e
    ex = m.explain("ticket.created", state("critical", "enterprise"))
    assert ex.tie_broken_by_name == ("enterprise_critical",)
    tied = next(c for c in ex.candidates if c.policy.name == "critical_default")
    assert "E302" in tied.note and "first by name" in tied.note


def test_required_keys_only_from_top_level_conjuncts() -> None:
    cond = {
        "op": "and",
        "args": [
            {"op": "cmp", "field": "t.a", "cmp": "==", "value": "x"},
            {"op": "in", "field": "t.a", "values": ["x", "y"]},
            {"op": "or", "args": [{"op": "cmp", "field": "t.b", "cmp": "==", "value": "z"}]},
            {"op": "cmp", "field": "t.n", "cmp": "==", "value": 3},
            {"op": "not_in", "field": "t.c", "values": ["q"]},
        ],
    }
    assert required_keys(cond) == {"t.a": frozenset({"x"})}
    assert required_keys(None) == {}


# --- property: index == first-match loop on a generated pack -------------------------

TIERS = ["free", "pro", "enterprise"]
SEVS = ["low", "medium", "high", "critical"]


def generated_pack(specs: list[tuple[int, str | None, list[str] | None, str | None]]) -> RulePack:
    raw = json.loads(json.dumps(PACK.raw))
    template = next(p for p in raw["policies"] if p["name"] == "critical_default")
    policies = []
    for i, (prio, sev, tiers, tag) in enumerate(specs):
        args: list[dict[str, Any]] = []
        if sev is not None:
            args.append({"op": "cmp", "field": "ticket.severity", "cmp": "==", "value": sev})
        if tiers is not None:
            args.append({"op": "in", "field": "account.tier", "values": tiers})
        if tag is not None:
            args.append({"op": "has", "field": "ticket.tags", "tag": tag})
        p = dict(template, name=f"p{i:03d}", priority=prio, triggers=["ticket.created"])
        p["when"] = {"op": "and", "args": args} if args else None
        policies.append(p)
    raw["policies"] = sorted(policies, key=lambda p: p["name"])
    return RulePack.from_dict(seal(raw))


spec = st.tuples(
    st.integers(0, 5),
    st.one_of(st.none(), st.sampled_from(SEVS)),
    st.one_of(st.none(), st.lists(st.sampled_from(TIERS), min_size=1, max_size=2, unique=True)),
    st.one_of(st.none(), st.sampled_from(["vip", "vendor_outage"])),
)


@settings(max_examples=40, deadline=None)
@given(
    specs=st.lists(spec, min_size=1, max_size=30),
    events=st.lists(
        st.tuples(
            st.one_of(st.none(), st.sampled_from(SEVS)),
            st.one_of(st.none(), st.sampled_from(TIERS)),
            st.lists(st.sampled_from(["vip", "vendor_outage", "x"]), max_size=2),
        ),
        min_size=1,
        max_size=10,
    ),
)
def test_index_agrees_with_first_match(specs: Any, events: Any) -> None:
    m = Matcher(generated_pack(specs))
    for sev, tier, tags in events:
        s = state(sev, tier, tags)
        fast, slow = m.owner("ticket.created", s), m.first_match("ticket.created", s)
        assert (fast and fast.name) == (slow and slow.name)
        ex = m.explain("ticket.created", s)
        assert (ex.owner and ex.owner.name) == (slow and slow.name)


# --- the CLI ---------------------------------------------------------------------------


def _explain(*args: str) -> Any:
    from escalade.compiler.cli import main

    return CliRunner().invoke(main, ["explain", *args])


def test_explain_cli_names_the_owner_text_and_json() -> None:
    pack = str(REPO / "generated/rulepack.json")
    r = _explain(str(EVENTS / "enterprise_critical.json"), "--pack", pack)
    assert r.exit_code == 0, r.output
    assert "OWNER: enterprise_critical" in r.output and "pack 1.0.0" in r.output
    assert "5m  backup: Carol Diaz" in r.output
    r = _explain(str(EVENTS / "critical_default.json"), "--pack", pack, "--format", "json")
    doc = json.loads(r.output)
    assert doc["owner"] == "critical_default" and doc["pack"]["version"] == "1.0.0"
    assert doc["candidates"][0]["atoms"][1] == {
        "atom": "account.tier == enterprise",
        "holds": False,
    }
    r = _explain(str(EVENTS / "no_owner_low.json"), "--policies", str(REPO / "policies"))
    assert r.exit_code == 0 and "OWNER: none" in r.output
    assert "✗ ticket.severity == critical" in r.output


def test_explain_cli_rejects_bad_events(tmp_path: Path) -> None:
    bad = tmp_path / "e.json"
    bad.write_text(
        '{"id": "e", "type": "ticket.created", "at": "2026-01-01T00:00:00Z", '
        '"data": {"ticket": {"id": "T", "severity": "critcal"}}}'
    )
    r = _explain(str(bad), "--pack", str(REPO / "generated/rulepack.json"))
    assert r.exit_code == 1 and "ticket.severity" in r.output and "Traceback" not in r.output
    bad.write_text("{")
    r = _explain(str(bad), "--pack", str(REPO / "generated/rulepack.json"))
    assert r.exit_code == 1 and "not JSON" in r.output
