"""A rule pack as the engine runs it: the typed :class:`RulePack`, every condition compiled once.

The engine never reads a pack's JSON: it reads the typed
:class:`~escalade.runtime.pack.Policy` (defaults were applied by the compiler
and the pack schema requires them), plus the predicates compiled here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from escalade.runtime.calendars import Calendar
from escalade.runtime.conditions import Predicate, compile_condition, format_condition
from escalade.runtime.matcher import Matcher
from escalade.runtime.pack import (
    Channel,
    CloseCheck,
    DeliveryCheck,
    Handoff,
    PackError,
    Person,
    Policy,
    RulePack,
    StateCheck,
    Step,
)
from escalade.runtime.teams import Team

SLA_KINDS = ("acknowledge", "resolve")


@dataclass(frozen=True, slots=True)
class PolicyRules:
    """One policy of a pack with its conditions compiled."""

    policy: Policy
    when: Predicate
    handoffs: tuple[tuple[Handoff, Predicate | None], ...]
    state_checks: tuple[tuple[StateCheck, Predicate], ...]
    close_checks: tuple[tuple[CloseCheck, Predicate | None], ...]  # None: a post-mortem
    state_check_texts: tuple[str, ...] = ()  # each state check's condition, as written

    def state_check_text(self, index: int) -> str:
        """State check ``index``'s condition as the audit trail words it."""
        return self.state_check_texts[index]

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def priority(self) -> int:
        return self.policy.priority

    def steps(self, moment: str | None = None) -> tuple[Step, ...]:
        """The steps run at start (``moment`` None) or ``on`` a moment (``failover``, ...)."""
        if moment is None:
            return self.policy.steps
        return tuple(self.policy.on.get(moment, ()))

    @property
    def delivery(self) -> DeliveryCheck | None:
        """The policy's ``check delivery`` (the first, as the language allows one)."""
        return self.policy.delivery_checks[0] if self.policy.delivery_checks else None

    def sla(self, kind: str) -> int | None:
        """The ``acknowledge`` or ``resolve`` SLA target in seconds (None: none set)."""
        return self.policy.sla_acknowledge if kind == "acknowledge" else self.policy.sla_resolve

    def sla_targets(self) -> dict[str, int | None]:
        return {kind: self.sla(kind) for kind in SLA_KINDS}

    def sla_calendar(self, kind: str) -> str | None:
        """The calendar the ``kind`` SLA is counted in (None: wall-clock time)."""
        return self.policy.sla_calendars.get(kind)


def compile_policy(policy: Policy, when: Predicate) -> PolicyRules:
    """``policy`` with its exception, state-check and close-check conditions compiled."""
    return PolicyRules(
        policy=policy,
        when=when,
        handoffs=tuple(
            (h, compile_condition(h.when) if h.when is not None else None) for h in policy.handoffs
        ),
        state_checks=tuple((c, compile_condition(c.when)) for c in policy.state_checks),
        state_check_texts=tuple(format_condition(c.when) for c in policy.state_checks),
        close_checks=tuple(
            (c, compile_condition(c.when) if c.when is not None else None)
            for c in policy.close_checks
        ),
    )


@dataclass(slots=True)
class LoadedPack:
    """A pack the store holds (``id``), routed by the one matcher."""

    id: int
    pack: RulePack
    matcher: Matcher
    rules: dict[str, PolicyRules]

    @classmethod
    def of(cls, pack_id: int, pack: RulePack) -> LoadedPack:
        """Compile every condition of ``pack`` once."""
        matcher = Matcher(pack)
        rules = {p.name: compile_policy(p, matcher.predicate(p.name)) for p in pack.policies}
        return cls(pack_id, pack, matcher, rules)

    @classmethod
    def stored(cls, pack_id: int, body: Mapping[str, Any]) -> LoadedPack:
        """A pack the store holds: validated when it was activated, so only typed here."""
        return cls.of(pack_id, RulePack.trusted(body))

    @property
    def version(self) -> str:
        """``1.0.0+<first 12 hex digits of the content hash>``: what the audit trail records."""
        return f"{self.pack.version}+{self.pack.content_hash.removeprefix('sha256:')[:12]}"

    @property
    def people(self) -> Mapping[str, Person]:
        return self.pack.people

    @property
    def teams(self) -> Mapping[str, Team]:
        return self.pack.teams

    @property
    def channels(self) -> Mapping[str, Channel]:
        return self.pack.channels

    def sla_due(self, rules: PolicyRules, kind: str, start: int) -> int | None:
        """:func:`sla_due` of ``rules``' policy in this pack."""
        return sla_due(self.pack, rules.policy, kind, start)

    def sla_calendar_of(self, rules: PolicyRules, kind: str) -> Calendar | None:
        """:func:`sla_calendar` of ``rules``' policy in this pack."""
        return sla_calendar(self.pack, rules.policy, kind)

    def sla_dues(self, rules: PolicyRules, start: int) -> dict[str, int | None]:
        """:meth:`sla_due` of each SLA kind."""
        return {kind: self.sla_due(rules, kind, start) for kind in SLA_KINDS}

    def owner_of(self, event_type: str, state: Mapping[str, Any]) -> PolicyRules | None:
        """The policy that owns the event: the matcher's decision (highest priority, then name)."""
        found = self.matcher.owner(event_type, state)
        return None if found is None else self.rules[found.name]


def sla_calendar(pack: RulePack, policy: Policy, kind: str) -> Calendar | None:
    """The calendar ``policy`` counts its ``kind`` SLA in (None: wall-clock time, or a
    calendar the pack does not carry, which validation refuses)."""
    name = policy.sla_calendars.get(kind)
    return None if name is None else pack.calendars.get(name)


def sla_due(pack: RulePack, policy: Policy, kind: str, start: int) -> int | None:
    """When the ``kind`` SLA of an escalation of ``policy`` started at ``start`` falls due:
    ``start`` + the target in wall-clock time, or the instant the target's open time has
    passed in the SLA's calendar (``within CAL``). None: no target.

    The one answer for the timers, the audit trail (and so the KPIs), ``status`` and
    ``explain``."""
    target = policy.sla_acknowledge if kind == "acknowledge" else policy.sla_resolve
    if target is None:
        return None
    calendar = sla_calendar(pack, policy, kind)
    return start + target if calendar is None else calendar.due(start, target)


def no_active_pack() -> PackError:
    """The error for a store that never had a pack activated."""
    return PackError("store", ["no rule pack is active (run with --pack FILE)"])
