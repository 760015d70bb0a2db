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
        click.echo(render(diags), nl=False)
    else:
        color = sys.stdout.isatty()
        click.echo(render_text(diags, result.diags.sources, color=color), nl=False)
    failed = result.errors > 0 or (strict and result.warnings > 0)
    sys.exit(1 if failed else 0)


# --- command registration: each area adds its commands below, one line each ---
from escalade.runtime.packcli import pack as _pack  # noqa: E402

main.add_command(_pack)
from escalade.runtime.cli import COMMANDS as _RUNTIME_COMMANDS  # noqa: E402

_ = [main.add_command(_command) for _command in _RUNTIME_COMMANDS]
from escalade.compiler.policytest import simulate_command, test_command  # noqa: E402

main.add_command(test_command)
main.add_command(simulate_command)
