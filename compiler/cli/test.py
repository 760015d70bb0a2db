"""``escalade test``: policy tests (``*_test.esc``) on the real engine (see
:mod:`escalade.compiler.policytest`); JSON and JUnit XML in :mod:`escalade.compiler.testreport`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from escalade.compiler.cli.paths import policy_path
from escalade.compiler.policytest import PolicySetError, TestRun, pack_from_policies, run_files
from escalade.compiler.testreport import render_json, render_junit
from escalade.runtime.cli.output import color_option, format_option, use_color
from escalade.runtime.pack import RulePack


def pack_of(policies: Path) -> dict[str, Any]:
    """The pack built from ``policies``; exit 1 with the reason when there is none."""
    try:
        return pack_from_policies(policies)
    except PolicySetError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("test")
@click.argument("path", type=click.Path(path_type=Path), required=False)
@format_option("text", "json")
@click.option(
    "--junit",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also write the results as JUnit XML to FILE (a suite per test file, for CI).",
)
@color_option
def test_command(path: Path | None, fmt: str, junit: Path | None, color: str) -> None:
    """Run policy tests (*_test.esc) on the real engine with a virtual clock.

    PATH is a test file or a folder (default: `policies` from escalade.yaml). Exit 0
    when every test passes, 1 when one fails, 2 on usage errors.
    """
    path = policy_path(path)
    if not path.is_dir() and not path.name.endswith("_test.esc"):
        raise click.UsageError(f"{path} is not a policy test file (*_test.esc) or a directory")
    policies = path if path.is_dir() else path.parent
    files = sorted(policies.rglob("*_test.esc")) if path.is_dir() else [path]
    if not files:
        raise click.ClickException(f"no *_test.esc files under {path}")
    pack = pack_of(policies)
    run = run_files(pack, files)
    names = sorted(p.name for p in RulePack.trusted(pack).policies)
    if junit is not None:
        try:
            junit.write_bytes(render_junit(run))
        except OSError as exc:
            raise click.FileError(str(junit), hint=exc.strerror) from None
    if fmt == "json":
        click.echo(render_json(run, names), nl=False)
    else:
        _print_text(run, names, len(files), use_color(color))
    if run.failed:
        sys.exit(1)


def _print_text(run: TestRun, names: list[str], files: int, color: bool) -> None:
    """Failures, the counts, and the policies no test exercises."""
    fail = click.style("FAIL", fg="red", bold=True) if color else "FAIL"
    for failure in run.failures:
        click.echo(f"{fail} {failure}", color=color)
    click.echo(f"{run.passed} passed, {run.failed} failed ({files} file(s))")
    missing = [n for n in names if n not in run.exercised]
    if missing:
        click.echo(f"policies no test exercises: {', '.join(missing)}")
    else:
        click.echo(f"every policy is exercised ({len(names)})")
