"""``escalade graph``: the policy set as one Mermaid or DOT graph (or its JSON)."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import click

from escalade.compiler import load_policy_set
from escalade.compiler.cli.paths import policy_path
from escalade.compiler.formats import render_text
from escalade.compiler.graph import render_dot, render_mermaid, set_graph
from escalade.runtime.cli.output import color_option, echo_json, format_option, use_color


@click.command("graph")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@format_option("mermaid", "dot", "json")
@color_option
def graph_command(path: Path | None, fmt: str, color: str) -> None:
    """Print the policy set under PATH (default: `policies` from escalade.yaml) as a graph:
    event kinds → policies (priority and condition), handoffs, triage owners.

    Mermaid (GitHub renders it), Graphviz DOT, or JSON ({"nodes": [{"id", "label",
    "kind"}], "edges": [{"source", "target", "label", "kind"}]}). Refuses (exit 1) when the
    set has errors.
    """
    path = policy_path(path)
    result = load_policy_set(path, analyze=False)
    if result.pset is None or result.errors:
        tint = use_color(color, sys.stderr)
        text = render_text(result.diagnostics, result.diags.sources, color=tint)
        click.echo(text, nl=False, err=True, color=tint)
        click.echo("graph refused: fix the errors above first", err=True)
        sys.exit(1)
    graph = set_graph(result.pset)
    if fmt == "json":
        echo_json(dataclasses.asdict(graph))
        return
    click.echo(render_mermaid(graph) if fmt == "mermaid" else render_dot(graph), nl=False)
