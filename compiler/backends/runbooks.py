"""Runbook back end: one Markdown page per policy plus an index, for the person on call.

Pages are rendered with Jinja2 (``StrictUndefined``, templates in
``escalade/compiler/templates``) from a view model built from the validated
rule pack, so a runbook says exactly what the runtime will do. Nothing here
touches syntax nodes.

>>> pages = render_runbooks(pack)                  # doctest: +SKIP
>>> sorted(pages)[:2]                              # doctest: +SKIP
['README.md', 'content_review.md']
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import jinja2

from escalade.runtime.conditions import format_value
from escalade.runtime.pack import Owner, Policy, RulePack, Step, duration_words

# --------------------------------------------------------------------------- words


_PARTICIPLES = {"created", "updated", "deleted", "closed", "opened", "reopened", "resolved"}


def events_in_words(events: Sequence[str]) -> str:
    """``ticket.created, ticket.updated`` -> ``a ticket is created or updated``."""
    by_obj: dict[str, list[str]] = {}
    for e in events:
        obj, _, verb = e.partition(".")
        by_obj.setdefault(obj, []).append(verb)
    phrases = []
    for obj, verbs in by_obj.items():
        plain = [v for v in verbs if v in _PARTICIPLES]
        other = [v for v in verbs if v not in _PARTICIPLES]
        if plain:
            phrases.append(f"{_article(obj)} {_words(obj)} is {_or(plain)}")
        for v in other:
            phrases.append(f"{_article(obj)} {_words(obj)} reports `{obj}.{v}`")
    return _or(phrases)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _words(name: str) -> str:
    return name.replace("_", " ")


def _or(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


class Phrasing:
    """Conditions in plain words, relative to the object the trigger is about."""

    def __init__(self, pack: RulePack, subject: str | None) -> None:
        self.pack = pack
        self.subject = subject

    def field(self, path: str) -> str:
        obj, _, name = path.partition(".")
        if obj == self.subject:
            return f"its {_words(name)}"
        return f"the {_words(obj)}'s {_words(name)}"

    def owner_of(self, path: str) -> str:
        obj = path.partition(".")[0]
        return "it" if obj == self.subject else f"the {_words(obj)}"

    def value(self, path: str, value: Any) -> str:
        ftype = self.pack.field_type(path)
        if ftype is not None and ftype.kind == "duration" and isinstance(value, int | float):
            return duration_words(int(value))
        if value == "":
            return "empty"
        return f"*{value}*" if isinstance(value, str) else format_value(value)

    def cond(self, c: Mapping[str, Any] | None) -> str:
        if c is None:
            return "always"
        op = c["op"]
        if op == "and":
            return _and([self.cond(a) for a in c["args"]])
        if op == "or":
            return "either " + _or([self.cond(a) for a in c["args"]])
        if op == "not":
            return f"not ({self.cond(c['arg'])})"
        path = c["field"]
        if op == "has":
            return f"{self.owner_of(path)} is tagged `{c['tag']}`"
        subject = self.field(path)
        if op == "cmp":
            cmp = c["cmp"]
            value = self.value(path, c["value"])
            verb = {
                "==": "is",
                "!=": "is not",
                "<": "is below",
                "<=": "is at most",
                ">": "is above",
                ">=": "is at least",
            }[cmp]
            return f"{subject} {verb} {value}"
        values = [self.value(path, v) for v in c["values"]]
        if op == "in":
            return f"{subject} is {_or(values)}"
        if len(values) == 2:
            return f"{subject} is neither {values[0]} nor {values[1]}"
        return f"{subject} is none of {', '.join(values)}"


# --------------------------------------------------------------------------- view model


@dataclass(frozen=True, slots=True)
class OwnerRow:
    level: str
    who: str
    reach: str
    ack: str


@dataclass(frozen=True, slots=True)
class TimelineRow:
    at: str
    what: str


@dataclass(frozen=True, slots=True)
class StepView:
    text: str
    guide: str | None


@dataclass(frozen=True, slots=True)
class MomentView:
    moment: str
    steps: tuple[StepView, ...]


@dataclass(frozen=True, slots=True)
class ExceptionView:
    label: str
    when: str
    target: str
    link: str


@dataclass(frozen=True, slots=True)
class RunbookView:
    name: str
    title: str
    description: str | None
    starts: str
    precedence: str
    owners: tuple[OwnerRow, ...]
    chain_note: str
    sla: str | None
    timeline: tuple[TimelineRow, ...]
    mermaid: str
    steps: tuple[StepView, ...]
    moments: tuple[MomentView, ...]
    checks: tuple[str, ...]
    exceptions: tuple[ExceptionView, ...]
    triage: str | None
    approvers: tuple[str, ...]
    source: str
    source_link: str | None
    version: str
    cooldown: str


@dataclass(frozen=True, slots=True)
class IndexRow:
    name: str
    title: str
    starts: str
    priority: int
    primary: str
    source: str


@dataclass(frozen=True, slots=True)
class IndexView:
    version: str
    content_hash: str
    rows: tuple[IndexRow, ...]


class Describer:
    """Turns pack entities into the words a runbook uses."""

    def __init__(self, pack: RulePack) -> None:
        self.pack = pack

    def who(self, ref: str, kind: str) -> str:
        if kind == "team":
            team = self.pack.teams.get(ref)
            members = ", ".join(self.pack.display_name(m) for m in team.members) if team else ""
            if team and team.rotation:
                return f"on-call member of **{ref}** ({members}; {team.rotation} rotation)"
            return f"everyone in **{ref}** ({members})"
        return f"**{self.pack.display_name(ref)}**"

    def name(self, ref: str, kind: str) -> str:
        """A short name for diagrams and timelines."""
        if kind == "team":
            team = self.pack.teams.get(ref)
            return f"on-call of {ref}" if team and team.rotation else f"team {ref}"
        return self.pack.display_name(ref)

    def reach(self, ref: str, kind: str) -> str:
        if kind == "team":
            return "each member's contacts" if ref in self.pack.teams else ""
        person = self.pack.people.get(ref)
        if person is None:
            return ""
        return ", ".join(f"{k} {v}" for k, v in person.contacts()) or "no contact points"

    def target(self, arg: Mapping[str, Any]) -> str:
        if "ref" in arg:
            if arg["kind"] == "channel":
                ch = self.pack.channels.get(arg["ref"])
                return f"{ch.target} ({ch.kind})" if ch else arg["ref"]
            return self.name(arg["ref"], arg["kind"])
        if "word" in arg:
            return _words(arg["word"])
        if "field" in arg:
            return f"`{arg['field']}`"
        return f'"{markdown_text(arg["text"])}"'

    def step(self, step: Step) -> str:
        args = [self.target(a) for a in step.args]
        texts = [self.target(a) for a in step.args if "text" in a]
        first = args[0] if args else ""
        action = step.action
        if action == "notify":
            message = f": {texts[0]}" if texts else ""
            return f"Notify {first}{message}"
        if action == "page":
            return f"Page {first}"
        if action == "route":
            return f"Route to {first}"
        if action == "create_ticket":
            return f"Create a ticket {first}"
        if action == "create_task":
            return f"Create a task {first}"
        if action == "set":
            return f"Set {first} to {args[1] if len(args) > 1 else ''}"
        if action == "manual":
            return f"By hand: {markdown_text(step.args[0].get('text', '')) if step.args else ''}"
        words = {"open": "Open", "snapshot": "Snapshot", "attach": "Attach", "lock": "Lock"}
        return f"{words.get(action, action.capitalize())} {' '.join(args)}".strip()


def _handoff_sources(pack: RulePack) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for p in pack.policies:
        for h in p.handoffs:
            found.setdefault(h.policy, []).append(p.name)
    return found


def policy_view(pack: RulePack, policy: Policy, *, source_prefix: str = "../..") -> RunbookView:
    """The view model of one policy's runbook."""
    d = Describer(pack)
    subject = policy.triggers[0].partition(".")[0] if policy.triggers else None
    words = Phrasing(pack, subject)
    if policy.triggers:
        starts = f"when {events_in_words(policy.triggers)}"
        if policy.when is not None:
            starts += f", {words.cond(policy.when)}"
        if policy.after is not None:
            starts += (
                f"; it starts {duration_words(policy.after)} later, "
                "if that still holds on the ticket's latest state"
            )
    else:
        sources = _handoff_sources(pack).get(policy.name, [])
        links = ", ".join(f"[`{s}`]({s}.md)" for s in sorted(set(sources)))
        starts = "only by a handoff" + (f" from {links}" if links else "")
    rivals = sorted(
        (
            q
            for q in pack.policies
            if q.name != policy.name and set(q.triggers) & set(policy.triggers)
        ),
        key=lambda q: (-q.priority, q.name),
    )
    lower = [f"`{q.name}`" for q in rivals if q.priority < policy.priority]
    higher = [f"`{q.name}`" for q in rivals if q.priority > policy.priority]
    precedence = f"Priority {policy.priority}"
    if lower:
        precedence += f": it takes precedence over {_and(lower)}"
    if higher:
        precedence += f"{';' if lower else ':'} {_and(higher)} take{'s' if len(higher) == 1 else ''} precedence over it"
    owners = tuple(
        OwnerRow(
            o.level,
            d.who(o.ref, o.kind),
            d.reach(o.ref, o.kind),
            duration_words(o.ack) if o.ack is not None else "no timeout (keeps it)",
        )
        for o in policy.owners
    )
    passes = policy.repeat + 1
    chain_note = (
        "The chain runs once."
        if passes == 1
        else f"The chain runs {passes} times (repeat {policy.repeat})."
    )
    sla_parts = []
    if policy.sla_acknowledge is not None:
        sla_parts.append(f"acknowledge within {duration_words(policy.sla_acknowledge)}")
    if policy.sla_resolve is not None:
        sla_parts.append(f"resolve within {duration_words(policy.sla_resolve)}")
    checks = []
    for c in policy.delivery_checks:
        then = ""
        if c.then is not None:
            ch = pack.channels.get(c.then)
            then = f", then sent to {ch.target if ch else c.then}"
        checks.append(
            f"Every notification is delivered within {duration_words(c.within)} "
            f"(else retried {c.retry} time{'s' if c.retry != 1 else ''}{then})"
        )
    for s in policy.state_checks:
        checks.append(
            f"Within {duration_words(s.within)} of the automated steps, {words.cond(s.when)}"
        )
    for cc in policy.close_checks:
        if cc.when is None:
            checks.append("Before close: the post-mortem is written and linked")
        else:
            checks.append(f"Before close: {words.cond(cc.when)}")
    exceptions = []
    for h in policy.handoffs:
        when = words.cond(h.when) if h.when is not None else _failure_words(h.failure)
        exceptions.append(ExceptionView(_words(h.name), when, h.policy, f"{h.policy}.md"))
    triage = None
    if policy.triage is not None:
        triage = f"{d.name(policy.triage.ref, policy.triage.kind)} triages"
        if policy.triage.postmortem:
            triage += "; a post-mortem is required before close"
    link = None
    if source_prefix:
        link = f"{source_prefix}/{policy.file}#L{policy.line}"
    return RunbookView(
        name=policy.name,
        title=policy.title or policy.name,
        description=policy.description,
        starts=starts,
        precedence=precedence,
        owners=owners,
        chain_note=chain_note,
        sla=", ".join(sla_parts) if sla_parts else None,
        timeline=tuple(_timeline(pack, policy, d)),
        mermaid=mermaid_flowchart(pack, policy),
        steps=tuple(StepView(d.step(s), s.guide) for s in policy.steps),
        moments=tuple(
            MomentView(moment, tuple(StepView(d.step(s), s.guide) for s in steps))
            for moment, steps in policy.on.items()
        ),
        checks=tuple(checks),
        exceptions=tuple(exceptions),
        triage=triage,
        approvers=policy.approvers,
        source=policy.source,
        source_link=link,
        version=pack.version,
        cooldown=duration_words(policy.cooldown),
    )


def _failure_words(failure: str | None) -> str:
    return {
        "unacknowledged": "nobody acknowledges after the whole chain",
        "step_failed": "an automated step fails",
        "check_failed": "a quality check fails",
    }.get(failure or "", failure or "")


def _timeline(pack: RulePack, policy: Policy, d: Describer) -> list[TimelineRow]:
    schedule = policy.chain_schedule()
    rows: dict[int, list[str]] = {}

    def add(at: int, text: str) -> None:
        rows.setdefault(at, []).append(text)

    start = [d.step(s) for s in policy.steps]
    for i, stop in enumerate(schedule.stops):
        who = d.name(stop.owner.ref, stop.owner.kind)
        if i == 0:
            add(0, f"assigned to **{who}** ({stop.owner.level})")
        elif stop.round > 1 and stop.owner == policy.owners[0]:
            add(stop.at, f"no ack → pass {stop.round} of the chain: **{who}** ({stop.owner.level})")
        else:
            add(stop.at, f"no ack → **{who}** ({stop.owner.level})")
    if start:
        rows[0] = ["; ".join(start)] + rows.get(0, [])
    if policy.on.get("failover"):
        steps = "; ".join(d.step(s) for s in policy.on["failover"])
        for stop in schedule.stops[1:]:
            add(stop.at, f"on failover: {steps}")
    if schedule.exhausted_at is not None:
        handoff = policy.failure_handoff("unacknowledged")
        if handoff is not None:
            add(schedule.exhausted_at, f"unacknowledged → hand off to `{handoff.policy}`")
        elif policy.triage is not None:
            pm = ", post-mortem required" if policy.triage.postmortem else ""
            add(
                schedule.exhausted_at,
                f"unacknowledged → triage by **{d.name(policy.triage.ref, policy.triage.kind)}**{pm}",
            )
        else:
            add(schedule.exhausted_at, "unacknowledged")
    elif schedule.stops:
        last = schedule.stops[-1]
        add(last.at, f"stays with **{d.name(last.owner.ref, last.owner.kind)}** until acknowledged")
    breach = "; ".join(d.step(s) for s in policy.on.get("breach", ()))
    for label, sla in (("acknowledge", policy.sla_acknowledge), ("resolve", policy.sla_resolve)):
        if sla is not None:
            what = f"{label} SLA due" + (f" — if missed: {breach}" if breach else "")
            add(sla, what)
    return [
        TimelineRow(duration_words(at), " · ".join(texts)) for at, texts in sorted(rows.items())
    ]


# --------------------------------------------------------------------------- Mermaid

_MERMAID_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def mermaid_label(text: str) -> str:
    """A double-quoted Mermaid label: quotes and markup characters as entity codes."""
    out = text.replace("#", "#35;").replace('"', "#quot;").replace("<", "#lt;").replace(">", "#gt;")
    return '"' + out.replace("\n", " ") + '"'


def mermaid_flowchart(pack: RulePack, policy: Policy) -> str:
    """The escalation and exception paths as a GitHub-renderable Mermaid flowchart."""
    d = Describer(pack)
    lines = ["flowchart TD"]

    def node(ident: str, label: str, shape: str = "box") -> None:
        assert _MERMAID_ID.match(ident), ident
        wrapped = {"box": "[{}]", "round": "({})", "stop": "([{}])"}[shape]
        lines.append(f"  {ident}{wrapped.format(mermaid_label(label))}")

    def edge(a: str, b: str, label: str | None = None, dotted: bool = False) -> None:
        arrow = "-.->" if dotted else "-->"
        lines.append(
            f"  {a} {arrow}|{mermaid_label(label)}| {b}" if label else f"  {a} {arrow} {b}"
        )

    subject = policy.triggers[0].partition(".")[0] if policy.triggers else None
    if policy.triggers:
        cond = Phrasing(pack, subject).cond(policy.when) if policy.when else ""
        cond = cond.replace("*", "").replace("`", "")
        node("start", f"{', '.join(policy.triggers)}" + (f": {cond}" if cond else ""), "round")
    else:
        node("start", "handoff from another policy", "round")
    ids = []
    for o in policy.owners:
        ident = f"owner_{o.level}"
        ids.append(ident)
        node(ident, f"{o.level}: {d.name(o.ref, o.kind)}")
    node("acked", "acknowledged → resolve → close when checks pass", "stop")
    if ids:
        edge("start", ids[0], "steps run, assign")
    for i, o in enumerate(policy.owners):
        edge(ids[i], "acked", "ack")
        if o.ack is None:
            break
        if i + 1 < len(ids):
            edge(ids[i], ids[i + 1], f"no ack {duration_words(o.ack)}")
    schedule = policy.chain_schedule()
    if ids and schedule.exhausted_at is not None:
        last = ids[-1]
        last_ack = policy.owners[-1].ack or 0
        if policy.repeat:
            edge(last, ids[0], f"no ack {duration_words(last_ack)}: repeat ({policy.repeat}×)")
        handoff = policy.failure_handoff("unacknowledged")
        if handoff is not None:
            node("unacked", f"hand off: {handoff.policy}")
        elif policy.triage is not None:
            pm = " + post-mortem" if policy.triage.postmortem else ""
            node("unacked", f"triage: {d.name(policy.triage.ref, policy.triage.kind)}{pm}")
        else:
            node("unacked", "unacknowledged")
        edge(last, "unacked", f"chain exhausted at {duration_words(schedule.exhausted_at)}")
    words = Phrasing(pack, subject)
    for i, h in enumerate(policy.handoffs):
        if h.failure == "unacknowledged":
            continue
        ident = f"handoff_{i}"
        node(ident, f"hand off: {h.policy} runbook")
        why = (
            words.cond(h.when).replace("*", "").replace("`", "")
            if h.when
            else _failure_words(h.failure)
        )
        edge("start", ident, why, dotted=True)
    if policy.triage is not None:
        node("triage", f"Type B: {d.name(policy.triage.ref, policy.triage.kind)} triages")
        edge("start", "triage", "anything unexpected", dotted=True)
    return "\n".join(lines)


# --------------------------------------------------------------------------- rendering


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("escalade.compiler", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = markdown_text
    env.filters["cell"] = markdown_cell
    return env


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|])")


def markdown_text(text: str) -> str:
    """Free text (titles, messages) with Markdown and HTML markup neutralised."""
    return _MD_SPECIAL.sub(r"\\\1", text)


def markdown_cell(text: str) -> str:
    """Already-formatted Markdown for a table cell: pipes escaped, one line."""
    return text.replace("|", "\\|").replace("\n", " ")


def render_runbook(view: RunbookView) -> str:
    """One policy's runbook page."""
    return _environment().get_template("runbook.md.j2").render(rb=view)


def render_runbooks(pack: RulePack, *, source_prefix: str = "../..") -> dict[str, str]:
    """``{file name: Markdown}`` for every policy plus ``README.md``."""
    pages = {}
    rows = []
    for policy in pack.policies:
        view = policy_view(pack, policy, source_prefix=source_prefix)
        pages[f"{policy.name}.md"] = render_runbook(view)
        primary = policy.owners[0] if policy.owners else None
        rows.append(
            IndexRow(
                name=policy.name,
                title=view.title,
                starts=view.starts,
                priority=policy.priority,
                primary=Describer(pack).name(primary.ref, primary.kind) if primary else "—",
                source=policy.source,
            )
        )
    index = IndexView(pack.version, pack.content_hash, tuple(rows))
    pages["README.md"] = _environment().get_template("index.md.j2").render(ix=index)
    return pages


def owner_label(pack: RulePack, owner: Owner) -> str:
    """``primary: on-call of cust_ops_oncall`` -- shared with ``escalade explain``."""
    return f"{owner.level}: {Describer(pack).name(owner.ref, owner.kind)}"
