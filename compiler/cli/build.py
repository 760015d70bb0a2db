"""``escalade build``: the rule pack, runbooks and CODEOWNERS from the policy set."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from escalade.compiler import gitrev
from escalade.compiler.backends.codeowners import CodeownersError
from escalade.compiler.build import (
    BuildError,
    build_outputs,
    build_release,
    load_for_build,
    resolve_config,
    stale_files,
    unified_diff,
    write_outputs,
)
from escalade.compiler.config import Config, ConfigError
from escalade.compiler.formats import render_text
from escalade.runtime.pack import PackError


@click.command("build")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(path_type=Path), help="Output directory (default generated/)."
)
@click.option(
    "--check", "check_only", is_flag=True, help="Fail with a diff when outputs are stale."
)
@click.option(
    "--rev",
    metavar="REV",
    help="Build the policy set as it was at git revision REV, from git objects only "
    "(the work tree is not touched; output goes to out/<commit>/ unless -o).",
)
@click.option(
    "--stamp-commit",
    is_flag=True,
    help="Record the source commit in the pack (release builds; needs a clean policy set).",
)
def build_command(
    path: Path | None, output: Path | None, check_only: bool, rev: str | None, stamp_commit: bool
) -> None:
    """Compile PATH (default: `policies` from escalade.yaml) into the rule pack, runbooks
    and .github/CODEOWNERS.

    Refuses when `escalade check` finds errors. With --check, writes nothing and exits 1
    with a unified diff when anything under the output directory or CODEOWNERS is stale.
    """
    try:
        config = resolve_config(path)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if rev is not None or stamp_commit:
        if check_only:
            raise click.UsageError("--check verifies the committed outputs, which carry no commit")
        _release(config, path, output, rev)
        return
    src = path if path is not None else config.policies_path
    if not src.exists():
        raise click.UsageError(f"no such file or directory: {src}")
    out = output if output is not None else config.output_path
    result = load_for_build(src, config.root, config.version)
    if result.pset is None or result.errors:
        click.echo(render_text(result.diagnostics, result.diags.sources, color=False), nl=False)
        click.echo("build refused: fix the errors above first", err=True)
        sys.exit(1)
    try:
        outputs = build_outputs(result, config.root, out)
    except (CodeownersError, PackError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if check_only:
        stale = stale_files(outputs, config.root)
        for rel, have, want in stale:
            click.echo(unified_diff(rel, have, want), nl=False)
        if stale:
            click.echo(
                f"{len(stale)} generated file(s) are stale; run `escalade build` and commit them",
                err=True,
            )
            sys.exit(1)
        click.echo(f"{len(outputs.files)} generated file(s) are up to date")
        return
    try:
        touched = write_outputs(outputs, config.root)
    except OSError as exc:
        click.echo(f"error: cannot write {exc.filename}: {exc.strerror}", err=True)
        sys.exit(1)
    click.echo(
        f"built pack {outputs.pack.version} ({outputs.pack.content_hash[:19]}): "
        f"{len(outputs.pack.policies)} policies, {len(outputs.files)} files, "
        f"{len(touched)} changed"
    )


def _release(config: Config, path: Path | None, output: Path | None, rev: str | None) -> None:
    """``--rev`` / ``--stamp-commit``: a build stamped with its source commit."""
    try:
        built = build_release(config, path, output, rev)
    except (gitrev.GitError, ConfigError, BuildError) as exc:
        if isinstance(exc, BuildError):
            click.echo(exc.report, nl=False)
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    pack = built.outputs.pack
    click.echo(
        f"built pack {pack.version} of commit {built.commit[:12]} into {built.out}/: "
        f"{len(pack.policies)} policies, {len(built.written)} files written"
    )
