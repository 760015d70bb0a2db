"""``escalade diff BASE [HEAD]``: what a change to the policy set does to behaviour."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from escalade.compiler import diff as semantic
from escalade.compiler import gitrev
from escalade.compiler.build import load_for_build, load_revision
from escalade.compiler.config import ConfigError, load_config
from escalade.runtime.cli.output import format_option


@click.command("diff")
@click.argument("base")
@click.argument("head", required=False)
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@format_option("markdown", "json")
def diff_command(base: str, head: str | None, repo: Path, fmt: str) -> None:
    """Semantic diff of the policy set between git revisions BASE and HEAD.

    HEAD defaults to the working tree. Exit 0: no behaviour change; 3: behaviour
    changed; 1: a side does not compile; 2: usage error (e.g. unknown revision).
    """
    try:
        root = gitrev.repo_root(repo)
        base_commit = gitrev.resolve(root, base)
        head_commit = gitrev.resolve(root, head) if head else None
    except gitrev.GitError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        config = load_config(root)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    folder = config.policies.rstrip("/") or "."
    before = load_revision(root, base_commit, folder, config.version)
    if head_commit is None:
        after = load_for_build(root / folder, root, config.version)
        head_label = "working tree"
    else:
        after = load_revision(root, head_commit, folder, config.version)
        head_label = str(head)
    broken = [(label, r) for label, r in ((base, before), (head_label, after)) if r.errors]
    if broken or before.pset is None or after.pset is None:
        for label, r in broken:
            click.echo(f"error: the policy set at {label} does not compile:", err=True)
            for line in semantic.errors_of(r):
                click.echo(f"  {line}", err=True)
        sys.exit(1)
    result = semantic.diff_sets(before.pset, after.pset, base, head_label)
    render = semantic.render_json if fmt == "json" else semantic.render_markdown
    click.echo(render(result), nl=False)
    sys.exit(3 if result.behaviour_changed else 0)
