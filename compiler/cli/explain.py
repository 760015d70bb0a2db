"""``escalade explain EVENT.json``: which policy owns an event, and why."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from escalade.compiler.config import ConfigError
from escalade.compiler.explain import ExplainError, explain_event, load_pack, render_explanation
from escalade.runtime.cli.output import format_option
from escalade.runtime.pack import PackError


@click.command("explain")
@click.argument("event_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--pack", "pack_path", type=click.Path(path_type=Path), help="Rule pack to load.")
@click.option(
    "--policies",
    type=click.Path(path_type=Path),
    help="Build the pack in memory from this policy set instead.",
)
@format_option("text", "json")
def explain_command(
    event_file: Path, pack_path: Path | None, policies: Path | None, fmt: str
) -> None:
    """Explain which policy owns the event in EVENT_FILE, and why.

    Exit 0 with or without an owner; 1 when the event or the pack is invalid.
    """
    if pack_path is not None and policies is not None:
        raise click.UsageError("give --pack or --policies, not both")
    try:
        raw = event_file.read_bytes()
    except OSError as exc:
        raise click.UsageError(f"cannot read {event_file}: {exc.strerror}") from None
    try:
        pack = load_pack(pack_path, policies)
        doc = explain_event(pack, raw, str(event_file))
    except (ExplainError, PackError, ConfigError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False))
    else:
        click.echo(render_explanation(doc), nl=False)
