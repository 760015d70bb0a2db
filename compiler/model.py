"""The checked policy set: what every back end and the analyzer consume.

Built from the syntax tree by the passes in ``escalade.compiler.passes``
(templates expanded, names resolved, single-valued statements picked). Back
ends render view models from this, never from raw syntax nodes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from escalade.compiler import nodes as n
from escalade.runtime.calendars import Calendar
from escalade.runtime.schedule import Schedule

FieldKind = Literal["text", "number", "bool", "set", "time", "duration", "enum"]
FIELD_KINDS: tuple[FieldKind, ...] = ("text", "number", "bool", "set", "time", "duration", "enum")
RefKind = Literal["person", "team", "channel", "policy", "unknown"]


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """One typed field of an event object, e.g. ``ticket.severity: enum(...)``."""

    obj: str
    name: str
    kind: FieldKind
    values: tuple[str, ...]  # enum values in declaration order; () otherwise
    span: n.Span

    @property
    def path(self) -> str:
        return f"{self.obj}.{self.name}"


@dataclass(frozen=True, slots=True)
class Schema:
    """Event kinds and the typed fields of each event object."""

    events: dict[str, n.EventDecl]
    objects: dict[str, dict[str, FieldInfo]]

    def field(self, obj: str, name: str) -> FieldInfo | None:
        fields = self.objects.get(obj)
        return None if fields is None else fields.get(name)


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    display: str  # the `name` attribute, or the identifier when absent
    contacts: dict[str, str]  # email / slack / pager / timezone
    span: n.Span


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    members: tuple[str, ...]
    rotation: str | None  # daily | weekly
    rotation_start: str | None  # ISO-8601
    span: n.Span
    schedule: Schedule | None = None  # layers (or the rotation as one), overrides on top

    @property
    def zone(self) -> str:
        """The zone the team's times are shown in: its first layer's, else UTC."""
        return self.schedule.layers[0].zone if self.schedule and self.schedule.layers else "UTC"


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    kind: str  # slack | email | webhook | pager
    target: str
    span: n.Span


@dataclass(frozen=True, slots=True)
class Owner:
    level: str  # primary | backup | escalation
    ref: str
    ref_kind: RefKind
    ack: int | None  # seconds
    span: n.Span
    pick: str | None = None  # round_robin | all: how the level picks among the team


@dataclass(frozen=True, slots=True)
class Step:
    action: str
    args: tuple[n.Arg, ...]
    guide: str | None
    span: n.Span
    origin: n.Origin | None = None
    undo: Step | None = None  # the compensating step `revert` runs


@dataclass(frozen=True, slots=True)
class Grouping:
    """``group by FIELD, ... within D``."""

    fields: tuple[str, ...]
    within: int
    span: n.Span


@dataclass(frozen=True, slots=True)
class PostmortemOwner:
    """``postmortem owner REF within D``."""

    ref: str
    ref_kind: RefKind
    within: int
    span: n.Span


@dataclass(frozen=True, slots=True)
class Maintenance:
    """A planned ``maintenance`` window: pages for a policy or a team are held."""

    name: str
    policy: str | None
    team: str | None
    start: int
    end: int
    reason: str
    span: n.Span


@dataclass(frozen=True, slots=True)
class DeliveryCheck:
    within: int
    retry: int
    then: str | None
    span: n.Span


@dataclass(frozen=True, slots=True)
class StateCheck:
    cond: n.Cond
    within: int  # seconds, default 5m
    span: n.Span


@dataclass(frozen=True, slots=True)
class CloseCheck:
    cond: n.Cond | None  # None: a post-mortem is required
    span: n.Span


@dataclass(frozen=True, slots=True)
class Handoff:
    """A Type A exception: on a condition or a failure kind, hand off to ``policy``."""

    name: str
    cond: n.Cond | None
    failure: str | None
    policy: str
    span: n.Span


@dataclass(frozen=True, slots=True)
class Triage:
    """The Type B path: ``exception unknown triage REF [postmortem]``."""

    ref: str
    ref_kind: RefKind
    postmortem: bool
    span: n.Span
    revert: bool = False  # undo the steps that ran before triage


DEFAULT_COOLDOWN = 3600
DEFAULT_STATE_CHECK_WITHIN = 300


@dataclass(frozen=True, slots=True)
class Policy:
    """One escalation policy after template expansion."""

    name: str
    file: str
    span: n.Span  # the whole declaration
    name_span: n.Span
    title: str | None
    description: str | None
    approvers: tuple[str, ...]
    priority: int
    triggers: tuple[str, ...]
    trigger_span: n.Span | None
    after: int | None  # seconds
    when: n.Cond | None
    owners: tuple[Owner, ...]  # in chain order: primary, backup, escalation
    repeat: int
    sla_acknowledge: int | None
    sla_resolve: int | None
    steps: tuple[Step, ...]
    on: dict[str, tuple[Step, ...]]
    delivery_checks: tuple[DeliveryCheck, ...]
    state_checks: tuple[StateCheck, ...]
    close_checks: tuple[CloseCheck, ...]
    handoffs: tuple[Handoff, ...]
    triage: Triage | None
    cooldown: int
    stmts: tuple[n.Stmt, ...] = field(repr=False)  # expanded statements, in order
    sla_calendars: dict[str, str] = field(default_factory=dict)  # SLA kind -> calendar
    revert_on: tuple[str, ...] = ()  # failure kinds with `on KIND revert`
    grouping: Grouping | None = None
    postmortem_owner: PostmortemOwner | None = None

    def owner(self, level: str) -> Owner | None:
        for o in self.owners:
            if o.level == level:
                return o
        return None


@dataclass(frozen=True, slots=True)
class Coverage:
    events: tuple[str, ...]
    cond: n.Cond
    span: n.Span


@dataclass(frozen=True, slots=True)
class PolicySet:
    """Everything compiled together from one directory of ``.esc`` files.

    ``bad_conditions`` holds the spans of conditions that already have an
    error: the whole-set analysis skips them, so one typo is one diagnostic.
    """

    root: str
    files: tuple[n.SourceFile, ...]
    schema: Schema
    people: dict[str, Person]
    teams: dict[str, Team]
    channels: dict[str, Channel]
    templates: dict[str, n.TemplateDecl]
    policies: dict[str, Policy]
    coverage: tuple[Coverage, ...]
    bad_conditions: frozenset[n.Span]
    version: str = "0.0.0"
    calendars: dict[str, Calendar] = field(default_factory=dict)
    maintenance: tuple[Maintenance, ...] = ()
    calendar_spans: dict[str, n.Span] = field(default_factory=dict)

    def ref_kind(self, name: str) -> RefKind:
        if name in self.people:
            return "person"
        if name in self.teams:
            return "team"
        if name in self.channels:
            return "channel"
        if name in self.policies:
            return "policy"
        return "unknown"
