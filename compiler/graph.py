"""``escalade graph``: the whole policy set as one graph, in Mermaid or DOT.

Nodes are event kinds, policies, the people or teams that triage unknown
exceptions and the scheduled teams policies page. Edges: an event kind starts a
policy (labelled with the policy's priority, trigger delay and condition in
canonical form), a policy hands off to another (labelled with the exception's name
and why), a policy sends unknown exceptions to triage, a policy pages a scheduled
team (labelled with the owner levels and steps that do). A scheduled team's node
names its layers and their zones (``support_oncall · europe (Europe/Berlin) +
americas (America/New_York)``), so the graph shows whose clock each path follows::

    set_graph(pset).edges[0]
    == Edge("event_0", "policy_enterprise_critical",
            "priority 100: ticket.severity == critical and account.tier == enterprise",
            "trigger")

Identifiers are generated (``event_N``, ``policy_NAME``, ``person_NAME`` ...),
never taken from text, and every label is quoted and escaped, so no name,
title or string literal can break out of the diagram.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from escalade.compiler import model as m
from escalade.compiler import nodes as n
from escalade.compiler.backends.oncall import schedule_label
from escalade.compiler.backends.runbooks import mermaid_label
from escalade.compiler.passes.analysis import ordered_policies
from escalade.compiler.printer import format_cond
from escalade.runtime.clock import format_duration

__all__ = ["Edge", "Node", "SetGraph", "render_dot", "render_mermaid", "set_graph"]

NodeKind = Literal["event", "policy", "owner"]
EdgeKind = Literal["trigger", "handoff", "triage", "pages"]


@dataclass(frozen=True, slots=True)
class Node:
    id: str
    label: str
    kind: NodeKind


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    label: str
    kind: EdgeKind


@dataclass(frozen=True, slots=True)
class SetGraph:
    nodes: tuple[Node, ...]
    edges: tuple[Edge, ...]


def set_graph(pset: m.PolicySet) -> SetGraph:
    """Events → policies (by priority, highest first), handoffs, triage owners."""
    nodes: dict[str, Node] = {}
    edges: list[Edge] = []
    policies = ordered_policies(pset)
    event_ids: dict[str, str] = {}
    triggered = {t for p in policies for t in p.triggers}
    for name in [*pset.schema.events, *sorted(triggered - set(pset.schema.events))]:
        event_ids[name] = f"event_{len(event_ids)}"
        nodes[event_ids[name]] = Node(event_ids[name], name, "event")
    for p in policies:
        label = f"{p.name} · {p.title}" if p.title else p.name
        nodes[policy_id(p.name)] = Node(policy_id(p.name), label, "policy")
    for event, ident in event_ids.items():
        starts = [p for p in policies if event in p.triggers]
        for p in sorted(starts, key=lambda p: -p.priority):
            label = f"priority {p.priority}"
            if p.after:
                label += f", after {format_duration(p.after)}"
            label += f": {format_cond(p.when)}" if p.when is not None else ": always"
            edges.append(Edge(ident, policy_id(p.name), label, "trigger"))
    for p in policies:
        for h in p.handoffs:
            if h.policy not in pset.policies:
                continue
            why = format_cond(h.cond) if h.cond is not None else h.failure or ""
            edges.append(
                Edge(policy_id(p.name), policy_id(h.policy), f"{h.name}: {why}", "handoff")
            )
        if p.triage is not None:
            t = p.triage
            kind = t.ref_kind if t.ref_kind in ("person", "team") else "owner"
            owner = f"{kind}_{t.ref}"
            if owner not in nodes:
                nodes[owner] = Node(owner, _owner_label(pset, kind, t.ref), "owner")
            label = "triage + post-mortem" if t.postmortem else "triage"
            edges.append(Edge(policy_id(p.name), owner, label, "triage"))
    for p in policies:
        for team, reasons in paged_teams(pset, p).items():
            ident = f"team_{team}"
            if ident not in nodes:
                nodes[ident] = Node(ident, _owner_label(pset, "team", team), "owner")
            edges.append(Edge(policy_id(p.name), ident, ", ".join(reasons), "pages"))
    return SetGraph(tuple(nodes.values()), tuple(edges))


def _owner_label(pset: m.PolicySet, kind: str, ref: str) -> str:
    if kind == "team" and ref in pset.teams:
        team = pset.teams[ref]
        return schedule_label(ref, team.schedule, team.rotation)
    return ref if kind == "owner" else f"{kind} {ref}"


def paged_teams(pset: m.PolicySet, p: m.Policy) -> dict[str, list[str]]:
    """``{team: why}`` for each scheduled team the policy pages: as an owner level
    (``primary, ack 5m``) or as a step's target (``step page``), in chain order."""
    found: dict[str, list[str]] = {}

    def scheduled(ref: str) -> bool:
        team = pset.teams.get(ref)
        return team is not None and team.schedule is not None

    for o in p.owners:
        if scheduled(o.ref):
            ack = f", ack {format_duration(o.ack)}" if o.ack is not None else ""
            found.setdefault(o.ref, []).append(f"{o.level}{ack}")
    steps = [*p.steps, *(s for moment in p.on.values() for s in moment)]
    for step in steps:
        for arg in step.args:
            ref = arg.team.value if isinstance(arg, n.Pick) else None
            ref = arg.value if isinstance(arg, n.Name) else ref
            if ref is not None and scheduled(ref):
                why = f"step {step.action}"
                if why not in found.setdefault(ref, []):
                    found[ref].append(why)
    return found


def policy_id(name: str) -> str:
    return f"policy_{name}"


# --------------------------------------------------------------------------- Mermaid

_MERMAID_SHAPES = {"event": '(["{}"])', "policy": '["{}"]', "owner": '("{}")'}
_MERMAID_ARROWS = {"trigger": "-->", "handoff": "==>", "triage": "-.->", "pages": "-->"}


def mermaid_text(text: str) -> str:
    """A label's inside, quotes and markup as entity codes (a leading backtick would
    otherwise start a Markdown string, ``%%`` a comment)."""
    return mermaid_label(text)[1:-1].replace("`", "#96;").replace("%", "#37;")


def render_mermaid(graph: SetGraph) -> str:
    """A ``flowchart LR`` that GitHub renders (in a ```mermaid block or a .mmd file)."""
    lines = ["flowchart LR"]
    for node in graph.nodes:
        shape = _MERMAID_SHAPES[node.kind].replace("{}", mermaid_text(node.label))
        lines.append(f"  {node.id}{shape}")
    for e in graph.edges:
        lines.append(
            f'  {e.source} {_MERMAID_ARROWS[e.kind]}|"{mermaid_text(e.label)}"| {e.target}'
        )
    for kind, style in (
        ("event", "fill:#e8f1fb,stroke:#2f6db5"),
        ("policy", "fill:#fff,stroke:#333"),
        ("owner", "fill:#fdf0e6,stroke:#c26a1b"),
    ):
        ids = [n.id for n in graph.nodes if n.kind == kind]
        if ids:
            lines.append(f"  classDef {kind} {style}")
            lines.append(f"  class {','.join(ids)} {kind}")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- DOT

_DOT_SHAPES = {"event": "ellipse", "policy": "box", "owner": "octagon"}
_DOT_STYLES = {"trigger": "solid", "handoff": "bold", "triage": "dashed", "pages": "dotted"}


def dot_string(text: str) -> str:
    """A double-quoted DOT string: backslashes and quotes escaped, line breaks as ``\\n``."""
    body = text.replace("\\", "\\\\").replace('"', '\\"')
    body = body.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
    return f'"{body}"'


def render_dot(graph: SetGraph) -> str:
    """A Graphviz ``digraph`` (render with ``dot -Tsvg``)."""
    lines = [
        "digraph escalade {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for node in graph.nodes:
        lines.append(
            f"  {dot_string(node.id)} [label={dot_string(node.label)}, "
            f"shape={_DOT_SHAPES[node.kind]}];"
        )
    for e in graph.edges:
        lines.append(
            f"  {dot_string(e.source)} -> {dot_string(e.target)} "
            f"[label={dot_string(e.label)}, style={_DOT_STYLES[e.kind]}];"
        )
    lines.append("}")
    return "\n".join(lines) + "\n"
