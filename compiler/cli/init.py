"""``escalade init``: start a policy repository that passes check, build --check and test."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import click

from escalade.compiler.config import Config
from escalade.compiler.scaffold import Created, ScaffoldError, create, example_names

_GIT = {
    "initialized": "Initialized a git repository: commit everything, generated/ included.",
    "existing": "The directory is inside a git repository already: commit the new files there.",
    "absent": "git was not found: put the directory under version control before the first "
    "pull request (CODEOWNERS and `escalade diff` work on git).",
    "skipped": "No git repository was created (--no-git).",
}


@click.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--example",
    type=click.Choice(example_names()),
    help="Start from one of the bundled use cases instead of the commented starter policy.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Write into a non-empty directory, replacing files of the same name.",
)
@click.option("--no-git", is_flag=True, help="Do not `git init` the directory.")
def init_command(directory: Path, example: str | None, force: bool, no_git: bool) -> None:
    """Create a policy repository in DIRECTORY (default: here): escalade.yaml, policies/
    with a schema, a directory, a policy and its test, a README, pre-commit hooks and a
    GitHub workflow; then build generated/ and .github/CODEOWNERS.

    `escalade check`, `escalade build --check` and `escalade test` pass in it at once.
    Refuses a directory that is not empty (a .git folder aside) unless --force.
    """
    try:
        created = create(directory, example, force=force, git=not no_git)
    except ScaffoldError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    _report(created, directory, example)


def _report(created: Created, directory: Path, example: str | None) -> None:
    origin = f"the bundled {example} use case" if example else "the starter policy"
    click.echo(f"Created a policy repository in {directory} from {origin}:")
    for path in created.sources:
        click.echo(f"  {path}")
    click.echo(
        f"Built {len(created.generated)} generated file(s) "
        f"({len(created.policies)} policies: {', '.join(created.policies)})."
    )
    click.echo(_GIT[created.git])
    click.echo("\nNext steps:")
    if directory.resolve() != Path.cwd().resolve():
        click.echo(f"  cd {shlex.quote(str(directory))}")
    policies = Config(root=created.root).policies
    click.echo(f"  escalade check --strict    # edit {policies}, then check,")
    click.echo("  escalade test              # test,")
    click.echo("  escalade build             # and rebuild generated/ before each commit")
    click.echo("  pre-commit install         # optional: the same checks on every commit")
