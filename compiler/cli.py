"""The ``escalade`` command: a thin click shell over the library.

Exit codes: 0 ok, 1 findings or failure, 2 usage error, 3 (diff) behaviour changed.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from escalade.compiler import load_policy_set
from escalade.compiler.formats import render_json, render_text


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="escalade")
def main() -> None:
    """Escalade: policy-as-code for ticket escalation."""


@main.command()
@click.argument("path", default="policies", type=click.Path(path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif", "github"]),
    default="text",
    show_default=True,
    help="How to print the findings.",
)
@click.option("--strict", is_flag=True, help="Warnings fail the check too.")
def check(path: Path, fmt: str, strict: bool) -> None:
    """Compile and statically check the policy set under PATH (default policies/).

    Exit 0 when clean, 1 on findings (errors, or warnings with --strict), 2 on usage errors.
    """
    if not path.exists():
        raise click.UsageError(
            f"no such file or directory: {path}", ctx=click.get_current_context()
        )
    result = load_policy_set(path)
    diags = result.diagnostics
    if fmt == "json":
        click.echo(render_json(diags, len(result.files)), nl=False)
    elif fmt in ("sarif", "github"):
        import importlib

        # Rendered by escalade.compiler.sarif (the analysis work); absent until it lands.
        sarif = importlib.import_module("escalade.compiler.sarif")
        render = sarif.render_sarif if fmt == "sarif" else sarif.render_github
        from escalade.compiler.config import find_root

        # SARIF URIs and annotation paths are relative to the repository root
        click.echo(render(diags, find_root(path)), nl=False)
    else:
        color = sys.stdout.isatty()
        click.echo(render_text(diags, result.diags.sources, color=color), nl=False)
    failed = result.errors > 0 or (strict and result.warnings > 0)
    sys.exit(1 if failed else 0)


# --- command registration: each area adds its commands below, one line each ---
from escalade.runtime.cli import pack as _pack  # noqa: E402

main.add_command(_pack)
from escalade.runtime.cli import COMMANDS as _RUNTIME_COMMANDS  # noqa: E402

for _command in _RUNTIME_COMMANDS:
    main.add_command(_command)
from escalade.compiler.policytest import simulate_command, test_command  # noqa: E402

main.add_command(test_command)
main.add_command(simulate_command)


@main.command("diff")
@click.argument("base")
@click.argument("head", required=False)
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), default=Path("."))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["markdown", "json"]),
    default="markdown",
    show_default=True,
)
def diff_command(base: str, head: str | None, repo: Path, fmt: str) -> None:
    """Semantic diff of the policy set between git revisions BASE and HEAD.

    HEAD defaults to the working tree. Exit 0: no behaviour change; 3: behaviour
    changed; 1: a side does not compile; 2: usage error (e.g. unknown revision).
    """
    from escalade.compiler import diff as semantic
    from escalade.compiler import gitrev
    from escalade.compiler.build import load_for_build, load_revision
    from escalade.compiler.config import ConfigError, load_config

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


from escalade.compiler.build import build_command  # noqa: E402

main.add_command(build_command)
from escalade.compiler.explain import explain_command  # noqa: E402

main.add_command(explain_command)

from escalade.compiler.fmt import fmt_command  # noqa: E402

main.add_command(fmt_command)

from escalade.compiler.graph import graph_command  # noqa: E402

main.add_command(graph_command)
