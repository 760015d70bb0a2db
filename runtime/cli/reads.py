"""Commands that only read the store: ``status``, ``oncall``, ``deadletter list``, ``report``,
``audit verify``.

A read opens the store read-only: it never creates or migrates it, fires no timer
and never moves the clock, so the store is byte-for-byte what it was. ``--at``
only sets the time countdowns are shown from.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from escalade.runtime import audit, kpi
from escalade.runtime.cli.escalations import deadletter_replay
from escalade.runtime.cli.options import read_options, reading
from escalade.runtime.cli.output import echo_json, format_option
from escalade.runtime.clock import format_duration, format_time


def _timer_line(t: dict[str, Any]) -> str:
    line = f"  timer   {t['kind']} due {t['due']}"
    if t.get("overdue"):
        return line + " (overdue: fires at the next tick)"
    if "in_s" in t:
        return line + f" (in {format_duration(t['in_s'], ' ')})"
    return line


def _sla_line(kind: str, sla: dict[str, Any]) -> str:
    """``resolve due 2026-12-08 11:00 Europe/Berlin (12h within support_hours)``."""
    if sla.get("due_local"):
        when = f"{sla['due_local'][:10]} {sla['due_local'][11:16]} {sla['zone']}"
    else:
        when = sla["due"]
    within = f" within {sla['calendar']}" if sla.get("calendar") else ""
    outcome = f", {sla['outcome']}" if sla.get("outcome") not in (None, "open") else ""
    return f"  sla     {kind} due {when} ({sla['target']}{within}{outcome})"


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
    if status.get("unowned"):
        lines.append(f"  UNOWNED nobody available can take it: {status['unowned']}")
    lines += [_sla_line(kind, sla) for kind, sla in (status.get("sla") or {}).items()]
    lines += [_timer_line(t) for t in status["timers"]]
    if status["postmortem_required"]:
        lines.append(f"  post-mortem required: {status['postmortem_link'] or 'not yet done'}")
    lines.append("  history")
    lines += [f"    {h['at']} {h['kind']} ({h['actor']}): {h['reason']}" for h in status["history"]]
    return "\n".join(lines)


@click.command("status")
@click.argument("ticket")
@format_option("text", "json")
@read_options
def status_command(
    ticket: str, fmt: str, db: str | None, pack_path: str | None, at: str | None
) -> None:
    """Show TICKET's escalation: policy, state, owner, level, timers, history."""
    with reading(db, pack_path, at) as (app, when):
        status = app.engine.status(ticket, when)
    if status is None:
        click.echo(f"ticket {ticket} has no escalation", err=True)
        sys.exit(1)
    if fmt == "json":
        click.echo(json.dumps(status, indent=2, sort_keys=True))
    else:
        click.echo(render_status(status))


CALENDAR_DAYS = 400  # the longest calendar `oncall --from --until` prints (a year and more)


@click.command("oncall")
@click.argument("team")
@click.option(
    "--from", "since", metavar="TIME", help="Print the calendar from TIME (with --until)."
)
@click.option("--until", "--to", "until", metavar="TIME", help="Print the calendar until TIME.")
@format_option("text", "json")
@read_options
def oncall_command(
    team: str,
    since: str | None,
    until: str | None,
    fmt: str,
    db: str | None,
    pack_path: str | None,
    at: str | None,
) -> None:
    """Who is on call for TEAM at --at (absent members skipped, store overrides applied);
    exit 1 when nobody is. With --from/--until: the calendar, one line per segment (who,
    when in the team's zone and UTC, which layer or override), exit 1 when it has a gap.

    A team without a schedule has nobody on call by itself: every available member is
    notified, and they are listed.

    JSON: {"team": TEAM, "at": TIME, "on_call": PERSON or null, "scheduled": BOOL,
    "available": [PERSON, ...] (without a schedule; else [])}; with --until
    {"team", "from", "until", "zone", "segments": [{"from", "to", "person", "layer",
    "source", "note"}], "gaps": [{"from", "to"}]}."""
    from escalade.runtime.cli.roster import print_calendar, window

    with reading(db, pack_path, at) as (app, when):
        pack = app.engine.active()
        if team not in pack.teams:
            raise click.BadParameter(f"no team {team!r} in the directory", param_hint="TEAM")
        if until is not None:
            start, end = window(since, until, when, app, most=CALENDAR_DAYS * 86400)
            return print_calendar(app, pack, team, start, end, fmt)
        if since is not None:
            raise click.BadParameter("--from needs --until", param_hint="--from")
        scheduled = pack.teams[team].scheduled
        member = app.engine.oncall(pack, team, when) if scheduled else None
        away = app.engine.store.absences(when)
        available = [] if scheduled else [m for m in pack.teams[team].members if m not in away]
    if fmt == "json":
        doc = {"team": team, "at": format_time(when), "on_call": member}
        echo_json({**doc, "scheduled": scheduled, "available": available})
    elif available:
        click.echo(f"{', '.join(available)} (no schedule: every available member is notified)")
    elif member is None:
        click.echo(f"nobody in {team} is available at {format_time(when)}")
    else:
        click.echo(member)
    if member is None and not available:
        sys.exit(1)


@click.group("deadletter")
def deadletter_group() -> None:
    """Inspect and replay rejected events."""


deadletter_group.add_command(deadletter_replay)  # replaying changes escalations: it lives there


@deadletter_group.command("list")
@click.option("--all", "include_all", is_flag=True, help="Include replayed letters.")
@format_option("text", "json")
@read_options
def deadletter_list(
    include_all: bool, fmt: str, db: str | None, pack_path: str | None, at: str | None
) -> None:
    """List dead letters with the reason each was rejected."""
    with reading(db, pack_path, at) as (app, _when):
        letters = app.store.dead_letters(include_all)
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


@click.command("report")
@format_option("markdown", "json")
@read_options
def report_command(fmt: str, db: str | None, pack_path: str | None, at: str | None) -> None:
    """KPIs from the audit trail."""
    with reading(db, pack_path, at) as (app, _when):
        kpis = kpi.compute(app.store)
    if fmt == "json":
        click.echo(json.dumps(kpis, indent=2, sort_keys=True))
    else:
        click.echo(kpi.render_markdown(kpis), nl=False)


@click.group("audit")
def audit_group() -> None:
    """The hash-chained audit trail."""


@audit_group.command("verify")
@format_option("text", "json")
@read_options
def audit_verify(fmt: str, db: str | None, pack_path: str | None, at: str | None) -> None:
    """Check that no audit row was edited, removed or cut off, in any shard, and that every
    checkpoint still matches the shards (exit 1 when not).

    JSON: {"ok": BOOL, "rows": N, "problem": TEXT or null, "shard": N or null, "seq": N or
    null, "shards": N, "checkpoints": N, "anchor": the last checkpoint's hash or null}."""
    with reading(db, pack_path, at) as (app, _when):
        verdict = audit.verify(app.store)
    if fmt == "json":
        echo_json(
            {
                "ok": verdict.ok,
                "rows": verdict.rows,
                "problem": verdict.problem or None,
                "shard": verdict.shard,
                "seq": verdict.seq,
                "shards": verdict.shards,
                "checkpoints": verdict.checkpoints,
                "anchor": verdict.anchor,
            }
        )
        sys.exit(0 if verdict.ok else 1)
    if verdict.ok:
        where = f" in {verdict.shards} shards" if verdict.shards > 1 else ""
        bound = f", {verdict.checkpoints} checkpoints" if verdict.checkpoints else ""
        anchor = f" (last checkpoint {verdict.anchor})" if verdict.anchor else ""
        click.echo(f"audit trail intact: {verdict.rows} rows{where}{bound}{anchor}")
        return
    click.echo(f"audit trail BROKEN: {verdict.problem}", err=True)
    sys.exit(1)
