"""Checks of the operations statements (issue #15): assignment picks, undo steps,
``on FAILURE revert``, ``group by``, ``postmortem owner`` and ``maintenance`` windows.

One pass, ``check_operations(pset, diags)``, run with the other front-end checks::

    owner primary round_robin(carol)   # E105: round_robin picks among a team's members
    step lock publishing               # W602: changes state, and `revert` cannot undo it
"""

from __future__ import annotations

from escalade.compiler import model as m
from escalade.compiler import nodes as n
from escalade.compiler.codes import declare_help
from escalade.compiler.diagnostics import Collector

PICKS = ("round_robin", "all")
STATEFUL = {"lock": "unlock", "set": "restore"}  # action -> its natural undo
UNDO_ONLY = ("unlock", "restore")


def check_operations(pset: m.PolicySet, diags: Collector) -> None:
    """Picks over teams, undo steps, revert moments, grouping fields, post-mortem
    owners and maintenance targets (E101, E105, W602)."""
    for p in pset.policies.values():
        for owner in p.owners:
            _check_pick(pset, owner, diags)
        for step in (*p.steps, *(s for block in p.on.values() for s in block)):
            _check_undo(step, diags)
        _check_grouping(pset, p, diags)
        _check_postmortem_owner(pset, p, diags)
        for stmt in p.stmts:
            if isinstance(stmt, n.OnRevertStmt) and stmt.moment.value not in n.FAILURE_KINDS:
                diags.report(
                    "E101",
                    stmt.moment.span,
                    f"unknown failure '{stmt.moment.value}' to revert on",
                    help=f"failures: {', '.join(n.FAILURE_KINDS)}",
                )
    for w in pset.maintenance:
        _check_maintenance(pset, w, diags)


def _check_pick(pset: m.PolicySet, owner: m.Owner, diags: Collector) -> None:
    if owner.pick is None:
        return
    if owner.pick not in PICKS:
        diags.report(
            "E105",
            owner.span,
            f"unknown pick '{owner.pick}({owner.ref})'",
            help="use round_robin(TEAM) (the next available member in turn) or all(TEAM) "
            "(every member is paged; the first ack owns it)",
        )
    elif owner.ref in pset.people:
        diags.report(
            "E105",
            owner.span,
            f"{owner.pick} picks among a team's members; '{owner.ref}' is a person",
            help=f"write `owner {owner.level} {owner.ref}`, or name a team",
        )


def _check_undo(step: m.Step, diags: Collector) -> None:
    undo = step.undo
    if step.action in UNDO_ONLY:
        diags.report(
            "E105",
            step.span,
            f"`{step.action}` only undoes another step",
            help="write it after `undo`, e.g. `step lock publishing undo unlock publishing`",
        )
    if undo is None:
        if step.action in STATEFUL:
            diags.report(
                "W602",
                step.span,
                f"`step {step.action}` changes state and `revert` cannot undo it",
                help=f"add `undo {STATEFUL[step.action]}"
                + (" NAME" if step.action == "lock" else "")
                + "`, or suppress with a reason: a person undoes it by hand",
            )
        return
    if undo.action == "restore" and step.action != "set":
        diags.report(
            "E105",
            undo.span,
            "`undo restore` puts back a field a `set` step changed; this step sets nothing",
            help='undo it with another action, e.g. `undo manual "..."`',
        )
    if undo.action == "unlock" and step.action == "lock":
        locked = [a.value for a in step.args if isinstance(a, n.Name)]
        unlocked = [a.value for a in undo.args if isinstance(a, n.Name)]
        if locked and unlocked and locked != unlocked:
            diags.report(
                "E105",
                undo.span,
                f"the step locks '{locked[0]}' but its undo unlocks '{unlocked[0]}'",
                help=f"write `undo unlock {locked[0]}`",
            )


def _check_grouping(pset: m.PolicySet, p: m.Policy, diags: Collector) -> None:
    for stmt in p.stmts:
        if not isinstance(stmt, n.GroupStmt):
            continue
        seen: set[str] = set()
        for ref in stmt.fields:
            if ref.path in seen:
                diags.report("E102", ref.span, f"`group by` names '{ref.path}' twice")
            seen.add(ref.path)
            fields = pset.schema.objects.get(ref.obj, {})
            if ref.field not in fields:
                diags.report(
                    "E101",
                    ref.span,
                    f"unknown field '{ref.path}' to group by",
                    help="group by fields the schema declares, e.g. `group by account.id`",
                )
        if stmt.within.seconds <= 0:
            diags.report(
                "E105", stmt.within.span, "a group window of zero never groups", help="e.g. 10m"
            )


def _check_postmortem_owner(pset: m.PolicySet, p: m.Policy, diags: Collector) -> None:
    owner = p.postmortem_owner
    if owner is None:
        return
    kind = pset.ref_kind(owner.ref)
    if kind not in ("person", "team"):
        what = "unknown post-mortem owner" if kind == "unknown" else f"a {kind} cannot own"
        diags.report(
            "E101" if kind == "unknown" else "E105",
            owner.span,
            f"{what} '{owner.ref}'"
            if kind == "unknown"
            else f"{what} a post-mortem: '{owner.ref}'",
            help=declare_help(owner.ref, ["person", "team"])
            if kind == "unknown"
            else "name a person or a team",
        )
    if owner.within <= 0:
        diags.report(
            "E105", owner.span, "a post-mortem due at once is overdue at once", help="e.g. 5d"
        )
    required = (p.triage is not None and p.triage.postmortem) or any(
        c.cond is None for c in p.close_checks
    )
    if not required:
        diags.report(
            "E105",
            owner.span,
            f"policy '{p.name}' names a post-mortem owner but never requires a post-mortem",
            help="add `postmortem` to `exception unknown triage ...`, or "
            "`check close requires postmortem`",
        )


def _check_maintenance(pset: m.PolicySet, w: m.Maintenance, diags: Collector) -> None:
    if w.policy is not None and w.policy not in pset.policies:
        diags.report(
            "E101",
            w.span,
            f"maintenance '{w.name}' names unknown policy '{w.policy}'",
            help=declare_help(w.policy, ["policy"]),
        )
    if w.team is not None and w.team not in pset.teams:
        diags.report(
            "E101",
            w.span,
            f"maintenance '{w.name}' names unknown team '{w.team}'",
            help=declare_help(w.team, ["team"]),
        )
