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
    escalation_summary,
    known_person,
    opened,
    run_outcome,
    runtime_options,
    time_option,
)
from escalade.runtime.cli.output import echo_json, format_option
from escalade.runtime.clock import format_time
from escalade.runtime.engine import ClockError, Outcome, Refused
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


def event_id_of(raw: bytes) -> str | None:
    """The ``id`` of an event as sent, when it is a JSON object with a string id."""
    try:
        doc = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    found = doc.get("id") if isinstance(doc, dict) else None
    return found if isinstance(found, str) else None


def event_result(app: App, number: int, raw: bytes, outcome: Outcome) -> dict[str, Any]:
    """One input event's line of ``event --format json``: ``{"line", "event", "outcome",
    "message", "ticket", "escalation", "unknown_fields"}``."""
    return {
        "line": number,
        "event": event_id_of(raw),
        "outcome": outcome.status,
        "message": outcome.message,
        "ticket": outcome.ticket,
        "escalation": escalation_summary(app, outcome.escalation_id),
        "unknown_fields": list(outcome.unknown_fields),
    }


EVENT_LABELS = {"applied": "applied", "duplicate": "duplicate", "dead_letter": "rejected"}


@click.command("event")
@click.argument("source", type=click.File("rb"), metavar="FILE|-")
@format_option("text", "json")
@runtime_options
def event_command(
    source: Any, fmt: str, db: str | None, pack_path: str | None, at: str | None
) -> None:
    """Apply one event (JSON) or many (JSON Lines). Malformed events are dead-lettered;
    exit 1 when any event was not applied (rejected, refused or failed).

    With --format json, one JSON line per event, in order (see the README)."""
    lines = split_inputs(source.read())
    rejected = 0
    with opened(db, pack_path, at) as (app, when):
        engine = app.engine
        if when is not None:
            try:
                engine.check_time(when)
            except ClockError as exc:
                raise click.BadParameter(str(exc), param_hint="--at") from None
        # Many events share each transaction (the batch API); every outcome is printed
        # after the commit that made it durable, in input order.
        outcomes = engine.receive_many(lines, when)
        for number, (line, outcome) in enumerate(zip(lines, outcomes, strict=True), 1):
            if fmt == "json":
                echo_json(event_result(app, number, line, outcome), lines=True)
            else:
                label = EVENT_LABELS.get(outcome.status, outcome.status)
                click.echo(f"{label}: {outcome.message}")
            if outcome.status not in ("applied", "duplicate"):
                rejected += 1
    if rejected:
        sys.exit(1)


@click.command("tick")
@format_option("text", "json")
@runtime_options
def tick_command(fmt: str, db: str | None, pack_path: str | None, at: str | None) -> None:
    """Fire every timer due up to --at (default now). JSON: {"fired": N, "clock": TIME}."""
    with opened(db, pack_path, at) as (app, when):
        engine = app.engine
        fired = engine.advance(when)
        clock = format_time(engine.store.clock() or 0)
    if fmt == "json":
        echo_json({"fired": fired, "clock": clock})
    else:
        click.echo(f"{fired} timer(s) fired; clock at {clock}")


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
@format_option("text", "json")
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
    fmt: str,
    override: str | None,
    db: str | None,
    pack_path: str | None,
    at: str | None,
) -> None:
    """Acknowledge TICKET as its current assignee: failover stops for good."""
    with opened(db, pack_path, at) as (app, when):
        _acting(app, by)
        run_outcome(
            lambda: app.engine.ack(ticket, by, when, override=override),
            fmt,
            app,
            {"action": "ack", "ticket": ticket},
        )


@click.command("resolve")
@click.argument("ticket")
@BY
@format_option("text", "json")
@runtime_options
def resolve_command(
    ticket: str, by: str, fmt: str, db: str | None, pack_path: str | None, at: str | None
) -> None:
    """Mark TICKET's problem fixed (the resolve SLA is met)."""
    with opened(db, pack_path, at) as (app, when):
        _acting(app, by)
        subject = {"action": "resolve", "ticket": ticket}
        run_outcome(lambda: app.engine.resolve(ticket, when, by=by), fmt, app, subject)


@click.command("close")
@click.argument("ticket")
@BY
@click.option(
    "--close-related",
    "related",
    is_flag=True,
    help="Also close the related tickets (`group by`) still open (audited).",
)
@format_option("text", "json")
@runtime_options
def close_command(
    ticket: str,
    by: str,
    related: bool,
    fmt: str,
    db: str | None,
    pack_path: str | None,
    at: str | None,
) -> None:
    """Close TICKET; refused (with the reason) until every close check holds. The message
    lists its related tickets still open; --close-related closes them too."""
    with opened(db, pack_path, at) as (app, when):
        _acting(app, by)
        subject = {"action": "close", "ticket": ticket}
        run_outcome(
            lambda: app.engine.close(ticket, when, by=by, related=related), fmt, app, subject
        )


@click.command("transfer")
@click.argument("ticket")
@click.option("--to", "to", required=True, metavar="REF", help="Person or team.")
@click.option("--reason", default="", help="Why (required).")
@click.option(
    "--sla", default=None, metavar="DURATION", help="Expected time to resolve (required)."
)
@BY
@format_option("text", "json")
@runtime_options
def transfer_command(
    ticket: str,
    to: str,
    reason: str,
    sla: str | None,
    by: str,
    fmt: str,
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
        run_outcome(
            lambda: app.engine.transfer(ticket, to, reason, seconds, when, by=by),
            fmt,
            app,
            {"action": "transfer", "ticket": ticket, "to": to},
        )


@click.command("absent")
@click.argument("person")
@click.option("--until", "until", required=True, metavar="TIME", help="ISO-8601 end of absence.")
@click.option("--from", "since", metavar="TIME", help="ISO-8601 start of absence (default: now).")
@click.option("--reason", "reason", default=None, help="Why (recorded in the audit trail).")
@click.option(
    "--accept-gap",
    "accept_gap",
    metavar="REASON",
    help="Record it even though it leaves a team or a policy's chain with nobody for some"
    " window (the reason and the windows are audited).",
)
@BY
@format_option("text", "json")
@runtime_options
def absent_command(
    person: str,
    until: str,
    since: str | None,
    reason: str | None,
    accept_gap: str | None,
    by: str,
    fmt: str,
    db: str | None,
    pack_path: str | None,
    at: str | None,
) -> None:
    """Mark PERSON absent from --from (default: now) until --until; escalations waiting on
    them move on at once when the absence covers now (a later one takes effect then).

    Refused (exit 1, nothing written) when it leaves a team or a policy's whole chain
    with nobody for some window, named in the team's zone and UTC, unless
    --accept-gap REASON."""
    end = time_option(until, "--until")
    start = time_option(since, "--from")
    assert end is not None  # --until is required
    with opened(db, pack_path, at) as (app, when):
        _acting(app, by)
        known_person(app.engine.active(), person, "PERSON")
        if start is not None and end <= start:
            raise click.BadParameter(
                f"{format_time(end)} is not after --from {format_time(start)}",
                param_hint="--until",
            )
        subject = {"action": "absent", "person": person, "until": format_time(end)}
        if start is not None:
            subject["from"] = format_time(start)
        run_outcome(
            lambda: app.engine.absent(
                person,
                end,
                when,
                by=by,
                since=start,
                reason=reason,
                accept_gap=accept_gap,
                refuse_gaps=True,
            ),
            fmt,
            app,
            subject,
        )


@click.command("postmortem")
@click.argument("ticket")
@click.option(
    "--draft",
    is_flag=True,
    help="Print a draft written from the audit trail (a read: the store is not changed;"
    " --format markdown or json).",
)
@click.option(
    "--complete", is_flag=True, help="Record the completed post-mortem (with --link and --by)."
)
@click.option("--link", default=None, metavar="URL", help="Where the post-mortem lives.")
@click.option(
    "--by",
    "by",
    default=None,
    metavar="PERSON",
    help="Who completes it: a person of the directory (recorded in the audit trail).",
)
@format_option("text", "json", "markdown")
@runtime_options
def postmortem_command(
    ticket: str,
    draft: bool,
    complete: bool,
    link: str | None,
    by: str | None,
    fmt: str,
    db: str | None,
    pack_path: str | None,
    at: str | None,
) -> None:
    """Record TICKET's completed post-mortem (close may require it), or print a draft.

    --complete --link URL --by PERSON (or --link URL --by PERSON) records it. --draft
    prints a draft from the audit trail (Markdown, or JSON with --format json); a draft
    never completes the post-mortem, and reading it never changes the store."""
    if draft:
        if complete or link is not None or by is not None:
            raise click.UsageError("--draft only reads: it takes no --complete, --link or --by")
        from escalade.runtime.cli.postmortem import print_draft

        print_draft(ticket, fmt, db, pack_path, at)
        return
    if link is None:
        raise click.UsageError("give --link URL (with --by) to complete it, or --draft")
    if by is None:
        raise click.UsageError("Missing option '--by'.")
    if fmt == "markdown":
        raise click.UsageError("--format markdown is for --draft")
    with opened(db, pack_path, at) as (app, when):
        _acting(app, by)
        subject = {"action": "postmortem", "ticket": ticket, "link": link}
        run_outcome(lambda: app.engine.postmortem(ticket, link, when, by=by), fmt, app, subject)


@click.command("replay")
@BY
@format_option("text", "json")
@runtime_options
def deadletter_replay(
    by: str, fmt: str, db: str | None, pack_path: str | None, at: str | None
) -> None:
    """Apply dead letters again (e.g. after a pack that knows the new field).

    JSON: {"replayed": [{"dead_letter", "outcome", "message", "ticket", "escalation"}],
    "failed": N}."""
    with opened(db, pack_path, at) as (app, when):
        _acting(app, by)
        results = app.engine.replay_dead_letters(when, by=by)
        rows = [
            {
                "dead_letter": letter_id,
                "outcome": outcome.status,
                "message": outcome.message,
                "ticket": outcome.ticket,
                "escalation": escalation_summary(app, outcome.escalation_id),
            }
            for letter_id, outcome in results
        ]
    failed = sum(row["outcome"] == "dead_letter" for row in rows)
    if fmt == "json":
        echo_json({"replayed": rows, "failed": failed})
    else:
        click.echo(
            "\n".join(f"#{r['dead_letter']}: {r['outcome']}: {r['message']}" for r in rows)
            or "no dead letters"
        )
    if failed:
        sys.exit(1)


@click.command("migrate")
@click.option("--db", default=None, help=DB_HELP)
@format_option("text", "json")
def migrate_command(db: str | None, fmt: str) -> None:
    """Create the store, or bring its schema up to date (reads never do)."""
    try:
        url = store_url(db)
        store = open_store(url)
    except AppError as exc:
        raise app_error(exc) from None
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    store.close()
    if fmt == "json":
        echo_json({"store": url, "up_to_date": True})
    else:
        click.echo(f"store {url} is up to date")
