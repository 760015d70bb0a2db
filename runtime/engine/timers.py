"""What a due timer does, by kind (:data:`ESCALATION_TIMERS` is the table).

Timers are rows; the shell takes each due one in its own transaction and
calls :func:`fire`. A timer whose escalation moved on (another level, cycle or
policy than when it was armed) does nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from escalade.runtime.engine import handover
from escalade.runtime.engine.chain import assign, breach, failure, run_steps, start
from escalade.runtime.engine.context import Moment, Runtime
from escalade.runtime.engine.delivery import fire_delivery, fire_redeliver
from escalade.runtime.engine.loaded import LoadedPack, PolicyRules
from escalade.runtime.engine.noise import SILENCE_END
from escalade.runtime.engine.postmortems import POSTMORTEM_DUE, POSTMORTEM_LAST_RESORT
from escalade.runtime.engine.postmortems import fire_due as fire_postmortem_due
from escalade.runtime.engine.postmortems import fire_last_resort as fire_postmortem_last
from escalade.runtime.store import Escalation, Timer

Handler = Callable[[Runtime, Escalation, LoadedPack, PolicyRules, Timer, Moment], None]


def fire(rt: Runtime, timer: Timer, m: Moment) -> None:
    """Carry out one due timer."""
    if timer.kind == "after":
        fire_after(rt, timer, m)
        return
    if timer.kind == "redeliver":
        fire_redeliver(rt, timer, m)
        return
    if timer.kind == handover.ROSTER_START:
        handover.fire_roster_start(rt, timer, m)
        return
    if timer.escalation_id is None:
        return
    esc = rt.store.escalation(timer.escalation_id)
    if esc is None or esc.state == "closed":
        return
    handler = ESCALATION_TIMERS.get(timer.kind)
    if handler is None:
        return
    pack = rt.pack(esc.pack_id)
    handler(rt, esc, pack, pack.rules[esc.policy], timer, m)
    rt.store.update_escalation(esc)


def fire_ack(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, timer: Timer, m: Moment
) -> None:
    """The level's ack timeout: ``on failover`` steps, then the next owner of the chain."""
    armed = (timer.payload.get("index"), timer.payload.get("cycle"), timer.payload.get("policy"))
    if esc.state != "assigned" or armed != (esc.level_index, esc.cycle, esc.policy):
        return
    owner = esc.owner
    reason = f"{esc.level} owner {owner} did not acknowledge in time"
    rt.audit(m, "ack_timeout", esc, pack, rules.name, reason=reason)
    if not run_steps(rt, esc, pack, rules, rules.steps("failover"), m, "failover"):
        return
    assign(rt, esc, pack, rules, esc.level_index + 1, esc.cycle, m, f"failover from {owner}")


def fire_sla(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, timer: Timer, m: Moment
) -> None:
    """An SLA target passed without its moment (acknowledge or resolve)."""
    breach(rt, esc, pack, rules, timer.kind.removeprefix("sla_"), m)


def fire_state_check(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, timer: Timer, m: Moment
) -> None:
    """No event showed the checked state in time: a ``check_failed`` failure."""
    index = int(timer.payload.get("index", 0))
    if timer.payload.get("policy") != esc.policy or index >= len(rules.state_checks):
        return
    reason = f"check state {rules.state_check_text(index)}: no event showed it in time"
    failure(rt, esc, pack, rules, "check_failed", m, reason)


def fire_transfer(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, timer: Timer, m: Moment
) -> None:
    """The SLA a transfer promised passed unresolved: a breach and the ``on breach`` steps."""
    if esc.state in ("resolved", "closed") or esc.level != "transfer":
        return
    rt.audit(
        m,
        "breach",
        esc,
        pack,
        rules.name,
        reason=f"transfer SLA missed: {esc.owner} has not resolved it",
        detail={"sla": "transfer"},
    )
    run_steps(rt, esc, pack, rules, rules.steps("breach"), m, "breach")


def fire_silence_end(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, timer: Timer, m: Moment
) -> None:
    """The silence that held this chain ended: the chain starts (or is held again by
    another silence)."""
    release(rt, esc, pack, rules, timer, m)


def release(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, timer: Timer, m: Moment
) -> bool:
    """Start the chain a silence held (its ``silence_end`` timer, fired or ended early):
    audited ``released``, then the held owner is assigned and paged, with an ack timer.
    Nothing when the escalation moved on meanwhile (acknowledged, another level, policy or
    owner). Whether it was released."""
    armed = (timer.payload.get("index"), timer.payload.get("cycle"), timer.payload.get("policy"))
    if esc.state != "assigned" or esc.level == "transfer":
        return False
    if armed != (esc.level_index, esc.cycle, esc.policy):
        return False
    if any(t.kind == "ack" for t in rt.store.timers_of(esc.id)):
        return False  # assigned again since, outside the silence: running already
    source = timer.payload.get("source") or "the silence"
    rt.audit(
        m,
        "released",
        esc,
        pack,
        rules.name,
        reason=f"{source} ended: the chain starts",
        detail={"source": source, "id": timer.payload.get("id")},
    )
    assign(rt, esc, pack, rules, esc.level_index, esc.cycle, m, f"{source} ended")
    return True


# ``source_silent`` (a source's heartbeat, escalade.runtime.heartbeats) is not here: it
# applies an event, which the intake does (Intake.fire_due).
ESCALATION_TIMERS: Mapping[str, Handler] = {
    "ack": fire_ack,
    "sla_acknowledge": fire_sla,
    "sla_resolve": fire_sla,
    "state_check": fire_state_check,
    "delivery": fire_delivery,
    "transfer": fire_transfer,
    SILENCE_END: fire_silence_end,
    POSTMORTEM_DUE: fire_postmortem_due,  # overdue: the escalation owner, then the last resort
    POSTMORTEM_LAST_RESORT: fire_postmortem_last,
}


def fire_after(rt: Runtime, timer: Timer, m: Moment) -> None:
    """An ``after D`` delay is over: start the policy if its condition still holds."""
    active = rt.store.active_pack()
    pack = rt.pack(active if active is not None else int(timer.payload["pack"]))
    rules = pack.rules.get(str(timer.payload["policy"]))
    if rules is None:
        return
    state, _ = rt.store.ticket_state(timer.ticket)
    esc = rt.store.open_escalation(timer.ticket)
    if not rules.when(state):
        rt.audit(
            m,
            "trigger_dropped",
            esc,
            pack,
            rules.name,
            ticket=timer.ticket,
            reason=f"{rules.name}: the condition no longer holds after the delay",
        )
        return
    if esc is not None and rules.priority <= esc.priority:
        return
    later = Moment(now=m.now, cause=f"{timer.payload.get('cause')} after delay")
    start(rt, timer.ticket, pack, rules, state, later)
