"""Operator commands for the runtime: ``event``, ``tick``, ``ack``, ``status``, ...

Every command takes ``--db`` (the SQLite store, default ``escalade.db``),
``--pack`` (a rule pack to verify and activate first; default: the store's
active pack, else ``generated/rulepack.json``) and ``--at`` (an
explicit ISO-8601 time: timers due up to it fire first; a time earlier than
the store's clock is refused). Runtime-side: no compiler imports.

Exit codes: 0 ok, 1 refused or rejected, 2 usage error.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import click

from escalade.runtime import audit, kpi
from escalade.runtime.activation import PackRefused, activate_file, trusted_keys
from escalade.runtime.clock import TimeError, format_time, parse_duration, parse_time
from escalade.runtime.engine import ClockError, Engine, Outcome, Refused
from escalade.runtime.notify.channels import ChannelNotifier
from escalade.runtime.pack import PackError as SchemaError
from escalade.runtime.pack import RulePack
from escalade.runtime.settings import RuntimeSettings, SettingsError, load_settings
from escalade.runtime.signing import SignatureError
from escalade.runtime.store import Store, open_store

DEFAULT_DB = "escalade.db"
DEFAULT_PACK = "generated/rulepack.json"
F = TypeVar("F", bound=Callable[..., Any])


def load_pack_file(path: str) -> dict[str, Any]:
    """Read and validate a pack (schema, references and content hash)."""
    try:
        return dict(RulePack.load(path).raw)
    except SchemaError as exc:
        raise click.ClickException(f"refusing the pack:\n{exc}") from None


def runtime_settings() -> RuntimeSettings:
    """The ``runtime:`` settings of the nearest ``escalade.yaml`` (defaults without one)."""
    try:
        return load_settings()
    except SettingsError as exc:
        raise click.ClickException(f"invalid runtime settings:\n{exc}") from None


def store_url(db: str | None) -> str:
    """``--db``, else ``runtime.database`` from ``escalade.yaml``, else ``escalade.db``."""
    return db or runtime_settings().database or DEFAULT_DB


DB_HELP = (
    "Store: a SQLite file or postgresql://... URL "
    f"(default: runtime.database in escalade.yaml, else {DEFAULT_DB})."
)


def _time_option(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except TimeError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from None


def runtime_options(fn: F) -> F:
    """Add ``--db``, ``--pack`` and ``--at`` to a command."""
    fn = click.option(
        "--at", "at", metavar="TIME", help="Act at this ISO-8601 time (default: now)."
    )(fn)
    fn = click.option(
        "--pack",
        "pack_path",
        default=None,
        help="Rule pack to activate first (verified; a refused pack leaves the active one "
        f"running). Default: the store's active pack, else {DEFAULT_PACK}.",
    )(fn)
    fn = click.option("--db", default=None, help=DB_HELP)(fn)
    return fn


def new_engine(store: Store, notifier: ChannelNotifier | None, settings: RuntimeSettings) -> Engine:
    """An engine with ``runtime.retry`` and ``runtime.loop_breaker`` applied."""
    return Engine(
        store,
        notifier=notifier,
        retry_attempts=settings.retry.attempts,
        retry_base=settings.retry.base,
        retry_cap=settings.retry.cap,
        loop_limit=settings.loop_breaker.limit,
        loop_window=settings.loop_breaker.window,
    )


@contextmanager
def open_engine(
    db: str | None, pack_path: str | None, at: str | None
) -> Iterator[tuple[Engine, int | None]]:
    """An engine over ``db`` with ``pack_path`` active and ``at`` checked against the clock.

    Trusted keys come from ``runtime.trusted_keys`` in ``escalade.yaml`` and
    ``$ESCALADE_TRUSTED_KEYS``; with any, an unsigned or tampered pack is refused
    (and audited) and the active pack keeps running. With ``runtime.notifiers``,
    actions go to the real channels; without, to the in-memory recording notifier."""
    settings = runtime_settings()
    notifier = ChannelNotifier.from_settings(settings.notifiers) if settings.notifiers else None
    for name in settings.notifiers.missing_env() if settings.notifiers else []:
        click.echo(f"warning: ${name} is not set; deliveries that need it will fail", err=True)
    store = open_store(db or settings.database or DEFAULT_DB)
    try:
        engine = new_engine(store, notifier, settings)
        when = _time_option(at)
        if when is not None:
            try:
                engine.check_time(when)
            except ClockError as exc:
                raise click.BadParameter(str(exc), param_hint="--at") from None
        candidate = pack_path
        if candidate is None and store.active_pack() is None and Path(DEFAULT_PACK).exists():
            candidate = DEFAULT_PACK
        if candidate is not None:
            try:
                activate_file(engine, Path(candidate), trusted_keys((), settings), when)
            except (PackRefused, SignatureError) as exc:
                if store.active_pack() is None:
                    raise click.ClickException(f"refusing the pack {candidate}: {exc}") from None
                click.echo(
                    f"refused the pack {candidate}: {exc}; "
                    f"keeping pack {engine.active().version} active",
                    err=True,
                )
        elif store.active_pack() is None:
            raise click.ClickException(
                f"no rule pack: {DEFAULT_PACK} does not exist and the store has no active pack"
                " (build one with `escalade build`, or pass --pack FILE)"
            )
        yield engine, when
    finally:
        store.close()


def _run(action: Callable[[], Outcome]) -> None:
    try:
        outcome = action()
    except Refused as exc:
        click.echo(f"refused: {exc}", err=True)
        sys.exit(1)
    except ClockError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from None
    click.echo(outcome.message)


def _split_inputs(text: str) -> list[str]:
    """One JSON document, or JSON Lines (one event per line)."""
    stripped = text.strip()
    if not stripped:
        return []
    try:
        json.loads(stripped)
        return [stripped]
    except ValueError:
        return [line for line in text.splitlines() if line.strip()]


@click.command("event")
@click.argument("source", type=click.File("r", encoding="utf-8"), metavar="FILE|-")
@runtime_options
def event_command(source: Any, db: str | None, pack_path: str | None, at: str | None) -> None:
    """Apply one event (JSON) or many (JSON Lines). Malformed events are dead-lettered."""
    lines = _split_inputs(source.read())
    rejected = 0
    with open_engine(db, pack_path, at) as (engine, when):
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
    with open_engine(db, pack_path, at) as (engine, when):
        fired = engine.advance(when)
        click.echo(f"{fired} timer(s) fired; clock at {format_time(engine.store.clock() or 0)}")


@click.command("ack")
@click.argument("ticket")
@click.option("--by", "by", required=True, metavar="PERSON", help="Who acknowledges.")
@runtime_options
def ack_command(
    ticket: str, by: str, db: str | None, pack_path: str | None, at: str | None
) -> None:
    """Acknowledge TICKET: failover stops for good."""
    with open_engine(db, pack_path, at) as (engine, when):
        _run(lambda: engine.ack(ticket, by, when))


@click.command("resolve")
@click.argument("ticket")
@runtime_options
def resolve_command(ticket: str, db: str | None, pack_path: str | None, at: str | None) -> None:
    """Mark TICKET's problem fixed (the resolve SLA is met)."""
    with open_engine(db, pack_path, at) as (engine, when):
        _run(lambda: engine.resolve(ticket, when))


@click.command("close")
@click.argument("ticket")
@runtime_options
def close_command(ticket: str, db: str | None, pack_path: str | None, at: str | None) -> None:
    """Close TICKET; refused (with the reason) until every close check holds."""
    with open_engine(db, pack_path, at) as (engine, when):
        _run(lambda: engine.close(ticket, when))


@click.command("transfer")
@click.argument("ticket")
@click.option("--to", "to", required=True, metavar="REF", help="Person or team.")
@click.option("--reason", default="", help="Why (required).")
@click.option(
    "--sla", default=None, metavar="DURATION", help="Expected time to resolve (required)."
)
@runtime_options
def transfer_command(
    ticket: str,
    to: str,
    reason: str,
    sla: str | None,
    db: str | None,
    pack_path: str | None,
    at: str | None,
) -> None:
    """Hand TICKET to another owner; refused without a reason and an expected SLA."""
    if not reason.strip():
        raise click.UsageError('a transfer needs a reason: --reason "..."')
    if not sla:
        raise click.UsageError("a transfer needs an expected SLA: --sla 2h")
    try:
        seconds = parse_duration(sla)
    except TimeError as exc:
        raise click.BadParameter(str(exc), param_hint="--sla") from None
    with open_engine(db, pack_path, at) as (engine, when):
        _run(lambda: engine.transfer(ticket, to, reason, seconds, when))


@click.command("absent")
@click.argument("person")
@click.option("--until", "until", required=True, metavar="TIME", help="ISO-8601 end of absence.")
@runtime_options
def absent_command(
    person: str, until: str, db: str | None, pack_path: str | None, at: str | None
) -> None:
    """Mark PERSON absent until TIME; escalations waiting on them move on at once."""
    try:
        end = parse_time(until)
    except TimeError as exc:
        raise click.BadParameter(str(exc), param_hint="--until") from None
    with open_engine(db, pack_path, at) as (engine, when):
        _run(lambda: engine.absent(person, end, when))


@click.command("postmortem")
@click.argument("ticket")
@click.option("--link", required=True, metavar="URL", help="Where the post-mortem lives.")
@runtime_options
def postmortem_command(
    ticket: str, link: str, db: str | None, pack_path: str | None, at: str | None
) -> None:
    """Record TICKET's completed post-mortem (close may require it)."""
    with open_engine(db, pack_path, at) as (engine, when):
        _run(lambda: engine.postmortem(ticket, link, when))


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
    with open_engine(db, pack_path, at) as (engine, when):
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
    with open_engine(db, pack_path, at) as (engine, when):
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
    with open_engine(db, pack_path, at) as (engine, _when):
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
    with open_engine(db, pack_path, at) as (engine, when):
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
    with open_engine(db, pack_path, at) as (engine, when):
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
    db = store_url(db)
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
]
from escalade.runtime.server import serve_command  # noqa: E402

COMMANDS.append(serve_command)
