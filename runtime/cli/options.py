"""What every runtime command shares: ``--db``, ``--pack``, ``--at`` and how errors print.

Exit codes: 0 ok, 1 refused or rejected, 2 usage error.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from escalade.runtime.app import (
    DEFAULT_DB,
    DEFAULT_PACK,
    App,
    AppError,
    open_reader,
    open_runtime,
)
from escalade.runtime.cli.output import echo_json
from escalade.runtime.clock import TimeError, parse_duration, parse_time
from escalade.runtime.engine import ClockError, LoadedPack, Outcome, Refused

F = TypeVar("F", bound=Callable[..., Any])

DB_HELP = (
    "Store: a SQLite file or postgresql://... URL "
    f"(default: runtime.database in escalade.yaml, else {DEFAULT_DB})."
)


def app_error(exc: AppError) -> click.ClickException:
    """An :class:`AppError` as click reports it (a bad option is a usage error, exit 2)."""
    if exc.param is not None:
        return click.BadParameter(str(exc), param_hint=exc.param)
    return click.ClickException(str(exc))


def time_option(value: str | None, param: str = "--at") -> int | None:
    """An ISO-8601 option as epoch seconds (None when not given); a bad one is exit 2."""
    if value is None:
        return None
    try:
        return parse_time(value)
    except TimeError as exc:
        raise click.BadParameter(str(exc), param_hint=param) from None


def duration_option(value: str, param: str) -> int:
    """A duration option (``2h``) as seconds; a bad one is exit 2."""
    try:
        return parse_duration(value)
    except TimeError as exc:
        raise click.BadParameter(str(exc), param_hint=param) from None


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


def read_options(fn: F) -> F:
    """Add ``--db``, ``--pack`` (loaded in memory) and ``--at`` (display time) to a read."""
    fn = click.option(
        "--at",
        "at",
        metavar="TIME",
        help="Show the store as of this ISO-8601 time (countdowns; default: now). A read"
        " never fires timers or moves the clock, so any time is accepted.",
    )(fn)
    fn = click.option(
        "--pack",
        "pack_path",
        default=None,
        help="Rule pack to read the directory from, in memory (never activated). Default:"
        f" the store's active pack, else {DEFAULT_PACK}.",
    )(fn)
    fn = click.option("--db", default=None, help=DB_HELP)(fn)
    return fn


@contextmanager
def reading(db: str | None, pack_path: str | None, at: str | None) -> Iterator[tuple[App, int]]:
    """The runtime opened read-only for one command (see
    :func:`escalade.runtime.app.open_reader`), with the display time (default: now)."""
    when = time_option(at)
    try:
        with open_reader(db, pack_path=pack_path) as app:
            yield app, app.engine.clock.now() if when is None else when
    except AppError as exc:
        raise app_error(exc) from None


@contextmanager
def opened(
    db: str | None, pack_path: str | None, at: str | None, *, quiet_reach: bool = False
) -> Iterator[tuple[App, int | None]]:
    """The runtime for one command (see :func:`escalade.runtime.app.open_runtime`), with its
    warnings printed to stderr first."""
    when = time_option(at)
    try:
        with open_runtime(db, pack_path=pack_path, at=when) as app:
            for warning in app.warnings:
                if not (quiet_reach and warning.startswith("no notifier for")):
                    click.echo(f"warning: {warning}", err=True)
            yield app, when
    except AppError as exc:
        raise app_error(exc) from None


def escalation_summary(app: App, escalation_id: int | None) -> dict[str, Any] | None:
    """An escalation as ``--format json`` shows it after a change (``None``: no escalation):
    ``{"id", "ticket", "policy", "state", "owner", "level", "round"}``."""
    if escalation_id is None:
        return None
    esc = app.store.escalation(escalation_id)
    if esc is None:
        return None
    return {
        "id": esc.id,
        "ticket": esc.ticket,
        "policy": esc.policy,
        "state": esc.state,
        "owner": esc.owner,
        "level": esc.level,
        "round": esc.cycle + 1,
    }


def run_outcome(
    action: Callable[[], Outcome],
    fmt: str = "text",
    app: App | None = None,
    subject: dict[str, Any] | None = None,
) -> None:
    """Run an operator command and print its outcome; a refusal is exit 1.

    With ``fmt == "json"`` one document on stdout: ``subject`` (what the command names,
    e.g. ``{"action": "ack", "ticket": "T1"}``) with ``outcome`` (``applied`` or
    ``refused``), ``message`` and ``escalation`` (see :func:`escalation_summary`)."""
    as_json = fmt == "json"
    try:
        outcome = action()
    except Refused as exc:
        click.echo(f"refused: {exc}", err=True)
        if as_json:
            refused = {"outcome": "refused", "message": str(exc), "escalation": None}
            echo_json({**(subject or {}), **refused})
        sys.exit(1)
    except ClockError as exc:
        raise click.BadParameter(str(exc), param_hint="--at") from None
    if not as_json:
        click.echo(outcome.message)
        return
    escalation = escalation_summary(app, outcome.escalation_id) if app is not None else None
    doc = {"outcome": outcome.status, "message": outcome.message, "escalation": escalation}
    echo_json({**(subject or {}), **doc})


def known_team(pack: LoadedPack, team: str, param: str = "TEAM") -> None:
    """Exit 2 unless ``team`` is a team of the directory."""
    if team not in pack.teams:
        raise click.BadParameter(f"no team {team!r} in the directory", param_hint=param)


def known_person(pack: LoadedPack, person: str, param: str) -> None:
    """Exit 2 unless ``person`` is a person of the directory."""
    if person not in pack.people:
        raise click.BadParameter(f"{person!r} is not a person in the directory", param_hint=param)
