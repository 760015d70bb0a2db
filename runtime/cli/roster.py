"""On-call commands (#13): ``override`` records who takes a team's on-call at run time, and
the calendar ``oncall TEAM --from --until`` prints (see :mod:`.reads`).

Exit codes: 0 ok, 1 refused (the change leaves someone with nobody, or the window has a
gap), 2 usage error (unknown team or person, ``--for`` not a member, ``--until`` not after
``--from``). A refused or bad command writes nothing.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from escalade.runtime.app import App
from escalade.runtime.cli.options import (
    known_person,
    known_team,
    opened,
    run_outcome,
    runtime_options,
    time_option,
)
from escalade.runtime.cli.output import echo_json, format_option
from escalade.runtime.clock import format_time
from escalade.runtime.engine import LoadedPack
from escalade.runtime.engine.roster import calendar, effective_team, team_zone
from escalade.runtime.localtime import describe_gap

ACCEPT_GAP = click.option(
    "--accept-gap",
    "accept_gap",
    metavar="REASON",
    help="Record the change even though it leaves a team or a policy's chain with nobody"
    " for some window (the reason and the windows are audited).",
)


def window(
    since: str | None, until: str, at: int | None, app: App, most: int | None = None
) -> tuple[int, int]:
    """``--from`` (default: now) and ``--until`` as epoch seconds; exit 2 unless the
    window ends after it starts (and, with ``most``, lasts at most that many seconds)."""
    start = time_option(since, "--from")
    end = time_option(until, "--until")
    assert end is not None  # --until is required
    begin = start if start is not None else app.engine.processing_time(at)
    if end <= begin:
        raise click.BadParameter(
            f"{format_time(end)} is not after --from {format_time(begin)}", param_hint="--until"
        )
    if most is not None and end - begin > most:
        raise click.BadParameter(
            f"the window is longer than {most // 86400} days: print it in parts",
            param_hint="--until",
        )
    return begin, end


@click.command("override")
@click.argument("team")
@click.argument("person")
@click.option("--from", "since", metavar="TIME", help="ISO-8601 start (default: now).")
@click.option("--until", "until", required=True, metavar="TIME", help="ISO-8601 end.")
@click.option(
    "--for",
    "replaces",
    metavar="MEMBER",
    help="Only while MEMBER would be on call (default: the whole team's on-call).",
)
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@click.option(
    "--by",
    "by",
    required=True,
    metavar="ACTOR",
    help="Who records the override: a person of the directory (not who takes the on-call:"
    " that is PERSON).",
)
@ACCEPT_GAP
@format_option("text", "json")
@runtime_options
def override_command(
    team: str,
    person: str,
    since: str | None,
    until: str,
    replaces: str | None,
    reason: str,
    by: str,
    accept_gap: str | None,
    fmt: str,
    db: str | None,
    pack_path: str | None,
    at: str | None,
) -> None:
    """Put PERSON on call for TEAM from --from until --until (audited, with --reason).

    --by is who records it; PERSON is who takes the on-call, for the whole team or,
    with --for MEMBER, only while MEMBER would be on call. Refused (exit 1, nothing
    written) when it leaves the team, a policy's chain or the override itself with
    nobody for some window, unless --accept-gap REASON. Escalations the team had
    assigned to whom PERSON takes over from move on at once when it starts now."""
    with opened(db, pack_path, at) as (app, when):
        pack = app.engine.active()
        known_person(pack, by, "--by")
        known_team(pack, team)
        known_person(pack, person, "PERSON")
        if replaces is not None and replaces not in pack.teams[team].people():
            raise click.BadParameter(f"{replaces!r} is not a member of {team}", param_hint="--for")
        if not reason.strip():
            raise click.BadParameter("an override needs a reason", param_hint="--reason")
        begin, end = window(since, until, when, app)
        subject = {
            "action": "override",
            "team": team,
            "person": person,
            "for": replaces,
            "from": format_time(begin),
            "until": format_time(end),
        }
        run_outcome(
            lambda: app.engine.override(
                team, person, begin, end, replaces, reason, by, accept_gap, when
            ),
            fmt,
            app,
            subject,
        )


# --- the calendar ------------------------------------------------------------------


def calendar_line(entry: dict[str, Any], zone_name: str) -> str:
    """One segment: when (in the team's zone, then UTC, as gaps are named), who, and why
    (``layer europe``, ``override for lena by ines: sick``, ``lena absent -> next member``)."""
    when = describe_gap(entry["start"], entry["end"], zone_name)
    who = entry["person"] or "NOBODY"
    return f"{when}  {who}  ({entry['note']})"


def print_calendar(app: App, pack: LoadedPack, team: str, start: int, end: int, fmt: str) -> None:
    """The calendar of ``team`` over ``[start, end)``; exit 1 when it has a gap."""
    entries = calendar(app.store, pack, team, start, end)
    zone_name = team_zone(effective_team(None, pack.teams[team], start, end))
    gaps = [e for e in entries if e["person"] is None]
    if fmt == "json":
        rows = [{k: v for k, v in e.items() if k not in ("start", "end")} for e in entries]
        echo_json(
            {
                "team": team,
                "from": format_time(start),
                "until": format_time(end),
                "zone": zone_name,
                "segments": rows,
                "gaps": [{"from": e["from"], "to": e["to"]} for e in gaps],
            }
        )
    else:
        click.echo(f"{team} on call, {zone_name}:")
        for entry in entries:
            click.echo(calendar_line(entry, zone_name))
        for entry in gaps:
            words = describe_gap(entry["start"], entry["end"], zone_name)
            click.echo(f"gap: nobody in {team} is on call {words}", err=True)
    if gaps:
        sys.exit(1)


__all__ = ["ACCEPT_GAP", "override_command", "print_calendar", "window"]
