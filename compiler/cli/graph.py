"""``escalade graph``: the policy set as one Mermaid or DOT graph."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from escalade.compiler import load_policy_set
from escalade.compiler.build import resolve_config
from escalade.compiler.config import ConfigError
from escalade.compiler.formats import render_text
from escalade.compiler.graph import render_dot, render_mermaid, set_graph


@click.command("graph")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["mermaid", "dot"]),
    default="mermaid",
    show_default=True,
    help="Mermaid (GitHub renders it) or Graphviz DOT.",
)
def graph_command(path: Path | None, fmt: str) -> None:
    """Print the policy set under PATH (default: `policies` from escalade.yaml) as a graph:
    event kinds → policies (priority and condition), handoffs, triage owners.

    Refuses (exit 1) when the set has errors.
    """
    if path is None:
        try:
            path = resolve_config(None).policies_path
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    if not path.exists():
        raise click.UsageError(f"no such file or directory: {path}")
    result = load_policy_set(path, analyze=False)
    if result.pset is None or result.errors:
        click.echo(render_text(result.diagnostics, result.diags.sources), nl=False, err=True)
        click.echo("graph refused: fix the errors above first", err=True)
        sys.exit(1)
    graph = set_graph(result.pset)
    click.echo(render_mermaid(graph) if fmt == "mermaid" else render_dot(graph), nl=False)
