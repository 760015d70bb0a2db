"""The runtime's command line: thin click commands over :mod:`escalade.runtime.app` and the engine.

``COMMANDS`` (name -> where the command lives) is added to ``escalade`` by the
compiler's CLI and to ``escalade-runtime`` (``python -m escalade.runtime``) by
:func:`main`, for hosts that run rule packs but never compile them. Runtime-side:
no compiler imports. Each command's module is imported only when that command
runs (or ``--help`` lists them all), so ``escalade event`` does not import the
server, the token commands or the compiler's commands.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

import click

_HERE = "escalade.runtime.cli"

# Command name -> "module:attribute" of its click command.
COMMANDS: dict[str, str] = {
    "event": f"{_HERE}.escalations:event_command",
    "tick": f"{_HERE}.escalations:tick_command",
    "ack": f"{_HERE}.escalations:ack_command",
    "resolve": f"{_HERE}.escalations:resolve_command",
    "close": f"{_HERE}.escalations:close_command",
    "transfer": f"{_HERE}.escalations:transfer_command",
    "absent": f"{_HERE}.escalations:absent_command",
    "status": f"{_HERE}.reads:status_command",
    "oncall": f"{_HERE}.reads:oncall_command",
    "override": f"{_HERE}.roster:override_command",
    "silence": f"{_HERE}.silence:silence_group",
    "postmortem": f"{_HERE}.escalations:postmortem_command",
    "revert": f"{_HERE}.revert:revert_command",
    "deadletter": f"{_HERE}.reads:deadletter_group",
    "report": f"{_HERE}.reads:report_command",
    "audit": f"{_HERE}.reads:audit_group",
    "serve": f"{_HERE}.serve:serve_command",
    "migrate": f"{_HERE}.escalations:migrate_command",
    "token": f"{_HERE}.token:token_group",
    "pack": f"{_HERE}.pack:pack",
    "source": f"{_HERE}.source:source_group",
}


class LazyGroup(click.Group):
    """A group that imports a command's module when the command is looked up:
    running one command imports that command only; ``--help`` imports them all."""

    def __init__(self, *args: Any, lazy: Mapping[str, str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            self.add_command(load_command(self.lazy[cmd_name]), cmd_name)
        return super().get_command(ctx, cmd_name)


def load_command(where: str) -> click.Command:
    """The click command at ``"module:attribute"``."""
    module, _, attribute = where.partition(":")
    command = getattr(importlib.import_module(module), attribute)
    if not isinstance(command, click.Command):
        raise TypeError(f"{where} is not a click command")
    return command


def load_pack_file(path: str) -> dict[str, Any]:
    """Read and validate a pack (schema, references and content hash); exit 1 when refused."""
    from escalade.runtime.pack import PackError, RulePack

    try:
        return dict(RulePack.load(path).raw)
    except PackError as exc:
        raise click.ClickException(f"refusing the pack:\n{exc}") from None


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Escalade runtime: run compiled rule packs (no compiler needed)."""


__all__ = ["COMMANDS", "LazyGroup", "load_command", "load_pack_file", "main"]
