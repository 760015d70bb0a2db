"""``escalade postmortem TICKET --draft``: the post-mortem draft of a ticket's escalation,
written from the audit trail (see :mod:`escalade.runtime.postmortem`): the draft stored
when triage required the post-mortem, else one generated now; its ``source`` (the first
lines in Markdown) says which.

A READ, as ``status`` is: the store is opened read-only, no timer fires, the clock does not
move, so the store is byte-for-byte what it was. Completing the post-mortem (``--complete
--link URL --by PERSON``) is the other half of the command, in
:mod:`escalade.runtime.cli.escalations`.
"""

from __future__ import annotations

import sys

import click

from escalade.runtime import postmortem
from escalade.runtime.cli.options import reading


def print_draft(
    ticket: str, fmt: str, db: str | None, pack_path: str | None, at: str | None
) -> None:
    """Print ``ticket``'s draft, the stored one when there is one: Markdown (``--format
    text`` or ``markdown``) or JSON (sorted keys: the same trail, the same bytes); exit 1
    when it has no escalation."""
    with reading(db, pack_path, at) as (app, _when):
        doc = postmortem.stored_or_generated(app.store, ticket)
    if doc is None:
        click.echo(f"ticket {ticket} has no escalation: there is nothing to draft", err=True)
        sys.exit(1)
    if fmt == "json":
        click.echo(postmortem.dumps(doc), nl=False)
    else:
        click.echo(postmortem.render_markdown(doc), nl=False)
