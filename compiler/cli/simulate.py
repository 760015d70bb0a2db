"""``escalade simulate EVENTS.jsonl``: replay history on a virtual clock and print KPIs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from escalade.compiler.cli.paths import policy_path
from escalade.compiler.cli.test import pack_of
from escalade.compiler.policytest import TestSyntaxError, read_utf8
from escalade.runtime import kpi
from escalade.runtime.cli import load_pack_file
from escalade.runtime.cli.output import format_option
from escalade.runtime.simulate import replay


@click.command("simulate")
@click.argument("events", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--policies",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Build the pack from this policy directory (default: `policies` from escalade.yaml).",
)
@click.option(
    "--pack",
    "pack_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Use this rule pack instead of building one.",
)
@format_option("markdown", "json")
def simulate_command(events: Path, policies: Path | None, pack_path: Path | None, fmt: str) -> None:
    """Replay EVENTS.jsonl on a virtual clock and print KPIs."""
    if policies is not None and pack_path is not None:
        raise click.UsageError("give --policies or --pack, not both")
    if pack_path is not None:
        pack = load_pack_file(str(pack_path))
    else:
        pack = pack_of(policy_path(policies, "--policies"))
    try:
        lines = read_utf8(events).splitlines()
    except TestSyntaxError as exc:
        raise click.ClickException(str(exc)) from None
    with click.progressbar(length=len(lines), label="replaying", file=sys.stderr) as bar:
        # a malformed line (even absurdly nested JSON) is rejected and counted, not fatal
        result = replay(pack, lines, on_line=lambda: bar.update(1))
    summary = (
        f"{result.applied} events applied, {result.duplicates} duplicates, {result.rejected} rejected,"
        f" {result.commands} operator commands ({len(result.refused)} refused)"
    )
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "replay": {
                        "applied": result.applied,
                        "duplicates": result.duplicates,
                        "rejected": result.rejected,
                        "commands": result.commands,
                        "refused": result.refused,
                    },
                    "kpis": result.kpis,
                },
                indent=2,
                sort_keys=True,
            )
        )
        return
    click.echo(kpi.render_markdown(result.kpis) + f"\nReplay: {summary}.")
