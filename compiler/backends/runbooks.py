"""Runbook back end: one Markdown page per policy plus an index, for the person on call.

Pages are rendered with Jinja2 (``StrictUndefined``, templates in
``escalade/compiler/templates``) from a view model built from the validated
rule pack, so a runbook says exactly what the runtime will do. Nothing here
touches syntax nodes.

Text from policies (titles, descriptions, step and message texts, names) is
escaped, not refused: Markdown and HTML markup characters get a backslash, and
a newline or other control character becomes a space, so a title such as
``"x\n# H1"`` stays on its line instead of starting a heading (``markdown_text``;
Mermaid labels likewise, ``mermaid_label``).

>>> pages = render_runbooks(pack, policy_rivals(pset))   # doctest: +SKIP
>>> sorted(pages)[:2]                              # doctest: +SKIP
['README.md', 'content_review.md']
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

import jinja2

from escalade.compiler.backends import oncall
from escalade.compiler.backends.rivals import Rivals
from escalade.runtime.clock import duration_words, format_time, read_time
from escalade.runtime.conditions import format_value
from escalade.runtime.pack import Policy, RulePack, Step

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
            phrases.append(f"{_article(obj)} {_words(obj)} is {_or(plain)}".lstrip())
        for v in other:
            phrases.append(f"{_article(obj)} {_words(obj)} reports `{obj}.{v}`".lstrip())
    return _or(phrases)


# Objects named by uncountable nouns read without an article ("when content is updated").
_MASS_NOUNS = {"content", "data", "feedback", "inventory", "billing", "information", "software"}


def _article(word: str) -> str:
    if word in _MASS_NOUNS:
        return ""
    return "an" if word[:1] in "aeiou" else "a"


def _words(name: str) -> str:
    return name.replace("_", " ")


def _or(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


_VERBS = {
    "==": ("is", "is not"),
    "!=": ("is not", "is"),
    "<": ("is below", "is at least"),
    "<=": ("is at most", "is above"),
    ">": ("is above", "is at most"),
    ">=": ("is at least", "is below"),
}
_TIME_VERBS = {
    "<": ("is before", "is at or after"),
    "<=": ("is at or before", "is after"),
    ">": ("is after", "is at or before"),
    ">=": ("is at or after", "is before"),
}


class Phrasing:
    """Conditions in plain words, relative to the object the trigger is about.

    Exact for the runtime's semantics: a comparison on a missing field is false, so
    a negated comparison also holds when the field is missing, and says so.

    Markdown by default (values in emphasis, tags as code, text escaped); plain
    words with ``md=False`` (diagram labels).

    >>> Phrasing(pack, "ticket").cond(parse("not ticket.severity == low"))  # doctest: +SKIP
    'its severity is not *low* (or not set)'
    """

    def __init__(self, pack: RulePack, subject: str | None, *, md: bool = True) -> None:
        self.pack = pack
        self.subject = subject
        self.md = md

    def literal(self, text: str) -> str:
        """Text from the policy: emphasised and escaped in Markdown, as is otherwise."""
        return f"*{markdown_text(text)}*" if self.md else text

    def tag(self, tag: str) -> str:
        if not self.md:
            return tag
        if "`" in tag or _BREAKING.search(tag):
            return self.literal(tag)
        return f"`{tag}`"

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
        kind = ftype.kind if ftype is not None else None
        if kind == "duration" and isinstance(value, int | float):
            return duration_words(int(value))
        if kind == "time" and isinstance(value, int | float):
            return format_time(value)
        if value == "":
            return "empty"
        return self.literal(value) if isinstance(value, str) else format_value(value)

    def cond(self, c: Mapping[str, Any] | None, negated: bool = False) -> str:
        """``c`` in words (its negation with ``negated``); compound parts are bracketed."""
        if c is None:
            return "never" if negated else "always"
        op = c["op"]
        if op == "not":
            return self.cond(c["arg"], not negated)
        if op in ("and", "or"):
            # De Morgan keeps every leaf exact: not (a and b) == (not a) or (not b).
            joined = _joiner(c, negated)
            parts = []
            for a in c["args"]:
                text = self.cond(a, negated)
                inner = _joiner(a, negated)
                parts.append(f"({text})" if inner is not None and inner != joined else text)
            return "either " + _or(parts) if joined == "or" else _and(parts)
        path = c["field"]
        unset = " (or not set)" if negated else ""
        if op == "has":
            verb = "is not tagged" if negated else "is tagged"
            return f"{self.owner_of(path)} {verb} {self.tag(c['tag'])}"
        subject = self.field(path)
        if op == "cmp":
            ftype = self.pack.field_type(path)
            table = _TIME_VERBS if ftype is not None and ftype.kind == "time" else {}
            verbs = table.get(c["cmp"], _VERBS[c["cmp"]])
            value = self.value(path, c["value"])
            return f"{subject} {verbs[1 if negated else 0]} {value}{unset}"
        values = [self.value(path, v) for v in c["values"]]
        positive = (op == "in") != negated
        if positive:
            return f"{subject} is {_or(values)}{unset}"
        if len(values) == 1:
            return f"{subject} is not {values[0]}{unset}"
        if len(values) == 2:
            return f"{subject} is neither {values[0]} nor {values[1]}{unset}"
        return f"{subject} is none of {', '.join(values)}{unset}"


def _joiner(c: Mapping[str, Any], negated: bool) -> str | None:
    """``and``/``or`` as a condition reads once its negations are pushed to the leaves."""
    while c["op"] == "not":
        c, negated = c["arg"], not negated
    if c["op"] not in ("and", "or"):
        return None
    return c["op"] if not negated else ("or" if c["op"] == "and" else "and")


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
class ScheduleView:
    """A scheduled team's layers, overrides and one week of who is on call."""

    team: str
    layers: tuple[tuple[str, str], ...]  # (layer name, its words)
    overrides: tuple[str, ...]
    week_zone: str
    week: tuple[oncall.DayRow, ...]


@dataclass(frozen=True, slots=True)
class RunbookView:
    name: str
    title: str
    description: str | None
    starts: str
    precedence: str
    owners: tuple[OwnerRow, ...]
    rotations: tuple[str, ...]
    schedules: tuple[ScheduleView, ...]
    chain_note: str
    sla: str | None
    timeline_note: str | None
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
    priority: str  # a number, or "inherited" for policies entered only by handoff
    primary: str
    source: str


@dataclass(frozen=True, slots=True)
class IndexView:
    version: str
    content_hash: str
    rows: tuple[IndexRow, ...]


class Describer:
    """Turns pack entities into the words a runbook uses."""

    def __init__(self, pack: RulePack, *, md: bool = True) -> None:
        self.pack = pack
        self.md = md  # Markdown (escaped) or plain words (diagram labels)

    def text(self, text: str) -> str:
        return markdown_text(text) if self.md else text

    def display(self, ref: str) -> str:
        """A person's display name (escaped in Markdown)."""
        return self.text(self.pack.display_name(ref))

    def who(self, ref: str, kind: str, pick: str | None = None) -> str:
        if pick is not None:
            return self.picked(ref, pick, f"**{ref}**")
        if kind == "team":
            team = self.pack.teams.get(ref)
            members = ", ".join(self.display(m) for m in team.members) if team else ""
            if team and team.rotation:
                return f"on-call member of **{ref}** ({members}; {team.rotation} rotation)"
            if team and team.schedule is not None:
                layers = "; ".join(
                    f"{x.name}: {', '.join(self.display(m) for m in x.members)}"
                    for x in team.schedule.layers
                )
                return f"on-call member of **{ref}** ({layers}; schedule below)"
            return f"everyone in **{ref}** ({members}); any member's ack counts"
        return f"**{self.display(ref)}**"

    def picked(self, team: str, pick: str, shown: str) -> str:
        """A ``round_robin(team)`` or ``all(team)`` level: who it picks among, and how."""
        spec = self.pack.teams.get(team)
        if spec is not None and spec.scheduled:
            return oncall.pick_text(pick, shown, "schedule below", scheduled=True)
        among = ", ".join(self.display(m) for m in spec.members) if spec else ""
        return oncall.pick_text(pick, shown, among)

    def name(self, ref: str, kind: str, pick: str | None = None) -> str:
        """A short name for diagrams and timelines."""
        if pick == "round_robin":
            return f"next in {ref} (round robin)"
        if pick == "all":
            return f"everyone in {ref} (first ack owns it)"
        if kind == "team":
            team = self.pack.teams.get(ref)
            return f"on-call of {ref}" if team and team.scheduled else f"everyone in {ref}"
        return self.display(ref)

    def reach(self, ref: str, kind: str) -> str:
        if kind == "team":
            team = self.pack.teams.get(ref)
            if team is None:
                return ""
            return "; ".join(f"{self.display(m)}: {self._contacts(m)}" for m in team.members)
        return self._contacts(ref)

    def _contacts(self, ref: str) -> str:
        person = self.pack.people.get(ref)
        if person is None:
            return ""
        found = ", ".join(f"{k} {v}" for k, v in person.contacts()) or "no contact points"
        return self.text(found + (f" ({person.timezone})" if person.timezone else ""))

    def rotation(self, ref: str) -> str | None:
        """How a team's rotation hands over, so a reader can tell who is on call."""
        team = self.pack.teams.get(ref)
        start = read_time(team.rotation_start) if team and team.rotation_start else None
        if team is None or team.rotation is None or start is None or not team.members:
            return None
        period = 86400 if team.rotation == "daily" else 7 * 86400
        when = datetime.fromtimestamp(int(start), UTC)
        handover = when.strftime("%H:%M UTC")
        every = (
            f"every day at {handover}"
            if team.rotation == "daily"
            else (f"every {when.strftime('%A')} at {handover}")
        )
        order = ", ".join(
            f"{self.display(m)} (from {format_time(start + i * period)[:10]})"
            for i, m in enumerate(team.members)
        )
        return (
            f"**{ref}** hands over {every}, in this order: {order}, then round again. "
            f"Who is on call now: `escalade oncall {ref}`."
        )

    def schedule(self, ref: str) -> ScheduleView | None:
        """A layered team's schedule (a bare rotation has its own sentence)."""
        team = self.pack.teams.get(ref)
        if team is None or team.schedule is None or team.rotation is not None:
            return None
        s, plain, here = team.schedule, self.pack.display_name, team.schedule.layers[0].zone
        week = oncall.week_rows(s, here, plain)
        return ScheduleView(
            ref,
            tuple((x.name, self.text(oncall.layer_text(x, plain))) for x in s.layers),
            tuple(self.text(line) for line in oncall.overrides_text(s, here, plain)),
            self.text(here),
            tuple(oncall.DayRow(row.day, self.text(row.changes)) for row in week),
        )

    def sla(self, kind: str, seconds: int, calendar: str | None) -> str:
        """``resolve within 12h`` or ``resolve 12h within support_hours (at most ...)``."""
        cal = self.pack.calendars.get(calendar) if calendar else None
        if cal is None:
            return f"{kind} within {duration_words(seconds)}"
        wall = duration_words(oncall.longest_wall_clock(cal, seconds))
        return f"{kind} {duration_words(seconds)} within `{cal.name}` (at most {wall} wall-clock)"

    def slas(self, policy: Policy) -> str | None:
        """Both SLAs in words, then the calendars they are counted in (None: no SLA)."""
        parts = [
            self.sla(kind, seconds, policy.sla_calendars.get(kind))
            for kind, seconds in (
                ("acknowledge", policy.sla_acknowledge),
                ("resolve", policy.sla_resolve),
            )
            if seconds is not None
        ]
        if not parts:
            return None
        calendars = self.calendars(policy)
        return ", ".join(parts) + (". " + "; ".join(calendars) if calendars else "")

    def calendars(self, policy: Policy) -> list[str]:
        """``support_hours: mon-fri 09:00-18:00 Europe/Berlin, closed ...`` for its SLAs."""
        names = dict.fromkeys(policy.sla_calendars.values())
        return [
            f"`{name}` is open {self.text(oncall.calendar_text(self.pack.calendars[name]))}"
            for name in names
            if name in self.pack.calendars
        ]

    def target(self, arg: Mapping[str, Any]) -> str:
        if "ref" in arg:
            if arg["kind"] == "channel":
                ch = self.pack.channels.get(arg["ref"])
                return self.text(f"{ch.target} ({ch.kind})") if ch else arg["ref"]
            if arg.get("pick") == "all":
                return f"every member of {arg['ref']}"
            return self.name(arg["ref"], arg["kind"])
        if "word" in arg:
            return _words(arg["word"])
        if "field" in arg:
            return f"`{arg['field']}`" if self.md else arg["field"]
        return f'"{self.text(placeholder_words(arg["text"]))}"'

    def step(self, step: Step) -> str:
        args = [self.target(a) for a in step.args]
        texts = [self.target(a) for a in step.args if "text" in a]
        first = args[0] if args else ""
        action = step.action
        if action == "notify":
            return f"Notify {first}" + (f": {texts[0]}" if texts else "")
        if action == "set":
            return f"Set {first} to {args[1] if len(args) > 1 else ''}"
        if action == "manual":
            instruction = placeholder_words(step.args[0].get("text", "")) if step.args else ""
            return f"By hand: {self.text(instruction)}"
        verb = _STEP_VERBS.get(action, action.capitalize())
        return f"{verb} {' '.join(args)}".strip()

    def with_undo(self, step: Step) -> str:
        """The step and what ``escalade revert`` does about it (its undo, or a person)."""
        if step.undo is None:
            return f"{self.step(step)} (no undo: needs a person on revert)"
        undo = self.step(step.undo) if step.undo.action != "restore" else "restore the old value"
        return f"{self.step(step)} (undo: {undo[:1].lower()}{undo[1:]})"


_STEP_VERBS = {
    "page": "Page",
    "route": "Route to",
    "create_ticket": "Create a ticket",
    "create_task": "Create a task",
    "open": "Open",
    "snapshot": "Snapshot",
    "attach": "Attach",
    "lock": "Lock",
}


@dataclass(frozen=True, slots=True)
class HandoffSource:
    """A policy that hands off to another, and the words for why."""

    policy: str
    why: str


@dataclass(frozen=True, slots=True)
class PackFacts:
    """What pages need from the whole pack, computed once: the handoffs into each policy
    and the policies that compete with it for events (:func:`policy_rivals`)."""

    sources: Mapping[str, Sequence[HandoffSource]]
    rivals: Mapping[str, Rivals]

    @classmethod
    def of(cls, pack: RulePack, rivals: Mapping[str, Rivals]) -> PackFacts:
        return cls(_handoff_sources(pack), rivals)


def _handoff_sources(pack: RulePack) -> dict[str, list[HandoffSource]]:
    """``{policy: the handoffs into it}`` for the whole pack (computed once per build)."""
    found: dict[str, list[HandoffSource]] = {}
    words = Phrasing(pack, None)
    for p in pack.policies:
        for h in p.handoffs:
            why = words.cond(h.when) if h.when is not None else _failure_words(h.failure)
            found.setdefault(h.policy, []).append(HandoffSource(p.name, why))
    return found


def _subject(policy: Policy) -> str | None:
    """The object every trigger is about (``its ...`` refers to it), or None."""
    objects = {t.partition(".")[0] for t in policy.triggers}
    return objects.pop() if len(objects) == 1 else None


def _link(policy: str) -> str:
    return f"[`{policy}`]({policy}.md)"


def _starts(pack: RulePack, policy: Policy, sources: Sequence[HandoffSource]) -> str:
    """``when a ticket is created ..., its severity is *critical*`` (no leading capital)."""
    words = Phrasing(pack, _subject(policy))
    reasons: dict[str, list[str]] = {}
    for h in sources:
        reasons.setdefault(h.policy, []).append(f"when {h.why}")
    froms = "; ".join(f"from {_link(name)} {_or(whys)}" for name, whys in reasons.items())
    if not policy.triggers:
        return "only by a handoff" + (f" {froms}" if froms else "")
    text = f"when {events_in_words(policy.triggers)}"
    if policy.when is not None:
        text += f", {words.cond(policy.when)}"
    if policy.after is not None:
        text += (
            f"; it starts {duration_words(policy.after)} later, "
            "and only if that still holds on the ticket's latest state"
        )
    if froms:
        text += f"; also by a handoff {froms}"
    return text


def _precedence(policy: Policy, rivals: Rivals) -> str:
    """The priority, and the policies that can match the same events on either side of it."""
    if not policy.triggers:
        return (
            "It keeps the priority of the escalation it takes over, and that "
            "escalation's SLA clocks keep running from its start"
        )
    text = f"Priority {policy.priority}"
    if rivals.lower_total:
        text += f": it takes precedence over {_named(rivals.lower, rivals.lower_total)}"
    if rivals.higher_total:
        verb = "takes" if rivals.higher_total == 1 else "take"
        named = _named(rivals.higher, rivals.higher_total)
        text += f"{';' if rivals.lower_total else ':'} {named} {verb} precedence over it"
    return text


def _named(names: Sequence[str], total: int) -> str:
    """The names given (the first few of ``total``), then how many more there are."""
    shown = [f"`{name}`" for name in names]
    if total > len(names):
        shown.append(f"{total - len(names):,} more (the [index](README.md) lists every policy)")
    return _and(shown)


def on_failure(pack: RulePack, policy: Policy, failure: str) -> str:
    """What the runtime does on ``failure``: the Type A handoff for it, else Type B."""
    handoff = policy.failure_handoff(failure)
    if handoff is not None:
        return f"hand off to {_link(handoff.policy)}"
    if policy.triage is None:
        return "nobody is assigned (no triage path)"
    d = Describer(pack)
    text = f"Type B: **{d.name(policy.triage.ref, policy.triage.kind)}** triages"
    return text + (", post-mortem required" if policy.triage.postmortem else "")


def _checks(pack: RulePack, policy: Policy) -> list[str]:
    words = Phrasing(pack, None)  # a checklist names the object of every field
    failed = on_failure(pack, policy, "check_failed")
    checks = []
    for c in policy.delivery_checks:
        then = ""
        if c.then is not None:
            ch = pack.channels.get(c.then)
            then = f", then sent to {markdown_text(ch.target) if ch else c.then}"
        checks.append(
            f"Every notification is delivered within {duration_words(c.within)} "
            f"(else retried {c.retry} time{'s' if c.retry != 1 else ''}{then}); "
            f"if one never is: {failed}"
        )
    for s in policy.state_checks:
        checks.append(
            f"Within {duration_words(s.within)} of the automated steps, an event shows "
            f"{words.cond(s.when)}; if none does: {failed}"
        )
    for cc in policy.close_checks:
        if cc.when is None:
            checks.append("Before close: the post-mortem is written and linked")
        else:
            checks.append(f"Before close: {words.cond(cc.when)} (close is refused until then)")
    return checks


def _uncovered_failures(policy: Policy) -> list[str]:
    """The failures that can happen to this policy and that no Type A exception takes."""
    possible = []
    if policy.chain_schedule().exhausted_at is not None:
        possible.append("unacknowledged")
    if policy.steps or any(policy.on.values()):
        possible.append("step_failed")
    if policy.delivery_checks or policy.state_checks:
        possible.append("check_failed")
    return [f for f in possible if policy.failure_handoff(f) is None]


def _triage(pack: RulePack, policy: Policy) -> str | None:
    """The Type B line: when it applies (failures no Type A exception covers) and who."""
    triage = policy.triage
    if triage is None:
        return None
    d = Describer(pack)
    cases = [_failure_words(f) for f in _uncovered_failures(policy)]
    cases.append("anything this runbook does not cover")
    text = f"**Anything else** ({_or(cases)}): "
    text += f"{d.name(triage.ref, triage.kind)} triages"
    if triage.postmortem:
        text += "; a post-mortem is required before close"
    backstop = next((o for o in policy.owners if o.level == "escalation"), None)
    if backstop is not None and backstop.ref != triage.ref:
        away = (
            f"nobody in {triage.ref} is available"
            if triage.kind == "team"
            else f"{d.name(triage.ref, triage.kind)} is away"
        )
        text += f". If {away}, {d.name(backstop.ref, backstop.kind)} (escalation owner) takes it"
    return text


_MOMENTS = ("failover", "breach", "acknowledge", "resolve")


def policy_view(
    pack: RulePack, policy: Policy, facts: PackFacts, *, source_prefix: str = "../.."
) -> RunbookView:
    """The view model of one policy's runbook."""
    d = Describer(pack)
    owners = tuple(
        OwnerRow(
            o.level,
            d.who(o.ref, o.kind, o.pick),
            d.reach(o.ref, o.kind),
            duration_words(o.ack) if o.ack is not None else "no timeout (keeps it)",
        )
        for o in policy.owners
    )
    teams = dict.fromkeys(o.ref for o in policy.owners if o.kind == "team")
    rotations = tuple(r for r in (d.rotation(t) for t in teams) if r is not None)
    schedules = tuple(v for v in (d.schedule(t) for t in teams) if v is not None)
    passes = policy.repeat + 1
    chain_note = (
        "The chain runs once."
        if passes == 1
        else f"The chain runs {passes} times (repeat {policy.repeat})."
    )
    sla = d.slas(policy)
    timeline_note = None
    if policy.after is not None:
        timeline_note = (
            f"Times count from the `{_or(policy.triggers)}` event; the escalation starts "
            f"{duration_words(policy.after)} after it, and only if the condition still holds."
        )
    words = Phrasing(pack, _subject(policy))
    exceptions = tuple(
        ExceptionView(
            _words(h.name),
            words.cond(h.when) if h.when is not None else _failure_words(h.failure),
            h.policy,
            f"{h.policy}.md",
        )
        for h in policy.handoffs
    )
    link = f"{source_prefix}/{policy.file}#L{policy.line}" if source_prefix else None
    moments = sorted(policy.on.items(), key=lambda kv: (*_MOMENTS, kv[0]).index(kv[0]))
    sources = facts.sources.get(policy.name, ())
    return RunbookView(
        name=policy.name,
        title=policy.title or policy.name,
        description=policy.description,
        starts=_starts(pack, policy, sources),
        precedence=_precedence(policy, facts.rivals[policy.name]),
        owners=owners,
        rotations=rotations,
        schedules=schedules,
        chain_note=chain_note,
        sla=sla,
        timeline_note=timeline_note,
        timeline=tuple(_timeline(pack, policy, d)),
        mermaid=mermaid_flowchart(pack, policy, sources),
        steps=tuple(StepView(d.with_undo(s), s.guide) for s in policy.steps),
        moments=tuple(
            MomentView(moment, tuple(StepView(d.with_undo(s), s.guide) for s in steps))
            for moment, steps in moments
        ),
        checks=tuple(_checks(pack, policy)),
        exceptions=exceptions,
        triage=_triage(pack, policy),
        approvers=policy.approvers,
        source=policy.source,
        source_link=link,
        version=pack.version,
        cooldown=duration_words(policy.cooldown),
    )


def _failure_words(failure: str | None) -> str:
    return {
        "unacknowledged": "nobody acknowledges through the whole chain",
        "step_failed": "an automated step fails",
        "check_failed": "a quality check fails",
    }.get(failure or "", failure or "")


def _timeline(pack: RulePack, policy: Policy, d: Describer) -> list[TimelineRow]:
    """What happens when, if nobody acknowledges; times from the triggering event."""
    schedule = policy.chain_schedule()
    delay = policy.after or 0
    rows: dict[int, list[str]] = {}

    def add(at: int, text: str) -> None:
        rows.setdefault(delay + at, []).append(text)

    if delay:
        rows[0] = [
            f"`{_or(policy.triggers)}` received: nothing happens yet; "
            f"the condition is checked again at {duration_words(delay)}"
        ]
    start = "; ".join(d.step(s) for s in policy.steps)
    if start:
        add(0, start)
    failover = "; ".join(d.step(s) for s in policy.on.get("failover", ()))
    for i, stop in enumerate(schedule.stops):
        who = f"**{d.name(stop.owner.ref, stop.owner.kind, stop.owner.pick)}** ({stop.owner.level})"
        if i == 0:
            add(0, f"assigned to {who}")
            continue
        again = (
            f"pass {stop.round} of the chain: "
            if stop.round > 1 and stop.owner == policy.owners[0]
            else ""
        )
        add(stop.at, f"no ack → {again}{who}" + (f"; on failover: {failover}" if failover else ""))
    if schedule.exhausted_at is not None:
        add(schedule.exhausted_at, "unacknowledged → " + on_failure(pack, policy, "unacknowledged"))
    elif schedule.stops:
        last = schedule.stops[-1].owner
        add(
            schedule.stops[-1].at,
            f"stays with **{d.name(last.ref, last.kind, last.pick)}** until acknowledged",
        )
    breach = "; ".join(d.step(s) for s in policy.on.get("breach", ()))
    counted: list[TimelineRow] = []  # SLAs counted in a calendar's open hours
    for label, done, sla in (
        ("acknowledge", "acknowledged", policy.sla_acknowledge),
        ("resolve", "resolved", policy.sla_resolve),
    ):
        if sla is None:
            continue
        then = f": {breach}" if breach else ""
        what = f"{label} SLA breached unless {done} by now{then}"
        calendar = policy.sla_calendars.get(label)
        if calendar is None:
            add(sla, what)
        else:
            at = f"{duration_words(sla)} of `{calendar}` open hours"
            counted.append(TimelineRow(at, what))
    return [
        TimelineRow(duration_words(at), " · ".join(texts)) for at, texts in sorted(rows.items())
    ] + counted


# --------------------------------------------------------------------------- Mermaid

_MERMAID_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def mermaid_label(text: str) -> str:
    """A double-quoted Mermaid label: quotes and markup characters as entity codes."""
    out = (
        _BREAKING.sub(" ", text)
        .replace("#", "#35;")
        .replace('"', "#quot;")
        .replace("<", "#lt;")
        .replace(">", "#gt;")
    )
    return '"' + out.replace("\n", " ") + '"'


def mermaid_flowchart(pack: RulePack, policy: Policy, sources: Sequence[HandoffSource]) -> str:
    """The escalation and exception paths as a GitHub-renderable Mermaid flowchart.

    Ids are ``[A-Za-z][A-Za-z0-9_]*`` and every label is double-quoted with entity
    codes, so no policy text can break the diagram. ``sources``: the handoffs into it."""
    chart = _Flowchart(pack, policy, sources)
    chart.draw_start()
    owners = chart.draw_chain()
    chart.draw_exhaustion(owners)
    chart.draw_exceptions()
    return "\n".join(chart.lines)


class _Flowchart:
    """One policy's Mermaid flowchart as it is drawn: a node is declared where it is
    first used, edges in the order they are drawn."""

    def __init__(self, pack: RulePack, policy: Policy, sources: Sequence[HandoffSource]) -> None:
        self.pack = pack
        self.policy = policy
        self.sources = sources
        self.d = Describer(pack, md=False)
        self.words = Phrasing(pack, _subject(policy), md=False)
        self.lines = ["flowchart TD"]
        self._made: set[str] = set()

    def node(self, ident: str, label: str, shape: str = "box") -> str:
        assert _MERMAID_ID.match(ident), ident
        if ident not in self._made:
            self._made.add(ident)
            wrapped = {"box": "[{}]", "round": "({})", "stop": "([{}])"}[shape]
            self.lines.append(f"  {ident}{wrapped.format(mermaid_label(label))}")
        return ident

    def edge(self, a: str, b: str, label: str | None = None, dotted: bool = False) -> None:
        arrow = "-.->" if dotted else "-->"
        self.lines.append(
            f"  {a} {arrow}|{mermaid_label(label)}| {b}" if label else f"  {a} {arrow} {b}"
        )

    def handoff(self, target: str) -> str:
        return self.node(f"handoff_{target}", f"hand off: {target} runbook")

    def triage(self) -> str | None:
        t = self.policy.triage
        if t is None:
            return None
        pm = " + post-mortem" if t.postmortem else ""
        return self.node("triage", f"Type B triage: {self.d.name(t.ref, t.kind)}{pm}")

    def draw_start(self) -> None:
        """The start: the triggering events (and condition), or the policies handing off."""
        policy = self.policy
        if policy.triggers:
            cond = f": {self.words.cond(policy.when)}" if policy.when else ""
            later = f", {duration_words(policy.after)} later" if policy.after else ""
            self.node("start", f"{', '.join(policy.triggers)}{later}{cond}", "round")
        else:
            sources = sorted({h.policy for h in self.sources})
            self.node("start", f"handoff from {', '.join(sources) or 'another policy'}", "round")

    def draw_chain(self) -> list[str]:
        """The owners in chain order, each with its ack and its no-ack edge to the next;
        returns the owners' node ids."""
        ids = []
        for o in self.policy.owners:
            keeps = "" if o.ack is not None else " (keeps it until acknowledged)"
            ids.append(
                self.node(
                    f"owner_{o.level}", f"{o.level}: {self.d.name(o.ref, o.kind, o.pick)}{keeps}"
                )
            )
        self.node("acked", "acknowledged → resolve → close when checks pass", "stop")
        if ids:
            self.edge("start", ids[0], "steps run, assign")
        for i, o in enumerate(self.policy.owners):
            self.edge(ids[i], "acked", "ack")
            if o.ack is None:
                break
            if i + 1 < len(ids):
                self.edge(ids[i], ids[i + 1], f"no ack {duration_words(o.ack)}")
        return ids

    def draw_exhaustion(self, ids: list[str]) -> None:
        """When nobody acknowledges: the chain repeats, then hands off or goes to triage."""
        policy = self.policy
        schedule = policy.chain_schedule()
        if not ids or schedule.exhausted_at is None:
            return
        last_ack = policy.owners[-1].ack or 0
        if policy.repeat:
            repeat = f"no ack {duration_words(last_ack)}: repeat ({policy.repeat}×)"
            self.edge(ids[-1], ids[0], repeat)
        unacked = policy.failure_handoff("unacknowledged")
        target = self.handoff(unacked.policy) if unacked is not None else self.triage()
        if target is not None:
            at = (policy.after or 0) + schedule.exhausted_at  # from the event, as the timeline
            self.edge(ids[-1], target, f"chain exhausted at {duration_words(at)}")

    def draw_exceptions(self) -> None:
        """Dotted edges from the start: each exception's handoff, then triage for the rest."""
        for h in self.policy.handoffs:
            if h.failure == "unacknowledged":
                continue
            why = self.words.cond(h.when) if h.when else _failure_words(h.failure)
            self.edge("start", self.handoff(h.policy), why, dotted=True)
        uncovered = [
            _failure_words(f) for f in _uncovered_failures(self.policy) if f != "unacknowledged"
        ]
        target = self.triage()
        if target is not None:
            self.edge("start", target, _or([*uncovered, "anything unexpected"]), dotted=True)


# --------------------------------------------------------------------------- rendering


@cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("escalade.compiler", "templates"),
        undefined=jinja2.StrictUndefined,
        # Markdown, not HTML: HTML escaping would show `&lt;` to the reader. Text from
        # the policies is neutralised for Markdown instead, by the `md` filter and
        # Describer/Phrasing (markdown_text), before it reaches a template.
        autoescape=False,  # noqa: S701
        keep_trailing_newline=True,
        auto_reload=False,  # templates ship with the package: no stat of the file per page
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = markdown_text
    env.filters["cell"] = markdown_cell
    return env


_PLACEHOLDER = re.compile(r"\{\{\s*([a-z_][a-z0-9_]*)\.([a-z_][a-z0-9_]*)\s*\}\}")


def placeholder_words(text: str) -> str:
    """``{{ ticket.title }}`` as the reader sees it filled in: ``<ticket title>``."""
    return _PLACEHOLDER.sub(lambda m: f"<{m.group(1)} {m.group(2).replace('_', ' ')}>", text)


_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|&~])")


# Line breaks and other control characters: a string literal may carry them (`\n`),
# and in Markdown a new line could start a heading, a list or a table of its own.
_BREAKING = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def markdown_text(text: str) -> str:
    """Free text (titles, messages) with Markdown and HTML markup neutralised: a
    newline or other control character becomes one space, so text stays on its line."""
    return _MD_SPECIAL.sub(r"\\\1", _BREAKING.sub(" ", text))


def markdown_cell(text: str) -> str:
    """Already-formatted Markdown for a table cell: pipes escaped, one line."""
    return re.sub(r"(?<!\\)\|", r"\\|", text).replace("\n", " ")


def render_runbook(view: RunbookView) -> str:
    """One policy's runbook page."""
    return _environment().get_template("runbook.md.j2").render(rb=view)


def render_runbooks(
    pack: RulePack, rivals: Mapping[str, Rivals], *, source_prefix: str = "../.."
) -> dict[str, str]:
    """``{file name: Markdown}`` for every policy plus ``README.md``; ``rivals`` from
    :func:`~escalade.compiler.backends.rivals.policy_rivals` on the set the pack was built from."""
    facts = PackFacts.of(pack, rivals)
    pages = {}
    rows = []
    for policy in pack.policies:
        view = policy_view(pack, policy, facts, source_prefix=source_prefix)
        pages[f"{policy.name}.md"] = render_runbook(view)
        primary = policy.owners[0] if policy.owners else None
        rows.append(
            IndexRow(
                name=policy.name,
                title=view.title,
                starts=view.starts,
                # a handoff keeps the priority of the escalation it takes over
                priority=str(policy.priority) if policy.triggers else "inherited",
                primary=(
                    Describer(pack).name(primary.ref, primary.kind, primary.pick)
                    if primary
                    else "—"
                ),
                source=policy.source,
            )
        )
    index = IndexView(pack.version, pack.content_hash, tuple(rows))
    pages["README.md"] = _environment().get_template("index.md.j2").render(ix=index)
    return pages
