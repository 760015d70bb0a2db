"""``escalade revert TICKET --reason R --by P``: undo the steps a ticket's escalation ran.

The undo steps go out through the outbox newest first, each audited; a step without an
undo is listed as needing a person (see :mod:`escalade.runtime.engine.undo`). Refused
(exit 1, nothing changed) when the ticket has no open escalation or nothing left that can
be undone; no ``--reason`` is a usage error (exit 2).
"""

from __future__ import annotations

import sys
from typing import Any

import click

from escalade.runtime.app import App
from escalade.runtime.cli.escalations import BY, _acting
from escalade.runtime.cli.options import escalation_summary, opened, runtime_options
from escalade.runtime.cli.output import echo_json, format_option
from escalade.runtime.engine import ClockError, Outcome, Refused


def last_revert(app: App, escalation_id: int | None) -> dict[str, Any]:
    """The detail of the escalation's latest ``revert`` audit row (empty: none)."""
    if escalation_id is None:
        return {}
    rows = [r for r in app.store.audit_rows(escalation_id) if r.kind == "revert"]
    return dict(rows[-1].detail) if rows else {}


def _refused(exc: Exception, fmt: str, subject: dict[str, Any]) -> None:
    click.echo(f"refused: {exc}", err=True)
    if fmt == "json":
        doc = {"outcome": "refused", "message": str(exc), "escalation": None}
        echo_json({**subject, **doc, "undone": [], "needs_person": []})
    sys.exit(1)


def _print(app: App, outcome: Outcome, fmt: str, subject: dict[str, Any]) -> None:
    if fmt != "json":
        click.echo(outcome.message)
        return
    detail = last_revert(app, outcome.escalation_id)
    doc = {
        "outcome": outcome.status,
        "message": outcome.message,
        "escalation": escalation_summary(app, outcome.escalation_id),
        "undone": detail.get("undone", []),
        "needs_person": detail.get("needs_person", []),
    }
    echo_json({**subject, **doc})


@click.command("revert")
@click.argument("ticket")
@click.option("--reason", default="", help="Why the steps are undone (required; audited).")
@BY
@format_option("text", "json")
@runtime_options
def revert_command(
    ticket: str,
    reason: str,
    by: str,
    fmt: str,
    db: str | None,
    pack_path: str | None,
    at: str | None,
) -> None:
    """Undo what TICKET's escalation did: each step's undo goes out through the outbox,
    newest first; steps without an undo are listed as needing a person.

    JSON: {"action", "ticket", "outcome", "message", "escalation", "undone",
    "needs_person"}."""
    if not reason.strip():
        raise click.UsageError('a revert needs a reason (--reason "...")')
    subject = {"action": "revert", "ticket": ticket, "reason": reason.strip()}
    with opened(db, pack_path, at) as (app, when):
        _acting(app, by)
        try:
            outcome = app.engine.revert(ticket, reason, by, when)
        except Refused as exc:
            _refused(exc, fmt, subject)
            return
        except ClockError as exc:
            raise click.BadParameter(str(exc), param_hint="--at") from None
        _print(app, outcome, fmt, subject)
