"""Generate large policy sets shaped like ``policies/`` for the benchmarks.

Each policy is about 15 lines: a trigger, a condition over enums, tags and a
number, an owner chain, SLAs, steps and checks. Priorities and conditions are
spread so most pairs are disjoint, as in a real set, while some overlap.
"""

from __future__ import annotations

import random

# Schema fields both generated sets share (bench_analysis builds its header from them too).
TICKET_FIELDS = """\
  id: text
  title: text
  severity: enum(low, medium, high, critical)
  priority: enum(low, normal, high, urgent)
  status: enum(new, open, escalated, in_progress, resolved, closed)
"""
LEAD_FIELDS = """\
  id: text
  source: enum(organic, referral, paid_campaign)
  crm_status: enum(accepted, rejected)
"""

HEADER = f"""event ticket.created
event ticket.updated
event lead.updated

schema ticket {{
{TICKET_FIELDS}\
  region: enum(emea, amer, apac, latam)
  product: enum(core, billing, search, mobile, api, data)
  tags: set
  root_cause: text
}}

schema account {{
  id: text
  name: text
  tier: enum(free, pro, enterprise)
  arr: number
}}

schema lead {{
{LEAD_FIELDS}\
}}

person lead_a {{ name "Lead A" email "a@example.com" pager "a" }}
person lead_b {{ name "Lead B" email "b@example.com" pager "b" }}
person lead_c {{ name "Lead C" email "c@example.com" }}
team oncall_a {{ members lead_a, lead_b rotation weekly from "2026-01-05T09:00:00Z" }}
channel ops {{ slack "#ops" }}

template standard_qa() {{
  check delivery within 1m else retry 3
  check state ticket.status in (escalated, in_progress)
}}
"""

SEVERITIES = ["low", "medium", "high", "critical"]
REGIONS = ["emea", "amer", "apac", "latam"]
PRODUCTS = ["core", "billing", "search", "mobile", "api", "data"]
TIERS = ["free", "pro", "enterprise"]


def policy_text(i: int, rng: random.Random) -> str:
    """One policy of about 16 lines; its priority is unique unless ``rng`` says overlap."""
    sev = rng.choice(SEVERITIES)
    region = REGIONS[i % len(REGIONS)]
    product = PRODUCTS[(i // len(REGIONS)) % len(PRODUCTS)]
    tier = rng.choice(TIERS)
    arr = rng.randrange(0, 500) * 1000
    tag = f"tag{i % 37}"
    return f"""policy p{i:05d} {{
  title "Generated policy {i}"
  description "Escalates {sev} {product} tickets from {region} for {tier} accounts; owned by the on-call rotation with a paged backup."
  approvers "@example/team-{i % 20}"
  priority {i}
  trigger ticket.created, ticket.updated
  when ticket.severity == {sev} and ticket.region == {region} and ticket.product == {product} and (account.tier == {tier} or account.arr >= {arr} or ticket.tags has "{tag}")
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


def generate_policy_set(count: int, *, seed: int = 7, per_file: int = 50) -> dict[str, str]:
    """File name → text for a set of ``count`` policies plus a shared schema file."""
    rng = random.Random(seed)
    files = {"schema.esc": HEADER}
    for start in range(0, count, per_file):
        body = "\n".join(policy_text(i, rng) for i in range(start, min(count, start + per_file)))
        files[f"policies_{start // per_file:04d}.esc"] = body
    return files
