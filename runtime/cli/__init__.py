"""The runtime's command line: thin click commands over :mod:`escalade.runtime.app` and the engine.

``COMMANDS`` and ``pack`` are added to ``escalade`` by the compiler's CLI and to
``escalade-runtime`` (``python -m escalade.runtime``) by :func:`main`, for hosts
that run rule packs but never compile them. Runtime-side: no compiler imports.
"""

from __future__ import annotations

from typing import Any

import click

from escalade.runtime.cli.escalations import (
    absent_command,
    ack_command,
    close_command,
    deadletter_replay,
    event_command,
    migrate_command,
    postmortem_command,
    resolve_command,
    tick_command,
    transfer_command,
)
from escalade.runtime.cli.pack import pack
from escalade.runtime.cli.reads import (
    audit_group,
    deadletter_group,
    oncall_command,
    report_command,
    status_command,
)
from escalade.runtime.cli.serve import serve_command
from escalade.runtime.cli.token import token_group
from escalade.runtime.pack import PackError, RulePack

COMMANDS: list[click.Command] = [
    event_command,
    tick_command,
    ack_command,
    resolve_command,
    close_command,
    transfer_command,
    absent_command,
    status_command,
    oncall_command,
    postmortem_command,
    deadletter_group,
    report_command,
    audit_group,
    serve_command,
    migrate_command,
    token_group,
]
deadletter_group.add_command(deadletter_replay)


def load_pack_file(path: str) -> dict[str, Any]:
    """Read and validate a pack (schema, references and content hash); exit 1 when refused."""
    try:
        return dict(RulePack.load(path).raw)
    except PackError as exc:
        raise click.ClickException(f"refusing the pack:\n{exc}") from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Escalade runtime: run compiled rule packs (no compiler needed)."""


for _command in (*COMMANDS, pack):
    main.add_command(_command)

__all__ = ["COMMANDS", "load_pack_file", "main", "pack"]
