"""Routing and the owner chain: start, re-route, handoff, assignment, failover, failure, triage.

SPEC §4, pinned: an escalation has the priority of the policy it was routed
to (a Type A handoff keeps it); re-routes and handoffs start a new chain with
the SLA clocks keeping their start; condition exceptions are evaluated before
the steps; the chain walks primary -> backup -> escalation, ``repeat`` times
more, skipping absent owners; a failure goes to its Type A exception, else to
Type B triage.
"""

from __future__ import annotations

from typing import Any

from escalade.runtime import tracing
from escalade.runtime.clock import format_duration, format_time
from escalade.runtime.engine import noise
from escalade.runtime.engine.actions import emit, issue_steps, notify_owner
from escalade.runtime.engine.context import Moment, Runtime
from escalade.runtime.engine.loaded import SLA_KINDS, LoadedPack, PolicyRules
from escalade.runtime.engine.ownership import Assignee, resolve_owner, resolve_ref
from escalade.runtime.engine.postmortems import on_triage as draft_postmortem
from escalade.runtime.engine.undo import policy_revert
from escalade.runtime.engine.unowned import take_unowned
from escalade.runtime.pack import Owner, Step
from escalade.runtime.store import Escalation, Timer


def json_copy(value: Any) -> Any:
    """A deep copy of JSON data (dicts, lists, scalars): ``copy.deepcopy`` for what a ticket
    state holds, several times faster."""
    if isinstance(value, dict):
        return {k: json_copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_copy(v) for v in value]
    return value


def route(
    rt: Runtime, ticket: str, pack: LoadedPack, rules: PolicyRules, state: dict[str, Any], m: Moment
) -> int | None:
    """``rules`` owns the ticket now: start it (or, with ``after D``, arm the delay)."""
    after = rules.policy.after
    if not after:
        return start(rt, ticket, pack, rules, state, m)
    key = f"{pack.id}:{rules.name}"
    if not rt.store.has_timer(ticket, "after", key):
        rt.store.add_timer(
            Timer(
                due=m.now + after,
                kind="after",
                ticket=ticket,
                key=key,
                payload={"pack": pack.id, "policy": rules.name, "cause": m.cause},
            )
        )
        rt.audit(
            m,
            "trigger_delayed",
            None,
            pack,
            rules.name,
            ticket=ticket,
            reason=f"{rules.name} matched; starts in {format_duration(after)}"
            " if its condition still holds",
        )
    esc = rt.store.open_escalation(ticket)
    return esc.id if esc else None


def start(
    rt: Runtime, ticket: str, pack: LoadedPack, rules: PolicyRules, state: dict[str, Any], m: Moment
) -> int | None:
    """Start an escalation, or re-route the open one to a higher-priority policy."""
    esc = rt.store.open_escalation(ticket)
    if esc is not None:
        old = esc.policy
        esc.priority = rules.priority
        esc.pack_id = pack.id
        esc.facts.handoffs_stopped = None  # a new route; the loop window still counts
        rt.audit(
            m,
            "rerouted",
            esc,
            pack,
            rules.name,
            reason=f"{rules.name} (priority {rules.priority}) outranks {old}; {m.cause}",
            detail={"from": old, "to": rules.name, **sla_detail(pack, rules, esc.started_at)},
        )
        enter(rt, esc, pack, rules, state, m)
        rt.store.update_escalation(esc)
        return esc.id
    closed = rt.store.last_closed_at(ticket, rules.name)
    if closed is not None and m.now < closed + rules.policy.cooldown:
        rt.store.bump("cooldown_suppressed")
        return None
    account = state.get("account", {}).get("id")
    esc = Escalation(
        ticket=ticket,
        policy=rules.name,
        pack_id=pack.id,
        priority=rules.priority,
        started_at=m.now,
        snapshot=json_copy(state),
        account=account if isinstance(account, str) else None,
    )
    rt.store.insert_escalation(esc)
    rt.audit(
        m,
        "triggered",
        esc,
        pack,
        rules.name,
        reason=f"{rules.name} owns the ticket; {m.cause}",
        detail={
            "account": esc.account,
            "priority": rules.priority,
            **sla_detail(pack, rules, esc.started_at),
        },
    )
    enter(rt, esc, pack, rules, state, m)
    rt.store.update_escalation(esc)
    return esc.id


def enter(
    rt: Runtime,
    esc: Escalation,
    pack: LoadedPack,
    rules: PolicyRules,
    state: dict[str, Any],
    m: Moment,
) -> None:
    """Start ``rules`` on ``esc``: a new unacknowledged chain, its steps and checks."""
    esc.policy = rules.name
    esc.pack_id = pack.id
    rt.move(esc, "route")
    esc.level, esc.level_index, esc.cycle = None, 0, 0
    esc.owner = esc.owner_kind = None
    esc.acked_at = None
    esc.facts.owner_from = None
    rt.store.cancel_timers(esc.id, ("ack", "state_check", "transfer", "delivery"))
    if noise.attach(rt, esc, pack, rules, state, m):  # `group by`: a related ticket
        return
    arm_sla(rt, esc, pack, rules, m)
    for handoff, pred in rules.handoffs:  # condition exceptions first, before any step runs
        if pred is not None and pred(state):
            hand_off(
                rt, esc, pack, handoff.policy, m, f"exception {handoff.name}: its condition holds"
            )
            return
    if not run_steps(rt, esc, pack, rules, rules.steps(), m, "start"):
        return
    for index, (check, pred) in enumerate(rules.state_checks):
        if pred(state):
            rt.audit(
                m,
                "check_passed",
                esc,
                pack,
                rules.name,
                reason=f"check state {rules.state_check_text(index)} holds at start",
            )
            continue
        rt.store.add_timer(
            Timer(
                due=m.now + check.within,
                kind="state_check",
                ticket=esc.ticket,
                escalation_id=esc.id,
                key=f"{rules.name}:{index}",
                payload={"index": index, "policy": rules.name},
            )
        )
    assign(rt, esc, pack, rules, 0, 0, m, "assigned at start")


def sla_detail(pack: LoadedPack, rules: PolicyRules, started: int) -> dict[str, Any]:
    """What an audit row that (re)starts a chain says of its SLAs: the targets (seconds),
    when each falls due (``sla_due``, epoch seconds: the KPIs judge by it) and the
    calendar each is counted in (``sla_calendar``, None: wall-clock time)."""
    return {
        "sla": rules.sla_targets(),
        "sla_due": pack.sla_dues(rules, started),
        "sla_calendar": {kind: rules.sla_calendar(kind) for kind in SLA_KINDS},
    }


def arm_sla(rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, m: Moment) -> None:
    """SLA clocks keep their original start and use the current policy's targets, counted
    in its calendars (``sla resolve 12h within support_hours``)."""
    rt.store.cancel_timers(esc.id, ("sla_acknowledge", "sla_resolve"))
    for kind in SLA_KINDS:
        target = rules.sla(kind)
        esc.facts.sla_targets[kind] = target
        due = pack.sla_due(rules, kind, esc.started_at)
        if due is None or kind in esc.facts.met or kind in esc.facts.breached:
            continue
        if due <= m.now:
            breach(rt, esc, pack, rules, kind, m)
        else:
            rt.store.add_timer(
                Timer(due=due, kind=f"sla_{kind}", ticket=esc.ticket, escalation_id=esc.id)
            )


def breach(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, kind: str, m: Moment
) -> None:
    """The ``kind`` SLA breached: audited once, then the policy's ``on breach`` steps."""
    if kind in esc.facts.breached or kind in esc.facts.met:
        return
    esc.facts.breached.add(kind)
    rt.audit(
        m,
        "breach",
        esc,
        pack,
        rules.name,
        reason=f"{kind} SLA of {sla_words(rules, kind)} breached",
        detail={"sla": kind},
    )
    run_steps(rt, esc, pack, rules, rules.steps("breach"), m, "breach")


def sla_words(rules: PolicyRules, kind: str) -> str:
    """``12h``, or ``12h within support_hours`` for an SLA counted in a calendar."""
    calendar = rules.sla_calendar(kind)
    target = format_duration(rules.sla(kind) or 0)
    return target if calendar is None else f"{target} within {calendar}"


def hand_off(
    rt: Runtime, esc: Escalation, pack: LoadedPack, target: str, m: Moment, reason: str
) -> None:
    """Type A: move to ``target`` keeping the priority; a routing loop goes to triage."""
    source = esc.policy
    limits = rt.limits
    recent = [t for t in esc.facts.handoff_times if t > m.now - limits.loop_window]
    recent.append(m.now)
    esc.facts.handoff_times = recent
    rules = pack.rules.get(target)
    if len(recent) > limits.loop_limit or rules is None:
        why = (
            f"routing loop: {len(recent)} handoffs within {format_duration(limits.loop_window)}"
            if rules is not None
            else f"handoff target {target!r} is not in pack {pack.version}"
        )
        rt.audit(m, "loop_broken", esc, pack, source, reason=why)
        # Sticky: later events must not hand it off (and triage it) again and again.
        esc.facts.handoffs_stopped = why
        triage(rt, esc, pack, pack.rules[source], m, why)
        return
    rt.audit(
        m,
        "handoff",
        esc,
        pack,
        target,
        reason=f"{source} -> {target}: {reason}",
        detail={"from": source, "to": target, **sla_detail(pack, rules, esc.started_at)},
    )
    state, _ = rt.store.ticket_state(esc.ticket)
    enter(rt, esc, pack, rules, state, m)


def run_steps(
    rt: Runtime,
    esc: Escalation,
    pack: LoadedPack,
    rules: PolicyRules,
    steps: tuple[Step, ...],
    m: Moment,
    moment: str,
) -> bool:
    """Issue ``steps``; a step that cannot be issued is a ``step_failed`` failure (False)."""
    problem = issue_steps(rt, esc, pack, rules, steps, m, moment)
    if problem is None:
        return True
    failure(rt, esc, pack, rules, "step_failed", m, problem)
    return False


def _next_available(
    rt: Runtime,
    esc: Escalation,
    pack: LoadedPack,
    rules: PolicyRules,
    at: tuple[int, int],
    m: Moment,
) -> tuple[Owner, Assignee, int, int] | None:
    """From chain position ``at`` (index, cycle): the first owner available, skipping (and
    auditing) absent ones and starting the chain over ``repeat`` times; None when exhausted.
    A ``round_robin`` level hands out its team's next member (see :mod:`.ownership`)."""
    index, cycle = at
    owners = rules.policy.owners
    repeat = rules.policy.repeat
    away = rt.store.absences(m.now)
    # Assigned again at the same level (a silence released it): a pick keeps its member.
    same = esc.state == "assigned" and (esc.level_index, esc.cycle) == at
    held = esc.owner if same and esc.owner_kind == "person" else None
    budget = max(1, len(owners)) * (repeat + 1) + 1
    while budget > 0:
        budget -= 1
        if index >= len(owners):
            if cycle >= repeat or not owners:
                return None
            cycle, index = cycle + 1, 0
            rt.audit(
                m,
                "repeat",
                esc,
                pack,
                rules.name,
                reason=f"chain starts over (round {cycle + 1} of {repeat + 1})",
            )
        owner = owners[index]
        found = resolve_owner(
            pack, owner, m.now, away, rt.store, held if (index, cycle) == at else None
        )
        if found is not None:
            return owner, found, index, cycle
        until = away.get(owner.ref)
        why = (
            f"{owner.ref} is absent until {format_time(until)}"
            if until
            else (f"nobody in {owner.ref} is available")
        )
        rt.audit(m, "skipped", esc, pack, rules.name, reason=f"{owner.level} owner skipped: {why}")
        index += 1
    return None


def assign(
    rt: Runtime,
    esc: Escalation,
    pack: LoadedPack,
    rules: PolicyRules,
    index: int,
    cycle: int,
    m: Moment,
    reason: str,
) -> None:
    """Assign the chain owner at (``index``, ``cycle``) or the next available one."""
    with tracing.span(
        "escalade.assign",
        policy=rules.name,
        ticket=esc.ticket,
        escalation=esc.id,
        pack_version=pack.version,
    ):
        found = _next_available(rt, esc, pack, rules, (index, cycle), m)
        if found is None:
            exhausted(rt, esc, pack, rules, m)
            return
        owner, chosen, index, cycle = found
        who, who_kind = chosen.owner, chosen.kind
        rt.move(esc, "assign")
        esc.level, esc.level_index, esc.cycle = owner.level, index, cycle
        esc.owner, esc.owner_kind = who, who_kind
        tracing.annotate(owner=who, level=esc.level)
        esc.facts.owner_from = owner.ref if who != owner.ref else None
        via = f" (on call for {owner.ref})" if who != owner.ref else ""
        via = f" ({chosen.how})" if chosen.how else via
        rt.audit(
            m,
            "assigned",
            esc,
            pack,
            rules.name,
            reason=f"{esc.level} owner {who}{via}: {reason}",
            detail={
                "owner": who,
                "level": esc.level,
                "cycle": cycle,
                "from": owner.ref,
                **({"pick": owner.pick} if owner.pick else {}),
            },
        )
        notify_owner(
            rt,
            esc,
            pack,
            rules,
            m,
            f"You are the {esc.level} owner of ticket {esc.ticket} ({rules.name})",
        )
        if noise.hold_assignment(rt, esc, pack, rules, m, (index, cycle, owner.ref)):
            return  # silenced: no ack timer until the silence ends
        if owner.ack is not None:
            rt.store.add_timer(
                Timer(
                    due=m.now + owner.ack,
                    kind="ack",
                    ticket=esc.ticket,
                    escalation_id=esc.id,
                    payload={"index": index, "cycle": cycle, "policy": rules.name},
                )
            )


def exhausted(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, m: Moment
) -> None:
    """Nobody acknowledged after every round of the chain: an ``unacknowledged`` failure."""
    rt.move(esc, "exhaust")
    rt.store.cancel_timers(esc.id, ("ack",))
    rounds = rules.policy.repeat + 1
    why = f"nobody acknowledged after {rounds} round(s) of the chain"
    failure(rt, esc, pack, rules, "unacknowledged", m, why)


def failure(
    rt: Runtime,
    esc: Escalation,
    pack: LoadedPack,
    rules: PolicyRules,
    kind: str,
    m: Moment,
    reason: str,
) -> None:
    """Audit a failure (``kind`` says which), then its Type A exception, else Type B triage."""
    rt.audit(m, kind, esc, pack, rules.name, reason=reason)
    if kind in rules.policy.revert_on:  # `on KIND revert`: undo what ran, then go on
        policy_revert(rt, esc, pack, rules, m, f"on {kind} revert: {reason}")
    for handoff, _pred in rules.handoffs:
        if handoff.failure == kind and not esc.facts.handoffs_stopped:
            hand_off(rt, esc, pack, handoff.policy, m, f"exception {handoff.name}: {kind}")
            return
    triage(rt, esc, pack, rules, m, kind)


def _triage_owner(
    rt: Runtime, pack: LoadedPack, rules: PolicyRules, m: Moment
) -> tuple[tuple[str, str] | None, str]:
    """The available triage owner (else the escalation owner) and a note on who it is."""
    spec = rules.policy.triage
    assert spec is not None
    away = rt.store.absences(m.now)
    found = resolve_ref(pack, spec.ref, spec.kind, m.now, away, rt.store)
    if found is not None:
        return found, ""
    owners = rules.policy.owners
    fallback = rules.policy.owner("escalation") or (owners[-1] if owners else None)
    note = f" ({spec.ref} is absent; passed to the escalation owner)"
    if fallback is None:
        return None, note
    return resolve_ref(pack, fallback.ref, fallback.kind, m.now, away, rt.store), note


def triage(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, m: Moment, reason: str
) -> None:
    """Type B: the triage owner takes it (with a post-mortem task when the policy asks)."""
    rt.store.cancel_timers(esc.id, ("ack", "transfer"))
    spec = rules.policy.triage
    if spec is not None and spec.revert:  # `exception unknown triage X revert`
        policy_revert(rt, esc, pack, rules, m, f"triage revert: {reason}")
    found, note = _triage_owner(rt, pack, rules, m) if spec is not None else (None, "")
    if spec is None or found is None:
        why = (
            f"{rules.name} has no triage owner" if spec is None else "no triage owner is available"
        )
        if esc.state in ("acknowledged", "resolved"):  # someone holds it: they keep it
            rt.move(esc, "no_triage")
            rt.audit(m, "no_triage", esc, pack, rules.name, reason=f"{reason}; {why}")
            return
        take_unowned(rt, esc, pack, rules, m, f"{reason}; {why}")
        return
    rt.move(esc, "triage")
    esc.level, esc.owner, esc.owner_kind = "triage", found[0], found[1]
    esc.facts.owner_from = spec.ref if found[0] != spec.ref else None
    esc.acked_at = None
    rt.audit(
        m,
        "triage",
        esc,
        pack,
        rules.name,
        reason=f"Type B triage by {found[0]}{note}: {reason}",
        detail={"owner": found[0], "postmortem": spec.postmortem},
    )
    notify_owner(rt, esc, pack, rules, m, f"Triage ticket {esc.ticket} ({rules.name}): {reason}")
    if spec.postmortem:
        esc.facts.postmortem_required = True
        text = f"Post-mortem for ticket {esc.ticket} ({rules.name})"
        payload = {"text": text, "reason": "postmortem"}
        emit(rt, esc, pack, rules, m, "create_task", found[0], found[1], payload)
        draft_postmortem(rt, esc, pack, rules, m, found)  # stored, owner notified, due timer


def on_update(rt: Runtime, esc: Escalation, state: dict[str, Any], m: Moment) -> None:
    """A later event for the ticket: state checks it satisfies pass, condition exceptions
    are evaluated again (a Type A handoff when one holds)."""
    pack = rt.pack(esc.pack_id)
    rules = pack.rules[esc.policy]
    for timer in rt.store.timers_of(esc.id):
        if timer.kind != "state_check" or timer.payload.get("policy") != rules.name:
            continue
        index = int(timer.payload.get("index", 0))
        if index < len(rules.state_checks) and rules.state_checks[index][1](state):
            rt.store.delete_timer(timer.id)
            rt.audit(
                m,
                "check_passed",
                esc,
                pack,
                rules.name,
                reason=f"check state {rules.state_check_text(index)}: {m.cause} shows it",
            )
    if esc.state == "resolved" or esc.facts.handoffs_stopped:
        return
    for handoff, pred in rules.handoffs:
        if pred is not None and pred(state) and handoff.policy != esc.policy:
            hand_off(
                rt, esc, pack, handoff.policy, m, f"exception {handoff.name}: its condition holds"
            )
            rt.store.update_escalation(esc)
            return
