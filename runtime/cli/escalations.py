"""Commands that change escalations: ``event``, ``tick``, ``ack``, ``resolve``, ``close``,
``transfer``, ``absent``, ``postmortem``. Thin shells over :class:`~escalade.runtime.Engine`.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from escalade.runtime.app import App, AppError, store_url
from escalade.runtime.cli.options import (
    DB_HELP,
    app_error,
    duration_option,
    opened,
    run_outcome,
    runtime_options,
    time_option,
)
from escalade.runtime.clock import format_time
from escalade.runtime.engine import ClockError, Refused
from escalade.runtime.engine.commands import transfer_problem
from escalade.runtime.store import StoreError, open_store


def split_inputs(data: bytes) -> list[bytes]:
    """One JSON document, or JSON Lines (one event per line), as bytes: the engine reads
    each strictly and dead-letters what is not UTF-8 JSON, as the server does."""
    stripped = data.strip()
    if not stripped:
        return []
    try:
        json.loads(stripped)
        return [stripped]
    except ValueError:  # not JSON, or not UTF-8 (UnicodeDecodeError is a ValueError)
        return [line for line in data.splitlines() if line.strip()]


@click.command("event")
@click.argument("source", type=click.File("rb"), metavar="FILE|-")
@runtime_options
def event_command(source: Any, db: str | None, pack_path: str | None, at: str | None) -> None:
    """Apply one event (JSON) or many (JSON Lines). Malformed events are dead-lettered."""
    lines = split_inputs(source.read())
    rejected = 0
    with opened(db, pack_path, at) as (app, when):
        engine = app.engine
        for line in lines:
            try:
                outcome = engine.receive(line, when)
            except ClockError as exc:
                raise click.BadParameter(str(exc), param_hint="--at") from None
            label = {"applied": "applied", "duplicate": "duplicate", "dead_letter": "rejected"}
            click.echo(f"{label.get(outcome.status, outcome.status)}: {outcome.message}")
            if outcome.status == "dead_letter":
                rejected += 1
    if rejected:
        sys.exit(1)


@click.command("tick")
@runtime_options
def tick_command(db: str | None, pack_path: str | None, at: str | None) -> None:
    """Fire every timer due up to --at (default now)."""
    with opened(db, pack_path, at) as (app, when):
        engine = app.engine
        fired = engine.advance(when)
        click.echo(f"{fired} timer(s) fired; clock at {format_time(engine.store.clock() or 0)}")


BY = click.option(
    "--by",
    "by",
    required=True,
    metavar="PERSON",
    help="Who does it: a person of the directory (recorded in the audit trail).",
)


def _acting(app: App, by: str) -> None:
    """``--by`` must name a person of the active pack's directory (exit 2 otherwise)."""
    try:
        app.engine.check_person(by)
    except Refused as exc:
        raise click.BadParameter(str(exc), param_hint="--by") from None


@click.command("ack")
@click.argument("ticket")
@BY
@click.option(
    "--override",
    metavar="REASON",
    default=None,
    help="Acknowledge although PERSON is not the current assignee (audited with REASON).",
)
@runtime_options
def ack_command(
    ticket: str,
    by: str,
    override: str | None,
    db: str | None,
    pack_path: str | None,
    at: str | None,
) -> None:
    """Acknowledge TICKET as its current assignee: failover stops for good."""
    with opened(db, pack_path, at) as (app, when):
        _acting(app, by)
        run_outcome(lambda: app.engine.ack(ticket, by, when, override=override))


@click.command("resolve")
@click.argument("ticket")
@BY
@runtime_options
def resolve_command(
    ticket: str, by: str, db: str | None, pack_path: str | None, at: str | None
) -> None:
    """Mark TICKET's problem fixed (the resolve SLA is met)."""
    with opened(db, pack_path, at) as (app, when):
        _acting(app, by)
        run_outcome(lambda: app.engine.resolve(ticket, when, by=by))


@click.command("close")
@click.argument("ticket")
@BY
@runtime_options
def close_command(
    ticket: str, by: str, db: str | None, pack_path: str | None, at: str | None
) -> None:
    """Close TICKET; refused (with the reason) until every close check holds."""
    with opened(db, pack_path, at) as (app, when):
        _acting(app, by)
        run_outcome(lambda: app.engine.close(ticket, when, by=by))


@click.command("transfer")
@click.argument("ticket")
@click.option("--to", "to", required=True, metavar="REF", help="Person or team.")
@click.option("--reason", default="", help="Why (required).")
@click.option(
    "--sla", default=None, metavar="DURATION", help="Expected time to resolve (required)."
)
@BY
@runtime_options
def transfer_command(
    ticket: str,
    to: str,
    reason: str,
    sla: str | None,
    by: str,
    db: str | None,
    pack_path: str | None,
    at: str | None,
) -> None:
    """Hand TICKET to another owner; refused without a reason and an expected SLA."""
    seconds = duration_option(sla, "--sla") if sla else None
    problem = transfer_problem(reason, seconds)
    if problem is not None:
        raise click.UsageError(problem)
    with opened(db, pack_path, at) as (app, when):
        _acting(app, by)
        run_outcome(lambda: app.engine.transfer(ticket, to, reason, seconds, when, by=by))


@click.command("absent")
@click.argument("person")
@click.option("--until", "until", required=True, metavar="TIME", help="ISO-8601 end of absence.")
@BY
@runtime_options
def absent_command(
    person: str, until: str, by: str, db: str | None, pack_path: str | None, at: str | None
) -> None:
    """Mark PERSON absent until TIME; escalations waiting on them move on at once."""
    end = time_option(until, "--until")
    assert end is not None  # --until is required
    with opened(db, pack_path, at) as (app, when):
        _acting(app, by)
        run_outcome(lambda: app.engine.absent(person, end, when, by=by))


@click.command("postmortem")
@click.argument("ticket")
@click.option("--link", required=True, metavar="URL", help="Where the post-mortem lives.")
@BY
@runtime_options
def postmortem_command(
    ticket: str, link: str, by: str, db: str | None, pack_path: str | None, at: str | None
) -> None:
    """Record TICKET's completed post-mortem (close may require it)."""
    with opened(db, pack_path, at) as (app, when):
        _acting(app, by)
        run_outcome(lambda: app.engine.postmortem(ticket, link, when, by=by))


@click.command("replay")
@BY
@runtime_options
def deadletter_replay(by: str, db: str | None, pack_path: str | None, at: str | None) -> None:
    """Apply dead letters again (e.g. after a pack that knows the new field)."""
    with opened(db, pack_path, at) as (app, when):
        _acting(app, by)
        results = app.engine.replay_dead_letters(when, by=by)
    if not results:
        click.echo("no dead letters")
    failed = 0
    for letter_id, outcome in results:
        click.echo(f"#{letter_id}: {outcome.status}: {outcome.message}")
        failed += outcome.status == "dead_letter"
    if failed:
        sys.exit(1)


@click.command("migrate")
@click.option("--db", default=None, help=DB_HELP)
def migrate_command(db: str | None) -> None:
    """Create the store, or bring its schema up to date (reads never do)."""
    try:
        url = store_url(db)
        store = open_store(url)
    except AppError as exc:
        raise app_error(exc) from None
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    store.close()
    click.echo(f"store {url} is up to date")
