"""When who is on call changes, escalations follow (SPEC §4: "an owner who becomes absent
is replaced at once").

An absence or an override that starts now moves what its person holds at once; one that
starts later leaves a ``roster_start`` timer at its start, which moves then what the
change takes away: the escalations its absent person holds, or those a team had given
to a member who is no longer its on-call.
"""

from __future__ import annotations

from escalade.runtime.clock import format_time
from escalade.runtime.engine import chain
from escalade.runtime.engine.context import Moment, Runtime
from escalade.runtime.engine.ownership import on_call
from escalade.runtime.store import Escalation, Timer

ROSTER_START = "roster_start"


def waiting_on(rt: Runtime, person: str) -> list[Escalation]:
    """The open escalations ``person`` holds and has not acknowledged (assigned, triage)."""
    return [
        esc
        for esc in rt.store.open_escalations_owned_by(person)
        if esc.state in ("assigned", "triage")
    ]


def reassign(rt: Runtime, esc: Escalation, person: str, m: Moment, why: str | None = None) -> bool:
    """``person``, who holds ``esc``, became absent (or ``why``): the chain (or triage)
    moves on; False for a transfer, whose own SLA timer governs it."""
    pack = rt.pack(esc.pack_id)
    rules = pack.rules[esc.policy]
    rt.store.cancel_timers(esc.id, ("ack",))
    why = why or f"{person} became absent"
    if esc.state == "triage":
        chain.triage(rt, esc, pack, rules, m, why)
    elif esc.level == "transfer":
        return False
    else:
        chain.assign(rt, esc, pack, rules, esc.level_index, esc.cycle, m, why)
    rt.store.update_escalation(esc)
    return True


def take_over(
    rt: Runtime, team: str, before: str | None, after: str | None, why: str, m: Moment
) -> int:
    """What ``team`` had assigned to ``before`` moves on (now ``after`` is on call)."""
    if before is None or before == after:
        return 0
    waiting = [e for e in waiting_on(rt, before) if e.facts.owner_from == team]
    return sum(reassign(rt, esc, before, m, why) for esc in waiting)


def at_start(rt: Runtime, start: int, what: str, *, person: str = "", team: str = "") -> None:
    """A ``roster_start`` timer at ``start``: an absence of ``person`` or an override on
    ``team`` that begins then."""
    payload = {"what": what, "person": person, "team": team}
    key = f"{ROSTER_START}:{team or person}:{start}"
    rt.store.add_timer(Timer(due=start, kind=ROSTER_START, ticket="", key=key, payload=payload))


def fire_roster_start(rt: Runtime, timer: Timer, m: Moment) -> int:
    """An absence or an override begins: move what it takes away (how many moved)."""
    what = str(timer.payload.get("what") or "a roster change")
    person, team = str(timer.payload.get("person") or ""), str(timer.payload.get("team") or "")
    if person:
        why = f"{person} is absent from {format_time(m.now)} ({what})"
        return sum(reassign(rt, esc, person, m, why) for esc in waiting_on(rt, person))
    return moved_off(rt, team, m, f"an override on {team} begins ({what})")


def moved_off(rt: Runtime, team: str, m: Moment, why: str) -> int:
    """What ``team`` had given to a member who is no longer its on-call at ``m.now`` (an
    override began) moves to whom the team reaches now."""
    moved = 0
    seen: set[int] = set()
    away = rt.store.absences(m.now)
    for esc in _given_by(rt, team):
        if esc.id in seen or esc.owner is None:
            continue
        seen.add(esc.id)
        now_on = on_call(rt.pack(esc.pack_id), team, m.now, away, rt.store)
        if now_on != esc.owner:
            moved += reassign(rt, esc, esc.owner, m, f"{why}: {now_on or 'nobody'} is on call")
    return moved


def _given_by(rt: Runtime, team: str) -> list[Escalation]:
    """The unacknowledged escalations ``team`` gave to one of its people."""
    active = rt.store.active_pack()
    spec = None if active is None else rt.pack(active).teams.get(team)
    people = sorted(spec.people()) if spec is not None else []
    found = [e for p in people for e in waiting_on(rt, p)]
    return [e for e in found if e.facts.owner_from == team]
