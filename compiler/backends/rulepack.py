"""Rule-pack back end: a checked ``PolicySet`` -> ``escalade.rulepack/v1``.

The format (canonical bytes, content hash, schema) is owned by the runtime
(``escalade.runtime.pack``); this module only fills it in. Output is
deterministic: policies sorted by name, directory keys sorted by JSON
serialisation, no timestamps, and source paths exactly as the policy set was
loaded (the build passes repo-relative POSIX paths).

>>> pack = build_pack(pset)          # doctest: +SKIP
>>> pack_bytes(pset)[:40]            # doctest: +SKIP
b'{\\n  "directory": {\\n    "channels": {\\n'
"""

from __future__ import annotations

from typing import Any

from escalade.compiler import model as m
from escalade.compiler import nodes as n
from escalade.runtime.clock import format_time, read_time
from escalade.runtime.pack import FORMAT, canonical_bytes, seal
from escalade.runtime.schedulecodec import calendar_json, schedule_json

# Actions whose name arguments are targets in the directory (SPEC §1); others are free words.
TARGET_ACTIONS = frozenset({"notify", "page", "route"})


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def lower_value(pset: m.PolicySet, path: str, value: n.Value) -> Any:
    """A literal as the JSON value the runtime compares against (by the field's type)."""
    obj, _, name = path.partition(".")
    info = pset.schema.field(obj, name)
    kind = info.kind if info else None
    if kind == "bool" and value.kind == "name" and value.raw in ("true", "false"):
        return value.raw == "true"
    if kind == "time" and value.kind == "string":
        stamp = read_time(value.raw)
        return _number(stamp) if stamp is not None else value.raw
    if value.kind in ("number", "duration") and value.number is not None:
        return _number(value.number)
    return value.raw


def lower_condition(pset: m.PolicySet, cond: n.Cond) -> dict[str, Any]:
    """A condition node as pack JSON (``{"op": ...}``)."""
    if isinstance(cond, n.And):
        return {"op": "and", "args": [lower_condition(pset, c) for c in cond.items]}
    if isinstance(cond, n.Or):
        return {"op": "or", "args": [lower_condition(pset, c) for c in cond.items]}
    if isinstance(cond, n.Not):
        return {"op": "not", "arg": lower_condition(pset, cond.item)}
    if isinstance(cond, n.Compare):
        path = cond.field.path
        value = lower_value(pset, path, cond.value)
        return {"op": "cmp", "field": path, "cmp": cond.op, "value": value}
    if isinstance(cond, n.InList):
        path = cond.field.path
        values = [lower_value(pset, path, v) for v in cond.values]
        return {"op": "not_in" if cond.negated else "in", "field": path, "values": values}
    return {"op": "has", "field": cond.field.path, "tag": cond.tag.value}


def _maybe_condition(pset: m.PolicySet, cond: n.Cond | None) -> dict[str, Any] | None:
    return None if cond is None else lower_condition(pset, cond)


def _arg(pset: m.PolicySet, action: str, arg: n.Arg) -> dict[str, Any]:
    if isinstance(arg, n.Name):
        if action in TARGET_ACTIONS:
            return {"ref": arg.value, "kind": pset.ref_kind(arg.value)}
        return {"word": arg.value}
    if isinstance(arg, n.Text):
        return {"text": arg.value}
    if isinstance(arg, n.FieldRef):
        return {"field": arg.path}
    if isinstance(arg, n.Duration):
        return {"text": arg.text}
    if isinstance(arg, n.Pick):
        return {"ref": arg.team.value, "kind": "team", "pick": arg.strategy.value}
    return {"text": arg.raw}


def _step(pset: m.PolicySet, step: m.Step) -> dict[str, Any]:
    # An expanded template step is located at the `use` in the policy's own file.
    line = step.origin.use_span.line if step.origin else step.span.line
    out: dict[str, Any] = {
        "action": step.action,
        "args": [_arg(pset, step.action, a) for a in step.args],
        "guide": step.guide,
        "line": line,
    }
    if step.undo is not None:  # only then: packs without undo steps keep their bytes
        u = step.undo
        out["undo"] = {"action": u.action, "args": [_arg(pset, u.action, a) for a in u.args]}
    return out


def _owner(o: m.Owner) -> dict[str, Any]:
    owner: dict[str, Any] = {"level": o.level, "ref": o.ref, "kind": o.ref_kind, "ack": o.ack}
    if o.pick is not None:
        owner["pick"] = o.pick
    return owner


def _operations(p: m.Policy) -> dict[str, Any]:
    """The operations keys of a policy (issue #15), present only when the policy uses them."""
    ops: dict[str, Any] = {}
    if p.revert_on:
        ops["revert_on"] = sorted(p.revert_on)
    if p.grouping is not None:
        ops["group"] = {"by": list(p.grouping.fields), "within": p.grouping.within}
    if p.postmortem_owner is not None:
        po = p.postmortem_owner
        ops["postmortem"] = {"owner": po.ref, "kind": po.ref_kind, "within": po.within}
    return ops


def _policy(pset: m.PolicySet, p: m.Policy) -> dict[str, Any]:
    sla: dict[str, Any] | None = None
    if p.sla_acknowledge is not None or p.sla_resolve is not None:
        sla = {"acknowledge": p.sla_acknowledge, "resolve": p.sla_resolve}
        if p.sla_calendars:  # only then: packs without calendars keep their bytes
            kinds = ("acknowledge", "resolve")
            sla["calendar"] = {k: p.sla_calendars.get(k) for k in kinds}
    close: list[dict[str, Any]] = [
        {"postmortem": True} if c.cond is None else {"when": lower_condition(pset, c.cond)}
        for c in p.close_checks
    ]
    triage = None
    if p.triage is not None:
        triage = {"ref": p.triage.ref, "kind": p.triage.ref_kind, "postmortem": p.triage.postmortem}
        if p.triage.revert:
            triage["revert"] = True
    return {
        "name": p.name,
        "title": p.title,
        "description": p.description,
        "source": {"file": p.file, "line": p.span.line},
        "approvers": list(p.approvers),
        "priority": p.priority,
        "triggers": list(p.triggers),
        "after": p.after,
        "when": _maybe_condition(pset, p.when),
        "owners": [_owner(o) for o in p.owners],
        "repeat": p.repeat,
        "sla": sla,
        "steps": [_step(pset, s) for s in p.steps],
        "on": {moment: [_step(pset, s) for s in steps] for moment, steps in p.on.items()},
        "checks": {
            "delivery": [
                {"within": c.within, "retry": c.retry, "then": c.then} for c in p.delivery_checks
            ],
            "state": [
                {"when": lower_condition(pset, c.cond), "within": c.within} for c in p.state_checks
            ],
            "close": close,
        },
        "exceptions": [
            {
                "name": h.name,
                "when": _maybe_condition(pset, h.cond),
                "failure": h.failure,
                "handoff": h.policy,
            }
            for h in p.handoffs
        ],
        "triage": triage,
        "cooldown": p.cooldown,
        **_operations(p),
    }


def _directory(pset: m.PolicySet) -> dict[str, Any]:
    return {
        "people": {
            name: {
                "name": p.display,
                "email": p.contacts.get("email"),
                "pager": p.contacts.get("pager"),
                "slack": p.contacts.get("slack"),
                "timezone": p.contacts.get("timezone"),
            }
            for name, p in pset.people.items()
        },
        "teams": {name: _team(t) for name, t in pset.teams.items()},
        "channels": {
            name: {"kind": c.kind, "target": c.target} for name, c in pset.channels.items()
        },
        **(
            {"calendars": {k: calendar_json(c) for k, c in sorted(pset.calendars.items())}}
            if pset.calendars
            else {}
        ),
        **(
            {"maintenance": [_maintenance(w) for w in pset.maintenance]} if pset.maintenance else {}
        ),
    }


def _maintenance(w: m.Maintenance) -> dict[str, Any]:
    return {
        "name": w.name,
        "policy": w.policy,
        "team": w.team,
        "from": format_time(w.start),
        "to": format_time(w.end),
        "reason": w.reason,
    }


def _team(t: m.Team) -> dict[str, Any]:
    """A team; ``schedule`` only for layered teams or overrides (a bare `rotation` is read
    as its one layer), so packs without schedules keep their bytes."""
    team: dict[str, Any] = {
        "members": list(t.members),
        "rotation": None
        if t.rotation is None
        else {"period": t.rotation, "start": t.rotation_start or ""},
    }
    if t.schedule is not None and (t.rotation is None or t.schedule.overrides):
        team["schedule"] = schedule_json(t.schedule)
    return team


def schema_section(pset: m.PolicySet) -> dict[str, Any]:
    """The pack's ``schema`` section: event kinds and typed fields (what events are read against)."""
    objects: dict[str, dict[str, Any]] = {}
    for obj, fields in pset.schema.objects.items():
        objects[obj] = {}
        for name, info in fields.items():
            ftype: dict[str, Any] = {"type": info.kind}
            if info.kind == "enum":
                ftype["values"] = list(info.values)
            objects[obj][name] = ftype
    return {"events": sorted(pset.schema.events), "objects": objects}


def build_pack(pset: m.PolicySet, *, commit: str | None = None) -> dict[str, Any]:
    """The pack of a checked policy set, content hash filled in.

    ``commit`` is stamped by release builds (``build --rev``); the committed
    pack carries none, so ``build --check`` compares like with like.
    """
    policies = [_policy(pset, pset.policies[name]) for name in sorted(pset.policies)]
    actions = sorted(
        {s["action"] for p in policies for s in p["steps"]}
        | {s["action"] for p in policies for steps in p["on"].values() for s in steps}
    )
    pack = {
        "format": FORMAT,
        "metadata": {
            "version": pset.version,
            "content_hash": "",
            "actions": actions,
            "commit": None,
        },
        "schema": schema_section(pset),
        "directory": _directory(pset),
        "policies": policies,
    }
    sealed = seal(pack)
    sealed["metadata"]["commit"] = commit
    return sealed


def pack_bytes(pset: m.PolicySet, *, commit: str | None = None) -> bytes:
    """The canonical bytes of :func:`build_pack`."""
    return canonical_bytes(build_pack(pset, commit=commit))
