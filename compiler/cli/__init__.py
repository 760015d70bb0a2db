"""The ``escalade`` command: thin click commands over the library, one module each.

Each command reads its options, calls the library and turns the outcome into
output and an exit code: 0 ok, 1 findings or failure, 2 usage error, 3 (diff)
behaviour changed. The runtime's commands (``escalade-runtime``) are here too.
A command's module is imported only when that command runs (``--help`` imports
them all): ``escalade event`` imports neither the compiler's commands nor jinja2.
"""

from __future__ import annotations

import click

from escalade.runtime.cli import COMMANDS as RUNTIME_COMMANDS
from escalade.runtime.cli import LazyGroup

_HERE = "escalade.compiler.cli"

# Command name -> "module:attribute" of its click command.
COMMANDS: dict[str, str] = {
    "check": f"{_HERE}.check:check_command",
    "test": f"{_HERE}.test:test_command",
    "simulate": f"{_HERE}.simulate:simulate_command",
    "diff": f"{_HERE}.diff:diff_command",
    "build": f"{_HERE}.build:build_command",
    "explain": f"{_HERE}.explain:explain_command",
    "explain-code": f"{_HERE}.explain_code:explain_code_command",
    "init": f"{_HERE}.init:init_command",
    "fmt": f"{_HERE}.fmt:fmt_command",
    "graph": f"{_HERE}.graph:graph_command",
    "lsp": f"{_HERE}.lsp:lsp_command",
    **RUNTIME_COMMANDS,
}


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="escalade")
def main() -> None:
    """Escalade: policy-as-code for ticket escalation."""


__all__ = ["COMMANDS", "main"]
