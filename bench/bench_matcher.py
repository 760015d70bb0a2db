"""Decision latency of the indexed matcher vs a plain first-match loop, same packs, same run.

Packs of 100, 1,000 and 10,000 generated policies shaped like ``policies/``:
enum conditions (severity, priority, tier), per-queue text equality (how big
sets grow: one policy per queue, team or customer; three catch-alls), tags, numeric thresholds, a
few ``after`` triggers. Events are already parsed; JSON parsing and validation
are measured separately. Targets: p50 <= 2 us at 1,000 policies; 10,000 policies
<= 2x the 100-policy latency.
"""

from __future__ import annotations

import json
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from escalade.runtime.events import parse_event
from escalade.runtime.matcher import Matcher
from escalade.runtime.pack import RulePack, seal

REPO = Path(__file__).resolve().parent.parent
SIZES = (100, 1_000, 10_000)
SEVERITIES = ["low", "medium", "high", "critical"]
PRIORITIES = ["low", "normal", "high", "urgent"]
TIERS = ["free", "pro", "enterprise"]
TAGS = ["vip", "vendor_outage", "security", "billing"]
EVENT_KINDS = ["ticket.created", "ticket.updated"]


def generate_pack(n: int, rng: random.Random) -> RulePack:
    base = json.loads((REPO / "generated" / "rulepack.json").read_text())
    base["schema"]["objects"]["ticket"]["queue"] = {"type": "text"}
    base["schema"]["objects"]["ticket"]["score"] = {"type": "number"}
    template = next(p for p in base["policies"] if p["name"] == "critical_default")
    queues = max(1, n // 4)
    policies = []
    priorities = rng.sample(range(n * 10), n)  # distinct: no E302 ties
    for i in range(n):
        args: list[dict[str, Any]] = []
        if i >= 3:  # three catch-all policies; every other one is about one queue
            q = f"q{rng.randrange(queues)}"
            args.append({"op": "cmp", "field": "ticket.queue", "cmp": "==", "value": q})
        sev = rng.sample(SEVERITIES, rng.choice([1, 2]))
        args.append({"op": "in", "field": "ticket.severity", "values": sev})
        if rng.random() < 0.5:
            args.append(
                {"op": "cmp", "field": "account.tier", "cmp": "==", "value": rng.choice(TIERS)}
            )
        if rng.random() < 0.3:
            args.append(
                {"op": "cmp", "field": "ticket.score", "cmp": ">=", "value": rng.randint(1, 9)}
            )
        if rng.random() < 0.2:
            args.append({"op": "has", "field": "ticket.tags", "tag": rng.choice(TAGS)})
        if rng.random() < 0.2:
            args.append(
                {"op": "not_in", "field": "ticket.priority", "values": rng.sample(PRIORITIES, 2)}
            )
        kinds = EVENT_KINDS if rng.random() < 0.8 else [rng.choice(EVENT_KINDS)]
        p = dict(template, name=f"gen_{i:05d}", priority=priorities[i], triggers=kinds)
        p["when"] = {"op": "and", "args": args}
        p["after"] = 1800 if rng.random() < 0.05 else None
        policies.append(p)
    base["policies"] = sorted(policies, key=lambda p: p["name"])
    # Skip schema validation of 10,000 policies: this measures decisions, not loading.
    return RulePack.trusted(seal(base))


def generate_states(n_policies: int, count: int, rng: random.Random) -> list[dict[str, Any]]:
    queues = max(1, n_policies // 4)
    states = []
    for _ in range(count):
        ticket: dict[str, Any] = {
            "id": f"T{rng.randrange(10**6)}",
            "queue": f"q{rng.randrange(queues)}",
            "severity": rng.choice(SEVERITIES),
            "priority": rng.choice(PRIORITIES),
            "score": rng.randint(0, 10),
            "tags": rng.sample(TAGS, rng.randint(0, 2)),
        }
        states.append({"ticket": ticket, "account": {"tier": rng.choice(TIERS)}})
    return states


def latencies(
    decide: Callable[[str, Any], Any], work: list[tuple[str, Any]], repeat: int
) -> list[float]:
    """Per-decision seconds: each event decided ``repeat`` times, loop overhead subtracted."""
    clock = time.perf_counter
    rng = range(repeat)

    def noop(kind: str, state: Any) -> None:
        return None

    out = []
    for kind, state in work:
        t0 = clock()
        for _ in rng:
            noop(kind, state)
        t1 = clock()
        for _ in rng:
            decide(kind, state)
        t2 = clock()
        out.append(max(0.0, (t2 - t1) - (t1 - t0)) / repeat)
    return out


def pct(samples: list[float], q: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(q * len(s)))]


def us(x: float) -> str:
    return f"{x * 1e6:8.2f} us"


def main() -> None:
    rng = random.Random(20261127)
    p50s: dict[int, float] = {}
    print(
        f"{'policies':>9} {'index p50':>12} {'index p99':>12} {'loop p50':>12} {'loop p99':>12}"
        f" {'speedup p50':>12} {'owned':>6} {'build':>8}"
    )
    for n in SIZES:
        pack = generate_pack(n, rng)
        t0 = time.perf_counter()
        m = Matcher(pack)
        build = time.perf_counter() - t0
        states = generate_states(n, 2000, rng)
        work = [(rng.choice(EVENT_KINDS), s) for s in states]
        for kind, s in work:  # correctness in the same run: the index decides like the loop
            a, b = m.owner(kind, s), m.first_match(kind, s)
            assert a is b, (kind, s)
        owned = sum(1 for kind, s in work if m.owner(kind, s) is not None) / len(work)
        fast = latencies(m.owner, work, repeat=20)
        loop_work = work[: 2000 if n <= 1000 else 100]
        slow = latencies(m.first_match, loop_work, repeat=3 if n <= 1000 else 1)
        p50s[n] = pct(fast, 0.5)
        print(
            f"{n:>9} {us(pct(fast, 0.5))} {us(pct(fast, 0.99))} {us(pct(slow, 0.5))} "
            f"{us(pct(slow, 0.99))} {pct(slow, 0.5) / max(pct(fast, 0.5), 1e-9):>11.0f}x "
            f"{owned:>6.0%} {build:>7.2f}s"
        )
    print(f"index p50 at 10,000 / at 100 policies: {p50s[10_000] / p50s[100]:.2f}x (target <= 2x)")
    print(f"index p50 at 1,000 policies: {p50s[1_000] * 1e6:.2f} us (target <= 2 us)")

    # JSON parse + validation, per event, measured separately from decisions.
    pack = generate_pack(100, rng)
    schema = pack  # a RulePack: what events are read against
    texts = [
        json.dumps(
            {"id": f"e{i}", "type": "ticket.created", "at": "2026-11-27T10:00:00Z", "data": s}
        )
        for i, s in enumerate(generate_states(100, 2000, rng))
    ]
    t0 = time.perf_counter()
    for t in texts:
        json.loads(t)
    t1 = time.perf_counter()
    for t in texts:
        parse_event(t, schema)
    t2 = time.perf_counter()
    print(
        f"per event: json.loads {us((t1 - t0) / len(texts))}, "
        f"parse+validate (escalade.runtime.events) {us((t2 - t1) / len(texts))}"
    )
    print(f"median of all index samples across sizes: {us(statistics.median(p50s.values()))}")


if __name__ == "__main__":
    main()
