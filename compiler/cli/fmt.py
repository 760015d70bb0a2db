"""``escalade fmt``: policy files and policy tests in the canonical layout (see
:mod:`escalade.compiler.fmt` and :mod:`escalade.compiler.testfmt`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from escalade.compiler import display_path
from escalade.compiler.build import unified_diff
from escalade.compiler.cli.paths import policy_path
from escalade.compiler.fmt import FormatResult, files_to_format, format_file
from escalade.compiler.formats import render_text
from escalade.runtime.cli.output import color_option, echo_json, format_option, use_color


@click.command("fmt")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--check", "check_only", is_flag=True, help="Write nothing; exit 1 if any file would change."
)
@click.option("--diff", "show_diff", is_flag=True, help="Write nothing; print a unified diff.")
@format_option("text", "json")
@color_option
def fmt_command(
    paths: tuple[Path, ...], check_only: bool, show_diff: bool, fmt: str, color: str
) -> None:
    """Reformat policy files and policy tests (*_test.esc) under PATHS (default: `policies`
    from escalade.yaml) in the canonical layout; long conditions wrap at and/or.

    A file with a syntax error is not touched (exit 1). With --check or --diff nothing
    is written; --check exits 1 when a file would change. With --format json, one
    document: {"files": N, "changed": [...], "errors": [{"file", "message"}], "written":
    BOOL}.
    """
    if show_diff and fmt == "json":
        raise click.UsageError("--diff prints a unified diff: it takes no --format json")
    paths = tuple(policy_path(p) for p in paths) if paths else (policy_path(None),)
    tint = use_color(color, sys.stderr)
    files = files_to_format(paths)
    changed: list[str] = []
    errors: list[dict[str, str]] = []
    for file in files:
        shown = display_path(file)
        result = format_file(file, shown)
        if result.formatted is None:
            errors.append({"file": shown, "message": _refusal(result, tint, fmt == "text")})
            continue
        if not result.changed:
            continue
        changed.append(shown)
        if show_diff:
            before = result.original.encode("utf-8")
            click.echo(unified_diff(shown, before, result.formatted.encode("utf-8")), nl=False)
        if check_only:
            if fmt == "text":
                click.echo(f"would reformat {shown}", err=True)
        elif not show_diff and not _write(file, shown, result.formatted, errors, fmt == "text"):
            changed.pop()
    written = not (check_only or show_diff)
    if fmt == "json":
        echo_json({"files": len(files), "changed": changed, "errors": errors, "written": written})
    elif check_only and changed:
        click.echo(f"{len(changed)} file(s) would be reformatted; run `escalade fmt`", err=True)
    sys.exit(1 if errors or (check_only and changed) else 0)


def _refusal(result: FormatResult, color: bool, echo: bool) -> str:
    """Why a file was left alone (printed to stderr when ``echo``)."""
    if result.refusal is not None:
        message = result.refusal
        if echo:
            click.echo(f"error: {message}", err=True)
        return message
    message = render_text(list(result.diagnostics), result.sources)
    if echo:
        text = render_text(list(result.diagnostics), result.sources, color=color)
        click.echo(text, nl=False, err=True, color=color)
        click.echo(f"error: {result.path} not formatted: fix the error above first", err=True)
    return message


def _write(file: Path, shown: str, text: str, errors: list[dict[str, str]], echo: bool) -> bool:
    """Write the formatted text; a failure is recorded in ``errors``."""
    try:
        file.write_bytes(text.encode("utf-8"))
    except OSError as exc:
        message = f"cannot write {shown}: {exc.strerror}"
        errors.append({"file": shown, "message": message})
        if echo:
            click.echo(f"error: {message}", err=True)
        return False
    if echo:
        click.echo(f"reformatted {shown}", err=True)
    return True
