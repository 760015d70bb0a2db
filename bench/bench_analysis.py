"""Whole-set analysis at scale: 100 / 1,000 / 5,000 generated policies.

The generated sets look like ``policies/`` grown large: five event kinds,
priorities 0-100, per-customer policies (``account.id == "acct_17" and
ticket.severity in (high, critical)``), ARR bands, tag and enum conditions,
lead and content policies, catch-all fallbacks, runbooks entered by handoff,
plus deliberate defects: about 2% exact duplicates at equal priority (E302)
and 2.5% narrower copies at lower priority (W304).

Reported: front-end time, analysis time (all of ``ANALYSIS_PASSES``), the
findings, and the growth factor between sizes; and, on the smaller sizes, a
naive baseline in the same run (every equal-priority pair's cube product,
every higher-priority cube scanned for each subtraction) with its findings
compared to the indexed analysis so the speed-up is like for like.

Usage: python bench/run.py analysis      (or ESCALADE_BENCH_SIZES=100,1000)
"""

from __future__ import annotations

import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from generate import LEAD_FIELDS, TICKET_FIELDS

from escalade.compiler import load_policy_set
from escalade.compiler import model as m
from escalade.compiler.algebra import Budget, Domains, find_outside, meet
from escalade.compiler.diagnostics import Collector
from escalade.compiler.passes import analysis

SIZES = tuple(int(x) for x in os.environ.get("ESCALADE_BENCH_SIZES", "100,1000,5000").split(","))
NAIVE_SIZES = (100, 1000)

HEADER = f"""\
event ticket.created
event ticket.updated
event ticket.sla_breached
event lead.updated
event content.updated

schema ticket {{
{TICKET_FIELDS}\
  tags: set
}}
schema account {{
  id: text
  tier: enum(free, pro, enterprise)
  arr: number
  region: enum(emea, amer, apac)
}}
schema lead {{
{LEAD_FIELDS}\
  score: number
}}
schema content {{
  id: text
  site: text
  pipeline: enum(ok, failed)
  qa: enum(pass, violation, ambiguous)
}}

person ann {{ email "ann@example.com" }}
person ben {{ email "ben@example.com" }}
person cat {{ email "cat@example.com" }}

coverage ticket.created when ticket.severity == critical
"""


def policy(name: str, priority: int, trigger: str | None, when: str | None, extra: str = "") -> str:
    lines = [
        f"policy {name} {{",
        f'  title "{name}"',
        '  approvers "@example/ops"',
        f"  priority {priority}",
    ]
    if trigger:
        lines.append(f"  trigger {trigger}")
    if when:
        lines.append(f"  when {when}")
    lines += [
        "  owner primary ann ack 5m",
        "  owner backup ben ack 10m",
        "  exception unknown triage cat",
    ]
    if extra:
        lines.append(extra)
    lines.append("}")
    return "\n".join(lines) + "\n"


TICKET_KINDS = ("ticket.created", "ticket.created, ticket.updated", "ticket.sla_breached")


def generate(count: int, seed: int = 7) -> str:
    """Policy source text with ``count`` policies (deterministic for a seed)."""
    rng = random.Random(seed)
    out = [HEADER]
    # catch-alls that keep the coverage promise and are never shadowed
    out.append(
        policy(
            "fallback_critical", 0, "ticket.created, ticket.updated", "ticket.severity == critical"
        )
    )
    out.append(
        policy("fallback_breach", 0, "ticket.sla_breached", "ticket.priority in (high, urgent)")
    )
    out.append(policy("runbook_vendor", 0, None, None))
    made = 3
    i = 0
    while made < count:
        i += 1
        shape = i % 10
        name = f"p{i}"
        extra = ""
        if shape in (0, 1, 2, 3, 4):  # per-customer policies, disjoint by account id
            prio = rng.choice((20, 40, 60, 80))
            kinds = rng.choice(TICKET_KINDS)
            sev = rng.choice(("high, critical", "critical", "medium, high, critical"))
            when = f'account.id == "acct_{i}" and ticket.severity in ({sev})'
            if rng.random() < 0.5:
                extra = (
                    '  exception vendor when ticket.tags has "vendor_outage" handoff runbook_vendor'
                )
        elif shape == 5:  # ARR bands per tier and region: disjoint by construction
            prio = 30
            kinds = "ticket.created"
            lo = i * 1000
            region = ("emea", "amer", "apac")[i % 3]
            when = (
                f"account.arr >= {lo} and account.arr < {lo + 1000} and "
                f"account.region == {region} and ticket.severity != low"
            )
        elif shape == 6:  # tag routing, one tag per priority so equal priorities stay exclusive
            prio = 50 + (i % 40)
            kinds = rng.choice(TICKET_KINDS)
            when = (
                f'account.id == "acct_{i}" and ticket.tags has "team_{i % 7}" '
                "and ticket.status not in (resolved, closed)"
            )
        elif shape == 7:  # leads by score band
            prio = 50
            kinds = "lead.updated"
            when = (
                f"lead.crm_status == rejected and lead.score >= {i * 10} "
                f"and lead.score < {i * 10 + 10}"
            )
        elif shape == 8:  # content per site
            prio = 50
            kinds = "content.updated"
            when = f'content.site == "site_{i}" and (content.pipeline == failed or content.qa in (violation, ambiguous))'
        else:  # enterprise enums, priority by tier/region so equal priorities are exclusive
            prio = 90
            kinds = "ticket.created"
            region = ("emea", "amer", "apac")[i % 3]
            when = f'account.tier == enterprise and account.region == {region} and account.id == "ent_{i}" and not ticket.tags has "noise"'
            prio = 90 + i % 7
        out.append(policy(name, prio, kinds, when, extra))
        made += 1
        if made < count and i % 50 == 0:  # duplicate at equal priority: E302
            out.append(policy(f"{name}_dup", prio, kinds, when))
            made += 1
        if made < count and i % 40 == 1:  # narrower copy at lower priority: W304
            out.append(
                policy(
                    f"{name}_shadow", max(0, prio - 5), kinds, f"({when}) and account.tier == pro"
                )
            )
            made += 1
    return "".join(out)


def run_indexed(pset: m.PolicySet) -> tuple[float, Counter[str], set[tuple[str, ...]]]:
    analysis._LAST.clear()
    diags = Collector()
    start = time.perf_counter()
    for check in analysis.ANALYSIS_PASSES:
        check(pset, diags)
    elapsed = time.perf_counter() - start
    found = analysis.analyse(pset)
    keys = {("E302", a.first.name, a.second.name) for a in found.ambiguous()}
    keys |= {("W304", s.policy.name) for s in found.shadowed()}
    return elapsed, Counter(d.code for d in diags.diagnostics()), keys


def run_naive(pset: m.PolicySet) -> tuple[float, set[tuple[str, ...]]]:
    """All pairs, every cube product, every higher cube scanned: the baseline to beat."""
    start = time.perf_counter()
    policies = analysis.ordered_policies(pset)
    d = Domains.build(pset.schema, [p.when for p in policies])
    regions = {p.name: d.compile(p.when) for p in policies}
    rank = {p.name: i for i, p in enumerate(policies)}
    keys: set[tuple[str, ...]] = set()
    kinds = sorted({k for p in policies for k in p.triggers})
    for kind in kinds:
        members = [p for p in policies if kind in p.triggers]
        for x, a in enumerate(members):
            higher = [c for q in members if q.priority > a.priority for c in regions[q.name].cubes]
            for b in members[x + 1 :]:
                if a.priority != b.priority:
                    continue
                key = ("E302", *sorted((a.name, b.name), key=rank.__getitem__))
                if key in keys:
                    continue
                for ca in regions[a.name].cubes:
                    for cb in regions[b.name].cubes:
                        piece = meet(ca, cb)
                        if (
                            piece is not None
                            and find_outside(d, piece, higher, Budget()) is not None
                        ):
                            keys.add(key)
    for p in policies:
        if not p.triggers or regions[p.name].is_empty():
            continue
        wins = False
        for kind in dict.fromkeys(p.triggers):
            higher = [
                c
                for q in policies
                if kind in q.triggers and q.priority > p.priority
                for c in regions[q.name].cubes
            ]
            if any(find_outside(d, c, higher, Budget()) is not None for c in regions[p.name].cubes):
                wins = True
                break
        if not wins:
            keys.add(("W304", p.name))
    return time.perf_counter() - start, keys


def main() -> None:
    previous: tuple[int, float] | None = None
    print(f"{'policies':>8} {'front end':>10} {'analysis':>9} {'growth':>16}  findings")
    for size in SIZES:
        text = generate(size)
        start = time.perf_counter()
        result = load_policy_set("bench", sources=[("bench.esc", text)], analyze=False)
        front = time.perf_counter() - start
        pset = result.pset
        assert pset is not None and len(pset.policies) == size, "generator drifted"
        errors = [d for d in result.diagnostics if d.severity == "error"]
        assert not errors, f"generated set has front-end errors: {errors[:3]}"
        elapsed, counts, keys = run_indexed(pset)
        growth = ""
        if previous:
            n0, t0 = previous
            growth = f"x{elapsed / t0:5.1f} for x{size / n0:.0f}"
        previous = (size, elapsed)
        print(
            f"{size:>8} {front:>9.2f}s {elapsed:>8.2f}s {growth:>16}  "
            + ", ".join(f"{k}={v}" for k, v in sorted(counts.items())),
            flush=True,
        )
        if size in NAIVE_SIZES:
            naive, naive_keys = run_naive(pset)
            same = (
                "same findings"
                if naive_keys == keys
                else f"DIFFERENT findings ({len(naive_keys ^ keys)})"
            )
            print(
                f"{'':>8} naive all-pairs baseline {naive:.2f}s -> indexed is "
                f"x{naive / max(elapsed, 1e-9):.1f} faster ({same})",
                flush=True,
            )


if __name__ == "__main__":
    main()
