"""When nobody in the chain or triage can take an escalation: it is never owner-less (SPEC §4).

With ``runtime.last_resort`` the escalation goes to that person or team (on call
even when marked absent: it is the last resort) and an ``unowned`` alert goes to
its channel. Without one it stays with its triage owner (else the policy's last
chain owner) even though absent, flagged ``unowned``, and the alert goes to every
channel the policy uses.
"""

from __future__ import annotations

from escalade.runtime.engine.actions import emit, notify_owner
from escalade.runtime.engine.context import Moment, Runtime
from escalade.runtime.engine.loaded import LoadedPack, PolicyRules
from escalade.runtime.engine.ownership import resolve_ref
from escalade.runtime.store import Escalation


def policy_channels(pack: LoadedPack, rules: PolicyRules) -> list[str]:
    """Every channel the policy's steps or delivery fallback name, in order, once."""
    policy = rules.policy
    found: list[str] = []
    steps = [*policy.steps, *(s for steps in policy.on.values() for s in steps)]
    for step in steps:
        target = step.target()
        if target is not None and target[1] == "channel" and target[0] in pack.channels:
            found.append(target[0])
    found += [c.then for c in policy.delivery_checks if c.then and c.then in pack.channels]
    return list(dict.fromkeys(found))


def _last_resort(rt: Runtime, pack: LoadedPack) -> tuple[str, str, str] | None:
    """(owner, owner kind, the configured reference) of the last resort, when it is in
    the pack's directory; absences do not count for it."""
    spec = rt.last_resort
    if spec is None:
        return None
    kind = "team" if spec.ref in pack.teams else "person"
    if spec.ref not in pack.teams and spec.ref not in pack.people:
        return None
    found = resolve_ref(pack, spec.ref, kind, 0, {}) if kind == "team" else (spec.ref, "person")
    if found is None:  # a team with no members at all
        return None
    return found[0], found[1], spec.ref


def take_unowned(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, m: Moment, reason: str
) -> None:
    """Nobody available can take ``esc`` (``reason`` says why): give it to the last resort,
    else keep it with its triage or last owner; either way raise the ``unowned`` alert."""
    last = _last_resort(rt, pack)
    rt.move(esc, "triage")
    esc.acked_at = None
    if last is not None:
        who, kind, ref = last
        esc.level, esc.owner, esc.owner_kind = "last_resort", who, kind
        esc.facts.owner_from = ref if who != ref else None
        esc.facts.unowned = None
        why = f"{reason}; runtime.last_resort {who} takes it"
        channels = [rt.last_resort.channel] if rt.last_resort and rt.last_resort.channel else []
    else:
        triage = rules.policy.triage
        owners = rules.policy.owners
        keep = triage.ref if triage is not None else owners[-1].ref if owners else None
        esc.level = "triage"
        esc.owner = keep or esc.owner
        esc.owner_kind = "team" if esc.owner in pack.teams else "person"
        esc.facts.owner_from = None
        esc.facts.unowned = reason
        why = f"{reason}; no runtime.last_resort: it stays with {esc.owner}, who is unavailable"
        channels = policy_channels(pack, rules)
    rt.audit(m, "unowned", esc, pack, rules.name, reason=why, detail={"owner": esc.owner})
    text = f"UNOWNED: ticket {esc.ticket} ({rules.name}) has nobody available: {reason}"
    notify_owner(rt, esc, pack, rules, m, text)
    for channel in channels:
        if channel in pack.channels:
            emit(
                rt,
                esc,
                pack,
                rules,
                m,
                "notify",
                channel,
                "channel",
                {"text": text, "reason": "unowned"},
            )
