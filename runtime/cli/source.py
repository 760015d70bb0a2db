"""``escalade source test NAME PAYLOAD.json``: what a source's payload maps to, and who owns it.

Reads only: the payload is mapped with ``runtime.sources.NAME.map``, read against the
pack's schema and decided by the pack's matcher as ``explain`` does (as if the ticket had
no earlier state). No signature is checked and nothing is written. Exit 0 when the
payload maps to a valid event (with or without an owner), 1 when it does not.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from escalade.runtime.app import AppError, runtime_settings
from escalade.runtime.cli.options import app_error, reading
from escalade.runtime.cli.output import format_option
from escalade.runtime.clock import format_time
from escalade.runtime.events import EventError, parse_event
from escalade.runtime.matcher import Matcher
from escalade.runtime.pack import PackError, RulePack
from escalade.runtime.sourcemaps import MapError, apply_map
from escalade.runtime.textio import TextError, loads_json


@click.group("source")
def source_group() -> None:
    """Inbound sources (runtime.sources in escalade.yaml)."""


def _pack(db: str | None, pack_path: str | None) -> RulePack:
    if pack_path is not None:
        try:
            return RulePack.load(pack_path)
        except PackError as exc:
            raise click.ClickException(f"refusing the pack {pack_path}:\n{exc}") from None
    with reading(db, None, None) as (app, _when):
        try:
            return app.engine.active().pack
        except PackError as exc:
            raise click.ClickException(str(exc)) from None


@source_group.command("test")
@click.argument("name")
@click.argument("payload_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--db", default=None, help="Store whose active pack decides (default: runtime.database)."
)
@click.option("--pack", "pack_path", default=None, help="Rule pack file to decide with instead.")
@format_option("text", "json")
def source_test_command(
    name: str, payload_file: Path, db: str | None, pack_path: str | None, fmt: str
) -> None:
    """Map PAYLOAD_FILE as source NAME would, and say which policy would own the event."""
    try:
        sources = runtime_settings().sources
    except AppError as exc:
        raise app_error(exc) from None
    source = sources.get(name)
    if source is None:
        known = ", ".join(sorted(sources)) or "none (configure runtime.sources in escalade.yaml)"
        raise click.UsageError(f"no source named {name!r} (known: {known})")
    try:
        raw = payload_file.read_bytes()
    except OSError as exc:
        raise click.UsageError(f"cannot read {payload_file}: {exc.strerror}") from None
    pack = _pack(db, pack_path)
    try:
        event = apply_map(source.map, loads_json(raw, str(payload_file)), format_time(time.time()))
        parsed = parse_event(event, pack)
    except (TextError, MapError, EventError) as exc:
        click.echo(f"error: source {name}: {exc}", err=True)
        sys.exit(1)
    state: dict[str, Any] = {obj: dict(fields) for obj, fields in parsed.data.items()}
    why = Matcher(pack).explain(parsed.type, state)
    doc = {
        "source": name,
        "event": event,
        "ticket": parsed.ticket,
        "owner": why.owner.name if why.owner is not None else None,
        "candidates": [c.policy.name for c in why.candidates],
        "reason": why.reason,
        "unknown_fields": list(parsed.unknown),
    }
    if fmt == "json":
        click.echo(json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False))
        return
    click.echo(f"source {name} maps {payload_file} to:")
    click.echo(json.dumps(event, indent=2, ensure_ascii=False))
    click.echo(f"owner: {doc['owner'] or 'nobody'}")
    click.echo(f"why: {why.reason}")
    for candidate in why.candidates:
        click.echo(
            f"  {'+' if candidate.matched else '-'} {candidate.policy.name}: {candidate.note}"
        )
    if parsed.unknown:
        click.echo(f"ignored (not in the schema): {', '.join(parsed.unknown)}")
