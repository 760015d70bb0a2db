"""Silences (#15): ``escalade silence --policy P | --team T --until T --reason R --by P``
holds the pages of a policy or a team (``--from``, default now); ``silence list`` shows
the silences in effect or to come (the directory's maintenance windows too), read-only;
``silence end ID --by P`` ends one now, and the chains it held start.

Exit codes: 0 ok, 1 refused (nothing written), 2 usage error (neither or both of
``--policy``/``--team``, an unknown policy, team or person, ``--until`` not after
``--from``, a bad time).
"""

from __future__ import annotations

from typing import Any

import click

from escalade.runtime.cli.options import (
    known_person,
    opened,
    read_options,
    reading,
    run_outcome,
    runtime_options,
    time_option,
)
from escalade.runtime.cli.output import echo_json, format_option
from escalade.runtime.clock import format_time
from escalade.runtime.engine import LoadedPack
from escalade.runtime.engine.noise import FOREVER, holds


def _target(pack: LoadedPack, policy: str | None, team: str | None) -> tuple[str, str]:
    """``("policy", P)`` or ``("team", T)``; exit 2 for neither, both or an unknown one."""
    if (policy is None) == (team is None):
        raise click.UsageError("give one of --policy POLICY or --team TEAM")
    if policy is not None:
        if policy not in pack.rules:
            raise click.BadParameter(
                f"no policy {policy!r} in the active pack", param_hint="--policy"
            )
        return "policy", policy
    assert team is not None
    if team not in pack.teams:
        raise click.BadParameter(f"no team {team!r} in the directory", param_hint="--team")
    return "team", team


@click.group("silence", invoke_without_command=True)
@click.option("--policy", default=None, metavar="POLICY", help="Hold this policy's pages.")
@click.option("--team", default=None, metavar="TEAM", help="Hold the pages of this team.")
@click.option("--from", "since", metavar="TIME", help="ISO-8601 start (default: now).")
@click.option("--until", "until", metavar="TIME", help="ISO-8601 end (required).")
@click.option("--reason", default=None, help="Why (required; shown in status, audited).")
@click.option("--by", "by", default=None, metavar="PERSON", help="Who (required).")
@format_option("text", "json")
@runtime_options
@click.pass_context
def silence_group(
    ctx: click.Context,
    policy: str | None,
    team: str | None,
    since: str | None,
    until: str | None,
    reason: str | None,
    by: str | None,
    fmt: str,
    db: str | None,
    pack_path: str | None,
    at: str | None,
) -> None:
    """Hold the pages of --policy P or --team T from --from (default: now) until --until:
    matching escalations are created and audited, their messages recorded `silenced` (never
    sent) and their chains held; when the silence ends, those still open start their chain.
    Subcommands: `list`, `end ID`."""
    if ctx.invoked_subcommand is not None:
        return
    for value, name in ((until, "--until"), (reason, "--reason"), (by, "--by")):
        if not value:
            raise click.UsageError(f"missing option {name}")
    assert until is not None and reason is not None and by is not None
    end = time_option(until, "--until")
    start = time_option(since, "--from")
    assert end is not None
    with opened(db, pack_path, at) as (app, when):
        pack = app.engine.active()
        known_person(pack, by, "--by")
        target = _target(pack, policy, team)
        begin = start if start is not None else app.engine.processing_time(when)
        if end <= begin:
            raise click.BadParameter(
                f"{format_time(end)} is not after --from {format_time(begin)}", param_hint="--until"
            )
        subject = {
            "action": "silence",
            target[0]: target[1],
            "from": format_time(begin),
            "until": format_time(end),
        }
        run_outcome(
            lambda: app.engine.silence(target, start, end, reason, by, when), fmt, app, subject
        )


@silence_group.command("list")
@format_option("text", "json")
@read_options
def list_command(fmt: str, db: str | None, pack_path: str | None, at: str | None) -> None:
    """The silences in effect at --at (default: now) or to come, maintenance windows too."""
    with reading(db, pack_path, at) as (app, when):
        found = holds(app.store, app.engine.active(), when, FOREVER)
    rows: list[dict[str, Any]] = [h.as_json() for h in found]
    if fmt == "json":
        echo_json({"at": format_time(when), "silences": rows})
        return
    if not rows:
        click.echo(f"no silence in effect or to come at {format_time(when)}")
    for r in rows:
        click.echo(
            f"{r['source']}: {r['scope']} {r['name']} {r['from']} .. {r['until']}: {r['reason']}"
        )


@silence_group.command("end")
@click.argument("silence", type=int, metavar="ID")
@click.option("--by", "by", required=True, metavar="PERSON", help="Who ends it (audited).")
@format_option("text", "json")
@runtime_options
def end_command(
    silence: int, by: str, fmt: str, db: str | None, pack_path: str | None, at: str | None
) -> None:
    """End silence ID now: the escalations it held start their chain."""
    with opened(db, pack_path, at) as (app, when):
        known_person(app.engine.active(), by, "--by")
        subject = {"action": "silence_end", "silence": silence}
        run_outcome(lambda: app.engine.unsilence(silence, by, when), fmt, app, subject)
