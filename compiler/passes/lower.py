"""Lowering: parsed files to a ``PolicySet``.

Collects declarations into one namespace (E102 duplicates), builds the schema
and the directory, expands templates (E101/E105 on bad ``use``), and picks the
single-valued statements of each policy (E102 when given twice). Names are
resolved later, by the checks in ``escalade.compiler.passes.checks``.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar, cast

from escalade.compiler import model as m
from escalade.compiler import nodes as n
from escalade.compiler.codes import declare_help
from escalade.compiler.diagnostics import Collector, Note
from escalade.compiler.passes.schedules import lower_calendar, lower_maintenance, lower_schedule
from escalade.runtime.clock import read_time

PERSON_ATTRS = ("name", "email", "slack", "pager", "timezone")
CHANNEL_KINDS = ("slack", "email", "webhook", "pager")
PARAM_KINDS = ("person", "team", "owner", "channel", "policy", "text", "duration")
MAX_TEMPLATE_DEPTH = 16

_D = TypeVar("_D")


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A ``did you mean 'x'?`` help line, or None when nothing is close.

    >>> did_you_mean("critcal", ["low", "critical"])
    "did you mean 'critical'?"
    """
    close = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


def lower(root: str, files: Sequence[n.SourceFile], diags: Collector, version: str) -> m.PolicySet:
    """Build the policy set from every parsed file of one directory."""
    decls = [d for f in files for d in f.decls]
    schema = _build_schema(decls, diags)
    directory = _unique(
        [d for d in decls if isinstance(d, n.PersonDecl | n.TeamDecl | n.ChannelDecl)],
        "person, team and channel",
        diags,
    )
    people = {k: _person(v, diags) for k, v in directory.items() if isinstance(v, n.PersonDecl)}
    channels = {k: _channel(v, diags) for k, v in directory.items() if isinstance(v, n.ChannelDecl)}
    teams = {k: _team(v, diags) for k, v in directory.items() if isinstance(v, n.TeamDecl)}
    calendar_decls = _unique([d for d in decls if isinstance(d, n.CalendarDecl)], "calendar", diags)
    calendars = {
        name: cal
        for name, decl in calendar_decls.items()
        if (cal := lower_calendar(decl, root, diags)) is not None
    }
    templates = _unique([d for d in decls if isinstance(d, n.TemplateDecl)], "template", diags)
    for t in templates.values():
        _check_params(t, diags)
    policy_decls = _unique([d for d in decls if isinstance(d, n.PolicyDecl)], "policy", diags)
    kinds: dict[str, m.RefKind] = {}
    kinds.update({k: "person" for k in people})
    kinds.update({k: "team" for k in teams})
    kinds.update({k: "channel" for k in channels})
    policies: dict[str, m.Policy] = {}
    policy_names = set(policy_decls)  # once: a copy per policy made lowering quadratic
    for name, decl in policy_decls.items():
        stmts = expand(decl.body, templates, kinds, policy_names, diags)
        policies[name] = _policy(decl, stmts, kinds, diags)
    coverage = tuple(
        m.Coverage(tuple(e.value for e in d.events), d.cond, d.span)
        for d in decls
        if isinstance(d, n.CoverageDecl)
    )
    return m.PolicySet(
        root=root,
        files=tuple(files),
        schema=schema,
        people=people,
        teams=teams,
        channels=channels,
        templates=templates,
        policies=policies,
        coverage=coverage,
        bad_conditions=frozenset(),
        version=version,
        calendars=calendars,
        calendar_spans={k: d.name.span for k, d in calendar_decls.items()},
        maintenance=lower_maintenance(decls, diags),
    )


# --------------------------------------------------------------------------- declarations


def _decl_name(d: Any) -> n.Name:
    return cast(n.Name, d.name)


def _unique(decls: Sequence[_D], what: str, diags: Collector) -> dict[str, _D]:
    """First declaration of each name wins; later ones are E102 with a note at the first."""
    out: dict[str, _D] = {}
    for d in decls:
        name = _decl_name(d)
        first = out.get(name.value)
        if first is not None:
            diags.report(
                "E102",
                name.span,
                f"'{name.value}' is declared twice",
                notes=[Note(_decl_name(first).span, "first declared here")],
                help=f"rename one of them: {what} names are unique across every file of the set",
            )
            continue
        out[name.value] = d
    return out


def _build_schema(decls: Sequence[n.Decl], diags: Collector) -> m.Schema:
    events = _unique([d for d in decls if isinstance(d, n.EventDecl)], "event", diags)
    schemas = _unique([d for d in decls if isinstance(d, n.SchemaDecl)], "schema", diags)
    objects: dict[str, dict[str, m.FieldInfo]] = {}
    for name, sd in schemas.items():
        fields: dict[str, m.FieldInfo] = {}
        for fd in sd.fields:
            if fd.name.value in fields:
                diags.report(
                    "E102",
                    fd.name.span,
                    f"field '{name}.{fd.name.value}' is declared twice",
                    notes=[Note(fields[fd.name.value].span, "first declared here")],
                )
                continue
            kind = fd.type.kind.value
            if kind not in m.FIELD_KINDS:
                diags.report(
                    "E101",
                    fd.type.kind.span,
                    f"unknown field type '{kind}'",
                    help=did_you_mean(kind, m.FIELD_KINDS)
                    or "types are text, number, bool, set, time, duration and enum(...)",
                )
                continue
            values: list[str] = []
            for v in fd.type.values:
                if v.value in values:
                    diags.report("E102", v.span, f"enum value '{v.value}' is listed twice")
                    continue
                values.append(v.value)
            if kind == "enum" and not values:
                diags.report("E105", fd.type.span, "an enum needs at least one value")
            fields[fd.name.value] = m.FieldInfo(
                name, fd.name.value, kind, tuple(values), fd.name.span
            )
        objects[name] = fields
    return m.Schema(events=events, objects=objects)


def _attrs(
    attrs: Sequence[n.Attr], allowed: Sequence[str], what: str, diags: Collector
) -> dict[str, str]:
    out: dict[str, str] = {}
    spans: dict[str, n.Span] = {}
    for a in attrs:
        key = a.key.value
        if key not in allowed:
            diags.report(
                "E101",
                a.key.span,
                f"unknown {what} attribute '{key}'",
                help=did_you_mean(key, allowed) or f"a {what} takes {', '.join(allowed)}",
            )
            continue
        if key in out:
            diags.report(
                "E102",
                a.key.span,
                f"'{key}' is given twice",
                notes=[Note(spans[key], "first given here")],
            )
            continue
        out[key] = a.value.value
        spans[key] = a.key.span
    return out


def _person(d: n.PersonDecl, diags: Collector) -> m.Person:
    attrs = _attrs(d.attrs, PERSON_ATTRS, "person", diags)
    display = attrs.pop("name", d.name.value)
    return m.Person(d.name.value, display, attrs, d.name.span)


def _channel(d: n.ChannelDecl, diags: Collector) -> m.Channel:
    attrs = _attrs(d.attrs, CHANNEL_KINDS, "channel", diags)
    if len(attrs) != 1:
        diags.report(
            "E105",
            d.name.span,
            f"channel '{d.name.value}' needs exactly one target "
            f"({', '.join(CHANNEL_KINDS)}), found {len(attrs)}",
        )
    kind, target = next(iter(sorted(attrs.items())), ("slack", ""))
    return m.Channel(d.name.value, kind, target, d.name.span)


def _team(d: n.TeamDecl, diags: Collector) -> m.Team:
    for span in d.extra:
        diags.report("E102", span, f"team '{d.name.value}' repeats `members` or `rotation`")
    period: str | None = None
    start: str | None = None
    if d.rotation is not None:
        period = d.rotation.period.value
        start = d.rotation.start.value
        if period not in ("daily", "weekly"):
            diags.report(
                "E104",
                d.rotation.period.span,
                f"unknown rotation '{period}'",
                help=did_you_mean(period, ("daily", "weekly")) or "use daily or weekly",
            )
        if read_time(start) is None:  # policy times need a zone
            diags.report(
                "E103",
                d.rotation.start.span,
                f"rotation start '{start}' is not an ISO-8601 time",
                help='for example "2026-01-05T09:00:00Z"',
            )
    seen: set[str] = set()
    members: list[str] = []
    for mem in d.members:
        if mem.value in seen:
            diags.report(
                "E102", mem.span, f"'{mem.value}' is listed twice in team '{d.name.value}'"
            )
            continue
        seen.add(mem.value)
        members.append(mem.value)
    # A layer's members belong to the team (written in `members` or not).
    members.extend(
        dict.fromkeys(x.value for lay in d.layers for x in lay.members if x.value not in seen)
    )
    schedule = lower_schedule(d, members, period, start, diags)
    return m.Team(d.name.value, tuple(members), period, start, d.name.span, schedule)


def _check_params(t: n.TemplateDecl, diags: Collector) -> None:
    seen: dict[str, n.Span] = {}
    for p in t.params:
        if p.name.value in seen:
            diags.report(
                "E102",
                p.name.span,
                f"parameter '{p.name.value}' is declared twice",
                notes=[Note(seen[p.name.value], "first declared here")],
            )
        seen[p.name.value] = p.name.span
        if p.kind.value not in PARAM_KINDS:
            diags.report(
                "E101",
                p.kind.span,
                f"unknown parameter kind '{p.kind.value}'",
                help=did_you_mean(p.kind.value, PARAM_KINDS)
                or f"kinds are {', '.join(PARAM_KINDS)}",
            )


# --------------------------------------------------------------------------- templates


def expand(
    body: Sequence[n.Stmt],
    templates: Mapping[str, n.TemplateDecl],
    kinds: Mapping[str, m.RefKind],
    policies: set[str],
    diags: Collector,
    depth: int = 0,
) -> tuple[n.Stmt, ...]:
    """Replace every ``use`` with the template's statements, arguments substituted."""
    out: list[n.Stmt] = []
    for stmt in body:
        if not isinstance(stmt, n.UseStmt):
            out.append(stmt)
            continue
        tmpl = templates.get(stmt.template.value)
        if tmpl is None:
            diags.report(
                "E101",
                stmt.template.span,
                f"unknown template '{stmt.template.value}'",
                help=did_you_mean(stmt.template.value, templates)
                or declare_help(stmt.template.value, ["template"]),
            )
            continue
        if depth >= MAX_TEMPLATE_DEPTH:
            diags.report(
                "E105",
                stmt.span,
                f"template '{tmpl.name.value}' expands itself (templates nest at most "
                f"{MAX_TEMPLATE_DEPTH} deep)",
            )
            continue
        bindings = _bind(stmt, tmpl, kinds, policies, diags)
        if bindings is None:
            continue
        origin = n.Origin(tmpl.name.value, stmt.span)
        expanded = [_substitute(s, bindings, origin) for s in tmpl.body]
        out.extend(expand(expanded, templates, kinds, policies, diags, depth + 1))
    return tuple(out)


def _bind(
    use: n.UseStmt,
    tmpl: n.TemplateDecl,
    kinds: Mapping[str, m.RefKind],
    policies: set[str],
    diags: Collector,
) -> dict[str, n.Arg] | None:
    if len(use.args) != len(tmpl.params):
        signature = ", ".join(f"{p.name.value}: {p.kind.value}" for p in tmpl.params)
        diags.report(
            "E105",
            use.span,
            f"template '{tmpl.name.value}' takes {len(tmpl.params)} argument(s), "
            f"given {len(use.args)}",
            notes=[Note(tmpl.name.span, f"declared as {tmpl.name.value}({signature})")],
        )
        return None
    ok = True
    bindings: dict[str, n.Arg] = {}
    for param, arg in zip(tmpl.params, use.args, strict=True):
        problem = _arg_problem(param.kind.value, arg, kinds, policies)
        if problem is not None:
            ok = False
            diags.report(
                "E105",
                _arg_span(arg),
                f"argument '{param.name.value}' of '{tmpl.name.value}' must be a "
                f"{param.kind.value}: {problem}",
                notes=[Note(param.span, "parameter declared here")],
                help=did_you_mean(_arg_text(arg), _candidates(param.kind.value, kinds, policies)),
            )
        bindings[param.name.value] = arg
    return bindings if ok else None


def _candidates(kind: str, kinds: Mapping[str, m.RefKind], policies: set[str]) -> list[str]:
    if kind == "policy":
        return sorted(policies)
    wanted = {"owner": ("person", "team")}.get(kind, (kind,))
    return [k for k, v in kinds.items() if v in wanted]


def _arg_problem(
    kind: str, arg: n.Arg, kinds: Mapping[str, m.RefKind], policies: set[str]
) -> str | None:
    if kind == "text":
        return None if isinstance(arg, n.Text) else "give a string in double quotes"
    if kind == "duration":
        return None if isinstance(arg, n.Duration) else "give a duration such as 5m"
    if not isinstance(arg, n.Name):
        return "give a name"
    if kind == "policy":
        return None if arg.value in policies else f"'{arg.value}' is not a policy"
    actual = kinds.get(arg.value)
    wanted = ("person", "team") if kind == "owner" else (kind,)
    if actual in wanted:
        return None
    if actual is None:
        return f"'{arg.value}' is not declared"
    return f"'{arg.value}' is a {actual}"


def _arg_span(arg: n.Arg) -> n.Span:
    return arg.span


def _arg_text(arg: n.Arg) -> str:
    if isinstance(arg, n.Name):
        return arg.value
    if isinstance(arg, n.FieldRef):
        return arg.path
    if isinstance(arg, n.Text):
        return arg.value
    if isinstance(arg, n.Duration):
        return arg.text
    if isinstance(arg, n.Pick):
        return f"{arg.strategy.value}({arg.team.value})"
    return arg.raw


def _subst_name(name: n.Name, bindings: Mapping[str, n.Arg]) -> n.Name:
    bound = bindings.get(name.value)
    return bound if isinstance(bound, n.Name) else name


def _subst_arg(arg: n.Arg, bindings: Mapping[str, n.Arg]) -> n.Arg:
    if isinstance(arg, n.Name) and arg.value in bindings:
        return bindings[arg.value]
    return arg


def _substitute(stmt: n.Stmt, bindings: Mapping[str, n.Arg], origin: n.Origin) -> n.Stmt:
    """Substitute parameters in one template statement and mark where it came from."""
    if isinstance(stmt, n.StepStmt):
        undo = stmt.undo
        if undo is not None:
            undo = replace(undo, args=tuple(_subst_arg(a, bindings) for a in undo.args))
        args = tuple(_subst_arg(a, bindings) for a in stmt.args)
        return replace(stmt, args=args, undo=undo, origin=origin)
    if isinstance(stmt, n.PostmortemStmt):
        return replace(stmt, owner=_subst_name(stmt.owner, bindings), origin=origin)
    if isinstance(stmt, n.OnStmt):
        body = tuple(
            cast(n.StepStmt | n.GuideStmt, _substitute(s, bindings, origin)) for s in stmt.body
        )
        return replace(stmt, body=body, origin=origin)
    if isinstance(stmt, n.OwnerStmt):
        return replace(stmt, ref=_subst_name(stmt.ref, bindings), origin=origin)
    if isinstance(stmt, n.TriageStmt):
        return replace(stmt, ref=_subst_name(stmt.ref, bindings), origin=origin)
    if isinstance(stmt, n.ExceptionStmt):
        return replace(stmt, handoff=_subst_name(stmt.handoff, bindings), origin=origin)
    if isinstance(stmt, n.CheckDelivery) and stmt.then is not None:
        return replace(stmt, then=_subst_name(stmt.then, bindings), origin=origin)
    if isinstance(stmt, n.UseStmt):
        return replace(stmt, args=tuple(_subst_arg(a, bindings) for a in stmt.args), origin=origin)
    return replace(stmt, origin=origin)


# --------------------------------------------------------------------------- policies

_SINGLE = {
    n.TitleStmt: "title",
    n.DescriptionStmt: "description",
    n.PriorityStmt: "priority",
    n.TriggerStmt: "trigger",
    n.WhenStmt: "when",
    n.RepeatStmt: "repeat",
    n.CooldownStmt: "cooldown",
    n.TriageStmt: "exception unknown",
    n.GroupStmt: "group",
    n.PostmortemStmt: "postmortem owner",
}
ON_MOMENTS = ("failover", "breach", "acknowledge", "resolve")
SLA_KINDS = ("acknowledge", "resolve")


@dataclass(slots=True)
class _PolicyDraft:
    """What a policy's statements have said so far, while they are lowered in order."""

    decl: n.PolicyDecl
    kinds: Mapping[str, m.RefKind]
    diags: Collector
    seen: dict[str, n.Stmt] = field(default_factory=dict)
    title: str | None = None
    description: str | None = None
    approvers: list[str] = field(default_factory=list)
    priority: int = 0
    triggers: tuple[str, ...] = ()
    trigger_span: n.Span | None = None
    after: int | None = None
    when: n.Cond | None = None
    owners: dict[str, m.Owner] = field(default_factory=dict)
    repeat: int = 0
    sla: dict[str, int] = field(default_factory=dict)
    sla_calendars: dict[str, str] = field(default_factory=dict)
    revert_on: list[str] = field(default_factory=list)
    grouping: m.Grouping | None = None
    postmortem_owner: m.PostmortemOwner | None = None
    steps: list[m.Step] = field(default_factory=list)
    on: dict[str, tuple[m.Step, ...]] = field(default_factory=dict)
    delivery: list[m.DeliveryCheck] = field(default_factory=list)
    state: list[m.StateCheck] = field(default_factory=list)
    close: list[m.CloseCheck] = field(default_factory=list)
    handoffs: list[m.Handoff] = field(default_factory=list)
    exception_names: dict[str, n.Span] = field(default_factory=dict)
    triage: m.Triage | None = None
    cooldown: int = m.DEFAULT_COOLDOWN

    def first(self, stmt: n.Stmt, key: str) -> bool:
        """True the first time the policy gives ``key``; E102 (and False) after that."""
        prior = self.seen.get(key)
        if prior is not None:
            self.diags.report(
                "E102",
                stmt.span,
                f"policy '{self.decl.name.value}' gives `{key}` twice",
                notes=[Note(prior.span, "first given here")],
                help="keep one of them",
            )
            return False
        self.seen[key] = stmt
        return True


def _policy(
    decl: n.PolicyDecl,
    stmts: Sequence[n.Stmt],
    kinds: Mapping[str, m.RefKind],
    diags: Collector,
) -> m.Policy:
    """Lower a policy's (expanded) statements, in order, into its model."""
    draft = _PolicyDraft(decl, kinds, diags)
    for stmt in stmts:
        single = _SINGLE.get(type(stmt))
        if single is not None and not draft.first(stmt, single):
            continue
        lower_stmt = _LOWER_STMT.get(type(stmt))
        if lower_stmt is not None:
            lower_stmt(draft, stmt)
    return _finish(draft, stmts)


MAX_REPEAT = 100
"""The most extra passes of an owner chain: every pass is scheduled, paged and shown in
the runbook's timeline, so a number past this is refused rather than built."""


def _lower_setting(p: _PolicyDraft, stmt: n.Stmt) -> None:
    """A statement that sets one part of the policy (title, trigger, triage ...)."""
    if isinstance(stmt, n.TitleStmt):
        p.title = stmt.text.value
    elif isinstance(stmt, n.DescriptionStmt):
        p.description = stmt.text.value
    elif isinstance(stmt, n.ApproversStmt):
        p.approvers.extend(a.value for a in stmt.approvers)
    elif isinstance(stmt, n.PriorityStmt):
        p.priority = stmt.value
    elif isinstance(stmt, n.TriggerStmt):
        p.triggers = tuple(e.value for e in stmt.events)
        p.trigger_span = stmt.span
        p.after = stmt.after.seconds if stmt.after else None
    elif isinstance(stmt, n.WhenStmt):
        p.when = stmt.cond
    elif isinstance(stmt, n.RepeatStmt):
        if stmt.count > MAX_REPEAT:
            p.diags.report(
                "E105",
                stmt.span,
                f"`repeat {stmt.count}` walks the chain more than {MAX_REPEAT} more times",
                help=f"use at most `repeat {MAX_REPEAT}`; after that the escalation is "
                "unacknowledged and goes to its exception path",
            )
        p.repeat = min(stmt.count, MAX_REPEAT)
    elif isinstance(stmt, n.CooldownStmt):
        p.cooldown = stmt.duration.seconds
    elif isinstance(stmt, n.TriageStmt):
        kind = p.kinds.get(stmt.ref.value, "unknown")
        p.triage = m.Triage(stmt.ref.value, kind, stmt.postmortem, stmt.span, stmt.revert)


def _lower_owner(p: _PolicyDraft, stmt: n.OwnerStmt) -> None:
    """One level of the owner chain (E101 on an unknown level, E102 when given twice)."""
    level = stmt.level.value
    if level not in n.OWNER_LEVELS:
        p.diags.report(
            "E101",
            stmt.level.span,
            f"unknown owner level '{level}'",
            help=did_you_mean(level, n.OWNER_LEVELS) or "levels are primary, backup and escalation",
        )
        return
    if not p.first(stmt, f"owner {level}"):
        return
    p.owners[level] = m.Owner(
        level,
        stmt.ref.value,
        p.kinds.get(stmt.ref.value, "unknown"),
        stmt.ack.seconds if stmt.ack else None,
        stmt.span,
        stmt.strategy.value if stmt.strategy is not None else None,
    )


def _lower_sla(p: _PolicyDraft, stmt: n.SlaStmt) -> None:
    """An acknowledge or resolve SLA (E101 on another kind, E102 when given twice)."""
    kind = stmt.kind.value
    if kind not in SLA_KINDS:
        p.diags.report(
            "E101",
            stmt.kind.span,
            f"unknown SLA '{kind}'",
            help=did_you_mean(kind, SLA_KINDS) or "use `sla acknowledge` or `sla resolve`",
        )
        return
    if p.first(stmt, f"sla {kind}"):
        p.sla[kind] = stmt.duration.seconds
        if stmt.calendar is not None:
            p.sla_calendars[kind] = stmt.calendar.value


def _lower_step(p: _PolicyDraft, stmt: n.StepStmt | n.GuideStmt) -> None:
    """A step of the policy's automation, or guidance for the step before it."""
    _add_step(p.steps, stmt)


def _lower_on(p: _PolicyDraft, stmt: n.OnStmt) -> None:
    """Steps for a moment (``on failover`` ...); blocks for one moment join up."""
    moment = stmt.moment.value
    if moment not in ON_MOMENTS:
        p.diags.report(
            "E101",
            stmt.moment.span,
            f"unknown moment 'on {moment}'",
            help=did_you_mean(moment, ON_MOMENTS) or f"moments are {', '.join(ON_MOMENTS)}",
        )
        return
    block: list[m.Step] = list(p.on.get(moment, ()))
    for s in stmt.body:
        _add_step(block, s)
    p.on[moment] = tuple(block)


def _lower_check(p: _PolicyDraft, stmt: n.CheckDelivery | n.CheckState | n.CheckClose) -> None:
    """A delivery, state or close check."""
    if isinstance(stmt, n.CheckDelivery):
        then = stmt.then.value if stmt.then else None
        p.delivery.append(m.DeliveryCheck(stmt.within.seconds, stmt.retry, then, stmt.span))
    elif isinstance(stmt, n.CheckState):
        within = stmt.within.seconds if stmt.within else m.DEFAULT_STATE_CHECK_WITHIN
        p.state.append(m.StateCheck(stmt.cond, within, stmt.span))
    else:
        p.close.append(m.CloseCheck(stmt.cond, stmt.span))


def _lower_exception(p: _PolicyDraft, stmt: n.ExceptionStmt) -> None:
    """An exception path: a handoff (E102 on a second of one name, E101 on a bad failure)."""
    label = stmt.name.value
    if label in p.exception_names:
        p.diags.report(
            "E102",
            stmt.name.span,
            f"exception '{label}' is declared twice in policy '{p.decl.name.value}'",
            notes=[Note(p.exception_names[label], "first declared here")],
        )
        return
    p.exception_names[label] = stmt.name.span
    failure = stmt.failure.value if stmt.failure else None
    if failure is not None and failure not in n.FAILURE_KINDS:
        p.diags.report(
            "E101",
            stmt.failure.span if stmt.failure else stmt.span,
            f"unknown failure '{failure}'",
            help=did_you_mean(failure, n.FAILURE_KINDS)
            or "failures are unacknowledged, step_failed and check_failed; "
            "a condition compares a field such as ticket.tags",
        )
        return
    p.handoffs.append(m.Handoff(label, stmt.cond, failure, stmt.handoff.value, stmt.span))


# How each kind of policy statement is lowered; kinds not listed (``use``, expanded
# away before lowering) add nothing.
def _lower_operations(p: _PolicyDraft, stmt: n.Stmt) -> None:
    """``on FAILURE revert``, ``group by``, ``postmortem owner`` (checked in
    passes/operations.py)."""
    if isinstance(stmt, n.OnRevertStmt):
        if stmt.moment.value in p.revert_on:
            p.diags.report("E102", stmt.span, f"`on {stmt.moment.value} revert` is given twice")
        else:
            p.revert_on.append(stmt.moment.value)
    elif isinstance(stmt, n.GroupStmt):
        fields = tuple(f.path for f in stmt.fields)
        p.grouping = m.Grouping(fields, stmt.within.seconds, stmt.span)
    elif isinstance(stmt, n.PostmortemStmt):
        kind = p.kinds.get(stmt.owner.value, "unknown")
        p.postmortem_owner = m.PostmortemOwner(
            stmt.owner.value, kind, stmt.within.seconds, stmt.span
        )


_LOWER_STMT: dict[type, Callable[[_PolicyDraft, Any], None]] = {
    n.OnRevertStmt: _lower_operations,
    n.GroupStmt: _lower_operations,
    n.PostmortemStmt: _lower_operations,
    n.TitleStmt: _lower_setting,
    n.DescriptionStmt: _lower_setting,
    n.ApproversStmt: _lower_setting,
    n.PriorityStmt: _lower_setting,
    n.TriggerStmt: _lower_setting,
    n.WhenStmt: _lower_setting,
    n.RepeatStmt: _lower_setting,
    n.CooldownStmt: _lower_setting,
    n.TriageStmt: _lower_setting,
    n.OwnerStmt: _lower_owner,
    n.SlaStmt: _lower_sla,
    n.StepStmt: _lower_step,
    n.GuideStmt: _lower_step,
    n.OnStmt: _lower_on,
    n.CheckDelivery: _lower_check,
    n.CheckState: _lower_check,
    n.CheckClose: _lower_check,
    n.ExceptionStmt: _lower_exception,
}


def _finish(p: _PolicyDraft, stmts: Sequence[n.Stmt]) -> m.Policy:
    """The policy the draft describes; owners in chain order."""
    decl = p.decl
    return m.Policy(
        name=decl.name.value,
        file=decl.span.file,
        span=decl.span,
        name_span=decl.name.span,
        title=p.title,
        description=p.description,
        approvers=tuple(p.approvers),
        priority=p.priority,
        triggers=p.triggers,
        trigger_span=p.trigger_span,
        after=p.after,
        when=p.when,
        owners=tuple(p.owners[level] for level in n.OWNER_LEVELS if level in p.owners),
        repeat=p.repeat,
        sla_acknowledge=p.sla.get("acknowledge"),
        sla_resolve=p.sla.get("resolve"),
        steps=tuple(p.steps),
        on=p.on,
        delivery_checks=tuple(p.delivery),
        state_checks=tuple(p.state),
        close_checks=tuple(p.close),
        handoffs=tuple(p.handoffs),
        triage=p.triage,
        cooldown=p.cooldown,
        stmts=tuple(stmts),
        sla_calendars=p.sla_calendars,
        revert_on=tuple(p.revert_on),
        grouping=p.grouping,
        postmortem_owner=p.postmortem_owner,
    )


def _add_step(steps: list[m.Step], stmt: n.StepStmt | n.GuideStmt) -> None:
    """Append a step; a ``guide`` attaches to the step before it (or stands alone)."""
    if isinstance(stmt, n.GuideStmt):
        if steps and steps[-1].guide is None:
            steps[-1] = replace(steps[-1], guide=stmt.text.value)
        else:
            # Guidance with no step before it reads as a manual step of its own.
            steps.append(m.Step("manual", (stmt.text,), None, stmt.span, stmt.origin))
        return
    undo = None
    if stmt.undo is not None:
        u = stmt.undo
        undo = m.Step(u.action.value, u.args, None, u.span, stmt.origin)
    steps.append(m.Step(stmt.action.value, stmt.args, None, stmt.span, stmt.origin, undo))
