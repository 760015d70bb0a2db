"""``escalade fmt``: policy files in the canonical layout (see :mod:`escalade.compiler.fmt`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from escalade.compiler import display_path
from escalade.compiler.build import resolve_config, unified_diff
from escalade.compiler.config import ConfigError
from escalade.compiler.fmt import files_to_format, format_file
from escalade.compiler.formats import render_text


@click.command("fmt")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--check", "check_only", is_flag=True, help="Write nothing; exit 1 if any file would change."
)
@click.option("--diff", "show_diff", is_flag=True, help="Write nothing; print a unified diff.")
def fmt_command(paths: tuple[Path, ...], check_only: bool, show_diff: bool) -> None:
    """Reformat policy files (default: the `policies` folder) in the canonical layout.

    Policy tests (*_test.esc) are left as written. A file with a syntax error is
    not touched (exit 1). With --check or --diff nothing is written; --check exits
    1 when a file would change.
    """
    if not paths:
        try:
            paths = (resolve_config(None).policies_path,)
        except ConfigError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
    for p in paths:
        if not p.exists():
            raise click.UsageError(f"no such file or directory: {p}")
    failed = False
    changed: list[str] = []
    for file in files_to_format(paths):
        shown = display_path(file)
        result = format_file(file, shown)
        if result.formatted is None:
            failed = True
            if result.refusal is not None:
                click.echo(f"error: {result.refusal}", err=True)
            else:
                text = render_text(list(result.diagnostics), result.sources)
                click.echo(text, nl=False, err=True)
                click.echo(f"error: {shown} not formatted: fix the error above first", err=True)
            continue
        if not result.changed:
            continue
        changed.append(shown)
        if show_diff:
            before = result.original.encode("utf-8")
            click.echo(unified_diff(shown, before, result.formatted.encode("utf-8")), nl=False)
        if check_only:
            click.echo(f"would reformat {shown}", err=True)
        elif not show_diff:
            try:
                file.write_bytes(result.formatted.encode("utf-8"))
            except OSError as exc:
                click.echo(f"error: cannot write {shown}: {exc.strerror}", err=True)
                failed = True
                continue
            click.echo(f"reformatted {shown}", err=True)
    if check_only and changed:
        click.echo(f"{len(changed)} file(s) would be reformatted; run `escalade fmt`", err=True)
    sys.exit(1 if failed or (check_only and changed) else 0)
