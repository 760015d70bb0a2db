"""``escalade build``: the rule pack, runbooks and CODEOWNERS from the policy set."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from escalade.compiler import gitrev
from escalade.compiler.backends.codeowners import CodeownersError
from escalade.compiler.build import (
    BuildError,
    BuildOutputs,
    build_outputs,
    build_release,
    codeowners_target,
    load_for_build,
    resolve_config,
    sources_inside,
    stale_files,
    unified_diff,
    write_outputs,
)
from escalade.compiler.config import Config, ConfigError
from escalade.compiler.formats import render_json, render_text
from escalade.runtime.cli.output import color_option, echo_json, format_option, use_color
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
@click.option(
    "--codeowners",
    "codeowners",
    type=click.Path(path_type=Path),
    help="Write CODEOWNERS here (inside the repository). Default: .github/CODEOWNERS, "
    "and only when the output directory is the configured one.",
)
@format_option("text", "json")
@color_option
def build_command(
    path: Path | None,
    output: Path | None,
    check_only: bool,
    rev: str | None,
    stamp_commit: bool,
    codeowners: Path | None,
    fmt: str,
    color: str,
) -> None:
    """Compile PATH (default: `policies` from escalade.yaml) into the rule pack, runbooks
    and .github/CODEOWNERS.

    Refuses when `escalade check` finds errors. With --check, writes nothing and exits 1
    with a unified diff when anything under the output directory or CODEOWNERS is stale.
    With --format json, one document (see the README); a refusal prints check's JSON.

    CODEOWNERS is written only inside the repository that holds the policies: to
    .github/CODEOWNERS when the output directory is the configured one, or where
    --codeowners says. Policies outside the repository root are refused.
    """
    try:
        config = resolve_config(path)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if rev is not None or stamp_commit:
        if check_only:
            raise click.UsageError("--check verifies the committed outputs, which carry no commit")
        _release(config, path, output, rev, fmt, codeowners)
        return
    src = path if path is not None else config.policies_path
    if not src.exists():
        origin = "" if path is not None else " (`policies` in escalade.yaml, else policies/)"
        raise click.UsageError(f"no such file or directory: {src}{origin}")
    out = output if output is not None else config.output_path
    try:
        sources_inside(src, config.root)
        codeowners_path = codeowners_target(config, out, codeowners)
    except BuildError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    result = load_for_build(src, config.root, config.version)
    if result.pset is None or result.errors:
        if fmt == "json":
            click.echo(render_json(result.diagnostics, len(result.files)), nl=False)
        else:
            tint = use_color(color)
            text = render_text(result.diagnostics, result.diags.sources, color=tint)
            click.echo(text, nl=False, color=tint)
        click.echo("build refused: fix the errors above first", err=True)
        sys.exit(1)
    try:
        outputs = build_outputs(result, config.root, out, codeowners_path=codeowners_path)
    except (CodeownersError, PackError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if check_only:
        _check_fresh(outputs, config.root, fmt)
        return
    try:
        touched = write_outputs(outputs, config.root)
    except OSError as exc:
        click.echo(f"error: cannot write {exc.filename}: {exc.strerror}", err=True)
        sys.exit(1)
    if fmt == "json":
        echo_json({**_summary(outputs), "changed": touched})
        return
    if codeowners_path is None:
        click.echo(
            "CODEOWNERS not written: the output directory is not the configured one "
            "(pass --codeowners PATH to write it)",
            err=True,
        )
    click.echo(
        f"built pack {outputs.pack.version} ({outputs.pack.content_hash[:19]}): "
        f"{len(outputs.pack.policies)} policies, {len(outputs.files)} files, "
        f"{len(touched)} changed"
    )


def _summary(outputs: BuildOutputs, commit: str | None = None) -> dict[str, Any]:
    """What ``--format json`` says of a build: the pack, and every file it produces
    (repository-relative: the pack, the Markdown runbooks, CODEOWNERS)."""
    pack = outputs.pack
    about = {"version": pack.version, "content_hash": pack.content_hash}
    return {
        "pack": {**about, "policies": len(pack.policies), "commit": commit},
        "files": sorted(outputs.files),
    }


def _check_fresh(outputs: BuildOutputs, root: Path, fmt: str) -> None:
    """``--check``: a diff of every stale file (JSON: their paths), exit 1 when any is."""
    stale = stale_files(outputs, root)
    if fmt == "json":
        echo_json({**_summary(outputs), "stale": [rel for rel, _have, _want in stale]})
    else:
        for rel, have, want in stale:
            click.echo(unified_diff(rel, have, want), nl=False)
    if stale:
        click.echo(
            f"{len(stale)} generated file(s) are stale; run `escalade build` and commit them",
            err=True,
        )
        sys.exit(1)
    if fmt != "json":
        click.echo(f"{len(outputs.files)} generated file(s) are up to date")


def _release(
    config: Config,
    path: Path | None,
    output: Path | None,
    rev: str | None,
    fmt: str,
    codeowners: Path | None,
) -> None:
    """``--rev`` / ``--stamp-commit``: a build stamped with its source commit."""
    try:
        built = build_release(config, path, output, rev, codeowners)
    except (gitrev.GitError, ConfigError, BuildError) as exc:
        if isinstance(exc, BuildError):
            click.echo(exc.report, nl=False)
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    pack = built.outputs.pack
    if fmt == "json":
        summary = _summary(built.outputs, built.commit)
        echo_json({**summary, "output": built.out, "changed": built.written})
        return
    click.echo(
        f"built pack {pack.version} of commit {built.commit[:12]} into {built.out}/: "
        f"{len(pack.policies)} policies, {len(built.written)} files written"
    )
