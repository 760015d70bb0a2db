"""Policy sets and event streams shaped like real ones, for every benchmark that needs scale.

One generator, three renderings of the same policies, so each figure is about
the same set:

- :func:`policy_files`: Escalade source (``check``, ``build``, runbooks);
- :func:`pack_policies`: the rule-pack JSON the compiler would emit for them
  (the matcher and the engine at 10,000 policies, without compiling first);
- :func:`events`: a stream of events, about half of which no policy owns (measured: 54-56%
  at 100, 1,000 and 10,000 policies): a third go to queues no policy names, and many
  routed ones match no policy of their queue.

The shape (measured on real sets, issue #12): 90% of conjunctions are about one queue
and 7% about one customer (text equality), the rest broad but narrowed by product
(core or billing) and tier, each with enum conditions; about 15% of conditions
are an ``or`` of two or three conjunctions; ``not``, ``in`` and ``not in``
lists, numeric ranges (``arr >= a and arr < b``), thresholds and tags appear
throughout; a few catch-alls have no queue. Priorities are distinct, so the set
has no E302 ties; some pairs still overlap (the analysis reports W304).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

Cond = dict[str, Any]
START = datetime(2026, 11, 27, 10, 0, tzinfo=UTC)

SEVERITIES = ["low", "medium", "high", "critical"]
PRIORITIES = ["low", "normal", "high", "urgent"]
STATUSES = ["new", "open", "escalated", "in_progress", "resolved", "closed"]
REGIONS = ["emea", "amer", "apac", "latam"]
PRODUCTS = ["core", "billing", "search", "mobile", "api", "data"]
TIERS = ["free", "pro", "enterprise"]
TAGS = ["vip", "vendor_outage", "security", "billing", "noise", "test"]
TRIGGERED = ["ticket.created", "ticket.updated"]
KINDS = [*TRIGGERED, "ticket.sla_breached"]  # nobody triggers on sla_breached here

ENUMS = {
    "ticket.severity": SEVERITIES,
    "ticket.priority": PRIORITIES,
    "ticket.status": STATUSES,
    "ticket.region": REGIONS,
    "ticket.product": PRODUCTS,
    "account.tier": TIERS,
}

HEADER = """\
event ticket.created
event ticket.updated
event ticket.sla_breached

schema ticket {
  id: text
  title: text
  queue: text
  severity: enum(low, medium, high, critical)
  priority: enum(low, normal, high, urgent)
  status: enum(new, open, escalated, in_progress, resolved, closed)
  region: enum(emea, amer, apac, latam)
  product: enum(core, billing, search, mobile, api, data)
  score: number
  tags: set
  root_cause: text
}

schema account {
  id: text
  name: text
  tier: enum(free, pro, enterprise)
  arr: number
}

person lead_a { name "Lead A" email "a@example.com" pager "a" }
person lead_b { name "Lead B" email "b@example.com" pager "b" }
person lead_c { name "Lead C" email "c@example.com" }
team oncall_a { members lead_a, lead_b rotation weekly from "2026-01-05T09:00:00Z" }
channel ops { slack "#ops" }

template standard_qa() {
  check delivery within 1m else retry 3
  check state ticket.status in (escalated, in_progress)
}
"""


@dataclass(frozen=True)
class Spec:
    """One generated policy: what the renderings share."""

    name: str
    priority: int
    triggers: tuple[str, ...]
    when: Cond


def _cmp(field: str, op: str, value: Any) -> Cond:
    return {"op": "cmp", "field": field, "cmp": op, "value": value}


def _in(field: str, values: list[str], negate: bool = False) -> Cond:
    return {"op": "not_in" if negate else "in", "field": field, "values": values}


def _has(tag: str) -> Cond:
    return {"op": "has", "field": "ticket.tags", "tag": tag}


def _and(*args: Cond) -> Cond:
    return args[0] if len(args) == 1 else {"op": "and", "args": list(args)}


def _conjunction(rng: random.Random, queues: int) -> Cond:
    parts: list[Cond] = []
    key = rng.random()
    if key < 0.9:  # most policies are about one queue ...
        parts.append(_cmp("ticket.queue", "==", f"q{rng.randrange(queues)}"))
    elif key < 0.97:  # ... or one customer
        parts.append(_cmp("account.id", "==", f"acct_{rng.randrange(queues * 4)}"))
    else:  # the rest are broad, so narrowed by product and tier
        parts.append(_cmp("ticket.product", "==", rng.choice(PRODUCTS[:2])))
        parts.append(_cmp("account.tier", "==", rng.choice(TIERS)))
    sev = rng.sample(SEVERITIES, rng.choice([1, 1, 2, 3]))
    parts.append(
        _cmp("ticket.severity", "==", sev[0]) if len(sev) == 1 else _in("ticket.severity", sev)
    )
    if rng.random() < 0.4:
        regions = rng.sample(REGIONS, rng.choice([1, 2]))
        parts.append(
            _cmp("ticket.region", "==", regions[0])
            if len(regions) == 1
            else _in("ticket.region", regions)
        )
    if rng.random() < 0.3 and key < 0.97:
        parts.append(_cmp("account.tier", "==", rng.choice(TIERS)))
    if rng.random() < 0.25:
        lo = rng.randrange(0, 400) * 1000
        parts += [
            _cmp("account.arr", ">=", lo),
            _cmp("account.arr", "<", lo + rng.choice([5, 20, 100]) * 1000),
        ]
    if rng.random() < 0.2:
        parts.append(_cmp("ticket.score", ">", rng.randint(1, 8)))
    if rng.random() < 0.2:
        parts.append(_has(rng.choice(TAGS[:4])))
    if rng.random() < 0.15:
        parts.append({"op": "not", "arg": _has("noise")})
    if rng.random() < 0.15:
        parts.append(_in("ticket.priority", rng.sample(PRIORITIES[:3], 2), negate=True))
    if rng.random() < 0.1:
        parts.append(_cmp("ticket.status", "!=", "closed"))
    return _and(*parts)


CATCH_ALLS = [
    _and(_cmp("ticket.severity", "==", "critical"), {"op": "not", "arg": _has("test")}),
    _and(_cmp("ticket.priority", "==", "urgent"), _cmp("account.tier", "==", "enterprise")),
    {
        "op": "or",
        "args": [
            _has("security"),
            _and(_cmp("ticket.product", "==", "billing"), _cmp("account.arr", ">=", 450_000)),
        ],
    },
]


def specs(count: int, seed: int = 12) -> list[Spec]:
    """``count`` policies: three catch-alls, the rest mostly per queue, ~15% with ``or``."""
    rng = random.Random(seed)
    queues = max(1, count // 4)
    priorities = rng.sample(range(1, count * 10 + 1), count)  # distinct: no E302 ties
    out = []
    for i in range(count):
        if i < len(CATCH_ALLS):
            when = CATCH_ALLS[i]
            priorities[i] = i  # below every other policy
        elif rng.random() < 0.15:
            when = {
                "op": "or",
                "args": [_conjunction(rng, queues) for _ in range(rng.choice([2, 3]))],
            }
        else:
            when = _conjunction(rng, queues)
        triggers = tuple(TRIGGERED) if rng.random() < 0.8 else (rng.choice(TRIGGERED),)
        out.append(Spec(f"p{i:05d}", priorities[i], triggers, when))
    return out


# --- Escalade source ------------------------------------------------------------------------


def _value(field: str, v: Any) -> str:
    if isinstance(v, str) and field not in ENUMS:
        return f'"{v}"'
    return str(v)


def condition_text(c: Cond, parent: str | None = None) -> str:
    """The condition as Escalade source (parenthesised where precedence needs it)."""
    op = c["op"]
    if op in ("and", "or"):
        text = f" {op} ".join(condition_text(a, op) for a in c["args"])
        return f"({text})" if parent is not None and parent != op else text
    if op == "not":
        inner = c["arg"]
        body = condition_text(inner, "not")
        return f"not {body}" if inner["op"] not in ("and", "or") else f"not ({body})"
    if op == "cmp":
        return f"{c['field']} {c['cmp']} {_value(c['field'], c['value'])}"
    if op in ("in", "not_in"):
        values = ", ".join(_value(c["field"], v) for v in c["values"])
        return f"{c['field']} {'not in' if op == 'not_in' else 'in'} ({values})"
    if op == "has":
        return f'{c["field"]} has "{c["tag"]}"'
    raise ValueError(op)


def policy_text(spec: Spec, i: int) -> str:
    return f"""policy {spec.name} {{
  title "Generated policy {i}"
  description "Escalates tickets of one queue; owned by the on-call rotation with a paged backup."
  approvers "@example/team-{i % 20}"
  priority {spec.priority}
  trigger {", ".join(spec.triggers)}
  when {condition_text(spec.when)}
  owner primary oncall_a ack 5m
  owner backup lead_c ack 10m
  owner escalation lead_b
  sla acknowledge 5m
  sla resolve 4h
  step notify ops "Ticket {{{{ ticket.id }}}}: {{{{ ticket.title }}}}"
  use standard_qa()
  exception unknown triage lead_b postmortem
}}
"""


def policy_files(count: int, *, seed: int = 12, per_file: int = 50) -> dict[str, str]:
    """File name → source for ``count`` generated policies plus the shared header file."""
    all_specs = specs(count, seed)
    files = {"schema.esc": HEADER}
    for start in range(0, count, per_file):
        chunk = all_specs[start : start + per_file]
        files[f"policies_{start // per_file:04d}.esc"] = "\n".join(
            policy_text(s, start + k) for k, s in enumerate(chunk)
        )
    return files


# --- Rule-pack JSON -------------------------------------------------------------------------


def pack_policies(all_specs: list[Spec], template: dict[str, Any]) -> list[dict[str, Any]]:
    """Pack policies for ``all_specs``: ``template`` (a compiled policy) with each one's rule."""
    out = []
    for s in all_specs:
        p = dict(template, name=s.name, priority=s.priority, triggers=list(s.triggers), when=s.when)
        out.append(p)
    return sorted(out, key=lambda p: p["name"])


# --- Events ---------------------------------------------------------------------------------


def states(count_policies: int, count: int, rng: random.Random) -> list[dict[str, Any]]:
    """Ticket states: two thirds in a routed queue; a third in queues, for customers and of
    products no policy names, and never critical, urgent or tagged security (so no
    catch-all takes them either): the events nobody owns."""
    queues = max(1, count_policies // 4)
    out = []
    for n in range(count):
        routed = rng.random() < 2 / 3
        ticket: dict[str, Any] = {
            "id": f"T{rng.randrange(10**6)}",
            "title": f"Generated ticket {n}",
            "queue": f"q{rng.randrange(queues)}" if routed else f"unrouted_{rng.randrange(50)}",
            "severity": rng.choice(SEVERITIES if routed else SEVERITIES[:3]),
            "priority": rng.choice(PRIORITIES if routed else PRIORITIES[:3]),
            "status": rng.choice(STATUSES[:4]),
            "region": rng.choice(REGIONS),
            "product": rng.choice(PRODUCTS if routed else PRODUCTS[2:]),
            "score": rng.randint(0, 10),
            "tags": rng.sample(TAGS if routed else TAGS[:2], rng.randint(0, 2)),
        }
        customer = f"acct_{rng.randrange(queues * 4)}" if routed else f"prospect_{n}"
        account: dict[str, Any] = {"id": customer, "tier": rng.choice(TIERS)}
        if rng.random() < 0.9:  # a missing field is a realistic input too
            account["arr"] = rng.randrange(0, 500) * 1000
        out.append({"ticket": ticket, "account": account})
    return out


def events(count_policies: int, count: int, seed: int = 5) -> list[dict[str, Any]]:
    """Raw events (``id``, ``type``, ``at``, ``data``); ~5% of a kind no policy triggers on."""
    rng = random.Random(seed)
    out = []
    for n, data in enumerate(states(count_policies, count, rng)):
        kind = rng.choice(TRIGGERED) if rng.random() < 0.95 else KINDS[2]
        at = (START + timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%SZ")
        out.append({"id": f"e{n}", "type": kind, "at": at, "data": data})
    return out
