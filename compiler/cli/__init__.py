"""The ``escalade`` command: thin click commands over the library, one module each.

Each command reads its options, calls the library and turns the outcome into
output and an exit code: 0 ok, 1 findings or failure, 2 usage error, 3 (diff)
behaviour changed. The runtime's commands (``escalade-runtime``) are here too.
"""

from __future__ import annotations

import click

from escalade.compiler.cli.build import build_command
from escalade.compiler.cli.check import check_command
from escalade.compiler.cli.diff import diff_command
from escalade.compiler.cli.explain import explain_command
from escalade.compiler.cli.fmt import fmt_command
from escalade.compiler.cli.graph import graph_command
from escalade.compiler.cli.simulate import simulate_command
from escalade.compiler.cli.test import test_command
from escalade.runtime.cli import COMMANDS as RUNTIME_COMMANDS
from escalade.runtime.cli import pack


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="escalade")
def main() -> None:
    """Escalade: policy-as-code for ticket escalation."""


for _command in (
    check_command,
    pack,
    *RUNTIME_COMMANDS,
    test_command,
    simulate_command,
    diff_command,
    build_command,
    explain_command,
    fmt_command,
    graph_command,
):
    main.add_command(_command)

__all__ = ["main"]
