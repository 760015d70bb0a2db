"""``escalade lsp``: the language server for editors (see :mod:`escalade.compiler.lsp`)."""

from __future__ import annotations

import click

from escalade.compiler.lsp import DEFAULT_DEBOUNCE_MS, serve


@click.command("lsp")
@click.option(
    "--stdio", is_flag=True, help="Talk over stdin/stdout (the default and only transport)."
)
@click.option(
    "--debounce-ms",
    type=click.IntRange(min=0),
    default=DEFAULT_DEBOUNCE_MS,
    show_default=True,
    help="Quiet time after the last edit before the whole set is checked again.",
)
def lsp_command(stdio: bool, debounce_ms: int) -> None:
    """Run the language server: diagnostics, hover, definitions, references,
    completion, formatting and quick fixes for .esc files, over stdio."""
    serve(debounce_ms)
