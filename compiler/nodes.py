"""Typed syntax tree of the Escalade language.

Every node is a frozen dataclass with a source ``span``. Nothing mutates a
tree: template expansion builds new statement tuples, passes return facts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

# --------------------------------------------------------------------------- spans


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """A region of one source file; lines and columns start at 1, ``end_col`` is exclusive."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NO_SPAN = Span("<builtin>", 1, 1, 1, 1)


@dataclass(frozen=True, slots=True)
class Name:
    """An identifier as written, e.g. a person, team, policy or enum value."""

    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class Duration:
    """A duration literal such as ``1h30m``."""

    seconds: int
    text: str
    span: Span


@dataclass(frozen=True, slots=True)
class Text:
    """A decoded string literal; ``placeholders`` are the ``{{ object.field }}`` it uses."""

    value: str
    span: Span
    placeholders: tuple[Placeholder, ...] = ()


@dataclass(frozen=True, slots=True)
class Placeholder:
    """``{{ object.field }}`` inside a string (or a malformed one, ``field == ''``)."""

    obj: str
    field: str
    span: Span
    raw: str


# --------------------------------------------------------------------------- conditions


@dataclass(frozen=True, slots=True)
class FieldRef:
    """``object.field`` in a condition or an action argument."""

    obj: str
    field: str
    span: Span

    @property
    def path(self) -> str:
        return f"{self.obj}.{self.field}"


ValueKind = Literal["name", "string", "number", "duration"]


@dataclass(frozen=True, slots=True)
class Value:
    """A literal on the right of a comparison; its meaning depends on the field's type.

    ``raw`` is the decoded text (string contents, the bare name, the number or
    duration as written); ``number`` holds the numeric value for numbers and
    the seconds of a duration.
    """

    kind: ValueKind
    raw: str
    span: Span
    number: float | None = None


CmpOp = Literal["==", "!=", "<", "<=", ">", ">="]


@dataclass(frozen=True, slots=True)
class Compare:
    """``field OP value``."""

    field: FieldRef
    op: CmpOp
    value: Value
    span: Span


@dataclass(frozen=True, slots=True)
class InList:
    """``field in (v, ...)`` or, with ``negated``, ``field not in (...)``."""

    field: FieldRef
    values: tuple[Value, ...]
    negated: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Has:
    """``field has "tag"`` on a set field."""

    field: FieldRef
    tag: Text
    span: Span


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Cond, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Cond, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Not:
    item: Cond
    span: Span


Cond = Compare | InList | Has | And | Or | Not
Atom = Compare | InList | Has

# --------------------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class Pick:
    """``round_robin(team)`` or ``all(team)``: how a level or a step picks among a team."""

    strategy: Name  # round_robin | all
    team: Name
    span: Span


Arg = Name | Text | FieldRef | Duration | Value | Pick


@dataclass(frozen=True, slots=True)
class Origin:
    """Where an expanded statement came from: the ``use`` that expanded it."""

    template: str
    use_span: Span


@dataclass(frozen=True, slots=True)
class TitleStmt:
    text: Text
    span: Span
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class DescriptionStmt:
    text: Text
    span: Span
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class ApproversStmt:
    approvers: tuple[Text, ...]
    span: Span
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class PriorityStmt:
    value: int
    span: Span
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class TriggerStmt:
    events: tuple[Name, ...]
    after: Duration | None
    span: Span
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class WhenStmt:
    cond: Cond
    span: Span
    origin: Origin | None = None


OwnerLevel = Literal["primary", "backup", "escalation"]
OWNER_LEVELS: tuple[OwnerLevel, ...] = ("primary", "backup", "escalation")


@dataclass(frozen=True, slots=True)
class OwnerStmt:
    level: Name
    ref: Name
    ack: Duration | None
    span: Span
    origin: Origin | None = None
    strategy: Name | None = None  # round_robin | all, around the team in ``ref``


@dataclass(frozen=True, slots=True)
class RepeatStmt:
    count: int
    span: Span
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class SlaStmt:
    kind: Name  # acknowledge | resolve
    duration: Duration
    span: Span
    origin: Origin | None = None
    calendar: Name | None = None  # `within CALENDAR`: counted in the calendar's open hours


@dataclass(frozen=True, slots=True)
class StepStmt:
    action: Name
    args: tuple[Arg, ...]
    span: Span
    origin: Origin | None = None
    undo: Undo | None = None


@dataclass(frozen=True, slots=True)
class Undo:
    """``undo ACTION ARGS``: the compensating step ``revert`` runs for a step."""

    action: Name
    args: tuple[Arg, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class GuideStmt:
    text: Text
    span: Span
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class OnStmt:
    moment: Name  # failover | breach | acknowledge | resolve
    body: tuple[StepStmt | GuideStmt, ...]
    span: Span
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class OnRevertStmt:
    """``on check_failed revert``: a failure runs the undo steps of the steps that ran."""

    moment: Name
    span: Span
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class GroupStmt:
    """``group by FIELD, ... within D``: later events of an open group attach to it."""

    fields: tuple[FieldRef, ...]
    within: Duration
    span: Span
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class PostmortemStmt:
    """``postmortem owner REF within D``: who completes the post-mortem, and by when."""

    owner: Name
    within: Duration
    span: Span
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class CheckDelivery:
    within: Duration
    retry: int
    then: Name | None
    span: Span
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class CheckState:
    cond: Cond
    within: Duration | None
    span: Span
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class CheckClose:
    """``check close requires COND``; ``cond is None`` means ``requires postmortem``."""

    cond: Cond | None
    span: Span
    origin: Origin | None = None


FailureKind = Literal["unacknowledged", "step_failed", "check_failed"]
FAILURE_KINDS: tuple[FailureKind, ...] = ("unacknowledged", "step_failed", "check_failed")


@dataclass(frozen=True, slots=True)
class ExceptionStmt:
    """Type A: ``exception NAME when COND|FAILURE handoff POLICY``."""

    name: Name
    cond: Cond | None
    failure: Name | None
    handoff: Name
    span: Span
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class TriageStmt:
    """Type B: ``exception unknown triage REF [postmortem]``."""

    ref: Name
    postmortem: bool
    span: Span
    origin: Origin | None = None
    revert: bool = False  # `revert`: undo the steps that ran before triage


@dataclass(frozen=True, slots=True)
class UseStmt:
    template: Name
    args: tuple[Arg, ...]
    span: Span
    origin: Origin | None = None


@dataclass(frozen=True, slots=True)
class CooldownStmt:
    duration: Duration
    span: Span
    origin: Origin | None = None


Stmt = (
    TitleStmt
    | DescriptionStmt
    | ApproversStmt
    | PriorityStmt
    | TriggerStmt
    | WhenStmt
    | OwnerStmt
    | RepeatStmt
    | SlaStmt
    | StepStmt
    | GuideStmt
    | OnStmt
    | CheckDelivery
    | CheckState
    | CheckClose
    | ExceptionStmt
    | TriageStmt
    | UseStmt
    | CooldownStmt
    | OnRevertStmt
    | GroupStmt
    | PostmortemStmt
)

# --------------------------------------------------------------------------- declarations


@dataclass(frozen=True, slots=True)
class EventDecl:
    name: Name
    span: Span


@dataclass(frozen=True, slots=True)
class FieldType:
    """``text``, ``number``, ``bool``, ``set``, ``time``, ``duration`` or ``enum``."""

    kind: Name
    values: tuple[Name, ...]  # enum values, in declaration order
    span: Span


@dataclass(frozen=True, slots=True)
class FieldDecl:
    name: Name
    type: FieldType
    span: Span


@dataclass(frozen=True, slots=True)
class SchemaDecl:
    name: Name
    fields: tuple[FieldDecl, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Attr:
    key: Name
    value: Text
    span: Span


@dataclass(frozen=True, slots=True)
class PersonDecl:
    name: Name
    attrs: tuple[Attr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class ChannelDecl:
    name: Name
    attrs: tuple[Attr, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Rotation:
    period: Name  # daily | weekly
    start: Text
    span: Span


@dataclass(frozen=True, slots=True)
class Window:
    """``mon-fri 09:00-18:00``: days (one or a range) and local hours, as written."""

    days: Name
    hours: Name
    span: Span


@dataclass(frozen=True, slots=True)
class LayerDecl:
    """``layer NAME { members .. shift D handoff HH:MM zone "Z" start "DATE" restrict W, .. }``."""

    name: Name
    members: tuple[Name, ...]
    shift: Duration | None
    handoff: Name | None
    zone: Text | None
    start: Text | None
    restrict: tuple[Window, ...]
    span: Span
    extra: tuple[Span, ...] = field(default=())  # repeated items


@dataclass(frozen=True, slots=True)
class TeamOverride:
    """``override PERSON [for MEMBER] from "T" to "T"``."""

    person: Name
    replaces: Name | None
    start: Text
    end: Text
    span: Span


@dataclass(frozen=True, slots=True)
class TeamDecl:
    name: Name
    members: tuple[Name, ...]
    rotation: Rotation | None
    span: Span
    members_span: Span | None = None
    extra: tuple[Span, ...] = field(default=())  # repeated members/rotation items
    layers: tuple[LayerDecl, ...] = ()
    overrides: tuple[TeamOverride, ...] = ()


@dataclass(frozen=True, slots=True)
class CalendarDecl:
    """``calendar NAME { WINDOW, .. ["ZONE"]; zone "Z"; except "DATE", ..; except file "F" }``."""

    name: Name
    windows: tuple[Window, ...]
    zones: tuple[Text, ...]  # every zone written, in order (one is expected)
    holidays: tuple[Text, ...]
    holiday_files: tuple[Text, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class MaintenanceDecl:
    """``maintenance NAME { policy P | team T  from "T" to "T"  reason "R" }``: held pages."""

    name: Name
    policy: Name | None
    team: Name | None
    start: Text | None
    end: Text | None
    reason: Text | None
    span: Span
    extra: tuple[Span, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Param:
    name: Name
    kind: Name
    span: Span


@dataclass(frozen=True, slots=True)
class TemplateDecl:
    name: Name
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class PolicyDecl:
    name: Name
    body: tuple[Stmt, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class CoverageDecl:
    events: tuple[Name, ...]
    cond: Cond
    span: Span


Decl = (
    EventDecl
    | SchemaDecl
    | PersonDecl
    | ChannelDecl
    | TeamDecl
    | TemplateDecl
    | PolicyDecl
    | CoverageDecl
    | CalendarDecl
    | MaintenanceDecl
)


@dataclass(frozen=True, slots=True)
class SourceFile:
    """One parsed ``.esc`` file: its path (as given, relative to the set root) and declarations."""

    path: str
    decls: tuple[Decl, ...]
    text: str
