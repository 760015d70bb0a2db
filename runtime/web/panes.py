"""What the pages show, read from the engine: plain data for the templates.

Every function here reads (the caller holds the engine lock); none writes.
Countdowns are taken from the display time ``now`` (the engine's clock, never
before the store's): an ack timer says when the next failover happens, the
``sla_*`` timers when an SLA breaches, and an escalation's facts say which SLA
was met or breached already.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from escalade.runtime.activation import pack_history as activation_history
from escalade.runtime.clock import format_duration, format_time
from escalade.runtime.engine import Engine, PackError, roster
from escalade.runtime.engine.loaded import SLA_KINDS, LoadedPack
from escalade.runtime.engine.transitions import allowed
from escalade.runtime.store import OPEN_STATES, Escalation, Timer

NOW_LIMIT = 500  # rows on the Now page
RUNBOOKS = "generated/runbooks"
SORTS = ("started", "ticket", "policy", "state", "owner", "failover", "ack_sla", "resolve_sla")


def display_time(engine: Engine) -> int:
    """The time pages show countdowns from: the engine's clock, never before the store's."""
    return max(engine.clock.now(), engine.store.clock() or 0)


def ticket_href(ticket: str) -> str:
    """The page of ``ticket``."""
    return f"/tickets/{quote(ticket, safe='')}/view"


@dataclass(frozen=True, slots=True)
class Countdown:
    """A clock as people read it: ``in 4m 30s``, ``overdue 2m``, ``met``, ``breached``.

    ``seconds`` is what is left (negative once overdue; None when no clock runs), for sorting."""

    text: str
    seconds: int | None = None
    breached: bool = False


NO_CLOCK = Countdown("—")


def countdown(due: int | None, now: int) -> Countdown:
    """The countdown to ``due`` (overdue once it passed: the timer fires at the next tick)."""
    if due is None:
        return NO_CLOCK
    left = due - now
    if left > 0:
        return Countdown(f"in {format_duration(left, ' ')}", left)
    return Countdown(f"overdue {format_duration(-left, ' ')}", left, breached=True)


def sla_countdown(
    esc: Escalation, kind: str, timers: Sequence[Timer], now: int, pack: LoadedPack
) -> Countdown:
    """Where the ``kind`` SLA (acknowledge, resolve) of ``esc`` stands at ``now``: its
    timer's due instant, else the policy's (in its calendar when it counts in one)."""
    if kind in esc.facts.breached:
        return Countdown("breached", None, breached=True)
    if kind in esc.facts.met:
        return Countdown("met")
    target = esc.facts.sla_targets.get(kind)
    if target is None:
        return NO_CLOCK
    due = next((t.due for t in timers if t.kind == f"sla_{kind}"), None)
    if due is None:
        rules = pack.rules.get(esc.policy)
        found = pack.sla_due(rules, kind, esc.started_at) if rules is not None else None
        due = found if found is not None else esc.started_at + target
    return countdown(due, now)


def failover_countdown(esc: Escalation, timers: Sequence[Timer], now: int) -> Countdown:
    """When the ack timer hands ``esc`` to the next owner (a transfer's own SLA timer too)."""
    due = min((t.due for t in timers if t.kind in ("ack", "transfer")), default=None)
    return countdown(due, now)


def title_of(snapshot: Mapping[str, Any]) -> str:
    """The ticket's title from a ticket state (``""`` when it has none)."""
    ticket = snapshot.get("ticket")
    title = ticket.get("title") if isinstance(ticket, Mapping) else None
    return title if isinstance(title, str) else ""


def teams_of(pack: LoadedPack, esc: Escalation) -> set[str]:
    """The teams an escalation belongs to: the owning team, the team its owner is on call
    for, and every team its owner is a member of."""
    owner = esc.owner or ""
    found = {name for name, team in pack.teams.items() if owner in team.members}
    found.update(t for t in (owner, esc.facts.owner_from) if t and t in pack.teams)
    return found


@dataclass(frozen=True, slots=True)
class NowRow:
    """One open escalation on the Now page."""

    ticket: str
    href: str
    title: str
    policy: str
    state: str
    owner: str
    level: str
    started: str
    failover: Countdown
    ack_sla: Countdown
    resolve_sla: Countdown
    teams: frozenset[str]
    started_at: int

    @property
    def breached(self) -> bool:
        """Whether an SLA breached (or is overdue): the row is highlighted."""
        return self.ack_sla.breached or self.resolve_sla.breached


def now_row(engine: Engine, esc: Escalation, now: int) -> NowRow:
    """The Now page's row of ``esc``."""
    timers = engine.store.timers_of(esc.id)
    state, _ = engine.store.ticket_state(esc.ticket)
    pack = engine.pack(esc.pack_id)
    owner = esc.owner or "nobody"
    if esc.facts.owner_from:
        owner += f" (for {esc.facts.owner_from})"
    return NowRow(
        ticket=esc.ticket,
        href=ticket_href(esc.ticket),
        title=title_of(state) or title_of(esc.snapshot),
        policy=esc.policy,
        state=esc.state,
        owner=owner,
        level=f"{esc.level or '—'}, round {esc.cycle + 1}",
        started=format_time(esc.started_at),
        failover=failover_countdown(esc, timers, now),
        ack_sla=sla_countdown(esc, "acknowledge", timers, now, pack),
        resolve_sla=sla_countdown(esc, "resolve", timers, now, pack),
        teams=frozenset(teams_of(pack, esc)),
        started_at=esc.started_at,
    )


@dataclass(frozen=True, slots=True)
class NowFilter:
    """The Now page's query: filters (``""``: any), the sort column and its direction."""

    team: str = ""
    policy: str = ""
    state: str = ""
    sort: str = "started"
    descending: bool = False

    @classmethod
    def of(cls, query: Mapping[str, str]) -> NowFilter:
        """From query parameters: ``team``, ``policy``, ``state``, ``sort`` (``-`` first: descending)."""
        sort = query.get("sort", "")
        key = sort.removeprefix("-")
        return cls(
            team=query.get("team", ""),
            policy=query.get("policy", ""),
            state=query.get("state", ""),
            sort=key if key in SORTS else "started",
            descending=sort.startswith("-") and key in SORTS,
        )

    def keeps(self, row: NowRow) -> bool:
        """Whether ``row`` passes the filters."""
        return (
            (not self.team or self.team in row.teams)
            and (not self.policy or row.policy == self.policy)
            and (not self.state or row.state == self.state)
        )

    def query(self, **changes: str) -> str:
        """This query as a URL query string, with ``changes`` applied (empty values left out)."""
        values = {"team": self.team, "policy": self.policy, "state": self.state}
        values["sort"] = ("-" if self.descending else "") + self.sort
        values.update(changes)
        kept = [(k, v) for k, v in values.items() if v and not (k == "sort" and v == "started")]
        return "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in kept) if kept else "?"

    def sorted_by(self, key: str) -> str:
        """The query sorting by ``key``: ascending, or the other way round when it already is."""
        flip = self.sort == key and not self.descending
        return self.query(sort=f"-{key}" if flip else key)


def _clock_key(c: Countdown) -> tuple[int, int]:
    return (1, 0) if c.seconds is None else (0, c.seconds)


SORT_KEYS: dict[str, Callable[[NowRow], Any]] = {
    "started": lambda r: (r.started_at, r.ticket),
    "ticket": lambda r: r.ticket,
    "policy": lambda r: (r.policy, r.started_at),
    "state": lambda r: (r.state, r.started_at),
    "owner": lambda r: (r.owner, r.started_at),
    "failover": lambda r: _clock_key(r.failover),
    "ack_sla": lambda r: _clock_key(r.ack_sla),
    "resolve_sla": lambda r: _clock_key(r.resolve_sla),
}


@dataclass(slots=True)
class NowBoard:
    """The Now page: its rows and the choices of its filter form."""

    rows: list[NowRow]
    teams: list[str]
    policies: list[str]
    states: tuple[str, ...] = OPEN_STATES
    truncated: bool = False


def now_board(
    engine: Engine,
    escalations: Sequence[Escalation],
    wanted: NowFilter,
    now: int,
    truncated: bool = False,
) -> NowBoard:
    """The rows of ``escalations`` that pass ``wanted``, sorted as it asks (``truncated``:
    the store had more open escalations than were read)."""
    rows = [r for r in (now_row(engine, e, now) for e in escalations) if wanted.keeps(r)]
    rows.sort(key=SORT_KEYS[wanted.sort], reverse=wanted.descending)
    try:
        pack = engine.active()
        teams, policies = sorted(pack.teams), sorted(pack.rules)
    except PackError:
        teams, policies = [], []
    return NowBoard(rows, teams, policies, truncated=truncated)


# --- one ticket ------------------------------------------------------------------


@dataclass(slots=True)
class TicketView:
    """Everything the ticket page shows of the ticket's latest escalation."""

    status: dict[str, Any]
    title: str
    open: bool
    policy_title: str
    runbook: str
    snapshot: str
    failover: Countdown
    slas: dict[str, Countdown]
    close_problems: list[str]
    can: dict[str, bool]
    directory: list[str] = field(default_factory=list)

    @property
    def ticket(self) -> str:
        return str(self.status["ticket"])

    @property
    def postmortem_href(self) -> str | None:
        """The post-mortem link when it is a web address (anything else shows as text)."""
        link = self.status.get("postmortem_link") or ""
        return link if link.startswith(("https://", "http://")) else None


def ticket_view(engine: Engine, ticket: str, now: int) -> TicketView | None:
    """The ticket page's data (None when the ticket never had an escalation)."""
    store = engine.store
    esc = store.open_escalation(ticket) or store.latest_escalation(ticket)
    status = engine.status(ticket, now)
    if esc is None or status is None:
        return None
    pack = engine.pack(esc.pack_id)
    rules = pack.rules[esc.policy]
    timers = store.timers_of(esc.id)
    state, _ = store.ticket_state(ticket)
    is_open = esc.state != "closed"
    return TicketView(
        status=status,
        title=title_of(state) or title_of(esc.snapshot),
        open=is_open,
        policy_title=rules.policy.title or "",
        runbook=f"{RUNBOOKS}/{esc.policy}.md",
        snapshot=json.dumps(esc.snapshot, indent=2, sort_keys=True, ensure_ascii=False),
        failover=failover_countdown(esc, timers, now),
        slas={kind: sla_countdown(esc, kind, timers, now, pack) for kind in SLA_KINDS},
        close_problems=engine.close_problems(esc, rules) if is_open else [],
        can={
            "ack": is_open and allowed(esc.state, "ack"),
            "transfer": is_open and allowed(esc.state, "transfer"),
            "resolve": is_open and allowed(esc.state, "resolve"),
            "close": is_open,
            "postmortem": is_open,
        },
        directory=sorted({*pack.people, *pack.teams}),
    )


# --- on call, packs, dead letters --------------------------------------------------


CALENDAR_DAYS = 7  # the calendar each team shows on the on-call page
AHEAD = 90 * 86400  # how far ahead the page lists overrides and absences


def oncall_board(engine: Engine, now: int) -> list[dict[str, Any]]:
    """Per team of the active pack: members, who is on call now and who next (the next
    segment of the calendar with another person, within a week), the week's calendar
    (segments, see :func:`~escalade.runtime.engine.roster.calendar`) and the overrides
    recorded in the store that are running or to come."""
    pack = engine.active()
    board = []
    for name, team in sorted(pack.teams.items()):
        shown = roster.oncall_now_next(engine.store, pack, name, now, CALENDAR_DAYS)
        layers = [layer.name for layer in team.schedule.layers] if team.schedule else []
        row: dict[str, Any] = {
            "team": name,
            "members": list(team.members),
            "rotation": ", ".join(layers) if layers else "none: any available member",
            "zone": roster.team_zone(team),
            **shown,
            "overrides": [
                {
                    "person": o.person,
                    "for": o.replaces or "the whole team",
                    "from": format_time(o.since),
                    "until": format_time(o.until),
                    "by": o.actor,
                    "reason": o.reason,
                }
                for o in roster.stored_overrides(engine.store, name, now, now + AHEAD)
            ],
        }
        board.append(row)
    return board


def absences(engine: Engine, now: int) -> list[dict[str, str]]:
    """Absence windows running at ``now`` or to come (within 90 days), by person."""
    people = engine.active().people
    return [
        {
            "person": person,
            "name": people[person].display if person in people else person,
            "from": format_time(since) if since > 0 else "",
            "until": format_time(until),
        }
        for person, windows in sorted(engine.store.absence_windows(now, now + AHEAD).items())
        for since, until in windows
    ]


def pack_history(engine: Engine) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every pack the store holds and every activation, rollback and refusal, newest
    first (as ``escalade pack history``, oldest first)."""
    packs, events = activation_history(engine)
    for row in packs:
        row["activated_at"] = row["activated_at"] or ""
    return list(reversed(packs)), list(reversed(events))


def dead_letter_rows(engine: Engine) -> list[dict[str, Any]]:
    """The dead letters not replayed yet, with why each was refused."""
    return [
        {
            "id": d.id,
            "event_id": d.event_id or "—",
            "received_at": format_time(d.received_at),
            "error": d.error,
            "raw": d.raw if len(d.raw) <= 2000 else d.raw[:2000] + " …",
        }
        for d in engine.store.dead_letters()
    ]
