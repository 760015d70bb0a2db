"""``escalade explain-code``: a diagnostic code's documentation, like ``ruff rule``."""

from __future__ import annotations

import difflib
import json
import textwrap
from dataclasses import asdict

import click

from escalade.compiler.codes import CODES, Code, find_code
from escalade.compiler.rules_doc import code_markdown, code_text
from escalade.compiler.sarif import help_uri

WIDTH = 88


@click.command("explain-code")
@click.argument("code", required=False)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "markdown", "json"]),
    default="text",
    show_default=True,
    help="How to print the documentation.",
)
def explain_code_command(code: str | None, fmt: str) -> None:
    """Explain a diagnostic CODE (E302, or its name, ambiguous-route): what it means, why
    it matters, an example that triggers it and the fix. Without CODE, list every code."""
    if code is None:
        _list(fmt)
        return
    found = find_code(code)
    if found is None:
        close = difflib.get_close_matches(code.upper(), list(CODES), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise click.UsageError(
            f"no diagnostic code {code!r}{hint} (`escalade explain-code` lists them)"
        )
    if fmt == "json":
        click.echo(json.dumps({**asdict(found), "help_uri": help_uri(found)}, indent=2))
    elif fmt == "markdown":
        click.echo(code_markdown(found, heading="#"))
        click.echo(f"Documentation: <{help_uri(found)}>")
    else:
        click.echo(_wrapped(code_text(found)))
        click.echo(f"\nDocumentation: {help_uri(found)}")


def _list(fmt: str) -> None:
    codes = list(CODES.values())
    if fmt == "json":
        click.echo(json.dumps([_summary(c) for c in codes], indent=2))
        return
    for c in codes:
        click.echo(f"{c.code}  {c.name:<20} {c.severity:<8} {c.description}")
    click.echo("\n`escalade explain-code CODE` explains one.")


def _summary(c: Code) -> dict[str, str]:
    return {
        "code": c.code,
        "name": c.name,
        "severity": c.severity,
        "description": c.description,
        "help_uri": help_uri(c),
    }


def _wrapped(text: str) -> str:
    """Prose paragraphs wrapped for a terminal; indented policy source left as written."""
    paragraphs = text.split("\n\n")
    out = []
    for p in paragraphs:
        if p.startswith(" ") or "\n" in p:
            out.append(p)
        else:
            out.append(textwrap.fill(p, WIDTH))
    return "\n\n".join(out)
