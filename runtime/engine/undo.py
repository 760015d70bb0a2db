"""Compensating actions (issue #15): ``revert`` runs the undo steps of the steps that ran.

Each step an escalation ran left outbox rows carrying ``moment`` and ``step_line``
(:mod:`.actions`); a step that declares an undo carries it too (``undo``: action and
args, as the pack said when the step ran), and a ``set`` step with ``undo restore`` the
field's value before it (``before``). Reverting walks the step rows written since the
escalation's last revert, newest first: a step with an undo has it queued through the
outbox like any step (same delivery, receipts and retries, its own idempotency key,
payload ``undoes``: the original row's key) and audited ``undo``; a step without is
listed as needing a person. One ``revert`` row records the reason, the actor, both lists
and ``through`` (the last outbox sequence it covered), so a second revert finds nothing
left. It is one decision in the caller's transaction: a crash before the commit writes
nothing; after it, the undo rows are delivered (again, under their keys) like any row.

``restore`` goes out as a ``set`` of the field to its value before the step: whatever
delivers ``set`` steps (a webhook, a connector) delivers it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from escalade.runtime.engine.actions import issue_steps
from escalade.runtime.engine.context import Moment, Refused, Runtime
from escalade.runtime.engine.loaded import LoadedPack, PolicyRules
from escalade.runtime.pack import Step
from escalade.runtime.store import Escalation, OutboxMessage

SYSTEM = "escalade"  # the actor of a revert the policy asks for


@dataclass(frozen=True, slots=True)
class Ran:
    """One step that ran: its first outbox row (a team's notice has one per member)."""

    msg: OutboxMessage
    undo: Step | None

    @property
    def words(self) -> str:
        """``lock publishing``, ``notify editorial "Publishing locked for X"``."""
        p = self.msg.payload
        return step_words(self.msg.action, p.get("team") or self.msg.target, p)


@dataclass(slots=True)
class Reverted:
    """What a revert did: the undos queued and the steps a person has to undo."""

    undone: list[str] = field(default_factory=list)
    needs_person: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"undone: {u}" for u in self.undone]
        lines += [f"needs a person: {n}" for n in self.needs_person]
        return "\n".join(lines)


def step_words(action: str, target: Any, payload: Any) -> str:
    """A step as the policy wrote it, from an outbox row's payload or a step's args."""
    parts = [action]
    if target:
        parts.append(str(target))
    for key in ("field", "word"):
        if payload.get(key):
            parts.append(str(payload[key]))
    if payload.get("text"):
        parts.append(f'"{payload["text"]}"')
    return " ".join(parts)


def undo_words(undo: Step) -> str:
    """``unlock publishing``, ``restore``."""
    args: dict[str, Any] = {k: v for a in undo.args for k, v in a.items() if k != "kind"}
    target = args.pop("ref", None)
    return step_words(undo.action, target, args)


def sequence(key: str) -> int:
    """The n of an idempotency key ``esc-<id>/<n>`` (0 for any other key)."""
    tail = key.rpartition("/")[2]
    return int(tail) if tail.isdigit() else 0


def reverted_through(rt: Runtime, esc: Escalation) -> int:
    """The last outbox sequence an earlier revert of ``esc`` covered (0: none)."""
    rows = rt.store.audit_rows(esc.id)
    return max((int(r.detail.get("through", 0)) for r in rows if r.kind == "revert"), default=0)


def declared_undo(rt: Runtime, esc: Escalation, msg: OutboxMessage) -> Step | None:
    """The undo of the step that wrote ``msg``: as its row says, else (a row written before
    rows said it) as the escalation's pack says."""
    p = msg.payload
    line = int(p.get("step_line") or 0)
    raw = p.get("undo")
    if isinstance(raw, dict):
        return Step(str(raw["action"]), tuple(raw.get("args") or ()), None, line)
    rules = rt.pack(esc.pack_id).rules.get(str(p.get("policy") or esc.policy))
    if rules is None:
        return None
    moment = p.get("moment")
    steps = rules.steps(None if moment == "start" else str(moment))
    found = next((s for s in steps if s.line == line and s.action == msg.action), None)
    return found.undo if found is not None else None


def steps_ran(rt: Runtime, esc: Escalation, after: int) -> list[Ran]:
    """The steps ``esc`` ran past outbox sequence ``after``, in the order they ran (rows
    other than steps — assignment notices, undos, delivery fallbacks — are not steps)."""
    found: dict[tuple[Any, ...], Ran] = {}
    for msg in rt.store.outbox(esc.id):
        p = msg.payload
        if p.get("moment") is None or "undoes" in p or "fallback_for" in p:
            continue
        if sequence(msg.key) <= after:
            continue
        once: tuple[Any, ...] = (msg.created_at, p.get("policy"), p.get("moment"))
        once += (p.get("step_line"), msg.action, p.get("team") or msg.target)
        if once not in found:
            found[once] = Ran(msg, declared_undo(rt, esc, msg))
    return list(found.values())


def _undo_step(ran: Ran) -> tuple[Step, dict[str, Any]]:
    """The step to queue for ``ran``'s undo and the payload keys it adds."""
    undo = ran.undo
    assert undo is not None
    p = ran.msg.payload
    extra: dict[str, Any] = {"undoes": ran.msg.key, "step_line": p.get("step_line")}
    if undo.action == "restore":  # put the field back: a `set` to its value before
        before = p.get("before")
        extra["text"] = "" if before is None else str(before)
        extra["restores"] = p.get("field")
        args = ({"field": p.get("field")},)
        return Step("set", args, None, undo.line), extra
    return undo, extra


def revert(
    rt: Runtime,
    esc: Escalation,
    pack: LoadedPack,
    rules: PolicyRules,
    m: Moment,
    reason: str,
    *,
    required: bool = True,
) -> Reverted | None:
    """Undo the steps ``esc`` ran since its last revert, newest first (see the module).

    ``required`` (the ``revert`` command): :class:`Refused`, nothing written, when no step
    that ran has an undo. Otherwise (``on FAILURE revert``, a triage ``revert``): None
    when no step ran since the last revert."""
    ran = steps_ran(rt, esc, reverted_through(rt, esc))
    if required and not any(r.undo is not None for r in ran):
        by_hand = "; ".join(r.words for r in reversed(ran))
        left = f" (a person undoes by hand: {by_hand})" if by_hand else ""
        raise Refused(f"ticket {esc.ticket}: nothing left to undo{left}")
    if not ran:
        return None
    done = Reverted()
    for step in reversed(ran):
        if step.undo is None:
            done.needs_person.append(step.words)
            continue
        what = f"{step.words} -> {undo_words(step.undo)}"
        problem = _queue(rt, esc, pack, rules, m, step)
        if problem is None:
            done.undone.append(what)
        else:
            done.needs_person.append(f"{step.words} (its undo failed: {problem})")
    _record(rt, esc, pack, rules, m, reason, done, ran)
    return done


def _record(
    rt: Runtime,
    esc: Escalation,
    pack: LoadedPack,
    rules: PolicyRules,
    m: Moment,
    reason: str,
    done: Reverted,
    ran: list[Ran],
) -> None:
    """The one ``revert`` row: the reason, what is undone and what needs a person."""
    people = f"; needs a person: {', '.join(done.needs_person)}" if done.needs_person else ""
    words = f"revert ({reason}): {len(done.undone)} step(s) undone{people}"
    detail = {
        "reason": reason,
        "undone": list(done.undone),
        "needs_person": list(done.needs_person),
        "through": max(sequence(r.msg.key) for r in ran),
    }
    rt.audit(m, "revert", esc, pack, rules.name, reason=words, detail=detail)


def _queue(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, m: Moment, ran: Ran
) -> str | None:
    """Queue ``ran``'s undo through the outbox and audit it (``undo``) with the step it
    undoes; why it could not be queued (a team with nobody available), else None."""
    assert ran.undo is not None
    undo, extra = _undo_step(ran)
    first = esc.facts.actions + 1
    problem = issue_steps(rt, esc, pack, rules, (undo,), m, "revert", extra)
    what = undo_words(ran.undo)
    detail = {
        "undoes": ran.msg.key,
        "step": ran.words,
        "undo": what,
        "key": f"esc-{esc.id}/{first}",
    }
    if problem is not None:
        detail["problem"] = problem
    reason = f"undo {ran.words}: {what}" + (f" could not be queued: {problem}" if problem else "")
    rt.audit(m, "undo", esc, pack, rules.name, reason=reason, detail=detail)
    return problem


def policy_revert(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, m: Moment, why: str
) -> None:
    """The policy asks for a revert (``on FAILURE revert``, ``exception ... revert``):
    undo what ran, as the system (nothing to do: nothing is written)."""
    system = Moment(now=m.now, actor=SYSTEM, cause=m.cause)
    revert(rt, esc, pack, rules, system, why, required=False)
