"""``escalade test``: policy tests (``*_test.esc``) on the real engine (see
:mod:`escalade.compiler.policytest`)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from escalade.compiler.policytest import PolicySetError, pack_from_policies, run_files
from escalade.runtime.pack import RulePack


def pack_of(policies: Path) -> dict[str, Any]:
    """The pack built from ``policies``; exit 1 with the reason when there is none."""
    try:
        return pack_from_policies(policies)
    except PolicySetError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("test")
@click.argument(
    "path", type=click.Path(exists=True, path_type=Path), default=Path("policies"), required=False
)
def test_command(path: Path) -> None:
    """Run policy tests (*_test.esc) on the real engine with a virtual clock."""
    if not path.is_dir() and not path.name.endswith("_test.esc"):
        raise click.UsageError(f"{path} is not a policy test file (*_test.esc) or a directory")
    policies = path if path.is_dir() else path.parent
    files = sorted(policies.rglob("*_test.esc")) if path.is_dir() else [path]
    if not files:
        raise click.ClickException(f"no *_test.esc files under {path}")
    pack = pack_of(policies)
    run = run_files(pack, files)
    for failure in run.failures:
        click.echo(f"FAIL {failure}")
    names = sorted(p.name for p in RulePack.trusted(pack).policies)
    missing = [n for n in names if n not in run.exercised]
    click.echo(f"{run.passed} passed, {run.failed} failed ({len(files)} file(s))")
    if missing:
        click.echo(f"policies no test exercises: {', '.join(missing)}")
    else:
        click.echo(f"every policy is exercised ({len(names)})")
    if run.failed:
        sys.exit(1)
