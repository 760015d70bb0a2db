"""``escalade graph``: structure of the set graph, and Mermaid/DOT no label can break."""

from __future__ import annotations

import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from escalade.compiler import load_policy_set
from escalade.compiler.cli import main
from escalade.compiler.graph import SetGraph, render_dot, render_mermaid, set_graph

HOSTILE = r"""event ticket.created
schema ticket {
  id: text
  title: text
  tags: set
}
person ann { name "Ann \"]) --> evil[\"x" email "ann@example.com" }
person ben { email "ben@example.com" }
channel ops { slack "#ops" }
policy fine {
  title "T\"]);\n%% click policy_fine call alert(1)\n<b>`md`</b> #quot; \\ end"
  approvers "@example/ops"
  trigger ticket.created
  when ticket.title == "x\"]) --> evil[\"y\\" or ticket.tags has "`a`"
  owner primary ann ack 5m
  owner backup ben ack 5m
  step notify ops "hi"
  exception weird when ticket.title == "}\"; evil -> x [label=\"" handoff other
  exception unknown triage ben postmortem
}
policy other {
  title "`starts with backtick`"
  approvers "@example/ops"
  owner primary ann ack 5m
  owner backup ben ack 5m
  step notify ops "hi"
  exception unknown triage ann
}
"""

HOSTILE_TITLE = 'fine · T"]);\n%% click policy_fine call alert(1)\n<b>`md`</b> #quot; \\ end'
HOSTILE_WHEN = r'priority 0: ticket.title == "x\"]) --> evil[\"y\\" or ticket.tags has "`a`"'


def graph_of(path: Path) -> SetGraph:
    result = load_policy_set(path)
    assert result.pset is not None and result.errors == 0, result.diagnostics
    return set_graph(result.pset)


@pytest.fixture
def hostile(tmp_path: Path) -> Path:
    (tmp_path / "set.esc").write_text(HOSTILE, "utf-8")
    return tmp_path


# --------------------------------------------------------------------------- structure


def test_reference_set_graph(policies_dir: Path) -> None:
    g = graph_of(policies_dir)
    labels = {n.id: n.label for n in g.nodes}
    events = {n.label: n.id for n in g.nodes if n.kind == "event"}
    assert set(events) >= {"ticket.created", "ticket.updated", "lead.updated"}
    assert labels["policy_enterprise_critical"] == (
        "enterprise_critical · High-value customer incident"
    )

    created = [e for e in g.edges if e.source == events["ticket.created"]]
    assert [e.target for e in created] == [
        "policy_enterprise_critical",
        "policy_urgent_ticket_waiting",
        "policy_critical_default",
    ]
    assert created[0].label == (
        "priority 100: ticket.severity == critical and account.tier == enterprise"
    )
    breached = next(e for e in g.edges if e.source == events["ticket.sla_breached"])
    assert breached.label.startswith("priority 80, after 30m: ticket.priority == high")

    handoffs = {(e.source, e.target): e.label for e in g.edges if e.kind == "handoff"}
    assert handoffs == {
        (
            "policy_publishing_block",
            "policy_content_review",
        ): "ambiguous_qa: content.qa == ambiguous",
        ("policy_enterprise_critical", "policy_vendor_outage"): (
            'vendor_outage: ticket.tags has "vendor_outage"'
        ),
    }
    triage = {e.source: (e.target, e.label) for e in g.edges if e.kind == "triage"}
    assert triage["policy_enterprise_critical"] == ("person_dana", "triage + post-mortem")
    assert triage["policy_publishing_block"] == ("person_hugo", "triage + post-mortem")
    # handoff-only policies have no trigger edge, but are in the graph
    assert not [e for e in g.edges if e.target == "policy_vendor_outage" and e.kind == "trigger"]


def test_scheduled_teams_carry_their_layers(policies_dir: Path) -> None:
    g = graph_of(policies_dir)
    labels = {n.id: n.label for n in g.nodes}
    assert labels["team_support_oncall"] == (
        "support_oncall · europe (Europe/Berlin) + americas (America/New_York)"
    )
    assert labels["team_cust_ops_oncall"] == "cust_ops_oncall · weekly rotation (UTC)"
    assert "team_sdr_queue" not in labels  # nobody is paged by schedule there
    pages = {(e.source, e.target): e.label for e in g.edges if e.kind == "pages"}
    assert pages[("policy_urgent_ticket_waiting", "team_support_oncall")] == "primary, ack 30m"
    assert pages[("policy_high_priority_sla_breach", "team_support_oncall")] == "primary, ack 5m"
    assert pages[("policy_enterprise_critical", "team_cust_ops_oncall")] == "primary, ack 5m"
    mermaid = render_mermaid(g)
    assert (
        '  team_support_oncall("support_oncall · europe (Europe/Berlin) + '
        'americas (America/New_York)")\n' in mermaid
    )
    assert '  policy_urgent_ticket_waiting -->|"primary, ack 30m"| team_support_oncall\n' in mermaid
    dot = render_dot(g)
    assert (
        '"policy_urgent_ticket_waiting" -> "team_support_oncall" '
        '[label="primary, ack 30m", style=dotted];' in dot
    )


def test_overrides_and_step_targets_show_on_the_team(tmp_path: Path) -> None:
    (tmp_path / "set.esc").write_text(SCHEDULED, "utf-8")
    g = graph_of(tmp_path)
    labels = {n.id: n.label for n in g.nodes}
    assert labels["team_desk"] == "desk · day (Europe/Paris) + night (Asia/Tokyo) · 1 override"
    pages = {(e.source, e.target): e.label for e in g.edges if e.kind == "pages"}
    assert pages[("policy_p", "team_desk")] == "primary, ack 5m, step page"
    check_mermaid(render_mermaid(g), g)
    check_dot(render_dot(g), g)


SCHEDULED = """event ticket.created
schema ticket {
  id: text
}
person ann { email "ann@example.com" }
person ben { email "ben@example.com" }
team desk {
  layer day {
    members ann, ben
    shift 1d
    handoff 08:00
    zone "Europe/Paris"
    start "2026-01-05"
    restrict mon-fri 08:00-20:00
  }
  layer night {
    members ben
    shift 1w
    handoff 20:00
    zone "Asia/Tokyo"
    start "2026-01-05"
  }
  override ann for ben from "2026-02-01T00:00:00Z" to "2026-02-02T00:00:00Z"
}
policy p {
  approvers "@example/ops"
  trigger ticket.created
  owner primary desk ack 5m
  owner backup ann ack 5m
  step page desk
  exception unknown triage ben
}
"""


# --------------------------------------------------------------------------- Mermaid

_ID = r"[a-z][a-z0-9_]*"
_QUOTED = r'"[^"`<>\n]*"'
_MERMAID_LINE = re.compile(
    rf"^  (?:{_ID}(?:\(\[{_QUOTED}\]\)|\[{_QUOTED}\]|\({_QUOTED}\))"
    rf"|{_ID} (?:-->|==>|-\.->)\|{_QUOTED}\| {_ID}"
    rf"|classDef (?:event|policy|owner) [a-z:#0-9,]+"
    rf"|class {_ID}(?:,{_ID})* (?:event|policy|owner))$"
)
_RESERVED = {"end", "graph", "subgraph", "class", "classdef", "style", "click", "default"}


def check_mermaid(text: str, graph: SetGraph) -> None:
    """Every line is a node, an edge or a style line of the shapes we write; labels are
    quoted with nothing that ends or reinterprets them; edges join declared nodes."""
    lines = text.rstrip("\n").split("\n")
    assert lines[0] == "flowchart LR"
    for line in lines[1:]:
        assert _MERMAID_LINE.match(line), line
        assert "%%" not in line
    found = [re.match(rf"  ({_ID})[\[(]", line) for line in lines[1:]]
    declared = [m.group(1) for m in found if m is not None]
    assert len(declared) == len(set(declared))
    declared_set = set(declared)
    assert declared_set == {n.id for n in graph.nodes}
    assert not {i.lower() for i in declared_set} & _RESERVED
    edges = [line for line in lines if re.match(rf"  {_ID} (-->|==>|-\.->)", line)]
    assert len(edges) == len(graph.edges)
    for line in edges:
        a, b = re.match(rf"  ({_ID}) .*\| ({_ID})$", line).groups()  # type: ignore[union-attr]
        assert a in declared_set and b in declared_set


def test_mermaid_of_the_reference_set(policies_dir: Path) -> None:
    g = graph_of(policies_dir)
    text = render_mermaid(g)
    check_mermaid(text, g)
    assert (
        '  event_0 -->|"priority 100: ticket.severity == critical and account.tier == enterprise"|'
        " policy_enterprise_critical\n" in text
    )
    assert (
        '  policy_enterprise_critical ==>|"vendor_outage: ticket.tags has #quot;vendor_outage#quot;"|'
        " policy_vendor_outage\n" in text
    )


def test_hostile_labels_cannot_break_the_mermaid(hostile: Path) -> None:
    g = graph_of(hostile)
    assert HOSTILE_TITLE in {n.label for n in g.nodes}
    assert HOSTILE_WHEN in {e.label for e in g.edges}
    text = render_mermaid(g)
    check_mermaid(text, g)
    assert "evil[" not in re.sub(r'"[^"]*"', "", text)  # only ever inside a label
    assert "#96;starts with backtick#96;" in text


# --------------------------------------------------------------------------- DOT

_DOT_STRING = r'"(?:[^"\\\n]|\\.)*"'
_DOT_LINE = re.compile(
    rf"^  (?:{_DOT_STRING} \[label={_DOT_STRING}, shape=(?:ellipse|box|octagon)\];"
    rf"|{_DOT_STRING} -> {_DOT_STRING} \[label={_DOT_STRING}, style=(?:solid|bold|dashed|dotted)\];)$"
)


def dot_unquote(token: str) -> str:
    """What Graphviz shows for a quoted label (``\\n`` a line break, ``\\X`` an X)."""
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), token[1:-1])


def check_dot(text: str, graph: SetGraph) -> None:
    lines = text.rstrip("\n").split("\n")
    assert lines[:4] == [
        "digraph escalade {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    assert lines[-1] == "}"
    body = lines[4:-1]
    for line in body:
        assert _DOT_LINE.match(line), line
    assert len(body) == len(graph.nodes) + len(graph.edges)
    shown = [dot_unquote(s) for line in body for s in re.findall(f"label=({_DOT_STRING})", line)]
    assert shown == [n.label for n in graph.nodes] + [e.label for e in graph.edges]


def test_dot_of_the_reference_set(policies_dir: Path) -> None:
    g = graph_of(policies_dir)
    text = render_dot(g)
    check_dot(text, g)
    assert '"event_0" -> "policy_enterprise_critical" [label="priority 100: ' in text


def test_hostile_labels_cannot_break_the_dot(hostile: Path) -> None:
    g = graph_of(hostile)
    text = render_dot(g)
    check_dot(text, g)
    assert r'label="fine · T\"]);\n%% click' in text
    assert r"\\ end" in text  # a backslash in the title is a backslash, not an escape


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_graphviz_draws_the_hostile_labels_as_written(hostile: Path) -> None:
    svg = subprocess.run(
        ["dot", "-Tsvg"],
        input=render_dot(graph_of(hostile)),
        capture_output=True,
        text=True,
        check=False,
    )
    assert svg.returncode == 0, svg.stderr
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg.stdout)]
    for line in HOSTILE_TITLE.split("\n"):
        assert line in texts
    assert HOSTILE_WHEN in texts
    assert '<g id="node' in svg.stdout and svg.stdout.count('class="node"') == 5


# --------------------------------------------------------------------------- command line


def test_cli_formats_and_errors(policies_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    mermaid = runner.invoke(main, ["graph", str(policies_dir)])
    assert mermaid.exit_code == 0 and mermaid.output.startswith("flowchart LR\n")
    dot = runner.invoke(main, ["graph", str(policies_dir), "--format", "dot"])
    assert dot.exit_code == 0 and dot.output.startswith("digraph escalade {\n")

    (tmp_path / "broken.esc").write_text("policy p {\n  owner primary nobody\n}\n", "utf-8")
    broken = runner.invoke(main, ["graph", str(tmp_path)])
    assert broken.exit_code == 1 and "graph refused" in broken.output
    assert "error[" in broken.output and "Traceback" not in broken.output
    missing = runner.invoke(main, ["graph", str(tmp_path / "nope")])
    assert missing.exit_code == 2
    assert runner.invoke(main, ["graph", str(policies_dir), "--format", "svg"]).exit_code == 2
