"""Which channel kinds a rule pack needs, so a runtime without them says so before it pretends.

A channel the policies name needs its kind (slack, email, webhook, pager); a
person the policies may notify (every owner gets an assignment notice) needs a
configured Slack or email contact point (only a page may use the pager); an automated step (``create_ticket``,
``set``, ...) goes to the generic webhook.

>>> sorted(missing_kinds(pack, {"slack"}))          # doctest: +SKIP
['pager', 'webhook']
"""

from __future__ import annotations

from collections.abc import Iterator

from escalade.runtime.pack import Policy, RulePack, Step

MESSAGE_ACTIONS = ("notify", "page")
NOTIFY_KINDS = ("slack", "email")  # a notify never goes to a pager (see notify/router.py)


def _steps(policy: Policy) -> Iterator[Step]:
    yield from policy.steps
    for steps in policy.on.values():
        yield from steps


def _people_of(pack: RulePack, ref: str) -> list[str]:
    team = pack.teams.get(ref)
    return list(team.members) if team is not None else [ref] if ref in pack.people else []


def needed(pack: RulePack) -> tuple[set[str], dict[str, set[str]]]:
    """The channel kinds the pack's channels and actions need, and per person reached, the
    kinds of their contact points (any one of them reaches them)."""
    kinds: set[str] = set()
    people: set[str] = set()  # notified: slack or email reach them
    paged: set[str] = set()  # paged: the pager reaches them too
    for policy in pack.policies:
        for owner in policy.owners:
            people.update(_people_of(pack, owner.ref))
        if policy.triage is not None:
            people.update(_people_of(pack, policy.triage.ref))
        for check in policy.delivery_checks:
            if check.then is not None and check.then in pack.channels:
                kinds.add(pack.channels[check.then].kind)
        for step in _steps(policy):
            target = step.target()
            if target is not None and target[1] == "channel" and target[0] in pack.channels:
                kinds.add(pack.channels[target[0]].kind)
            elif step.action in MESSAGE_ACTIONS and target is not None:
                (paged if step.action == "page" else people).update(_people_of(pack, target[0]))
            elif step.action not in MESSAGE_ACTIONS:
                kinds.add("webhook")
    contacts: dict[str, set[str]] = {}
    for person in sorted(people | paged):
        usable = NOTIFY_KINDS + (("pager",) if person in paged and person not in people else ())
        contacts[person] = {k for k, _ in pack.people[person].contacts() if k in usable}
    return kinds, contacts


def missing_kinds(pack: RulePack, configured: set[str]) -> list[str]:
    """What ``pack`` addresses that no configured notifier covers, sorted: channel kinds,
    and a person whose contact points no channel could ever reach for what they are sent
    (``carol (no slack or email contact)``)."""
    kinds, contacts = needed(pack)
    missing = kinds - configured
    nowhere = []
    for person, points in contacts.items():
        if not points:
            nowhere.append(f"{person} (no slack or email contact)")
        elif not points & configured:
            missing |= points
    return sorted(missing) + nowhere
