"""Generate examples/day.jsonl: a realistic, deterministic day of events and operator actions.

Covers the four use cases (customer incidents, lead routing failures, content
publishing blocks, SLA breaches on high-priority tickets), with acks, resolves,
closes, a transfer, an absence, a few unknown fields, a duplicate delivery and
two malformed events. Run: python examples/make_day.py > examples/day.jsonl
"""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

DAY = datetime(2026, 11, 27, tzinfo=UTC)
ACCOUNTS = [
    ("acme", "Acme", "enterprise"),
    ("globex", "Globex", "enterprise"),
    ("initech", "Initech", "pro"),
    ("umbrella", "Umbrella", "enterprise"),
    ("hooli", "Hooli", "free"),
    ("stark", "Stark", "pro"),
]
TITLES = [
    "Checkout down",
    "Login errors",
    "API latency",
    "Invoices missing",
    "Data export stuck",
    "Webhook failures",
    "Search returns nothing",
    "SSO broken",
]
CAUSES = ["expired certificate", "bad deploy", "database failover", "rate limit", "DNS change"]


class Day:
    def __init__(self, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.lines: list[tuple[datetime, int, dict[str, Any]]] = []
        self.seq = 0

    def at(self, when: datetime, line: dict[str, Any]) -> None:
        line["at"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        self.lines.append((when, len(self.lines), line))

    def event(self, when: datetime, type_: str, data: dict[str, Any]) -> dict[str, Any]:
        self.seq += 1
        line = {"id": f"evt-{self.seq:05d}", "type": type_, "data": data}
        self.at(when, line)
        return line

    def command(self, when: datetime, name: str, **args: str) -> None:
        self.at(when, {"command": name, **args})

    def minutes(self, lo: float, hi: float) -> timedelta:
        return timedelta(minutes=self.rng.uniform(lo, hi))


def customer_incidents(day: Day) -> None:
    criticals = 0
    for i in range(45):
        start = DAY + timedelta(minutes=day.rng.uniform(0, 22 * 60))
        account, name, tier = day.rng.choice(ACCOUNTS)
        severity = day.rng.choice(["critical", "critical", "high", "medium", "low"])
        ticket = f"INC-{1000 + i}"
        tags = ["vendor_outage"] if severity == "critical" and day.rng.random() < 0.12 else []
        fields: dict[str, Any] = {
            "id": ticket,
            "title": day.rng.choice(TITLES),
            "severity": severity,
            "status": "new",
            "priority": "high",
            "tags": tags,
        }
        if day.rng.random() < 0.2:
            fields["channel"] = "email"  # not in the schema: ignored and counted
        day.event(
            start,
            "ticket.created",
            {"ticket": fields, "account": {"id": account, "name": name, "tier": tier}},
        )
        if severity != "critical":
            continue
        t = start + day.minutes(0.5, 3)
        day.event(t, "ticket.updated", {"ticket": {"id": ticket, "status": "escalated"}})
        criticals += 1
        if criticals % 6 == 0:
            continue  # nobody acknowledges: the chain runs out and triage takes it
        ack_at = start + day.minutes(1, 14)
        who = (
            "alice" if ack_at - start < timedelta(minutes=5) else day.rng.choice(["carol", "alice"])
        )
        day.command(ack_at, "ack", ticket=ticket, by=who)
        if day.rng.random() < 0.1:
            day.command(
                ack_at + day.minutes(2, 10),
                "transfer",
                ticket=ticket,
                to="dana",
                reason="needs a director decision",
                sla="2h",
            )
        fixed = ack_at + day.minutes(15, 300)
        day.event(
            fixed,
            "ticket.updated",
            {"ticket": {"id": ticket, "status": "resolved", "root_cause": day.rng.choice(CAUSES)}},
        )
        day.command(fixed + timedelta(minutes=1), "resolve", ticket=ticket)
        if tags or day.rng.random() < 0.3:
            day.command(
                fixed + day.minutes(5, 60),
                "postmortem",
                ticket=ticket,
                link=f"https://wiki.example.com/postmortems/{ticket}",
            )
        day.command(fixed + day.minutes(61, 120), "close", ticket=ticket)


def lead_failures(day: Day) -> None:
    for i in range(30):
        start = DAY + timedelta(minutes=day.rng.uniform(0, 20 * 60))
        lead = f"LEAD-{5000 + i}"
        source = day.rng.choice(["paid_campaign", "paid_campaign", "organic", "referral"])
        status = day.rng.choice(["rejected", "rejected", "accepted"])
        day.event(
            start, "lead.updated", {"lead": {"id": lead, "source": source, "crm_status": status}}
        )
        if not (source == "paid_campaign" and status == "rejected"):
            continue
        ack_at = start + day.minutes(10, 240)
        day.command(ack_at, "ack", ticket=lead, by="erin")
        fixed = ack_at + day.minutes(30, 400)
        day.event(fixed, "lead.updated", {"lead": {"id": lead, "crm_status": "accepted"}})
        day.command(fixed + timedelta(minutes=2), "resolve", ticket=lead)
        day.command(fixed + timedelta(minutes=5), "close", ticket=lead)


def publishing_blocks(day: Day) -> None:
    for i in range(25):
        start = DAY + timedelta(minutes=day.rng.uniform(6 * 60, 20 * 60))
        content = f"ART-{300 + i}"
        pipeline = day.rng.choice(["failed", "ok", "ok"])
        qa = day.rng.choice(["pass", "pass", "violation", "ambiguous"])
        day.event(
            start,
            "content.updated",
            {"content": {"id": content, "title": f"Story {i}", "pipeline": pipeline, "qa": qa}},
        )
        if pipeline == "ok" and qa == "pass":
            continue
        day.event(
            start + day.minutes(0.5, 4),
            "content.updated",
            {"content": {"id": content, "publishing": "locked"}},
        )
        ack_at = start + day.minutes(3, 40)
        day.command(ack_at, "ack", ticket=content, by="gwen")
        fixed = ack_at + day.minutes(20, 180)
        day.event(
            fixed,
            "content.updated",
            {"content": {"id": content, "pipeline": "ok", "qa": "pass", "publishing": "unlocked"}},
        )
        day.command(fixed + timedelta(minutes=1), "resolve", ticket=content)
        day.command(fixed + timedelta(minutes=3), "close", ticket=content)


def sla_breaches(day: Day) -> None:
    for i in range(25):
        start = DAY + timedelta(minutes=day.rng.uniform(0, 21 * 60))
        ticket = f"SUP-{7000 + i}"
        priority = day.rng.choice(["high", "high", "normal"])
        day.event(
            start,
            "ticket.sla_breached",
            {
                "ticket": {
                    "id": ticket,
                    "title": "Customer waiting",
                    "priority": priority,
                    "status": "open",
                }
            },
        )
        if day.rng.random() < 0.3:  # fixed within the 30 minute grace period
            day.event(
                start + day.minutes(5, 25),
                "ticket.updated",
                {"ticket": {"id": ticket, "status": "resolved"}},
            )
            continue
        if priority != "high":
            continue
        begin = start + timedelta(minutes=30)
        day.event(
            begin + day.minutes(0.5, 3),
            "ticket.updated",
            {"ticket": {"id": ticket, "status": "escalated"}},
        )
        ack_at = begin + day.minutes(1, 12)
        day.command(ack_at, "ack", ticket=ticket, by=day.rng.choice(["lena", "ines"]))
        fixed = ack_at + day.minutes(10, 150)
        day.command(fixed, "resolve", ticket=ticket)
        day.command(
            fixed + day.minutes(5, 30),
            "postmortem",
            ticket=ticket,
            link=f"https://wiki.example.com/postmortems/{ticket}",
        )
        day.command(fixed + day.minutes(31, 60), "close", ticket=ticket)


def main() -> None:
    day = Day()
    day.command(DAY + timedelta(hours=13), "absent", person="carol", until="2026-11-27T18:00:00Z")
    customer_incidents(day)
    lead_failures(day)
    publishing_blocks(day)
    sla_breaches(day)
    ordered = [line for _, _, line in sorted(day.lines, key=lambda item: (item[0], item[1]))]
    first_event = next(line for line in ordered if "id" in line)
    out = [json.dumps(line, sort_keys=True) for line in ordered]
    # an upstream retry delivers one event twice, and two broken events arrive
    out.insert(len(out) // 3, json.dumps(first_event, sort_keys=True))
    out.insert(
        len(out) // 2,
        '{"id": "evt-bad-1", "type": "ticket.created", "at": "2026-11-27T12:00:00Z",'
        ' "data": {"ticket": {"id": "INC-9999", "severity": "sev1"}}}',
    )
    out.insert(2 * len(out) // 3, '{"type": "ticket.updated", "truncated')
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main()
