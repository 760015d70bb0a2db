"""Per-policy checks (SPEC section 2): one small pass each, reporting into a collector.

Each pass is ``def check_x(pset, diags) -> None``; ``FRONTEND_PASSES`` is the
order they run in. Example::

    policy p { owner primary ann }   # E202 missing-backup, E206 no-triage, E501 ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from escalade.compiler import model as m
from escalade.compiler import nodes as n
from escalade.compiler.backends.codeowners import OWNER_RE
from escalade.compiler.codes import DECLARATIONS, declare_help, field_help, object_help
from escalade.compiler.diagnostics import Collector, Note
from escalade.compiler.passes.lower import did_you_mean
from escalade.compiler.passes.operations import check_operations
from escalade.compiler.passes.slatime import SlaLengths
from escalade.runtime.clock import format_duration, read_time

Pass = Callable[[m.PolicySet, Collector], None]

# --------------------------------------------------------------------------- conditions


def iter_atoms(cond: n.Cond) -> Iterator[n.Atom]:
    """Every comparison in a condition, left to right, without recursion."""
    stack: list[n.Cond] = [cond]
    while stack:
        c = stack.pop()
        if isinstance(c, n.And | n.Or):
            stack.extend(reversed(c.items))
        elif isinstance(c, n.Not):
            stack.append(c.item)
        else:
            yield c


def policy_conditions(p: m.Policy) -> Iterator[n.Cond]:
    """Every condition a policy uses: trigger, state checks, close checks, exceptions."""
    if p.when is not None:
        yield p.when
    for sc in p.state_checks:
        yield sc.cond
    for cc in p.close_checks:
        if cc.cond is not None:
            yield cc.cond
    for h in p.handoffs:
        if h.cond is not None:
            yield h.cond


def all_conditions(pset: m.PolicySet) -> Iterator[n.Cond]:
    for p in pset.policies.values():
        yield from policy_conditions(p)
    for c in pset.coverage:
        yield c.cond


def resolve_field(pset: m.PolicySet, ref: n.FieldRef, diags: Collector) -> m.FieldInfo | None:
    """The schema field a ``object.field`` names, or E101 with a suggestion."""
    fields = pset.schema.objects.get(ref.obj)
    if fields is None:
        diags.report(
            "E101",
            ref.span,
            f"unknown object '{ref.obj}' in '{ref.path}'",
            help=did_you_mean(ref.obj, pset.schema.objects) or _objects_help(pset, ref.obj),
        )
        return None
    info = fields.get(ref.field)
    if info is None:
        diags.report(
            "E101",
            ref.span,
            f"unknown field '{ref.path}'",
            help=did_you_mean(ref.path, [f"{ref.obj}.{f}" for f in fields])
            or f"'{ref.obj}' has {', '.join(sorted(fields)) or 'no fields'}; "
            + field_help(ref.obj, ref.field),
        )
    return info


def _declare(name: str, kinds: Iterable[str]) -> str | None:
    """How to declare ``name`` as any of ``kinds`` that can be declared."""
    declarable = [k for k in kinds if k in DECLARATIONS]
    return declare_help(name, declarable) if declarable else None


def _objects_help(pset: m.PolicySet, obj: str) -> str:
    """The objects there are, and how to declare this one."""
    declared = ", ".join(sorted(pset.schema.objects)) or "none"
    return f"declared objects: {declared}; {object_help(obj)}"


_ORDERED = ("number", "time", "duration")


def _check_value(info: m.FieldInfo, value: n.Value, diags: Collector) -> None:
    kind = info.kind
    if kind == "enum":
        if value.kind != "name":
            diags.report(
                "E103",
                value.span,
                f"'{info.path}' is an enum: compare it with a bare value, not a {value.kind}",
                help=f"values: {', '.join(info.values)}",
            )
        elif value.raw not in info.values:
            diags.report(
                "E104",
                value.span,
                f"'{value.raw}' is not a value of '{info.path}'",
                help=did_you_mean(value.raw, info.values) or f"values: {', '.join(info.values)}",
                notes=[Note(info.span, f"'{info.path}' is declared here")],
            )
    elif kind == "number":
        if value.kind != "number":
            diags.report("E103", value.span, f"'{info.path}' is a number; '{value.raw}' is not")
    elif kind == "duration":
        if value.kind != "duration":
            diags.report(
                "E103",
                value.span,
                f"'{info.path}' is a duration; write one such as 5m, not '{value.raw}'",
            )
    elif kind == "time":
        if value.kind != "string" or read_time(value.raw) is None:
            diags.report(
                "E103",
                value.span,
                f"'{info.path}' is a time; write an ISO-8601 string such as "
                '"2026-11-27T10:00:00Z"',
            )
    elif kind == "bool":
        if value.kind != "name" or value.raw not in ("true", "false"):
            diags.report(
                "E103", value.span, f"'{info.path}' is a bool; compare it with true or false"
            )
    elif kind == "text" and value.kind != "string":
        diags.report(
            "E103",
            value.span,
            f"'{info.path}' is text; write the value in double quotes: \"{value.raw}\"",
        )


def _check_atom(pset: m.PolicySet, atom: n.Atom, diags: Collector) -> None:
    info = resolve_field(pset, atom.field, diags)
    if info is None:
        return
    if isinstance(atom, n.Has):
        if info.kind != "set":
            diags.report(
                "E103", atom.span, f"`has` needs a set field; '{info.path}' is {info.kind}"
            )
        return
    if info.kind == "set":
        diags.report(
            "E103",
            atom.span,
            f"'{info.path}' is a set of tags: test it with `{info.path} has \"tag\"`",
        )
        return
    if isinstance(atom, n.Compare):
        if atom.op not in ("==", "!=") and info.kind not in _ORDERED:
            diags.report(
                "E103",
                atom.span,
                f"'{info.path}' is {info.kind}: it compares only with == and !=",
            )
            return
        _check_value(info, atom.value, diags)
    else:
        for v in atom.values:
            _check_value(info, v, diags)


def check_conditions(pset: m.PolicySet, diags: Collector) -> None:
    """Fields exist (E101), values fit their type (E103), enum values exist (E104).

    ``ticket.severity == critcal`` → E104 with "did you mean 'critical'?"."""
    for cond in all_conditions(pset):
        for atom in iter_atoms(cond):
            _check_atom(pset, atom, diags)


# --------------------------------------------------------------------------- names


def _iter_steps(p: m.Policy) -> Iterator[m.Step]:
    """Every step of the policy, its ``on`` blocks' and every step's ``undo``."""
    for step in (*p.steps, *(s for block in p.on.values() for s in block)):
        yield step
        if step.undo is not None:
            yield step.undo


def check_triggers(pset: m.PolicySet, diags: Collector) -> None:
    """Trigger and coverage events are declared (E101).

    ``trigger ticket.craeted`` → "unknown event 'ticket.craeted'; did you mean ..."."""
    declared = pset.schema.events
    for p in pset.policies.values():
        for stmt in p.stmts:
            if isinstance(stmt, n.TriggerStmt):
                for e in stmt.events:
                    _check_event(e, declared, diags)
    for f in pset.files:
        for d in f.decls:
            if isinstance(d, n.CoverageDecl):
                for e in d.events:
                    _check_event(e, declared, diags)


def _check_event(e: n.Name, declared: dict[str, n.EventDecl], diags: Collector) -> None:
    if e.value not in declared:
        diags.report(
            "E101",
            e.span,
            f"unknown event '{e.value}'",
            help=did_you_mean(e.value, declared) or declare_help(e.value, ["event"]),
        )


def _check_ref(
    pset: m.PolicySet, name: n.Name, allowed: tuple[m.RefKind, ...], what: str, diags: Collector
) -> bool:
    kind = pset.ref_kind(name.value) if name.value not in pset.policies else "policy"
    if kind in allowed:
        return True
    candidates = _ref_candidates(pset, allowed)
    if kind == "unknown" and name.value not in pset.policies:
        diags.report(
            "E101",
            name.span,
            f"unknown {what} '{name.value}'",
            help=did_you_mean(name.value, candidates) or _declare(name.value, allowed),
        )
    else:
        diags.report(
            "E105",
            name.span,
            f"'{name.value}' is a {kind}, but {what} must be a {' or '.join(allowed)}",
            help=did_you_mean(name.value, candidates),
        )
    return False


_CANDIDATES: list[tuple[m.PolicySet, dict[tuple[m.RefKind, ...], list[str]]]] = []


def _ref_candidates(pset: m.PolicySet, allowed: tuple[m.RefKind, ...]) -> list[str]:
    """The names a reference of the ``allowed`` kinds could mean, listed once per set
    (every bad reference asks; listing them each time made many findings quadratic)."""
    if not _CANDIDATES or _CANDIDATES[0][0] is not pset:
        _CANDIDATES[:] = [(pset, {})]
    known = _CANDIDATES[0][1]
    found = known.get(allowed)
    if found is None:
        found = known[allowed] = [
            k
            for k in (*pset.people, *pset.teams, *pset.channels, *pset.policies)
            if pset.ref_kind(k) in allowed or ("policy" in allowed and k in pset.policies)
        ]
    return found


def check_references(pset: m.PolicySet, diags: Collector) -> None:
    """Owners, triage owners, handoff targets, fallback channels and team members exist."""
    for team in pset.teams.values():
        for member in team.members:
            if member not in pset.people:
                span = _member_span(pset, team, member)
                diags.report(
                    "E101",
                    span,
                    f"unknown person '{member}' in team '{team.name}'",
                    help=did_you_mean(member, pset.people) or declare_help(member, ["person"]),
                )
    for p in pset.policies.values():
        for stmt in p.stmts:
            if isinstance(stmt, n.OwnerStmt) and stmt.level.value in n.OWNER_LEVELS:
                _check_ref(pset, stmt.ref, ("person", "team"), "owner", diags)
            elif isinstance(stmt, n.TriageStmt):
                _check_ref(pset, stmt.ref, ("person", "team"), "triage owner", diags)
            elif isinstance(stmt, n.ExceptionStmt):
                if stmt.handoff.value not in pset.policies:
                    diags.report(
                        "E101",
                        stmt.handoff.span,
                        f"unknown policy '{stmt.handoff.value}' to hand off to",
                        help=did_you_mean(stmt.handoff.value, pset.policies)
                        or declare_help(stmt.handoff.value, ["policy"]),
                    )
            elif isinstance(stmt, n.CheckDelivery) and stmt.then is not None:
                _check_ref(pset, stmt.then, ("channel",), "fallback channel", diags)
            elif isinstance(stmt, n.SlaStmt) and stmt.calendar is not None:
                _check_calendar(pset, stmt.calendar, diags)
    _check_override_people(pset, diags)


def _check_calendar(pset: m.PolicySet, name: n.Name, diags: Collector) -> None:
    if name.value not in pset.calendar_spans:
        diags.report(
            "E101",
            name.span,
            f"unknown calendar '{name.value}'",
            help=did_you_mean(name.value, pset.calendar_spans)
            or f'declare `calendar {name.value} {{ mon-fri 09:00-18:00 "Europe/Berlin" }}`',
        )


def _check_override_people(pset: m.PolicySet, diags: Collector) -> None:
    for team in pset.teams.values():
        for o in team.schedule.overrides if team.schedule else ():
            if o.person not in pset.people:
                diags.report(
                    "E101",
                    _member_span(pset, team, o.person),
                    f"unknown person '{o.person}' in an override of team '{team.name}'",
                    help=did_you_mean(o.person, pset.people) or declare_help(o.person, ["person"]),
                )


def _member_span(pset: m.PolicySet, team: m.Team, member: str) -> n.Span:
    for f in pset.files:
        for d in f.decls:
            if isinstance(d, n.TeamDecl) and d.name.value == team.name:
                named = (
                    *d.members,
                    *(x for layer in d.layers for x in layer.members),
                    *(o.person for o in d.overrides),
                )
                for mem in named:
                    if mem.value == member:
                        return mem.span
    return team.span


# --------------------------------------------------------------------------- actions

# action -> (argument shapes); "ref:..." names allowed reference kinds, "word" a free
# identifier, "text" a string, "field" an object.field; a trailing "?" is optional.
ACTIONS: dict[str, tuple[str, ...]] = {
    "notify": ("ref:channel,person,team", "text?"),
    "page": ("ref:person,team",),
    "create_ticket": ("text",),
    "create_task": ("text",),
    "route": ("ref:team",),
    "open": ("word",),
    "snapshot": ("word",),
    "attach": ("word",),
    "lock": ("word",),
    "set": ("field", "text"),
    "manual": ("text",),
    # compensating actions, written as a step's `undo` (see passes/operations.py)
    "unlock": ("word",),
    "restore": (),
}


def check_actions(pset: m.PolicySet, diags: Collector) -> None:
    """Each step names a catalogued action with the right arguments (E105, E101)."""
    for p in pset.policies.values():
        for step in _iter_steps(p):
            shape = ACTIONS.get(step.action)
            if shape is None:
                diags.report(
                    "E105",
                    step.span,
                    f"unknown action '{step.action}'",
                    help=did_you_mean(step.action, ACTIONS)
                    or f"actions: {', '.join(sorted(ACTIONS))}",
                )
                continue
            _check_step_args(pset, step, shape, diags)


def _usage(action: str, shape: tuple[str, ...]) -> str:
    words = []
    for spec in shape:
        opt = spec.endswith("?")
        want = spec.rstrip("?")
        word = {"text": '"text"', "word": "NAME", "field": "object.field"}.get(want)
        if word is None:
            word = "|".join(k.upper() for k in want.removeprefix("ref:").split(","))
        words.append(f"[{word}]" if opt else word)
    return f"step {action} {' '.join(words)}"


def _check_step_args(
    pset: m.PolicySet, step: m.Step, shape: tuple[str, ...], diags: Collector
) -> None:
    required = sum(1 for s in shape if not s.endswith("?"))
    if not required <= len(step.args) <= len(shape):
        diags.report(
            "E105",
            step.span,
            f"`{step.action}` takes {required if required == len(shape) else f'{required} to {len(shape)}'} "
            f"argument(s), given {len(step.args)}",
            help=f"usage: {_usage(step.action, shape)}",
        )
        return
    for arg, spec in zip(step.args, shape, strict=False):
        want = spec.rstrip("?")
        if want.startswith("ref:"):
            kinds = tuple(want.removeprefix("ref:").split(","))
            if isinstance(arg, n.Pick) and "team" in kinds and arg.strategy.value == "all":
                _check_ref(pset, arg.team, ("team",), f"{step.action} target", diags)
            elif not isinstance(arg, n.Name):
                diags.report(
                    "E105",
                    arg.span,
                    f"`{step.action}` needs a {' or '.join(kinds)} name here",
                    help=f"usage: {_usage(step.action, shape)}",
                )
            else:
                _check_ref(pset, arg, kinds, f"{step.action} target", diags)  # type: ignore[arg-type]
        elif want == "text" and not isinstance(arg, n.Text):
            diags.report(
                "E105",
                arg.span,
                f"`{step.action}` needs a string in double quotes here",
                help=f"usage: {_usage(step.action, shape)}",
            )
        elif want == "word" and not isinstance(arg, n.Name):
            diags.report(
                "E105",
                arg.span,
                f"`{step.action}` needs a name here",
                help=f"usage: {_usage(step.action, shape)}",
            )
        elif want == "field":
            if not isinstance(arg, n.FieldRef):
                diags.report(
                    "E105",
                    arg.span,
                    f"`{step.action}` needs a field such as ticket.title here",
                    help=f"usage: {_usage(step.action, shape)}",
                )
            else:
                resolve_field(pset, arg, diags)


def _texts(p: m.Policy) -> Iterator[n.Text]:
    for step in _iter_steps(p):
        for arg in step.args:
            if isinstance(arg, n.Text):
                yield arg


def check_placeholders(pset: m.PolicySet, diags: Collector) -> None:
    """``{{ object.field }}`` in step strings names a schema field (E103)."""
    for p in pset.policies.values():
        for text in _texts(p):
            for ph in text.placeholders:
                if not ph.field:
                    diags.report(
                        "E103",
                        ph.span,
                        f"malformed placeholder '{ph.raw}'",
                        help="write {{ object.field }}, e.g. {{ ticket.title }}",
                    )
                    continue
                fields = pset.schema.objects.get(ph.obj)
                if fields is None or ph.field not in fields:
                    candidates = [f"{o}.{f}" for o, fs in pset.schema.objects.items() for f in fs]
                    diags.report(
                        "E103",
                        ph.span,
                        f"placeholder on unknown field '{ph.obj}.{ph.field}'",
                        help=did_you_mean(f"{ph.obj}.{ph.field}", candidates),
                    )


# --------------------------------------------------------------------------- ownership


def check_owner_chain(pset: m.PolicySet, diags: Collector) -> None:
    """E201 no primary, E202 no backup, E203 an owner repeats, E204 a non-final level
    without ``ack``, E207 an owner nobody can be reached at."""
    for p in pset.policies.values():
        if p.owner("primary") is None:
            diags.report(
                "E201",
                p.name_span,
                f"policy '{p.name}' has no primary owner",
                help="add `owner primary PERSON_OR_TEAM ack 5m`",
            )
        if p.owner("backup") is None:
            diags.report(
                "E202",
                p.name_span,
                f"policy '{p.name}' has no backup owner",
                help="every escalation needs a backup: add `owner backup PERSON_OR_TEAM ack 10m`",
            )
        seen: dict[str, m.Owner] = {}
        for o in p.owners:
            prior = seen.get(o.ref)
            if prior is not None:
                diags.report(
                    "E203",
                    o.span,
                    f"the {o.level} owner '{o.ref}' is already the {prior.level} owner",
                    notes=[Note(prior.span, f"{prior.level} owner here")],
                    help="failover to the same owner reaches nobody new: name someone else",
                )
            seen.setdefault(o.ref, o)
        for o in p.owners[:-1]:
            if o.ack is None:
                diags.report(
                    "E204",
                    o.span,
                    f"the {o.level} owner has no ack timeout, so failover never reaches "
                    "the next level",
                    help=f"add `ack DURATION`, e.g. `owner {o.level} {o.ref} ack 10m`",
                )
        for o in p.owners:
            _check_reachable(pset, o.ref, o.span, diags)
        if p.triage is not None:
            _check_reachable(pset, p.triage.ref, p.triage.span, diags)


def _check_reachable(pset: m.PolicySet, ref: str, span: n.Span, diags: Collector) -> None:
    person = pset.people.get(ref)
    if person is not None and not (set(person.contacts) & {"email", "slack", "pager"}):
        diags.report(
            "E207",
            span,
            f"'{ref}' has no email, slack or pager: nobody can reach them",
            help=f'give them one, e.g. `person {ref} {{ email "{ref}@example.com" }}`',
            notes=[Note(person.span, "declared here")],
        )


def check_teams(pset: m.PolicySet, diags: Collector) -> None:
    """A team without members can own nothing (E205), with a note at each owner level that
    names it (``round_robin(T)`` or ``all(T)`` there picks nobody)."""
    for team in pset.teams.values():
        if not team.members:
            diags.report(
                "E205",
                team.span,
                f"team '{team.name}' has no members",
                help="add `members a, b`",
                notes=_empty_team_owners(pset, team.name),
            )


def _empty_team_owners(pset: m.PolicySet, team: str) -> list[Note]:
    notes = []
    for p in sorted(pset.policies.values(), key=lambda q: (q.span, q.name)):
        for o in p.owners:
            if o.ref_kind == "team" and o.ref == team:
                what = f"{o.pick}({team})" if o.pick else f"'{team}'"
                notes.append(Note(o.span, f"{what} as {o.level} owner of '{p.name}' picks nobody"))
    return notes


def check_triage(pset: m.PolicySet, diags: Collector) -> None:
    """Every policy has a Type B path: ``exception unknown triage REF`` (E206)."""
    for p in pset.policies.values():
        if p.triage is None:
            diags.report(
                "E206",
                p.name_span,
                f"policy '{p.name}' has no triage path for unknown exceptions",
                help="add `exception unknown triage PERSON postmortem`",
            )


def check_timing(pset: m.PolicySet, diags: Collector) -> None:
    """E401: primary ack timeout strictly longer than the acknowledge SLA.
    W402: the defined ack timeouts × (repeat + 1) exceed the resolve SLA.
    An SLA counted in a calendar is compared by its longest wall-clock length."""
    slas = SlaLengths(pset)
    for p in pset.policies.values():
        primary = p.owner("primary")
        ack = primary.ack if primary else None
        ack_sla = p.sla_acknowledge
        longest = None if ack_sla is None else slas.length(p, "acknowledge", ack_sla)
        if primary and ack is not None and ack_sla is not None and ack > (longest or ack):
            diags.report(
                "E401",
                primary.span,
                f"the primary owner may take {format_duration(ack)} to acknowledge, "
                f"but the acknowledge SLA is {slas.words(p, 'acknowledge', ack_sla)}",
                notes=[Note(_sla_span(p, "acknowledge"), "SLA declared here")],
                help="shorten the ack timeout or relax the SLA",
            )
        if p.sla_resolve is not None:
            walk = sum(o.ack or 0 for o in p.owners) * (p.repeat + 1)
            longest = slas.length(p, "resolve", p.sla_resolve)
            if longest is not None and walk > longest:
                diags.report(
                    "W402",
                    _sla_span(p, "resolve"),
                    f"walking the whole chain takes {format_duration(walk)}, longer than "
                    f"the resolve SLA of {slas.words(p, 'resolve', p.sla_resolve)}",
                    help="shorten ack timeouts, reduce `repeat`, or relax the SLA",
                )


def _sla_span(p: m.Policy, kind: str) -> n.Span:
    for stmt in p.stmts:
        if isinstance(stmt, n.SlaStmt) and stmt.kind.value == kind:
            return stmt.span
    return p.name_span


def check_approvers(pset: m.PolicySet, diags: Collector) -> None:
    """Every policy names who signs off changes (E501), each an owner CODEOWNERS can
    use (E502), as ``escalade build`` requires."""
    for p in pset.policies.values():
        if not [a for a in p.approvers if a.strip()]:
            diags.report(
                "E501",
                p.name_span,
                f"policy '{p.name}' has no approvers",
                help='add `approvers "@org/team"`; they become its CODEOWNERS',
            )
            continue
        for stmt in p.stmts:
            if isinstance(stmt, n.ApproversStmt):
                for a in stmt.approvers:
                    _check_approver(a, diags)


def _check_approver(a: n.Text, diags: Collector) -> None:
    """An approver CODEOWNERS can use: one @user, @org/team or e-mail address (E502)."""
    if OWNER_RE.match(a.value):
        return
    shown = a.value.encode("unicode_escape").decode("ascii")
    parts = a.value.split()
    if len(parts) > 1 and all(OWNER_RE.match(part) for part in parts):
        fix = "give each its own string: `approvers " + ", ".join(f'"{x}"' for x in parts) + "`"
    else:
        fix = 'write one @user, @org/team or e-mail address per string: `approvers "@org/team"`'
    diags.report(
        "E502",
        a.span,
        f"approver '{shown}' is not one @user, @org/team or e-mail address, "
        "so CODEOWNERS cannot use it",
        help=fix,
    )


def check_unused(pset: m.PolicySet, diags: Collector) -> None:
    """People, teams, channels and templates nothing uses (W601); team membership counts."""
    used = _used_references(pset)
    for kind, table in (("person", pset.people), ("team", pset.teams), ("channel", pset.channels)):
        for name, decl in table.items():
            if name not in used:
                diags.report("W601", decl.span, f"{kind} '{name}' is never used")
    used_templates = _used_templates(pset)
    for name, t in pset.templates.items():
        if name not in used_templates:
            diags.report("W601", t.name.span, f"template '{name}' is never used")


def _used_references(pset: m.PolicySet) -> set[str]:
    """The people, teams and channels something names: a team's members, a policy's
    owners and triage, its steps' arguments, its delivery checks' fallbacks."""
    used: set[str] = set()
    for team in pset.teams.values():
        used.update(team.members)
        used.update(o.person for o in (team.schedule.overrides if team.schedule else ()))
    for p in pset.policies.values():
        used.update(o.ref for o in p.owners)
        if p.triage:
            used.add(p.triage.ref)
        for step in _iter_steps(p):
            used.update(a.value for a in step.args if isinstance(a, n.Name))
            used.update(a.team.value for a in step.args if isinstance(a, n.Pick))
        used.update(dc.then for dc in p.delivery_checks if dc.then)
        if p.postmortem_owner is not None:
            used.add(p.postmortem_owner.ref)
    used.update(w.team for w in pset.maintenance if w.team)
    return used


def _used_templates(pset: m.PolicySet) -> set[str]:
    """The templates a policy was expanded from, or a policy or template says to `use`."""
    used = {
        stmt.origin.template
        for p in pset.policies.values()
        for stmt in p.stmts
        if stmt.origin is not None
    }
    for f in pset.files:
        for d in f.decls:
            if isinstance(d, n.PolicyDecl | n.TemplateDecl):
                _mark_uses(d.body, used)
    return used


def _mark_uses(body: tuple[n.Stmt, ...], used: set[str]) -> None:
    for stmt in body:
        if isinstance(stmt, n.UseStmt):
            used.add(stmt.template.value)


FRONTEND_PASSES: tuple[Pass, ...] = (
    check_triggers,
    check_conditions,
    check_references,
    check_actions,
    check_placeholders,
    check_teams,
    check_owner_chain,
    check_triage,
    check_timing,
    check_approvers,
    check_operations,
    check_unused,
)
