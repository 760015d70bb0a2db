"""Lowering: parsed files to a ``PolicySet``.

Collects declarations into one namespace (E102 duplicates), builds the schema
and the directory, expands templates (E101/E105 on bad ``use``), and picks the
single-valued statements of each policy (E102 when given twice). Names are
resolved later, by the checks in ``escalade.compiler.passes.checks``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, TypeVar, cast

from escalade.compiler import model as m
from escalade.compiler import nodes as n
from escalade.compiler.diagnostics import Collector, Note
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
    templates = _unique([d for d in decls if isinstance(d, n.TemplateDecl)], "template", diags)
    for t in templates.values():
        _check_params(t, diags)
    policy_decls = _unique([d for d in decls if isinstance(d, n.PolicyDecl)], "policy", diags)
    kinds: dict[str, m.RefKind] = {}
    kinds.update({k: "person" for k in people})
    kinds.update({k: "team" for k in teams})
    kinds.update({k: "channel" for k in channels})
    policies: dict[str, m.Policy] = {}
    for name, decl in policy_decls.items():
        stmts = expand(decl.body, templates, kinds, set(policy_decls), diags)
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
        if parse_time(start) is None:
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
    return m.Team(d.name.value, tuple(members), period, start, d.name.span)


parse_time = read_time  # policy times need a zone (checks.py reads them through this name)


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
                help=did_you_mean(stmt.template.value, templates),
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
        return replace(stmt, args=tuple(_subst_arg(a, bindings) for a in stmt.args), origin=origin)
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
}
ON_MOMENTS = ("failover", "breach", "acknowledge", "resolve")
SLA_KINDS = ("acknowledge", "resolve")


def _policy(
    decl: n.PolicyDecl,
    stmts: Sequence[n.Stmt],
    kinds: Mapping[str, m.RefKind],
    diags: Collector,
) -> m.Policy:
    seen: dict[str, n.Stmt] = {}

    def first(stmt: n.Stmt, key: str, label: str) -> bool:
        prior = seen.get(key)
        if prior is not None:
            diags.report(
                "E102",
                stmt.span,
                f"policy '{decl.name.value}' gives `{label}` twice",
                notes=[Note(prior.span, "first given here")],
                help="keep one of them",
            )
            return False
        seen[key] = stmt
        return True

    title = description = None
    approvers: list[str] = []
    priority = 0
    triggers: tuple[str, ...] = ()
    trigger_span: n.Span | None = None
    after: int | None = None
    when: n.Cond | None = None
    owners: dict[str, m.Owner] = {}
    repeat = 0
    sla: dict[str, int] = {}
    steps: list[m.Step] = []
    on: dict[str, tuple[m.Step, ...]] = {}
    delivery: list[m.DeliveryCheck] = []
    state: list[m.StateCheck] = []
    close: list[m.CloseCheck] = []
    handoffs: list[m.Handoff] = []
    exception_names: dict[str, n.Span] = {}
    triage: m.Triage | None = None
    cooldown = m.DEFAULT_COOLDOWN

    for stmt in stmts:
        single = _SINGLE.get(type(stmt))
        if single is not None and not first(stmt, single, single):
            continue
        if isinstance(stmt, n.TitleStmt):
            title = stmt.text.value
        elif isinstance(stmt, n.DescriptionStmt):
            description = stmt.text.value
        elif isinstance(stmt, n.ApproversStmt):
            approvers.extend(a.value for a in stmt.approvers)
        elif isinstance(stmt, n.PriorityStmt):
            priority = stmt.value
        elif isinstance(stmt, n.TriggerStmt):
            triggers = tuple(e.value for e in stmt.events)
            trigger_span = stmt.span
            after = stmt.after.seconds if stmt.after else None
        elif isinstance(stmt, n.WhenStmt):
            when = stmt.cond
        elif isinstance(stmt, n.OwnerStmt):
            level = stmt.level.value
            if level not in n.OWNER_LEVELS:
                diags.report(
                    "E101",
                    stmt.level.span,
                    f"unknown owner level '{level}'",
                    help=did_you_mean(level, n.OWNER_LEVELS)
                    or "levels are primary, backup and escalation",
                )
                continue
            if not first(stmt, f"owner {level}", f"owner {level}"):
                continue
            owners[level] = m.Owner(
                level,
                stmt.ref.value,
                kinds.get(stmt.ref.value, "unknown"),
                stmt.ack.seconds if stmt.ack else None,
                stmt.span,
            )
        elif isinstance(stmt, n.RepeatStmt):
            repeat = stmt.count
        elif isinstance(stmt, n.SlaStmt):
            kind = stmt.kind.value
            if kind not in SLA_KINDS:
                diags.report(
                    "E101",
                    stmt.kind.span,
                    f"unknown SLA '{kind}'",
                    help=did_you_mean(kind, SLA_KINDS) or "use `sla acknowledge` or `sla resolve`",
                )
                continue
            if first(stmt, f"sla {kind}", f"sla {kind}"):
                sla[kind] = stmt.duration.seconds
        elif isinstance(stmt, n.StepStmt | n.GuideStmt):
            _add_step(steps, stmt)
        elif isinstance(stmt, n.OnStmt):
            moment = stmt.moment.value
            if moment not in ON_MOMENTS:
                diags.report(
                    "E101",
                    stmt.moment.span,
                    f"unknown moment 'on {moment}'",
                    help=did_you_mean(moment, ON_MOMENTS) or f"moments are {', '.join(ON_MOMENTS)}",
                )
                continue
            block: list[m.Step] = list(on.get(moment, ()))
            for s in stmt.body:
                _add_step(block, s)
            on[moment] = tuple(block)
        elif isinstance(stmt, n.CheckDelivery):
            delivery.append(
                m.DeliveryCheck(
                    stmt.within.seconds,
                    stmt.retry,
                    stmt.then.value if stmt.then else None,
                    stmt.span,
                )
            )
        elif isinstance(stmt, n.CheckState):
            within = stmt.within.seconds if stmt.within else m.DEFAULT_STATE_CHECK_WITHIN
            state.append(m.StateCheck(stmt.cond, within, stmt.span))
        elif isinstance(stmt, n.CheckClose):
            close.append(m.CloseCheck(stmt.cond, stmt.span))
        elif isinstance(stmt, n.ExceptionStmt):
            label = stmt.name.value
            if label in exception_names:
                diags.report(
                    "E102",
                    stmt.name.span,
                    f"exception '{label}' is declared twice in policy '{decl.name.value}'",
                    notes=[Note(exception_names[label], "first declared here")],
                )
                continue
            exception_names[label] = stmt.name.span
            failure = stmt.failure.value if stmt.failure else None
            if failure is not None and failure not in n.FAILURE_KINDS:
                diags.report(
                    "E101",
                    stmt.failure.span if stmt.failure else stmt.span,
                    f"unknown failure '{failure}'",
                    help=did_you_mean(failure, n.FAILURE_KINDS)
                    or "failures are unacknowledged, step_failed and check_failed; "
                    "a condition compares a field such as ticket.tags",
                )
                continue
            handoffs.append(m.Handoff(label, stmt.cond, failure, stmt.handoff.value, stmt.span))
        elif isinstance(stmt, n.TriageStmt):
            triage = m.Triage(
                stmt.ref.value, kinds.get(stmt.ref.value, "unknown"), stmt.postmortem, stmt.span
            )
        elif isinstance(stmt, n.CooldownStmt):
            cooldown = stmt.duration.seconds

    chain = tuple(owners[level] for level in n.OWNER_LEVELS if level in owners)
    return m.Policy(
        name=decl.name.value,
        file=decl.span.file,
        span=decl.span,
        name_span=decl.name.span,
        title=title,
        description=description,
        approvers=tuple(approvers),
        priority=priority,
        triggers=triggers,
        trigger_span=trigger_span,
        after=after,
        when=when,
        owners=chain,
        repeat=repeat,
        sla_acknowledge=sla.get("acknowledge"),
        sla_resolve=sla.get("resolve"),
        steps=tuple(steps),
        on=on,
        delivery_checks=tuple(delivery),
        state_checks=tuple(state),
        close_checks=tuple(close),
        handoffs=tuple(handoffs),
        triage=triage,
        cooldown=cooldown,
        stmts=tuple(stmts),
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
    steps.append(m.Step(stmt.action.value, stmt.args, None, stmt.span, stmt.origin))
