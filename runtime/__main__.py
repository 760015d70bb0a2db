"""``python -m escalade.runtime``: the runtime's commands without the compiler.

The same commands as ``escalade event|tick|ack|...|pack ...``, for hosts that
run rule packs but never compile policies (no lark, no jinja2 installed).
"""

from __future__ import annotations

import click

from escalade.runtime.cli import COMMANDS
from escalade.runtime.packcli import pack


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Escalade runtime: run compiled rule packs (no compiler needed)."""


for _command in (*COMMANDS, pack):
    main.add_command(_command)

if __name__ == "__main__":
    main()
