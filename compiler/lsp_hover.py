"""What the language server shows on hover: Markdown for one symbol of a checked set.

    hover_text(("person", "ines"), pset, now)   # "**person `ines`** — Ines Duarte" + contacts

Who is on call ``now`` is worked out with the runtime's own rule
(:meth:`escalade.runtime.pack.Team.on_call`), so the editor and the runtime agree.
"""

from __future__ import annotations

from collections.abc import Callable

from escalade.compiler import model as m
from escalade.compiler.fmt import cond as format_cond
from escalade.compiler.lsp_index import Key
from escalade.runtime.clock import duration_words, format_time
from escalade.runtime.teams import Team as RuntimeTeam


def _field(name: str, pset: m.PolicySet, now: float) -> str | None:
    obj, _, fname = name.partition(".")
    info = pset.schema.field(obj, fname)
    if info is None:
        return None
    if info.kind == "enum":
        kind = f"enum({', '.join(info.values)})"
        return f"**field `{info.path}`**: `{kind}`\n\nvalues: " + ", ".join(
            f"`{v}`" for v in info.values
        )
    return f"**field `{info.path}`**: `{info.kind}`"


def _value(name: str, pset: m.PolicySet, now: float) -> str | None:
    path, _, value = name.partition("=")
    obj, _, fname = path.partition(".")
    info = pset.schema.field(obj, fname)
    if info is None:
        return None
    others = ", ".join(f"`{v}`" for v in info.values)
    what = "a value" if value in info.values else "not a value"
    return f"**`{value}`**: {what} of `{info.path}`\n\nvalues: {others}"


def _person(name: str, pset: m.PolicySet, now: float) -> str | None:
    p = pset.people.get(name)
    if p is None:
        return None
    lines = [f"**person `{p.name}`** — {p.display}", ""]
    lines += [f"- {kind}: `{addr}`" for kind, addr in p.contacts.items()]
    if not p.contacts:
        lines.append("no contact points")
    teams = [t.name for t in pset.teams.values() if p.name in t.members]
    if teams:
        lines += ["", "member of " + ", ".join(f"`{t}`" for t in teams)]
    return "\n".join(lines)


def on_call_now(team: m.Team, now: float) -> str | None:
    """The member on call at ``now`` by the runtime's rotation rule (None without one)."""
    spec = RuntimeTeam(team.name, team.members, team.rotation, team.rotation_start, team.schedule)
    return spec.on_call(now)


def _team(name: str, pset: m.PolicySet, now: float) -> str | None:
    t = pset.teams.get(name)
    if t is None:
        return None
    members = ", ".join(f"`{x}`" for x in t.members) or "none"
    lines = [f"**team `{t.name}`**", "", f"members: {members}"]
    if t.schedule is None:
        lines.append("no schedule: a message to the team goes to every member")
    else:
        if t.rotation is not None:
            lines.append(f"rotation: {t.rotation} from `{t.rotation_start}`")
        for layer in t.schedule.layers if t.rotation is None else ():
            lines.append(
                f"layer `{layer.name}`: {', '.join(layer.members)} · shift "
                f"{duration_words(layer.shift)} from {layer.start} ({layer.zone})"
            )
        who = on_call_now(t, now)
        shown = f"`{who}`" if who else "nobody (no layer is active now)"
        lines.append(f"on call now ({format_time(now)}): {shown}")
    return "\n".join(lines)


def _channel(name: str, pset: m.PolicySet, now: float) -> str | None:
    c = pset.channels.get(name)
    if c is None:
        return None
    return f"**channel `{c.name}`**: {c.kind} `{c.target}`"


def _chain(p: m.Policy) -> list[str]:
    out = []
    for o in p.owners:
        ack = f", ack {duration_words(o.ack)}" if o.ack is not None else ""
        out.append(f"- {o.level}: `{o.ref}` ({o.ref_kind}{ack})")
    return out or ["- no owners"]


def _policy(name: str, pset: m.PolicySet, now: float) -> str | None:
    p = pset.policies.get(name)
    if p is None:
        return None
    lines = [f"**policy `{p.name}`**" + (f" — {p.title}" if p.title else ""), ""]
    if p.triggers:
        after = f" after {duration_words(p.after)}" if p.after is not None else ""
        lines.append(f"trigger: `{', '.join(p.triggers)}`{after}")
    else:
        lines.append("trigger: none (reached by handoff only)")
    if p.when is not None:
        lines.append(f"when: `{format_cond(p.when)}`")
    lines += [f"priority: {p.priority}", "", "chain:", *_chain(p)]
    return "\n".join(lines)


def _template(name: str, pset: m.PolicySet, now: float) -> str | None:
    t = pset.templates.get(name)
    if t is None:
        return None
    params = ", ".join(f"{p.name.value}: {p.kind.value}" for p in t.params)
    return f"**template** `{t.name.value}({params})`"


def _param(name: str, pset: m.PolicySet, now: float) -> str | None:
    template, _, pname = name.partition(".")
    t = pset.templates.get(template)
    kinds = [p.kind.value for p in t.params if p.name.value == pname] if t else []
    return f"**parameter `{pname}`**: `{kinds[0]}` of template `{template}`" if kinds else None


def _event(name: str, pset: m.PolicySet, now: float) -> str | None:
    if name not in pset.schema.events:
        return None
    users = [p.name for p in pset.policies.values() if name in p.triggers]
    used = ", ".join(f"`{u}`" for u in users) or "no policy"
    return f"**event `{name}`**\n\ntriggers: {used}"


_HOVERS: dict[str, Callable[[str, m.PolicySet, float], str | None]] = {
    "field": _field,
    "value": _value,
    "person": _person,
    "team": _team,
    "channel": _channel,
    "policy": _policy,
    "template": _template,
    "param": _param,
    "event": _event,
}


def hover_text(key: Key, pset: m.PolicySet, now: float) -> str | None:
    """Markdown describing the symbol ``key``, or None when the set does not declare it."""
    describe = _HOVERS.get(key[0])
    return None if describe is None else describe(key[1], pset, now)
