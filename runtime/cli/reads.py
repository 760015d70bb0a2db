"""Commands that read the store: ``status``, ``oncall``, ``deadletter``, ``report``, ``audit``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from escalade.runtime import audit, kpi
from escalade.runtime.app import AppError, store_url
from escalade.runtime.cli.options import DB_HELP, app_error, opened, runtime_options
from escalade.runtime.clock import format_time
from escalade.runtime.store import open_store


def render_status(status: dict[str, Any]) -> str:
    """A ticket's status as text for operators."""
    owner = status["owner"] or "nobody"
    if status.get("owner_from"):
        owner += f" (on call for {status['owner_from']})"
    lines = [
        f"ticket {status['ticket']}: {status['state']}",
        f"  policy  {status['policy']} (priority {status['priority']}, pack {status['pack_version']})",
        f"  owner   {owner}, level {status['level']}, round {status['round']}",
        f"  started {status['started_at']}",
    ]
    for t in status["timers"]:
        lines.append(f"  timer   {t['kind']} due {t['due']}")
    if status["postmortem_required"]:
        lines.append(f"  post-mortem required: {status['postmortem_link'] or 'not yet done'}")
    lines.append("  history")
    lines += [f"    {h['at']} {h['kind']}: {h['reason']}" for h in status["history"]]
    return "\n".join(lines)


@click.command("status")
@click.argument("ticket")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@runtime_options
def status_command(
    ticket: str, fmt: str, db: str | None, pack_path: str | None, at: str | None
) -> None:
    """Show TICKET's escalation: policy, state, owner, level, timers, history."""
    with opened(db, pack_path, at) as (app, when):
        engine = app.engine
        engine.advance(when)
        status = engine.status(ticket)
    if status is None:
        click.echo(f"ticket {ticket} has no escalation", err=True)
        sys.exit(1)
    if fmt == "json":
        click.echo(json.dumps(status, indent=2, sort_keys=True))
    else:
        click.echo(render_status(status))


@click.command("oncall")
@click.argument("team")
@runtime_options
def oncall_command(team: str, db: str | None, pack_path: str | None, at: str | None) -> None:
    """Who is on call for TEAM at --at (absent members skipped)."""
    with opened(db, pack_path, at) as (app, when):
        engine = app.engine
        pack = engine.active()
        if team not in pack.teams:
            raise click.BadParameter(f"no team {team!r} in the directory", param_hint="TEAM")
        moment = when if when is not None else engine.clock.now()
        member = engine.oncall(pack, team, moment)
    if member is None:
        click.echo(f"nobody in {team} is available at {format_time(moment)}")
        sys.exit(1)
    click.echo(member)


@click.group("deadletter")
def deadletter_group() -> None:
    """Inspect and replay rejected events."""


@deadletter_group.command("list")
@click.option("--all", "include_all", is_flag=True, help="Include replayed letters.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@runtime_options
def deadletter_list(
    include_all: bool, fmt: str, db: str | None, pack_path: str | None, at: str | None
) -> None:
    """List dead letters with the reason each was rejected."""
    with opened(db, pack_path, at) as (app, _when):
        engine = app.engine
        letters = engine.store.dead_letters(include_all)
    if fmt == "json":
        rows = [
            {
                "id": d.id,
                "event_id": d.event_id,
                "error": d.error,
                "received_at": format_time(d.received_at),
                "replayed_at": format_time(d.replayed_at) if d.replayed_at else None,
                "raw": d.raw,
            }
            for d in letters
        ]
        click.echo(json.dumps(rows, indent=2))
        return
    if not letters:
        click.echo("no dead letters")
    for d in letters:
        click.echo(f"#{d.id} {format_time(d.received_at)} {d.event_id or '-'}: {d.error}")


@deadletter_group.command("replay")
@runtime_options
def deadletter_replay(db: str | None, pack_path: str | None, at: str | None) -> None:
    """Apply dead letters again (e.g. after a pack that knows the new field)."""
    with opened(db, pack_path, at) as (app, when):
        engine = app.engine
        results = engine.replay_dead_letters(when)
    if not results:
        click.echo("no dead letters")
    failed = 0
    for letter_id, outcome in results:
        click.echo(f"#{letter_id}: {outcome.status}: {outcome.message}")
        failed += outcome.status == "dead_letter"
    if failed:
        sys.exit(1)


@click.command("report")
@click.option("--format", "fmt", type=click.Choice(["markdown", "json"]), default="markdown")
@runtime_options
def report_command(fmt: str, db: str | None, pack_path: str | None, at: str | None) -> None:
    """KPIs from the audit trail."""
    with opened(db, pack_path, at) as (app, when):
        engine = app.engine
        engine.advance(when)
        kpis = kpi.compute(engine.store)
    if fmt == "json":
        click.echo(json.dumps(kpis, indent=2, sort_keys=True))
    else:
        click.echo(kpi.render_markdown(kpis), nl=False)


@click.group("audit")
def audit_group() -> None:
    """The hash-chained audit trail."""


@audit_group.command("verify")
@click.option("--db", default=None, help=DB_HELP)
def audit_verify(db: str | None) -> None:
    """Check that no audit row was edited, removed or cut off."""
    try:
        db = store_url(db)
    except AppError as exc:
        raise app_error(exc) from None
    if "://" not in db and not Path(db).exists():
        raise click.BadParameter(f"{db} does not exist", param_hint="--db")
    store = open_store(db)
    try:
        verdict = audit.verify(store)
    finally:
        store.close()
    if verdict.ok:
        click.echo(f"audit trail intact: {verdict.rows} rows")
        return
    click.echo(f"audit trail BROKEN: {verdict.problem}", err=True)
    sys.exit(1)
