"""Steps and notifications become outbox rows (delivered after the decision commits).

Every row has an idempotency key ``esc-<escalation>/<n>``; the payload carries
what a channel needs (the text rendered against the ticket as it was when the
escalation started, the person's contact points, the channel) so delivery
never reads the pack again. A notify or page to the person who holds the
escalation also carries ``ack_url``, their acknowledgment link, when the runtime
has ``runtime.server.public_url`` and the link key (:mod:`escalade.runtime.links`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from escalade.runtime import tracing
from escalade.runtime.engine import noise
from escalade.runtime.engine.context import Moment, Runtime
from escalade.runtime.engine.loaded import LoadedPack, PolicyRules
from escalade.runtime.engine.ownership import ALL, every_member, team_recipients
from escalade.runtime.links import WAITING_STATES, AckLink, LevelKey, holds, link_expiry, sign_token
from escalade.runtime.pack import Step
from escalade.runtime.store import Escalation, OutboxMessage

log = logging.getLogger("escalade.runtime.engine")

TARGET_ACTIONS = ("notify", "page", "route")
_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\s*\}\}")


def render(text: str, snapshot: Mapping[str, Any]) -> str:
    """``{{ ticket.title }}`` filled in from ``snapshot`` (missing: empty; tags: joined)."""

    def value(match: re.Match[str]) -> str:
        found = (snapshot.get(match.group(1)) or {}).get(match.group(2))
        if found is None:
            return ""
        return ", ".join(found) if isinstance(found, list) else str(found)

    return _PLACEHOLDER.sub(value, text)


def step_payload(step: Step, esc: Escalation, moment: str) -> dict[str, Any]:
    """What a step's outbox row carries besides its target."""
    payload: dict[str, Any] = {"moment": moment, "step_line": step.line}
    text = step.argument("text")
    if text is not None:
        payload["text"] = render(str(text), esc.snapshot)
    for key in ("field", "word"):
        value = step.argument(key)
        if value is not None:
            payload[key] = value
    if step.guide:
        payload["guide"] = step.guide
    if step.undo is not None:  # what `revert` runs, as declared when the step ran
        payload["undo"] = {"action": step.undo.action, "args": [dict(a) for a in step.undo.args]}
    return payload


def field_value(rt: Runtime, ticket: str, field: str) -> Any:
    """The current value of ``field`` (``ticket.title``) in the ticket's state (None: unset)."""
    state, _ = rt.store.ticket_state(ticket)
    obj, _, name = field.partition(".")
    found = state.get(obj)
    return found.get(name) if isinstance(found, dict) else None


def issue_steps(
    rt: Runtime,
    esc: Escalation,
    pack: LoadedPack,
    rules: PolicyRules,
    steps: Iterable[Step],
    m: Moment,
    moment: str,
    extra: Mapping[str, Any] | None = None,
) -> str | None:
    """Queue each step's action in order (``extra``: more payload keys, e.g. what an undo
    step undoes); the failure reason when a step could not be issued (a team with nobody
    available), else None. A ``set`` step with ``undo restore`` records the field's value
    before it (``before``), which the restore puts back."""
    for step in steps:
        target, target_kind = step.target() or (None, None)
        payload = step_payload(step, esc, moment)
        payload.update(extra or {})
        field = step.argument("field")
        if step.undo is not None and step.undo.action == "restore" and field is not None:
            payload["before"] = field_value(rt, esc.ticket, str(field))
        if step.action in ("notify", "page") and target_kind == "team" and target is not None:
            # A team is reached through people: its on-call member now, or every member
            # (`all(T)`: every available member, even of a team with a schedule).
            everyone = _pick(step) == ALL
            members = (every_member if everyone else team_recipients)(rt.store, pack, target, m.now)
            if not members:
                return f"step {step.action} {target}: nobody in {target} is available"
            payload["team"] = target
            if everyone:
                payload["pick"] = ALL
            for member in members:
                emit(rt, esc, pack, rules, m, step.action, member, "person", dict(payload))
            continue
        emit(rt, esc, pack, rules, m, step.action, target, target_kind, payload)
    return None


def _pick(step: Step) -> str | None:
    """How the step picks among the team it names (``all``), None for a plain target."""
    return next((str(a["pick"]) for a in step.args if "ref" in a and a.get("pick")), None)


def notify_owner(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, m: Moment, text: str
) -> None:
    """Tell the current owner (every available member of an owning team without rotation)."""
    owner = esc.owner or ""
    targets = [owner]
    if esc.owner_kind == "team":
        targets = team_recipients(rt.store, pack, owner, m.now)
    for person in targets:
        emit(
            rt,
            esc,
            pack,
            rules,
            m,
            "notify",
            person,
            "person",
            {"text": text, "reason": "assignment"},
        )


def emit(
    rt: Runtime,
    esc: Escalation,
    pack: LoadedPack,
    rules: PolicyRules,
    m: Moment,
    action: str,
    target: str | None,
    target_kind: str | None,
    payload: dict[str, Any],
) -> None:
    """Queue one outbox row for ``esc`` under the next idempotency key."""
    esc.facts.actions += 1
    if target is None:
        pass
    elif target_kind == "channel" and target in pack.channels:
        channel = pack.channels[target]
        payload["channel"] = {"kind": channel.kind, "target": channel.target}
    elif target_kind == "person" and target in pack.people:
        payload["contacts"] = dict(pack.people[target].contacts())
        url = ack_url(rt, esc, pack, rules, target, m.now) if action in ("notify", "page") else None
        if url is not None:
            payload["ack_url"] = url
    delivery = rules.delivery
    if delivery is not None and action in ("notify", "page"):
        payload["delivery"] = {
            "within": delivery.within,
            "retry": delivery.retry,
            "then": delivery.then,
        }
    payload["policy"] = rules.name
    # A silence holds pages: the message is recorded `silenced` and never sent.
    hold = (
        noise.message_hold(rt, esc, pack, rules, m, (target, target_kind), payload)
        if action in ("notify", "page")
        else None
    )
    rt.outbox_dirty = rt.outbox_dirty or hold is None
    key = f"esc-{esc.id}/{esc.facts.actions}"
    tracing.hand_over(key)  # its delivery, sent after the commit, is a child of this span
    rt.store.add_outbox(
        OutboxMessage(
            key=key,
            escalation_id=esc.id,
            ticket=esc.ticket,
            action=action,
            target=target,
            target_kind=target_kind,
            payload=payload,
            created_at=m.now,
            status="pending" if hold is None else "silenced",
            reason=None if hold is None else f"silenced by {hold.words()}",
        )
    )


def ack_url(
    rt: Runtime, esc: Escalation, pack: LoadedPack, rules: PolicyRules, person: str, now: int
) -> str | None:
    """``person``'s acknowledgment link for the level ``esc`` is at, when they hold it and it
    awaits an acknowledgment; None otherwise, or without the link settings and key."""
    config = rt.links
    if config is None or esc.state not in WAITING_STATES or not holds(pack.pack, esc, person):
        return None
    key = config.key()
    if isinstance(key, str):
        log.warning("no acknowledgment link for %s: %s", person, key)
        return None
    owners = rules.policy.owners
    owner = owners[esc.level_index] if esc.level_index < len(owners) else None
    timeout = owner.ack if owner is not None and owner.level == esc.level else None
    link = AckLink(esc.id, person, LevelKey.of(esc), link_expiry(now, timeout))
    return config.url(sign_token(key, link))
