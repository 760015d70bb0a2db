"""Operator commands as decisions on one escalation: ack, resolve, close, transfer, post-mortem,
revert.

Each ``decide_*`` function runs inside the shell's transaction on the open
escalation; raising :class:`Refused` leaves the escalation as it was (the
shell still writes a refusal that was audited, such as ``close_refused``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from escalade.runtime.clock import format_duration
from escalade.runtime.conditions import format_condition
from escalade.runtime.engine.actions import notify_owner
from escalade.runtime.engine.chain import run_steps
from escalade.runtime.engine.context import Moment, Refused, Runtime
from escalade.runtime.engine.loaded import LoadedPack, PolicyRules
from escalade.runtime.engine.ownership import resolve_ref
from escalade.runtime.engine.postmortems import complete as complete_postmortem
from escalade.runtime.engine.transitions import allowed
from escalade.runtime.engine.undo import revert
from escalade.runtime.store import Escalation, Timer


def transfer_problem(reason: str, sla: int | None) -> str | None:
    """Why a transfer's own arguments are refused (None when they are fine): the one rule
    the CLI, the server and the engine share."""
    if not reason.strip():
        return 'a transfer needs a reason (--reason "...")'
    if sla is None or sla <= 0:
        return "a transfer needs an expected SLA (--sla 2h)"
    return None


def reached(
    rt: Runtime,
    esc: Escalation,
    pack: LoadedPack,
    rules: PolicyRules,
    m: Moment,
    moment: str,
    by: str = "",
    detail: dict[str, Any] | None = None,
) -> None:
    """``acknowledge`` or ``resolve`` happened: the SLAs up to it are met unless they
    breached (a resolve meets an outstanding acknowledge SLA too); audit (with ``detail``);
    its ``on`` steps."""
    slas = ("acknowledge",) if moment == "acknowledge" else ("acknowledge", "resolve")
    esc.facts.met.update(kind for kind in slas if kind not in esc.facts.breached)
    reason = f"{moment}d{by} after {format_duration(m.now - esc.started_at)}"
    rt.audit(m, f"{moment}d", esc, pack, rules.name, reason=reason, detail=detail)
    run_steps(rt, esc, pack, rules, rules.steps(moment), m, moment)


def assignee_problem(pack: LoadedPack, esc: Escalation, by: str) -> str | None:
    """Why ``by`` may not acknowledge ``esc`` as its assignee (None when they may): only the
    current owner, or any member of an owning team (an ``all(T)`` level, a team without
    rotation); a ``round_robin(T)`` level is owned by the member it picked."""
    team = pack.teams.get(esc.owner or "") if esc.owner_kind == "team" else None
    if team is not None:
        if by in team.members:
            return None
    elif esc.owner == by:
        return None
    owner = esc.owner or "nobody"
    return (
        f"{by} is not the current assignee of ticket {esc.ticket} (owner {owner});"
        " acknowledge as the owner, or with --override REASON (audited)"
    )


def decide_ack(
    rt: Runtime,
    esc: Escalation,
    pack: LoadedPack,
    rules: PolicyRules,
    m: Moment,
    by: str,
    override: str | None = None,
    via: str | None = None,
) -> str:
    """``by`` acknowledges: failover stops for good. Only the assignee, unless ``override``
    gives a reason (audited as ``ack_override``). ``via`` (``link``, ``slack``) is recorded
    in the ``acknowledged`` row's detail."""
    if by not in pack.people:
        raise Refused(f"{by!r} is not a person in the directory")
    if not allowed(esc.state, "ack"):
        raise Refused(f"ticket {esc.ticket} is already {esc.state} (owner {esc.owner})")
    problem = assignee_problem(pack, esc, by)
    if problem is not None:
        if override is None or not override.strip():
            raise Refused(problem)
        reason = f"{by} acknowledges instead of {esc.owner or 'nobody'}: {override.strip()}"
        detail = {"owner": esc.owner, "by": by, "reason": override.strip()}
        rt.audit(m, "ack_override", esc, pack, rules.name, reason=reason, detail=detail)
    rt.move(esc, "ack")
    esc.acked_at = m.now
    # A team level (`all(T)`, a team without rotation): the first member's ack owns it.
    team = esc.owner if esc.owner_kind == "team" and problem is None else None
    esc.owner, esc.owner_kind = by, "person"
    if esc.facts.first_ack is None:
        esc.facts.first_ack = m.now
    rt.store.cancel_timers(esc.id, ("ack", "sla_acknowledge"))
    detail = {"via": via} if via else {}
    detail.update({"first_of": team} if team else {})
    who = f" by {by}" + (f" (first of {team})" if team else "")
    reached(rt, esc, pack, rules, m, "acknowledge", who, detail or None)
    return f"ticket {esc.ticket} acknowledged by {by}"


def decide_resolve(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, m: Moment
) -> str:
    """The problem is fixed; the resolve SLA is met unless it already breached."""
    if not allowed(esc.state, "resolve"):
        raise Refused(f"ticket {esc.ticket} is already resolved")
    rt.move(esc, "resolve")
    esc.resolved_at = m.now
    rt.store.cancel_timers(esc.id, ("ack", "sla_acknowledge", "sla_resolve", "transfer"))
    reached(rt, esc, pack, rules, m, "resolve")
    return f"ticket {esc.ticket} resolved"


def close_problems(rt: Runtime, esc: Escalation, rules: PolicyRules) -> list[str]:
    """Why ``esc`` may not close yet (empty when it may)."""
    problems = []
    if esc.state != "resolved":
        problems.append(f"it is {esc.state}, not resolved")
    state, _ = rt.store.ticket_state(esc.ticket)
    needs_postmortem = esc.facts.postmortem_required
    for check, pred in rules.close_checks:
        if pred is None:
            needs_postmortem = True
        elif not pred(state):
            problems.append(f"check close requires {format_condition(check.when)} does not hold")
    if needs_postmortem and not esc.facts.postmortem_link:
        problems.append("a post-mortem is required (postmortem TICKET --link URL)")
    return problems


def decide_close(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, m: Moment
) -> str:
    """Close, only once every close check holds; refused (and audited) otherwise."""
    problems = close_problems(rt, esc, rules)
    if problems:
        reason = "; ".join(problems)
        rt.audit(m, "close_refused", esc, pack, rules.name, reason=reason)
        raise Refused(f"close of ticket {esc.ticket} refused: {reason}")
    rt.move(esc, "close")
    esc.closed_at = m.now
    rt.store.cancel_timers(esc.id)
    rt.audit(m, "closed", esc, pack, rules.name, reason="every close check holds")
    return f"ticket {esc.ticket} closed"


def decide_transfer(
    rt: Runtime,
    esc: Escalation,
    pack: LoadedPack,
    rules: PolicyRules,
    m: Moment,
    to: str,
    reason: str,
    sla: int,
) -> str:
    """Manual transfer to ``to`` with a reason and an expected SLA; failover stops."""
    if to not in pack.people and to not in pack.teams:
        raise Refused(f"{to!r} is neither a person nor a team in the directory")
    if not allowed(esc.state, "transfer"):
        raise Refused(f"ticket {esc.ticket} is already resolved")
    away = rt.store.absences(m.now)
    found = resolve_ref(pack, to, "team" if to in pack.teams else "person", m.now, away, rt.store)
    if found is None:
        raise Refused(f"{to} is absent (or nobody in the team is available)")
    previous = esc.owner
    rt.store.cancel_timers(esc.id, ("ack", "transfer"))
    rt.move(esc, "transfer")
    esc.level, esc.owner, esc.owner_kind = "transfer", found[0], found[1]
    esc.facts.owner_from = to if found[0] != to else None
    esc.acked_at = None
    esc.facts.transfers += 1
    rt.store.add_timer(
        Timer(due=m.now + sla, kind="transfer", ticket=esc.ticket, escalation_id=esc.id)
    )
    rt.audit(
        m,
        "transfer",
        esc,
        pack,
        rules.name,
        reason=f"{previous} -> {found[0]}: {reason} (expected within {format_duration(sla)})",
        detail={"from": previous, "to": found[0], "sla": sla},
    )
    notify_owner(rt, esc, pack, rules, m, f"Ticket {esc.ticket} was transferred to you: {reason}")
    return f"ticket {esc.ticket} transferred to {found[0]}"


def decide_postmortem(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, m: Moment, link: str
) -> str:
    """Record the completed post-mortem that close may require (its overdue timers end)."""
    esc.facts.postmortem_link = link
    detail = complete_postmortem(rt, esc, m, link)
    reason = f"post-mortem completed: {link}"
    rt.audit(m, "postmortem", esc, pack, rules.name, reason=reason, detail=detail)
    return f"post-mortem recorded for ticket {esc.ticket}"


def decide_revert(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, m: Moment, reason: str
) -> str:
    """Undo the steps that ran, newest first, through the outbox (see :mod:`.undo`);
    :class:`Refused`, nothing changed, without a reason or when nothing that ran can be
    undone."""
    why = reason.strip()
    if not why:
        raise Refused('a revert needs a reason (--reason "...")')
    done = revert(rt, esc, pack, rules, m, why)
    assert done is not None
    return f"ticket {esc.ticket} reverted ({why})\n{done.summary()}"


def reverting(reason: str) -> Callable[[Runtime, Escalation, LoadedPack, PolicyRules, Moment], str]:
    """The decision of ``escalade revert`` with ``reason`` (see :func:`decide_revert`)."""
    return lambda rt, esc, pack, rules, m: decide_revert(rt, esc, pack, rules, m, reason)
