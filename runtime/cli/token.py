"""``escalade token ...``: the API tokens of ``escalade serve`` (see :mod:`escalade.runtime.tokens`).

``create`` prints the secret once, alone on the last line of stdout; the store keeps
only its hash. Creating and revoking are audited with ``--by``.
"""

from __future__ import annotations

import json
from typing import Any

import click

from escalade.runtime.app import App
from escalade.runtime.cli.options import DB_HELP, opened, reading
from escalade.runtime.clock import format_time
from escalade.runtime.engine import Refused
from escalade.runtime.store import ApiToken
from escalade.runtime.tokens import ROLES, TokenError, create_token, principal_of, revoke_token

PACK_HELP = "Rule pack whose directory names the people (default: the store's active pack)."
BY = click.option(
    "--by",
    "by",
    required=True,
    metavar="PERSON",
    help="Who does it: a person of the directory, or `operator` (recorded in the audit trail).",
)


@click.group("token")
def token_group() -> None:
    """API tokens for `escalade serve`: create, list, revoke."""


def _acting(app: App, by: str) -> None:
    """``--by`` is ``operator`` or a person of the directory (exit 2 otherwise)."""
    if by == "operator":
        return
    try:
        app.engine.check_person(by)
    except Refused as exc:
        raise click.BadParameter(str(exc), param_hint="--by") from None


def _now(app: App) -> int:
    """The wall clock, never before the store's clock."""
    return max(app.engine.clock.now(), app.store.clock() or 0)


@token_group.command("create")
@click.argument("person", required=False)
@click.option("--service", metavar="NAME", help="A token for a system instead of a person.")
@click.option("--role", type=click.Choice(ROLES), required=True, help="What the token may do.")
@BY
@click.option("--db", default=None, help=DB_HELP)
@click.option("--pack", "pack_path", default=None, help=PACK_HELP)
def create_command(
    person: str | None,
    service: str | None,
    role: str,
    by: str,
    db: str | None,
    pack_path: str | None,
) -> None:
    """Create a token for PERSON (responder, lead or admin) or for --service NAME (ingest or
    admin). The secret is printed once, on the last line: store it now."""
    if (person is None) == (service is None):
        raise click.UsageError("name a PERSON or give --service NAME (one of the two)")
    with opened(db, pack_path, None) as (app, _when):
        _acting(app, by)
        if person is not None:
            try:
                app.engine.check_person(person)
            except Refused as exc:
                raise click.BadParameter(str(exc), param_hint="PERSON") from None
        try:
            principal = principal_of(
                "person" if person is not None else "service", person or service or "", role
            )
        except TokenError as exc:
            raise click.BadParameter(str(exc), param_hint="--role/--service") from None
        issued = create_token(app.store, principal=principal, role=role, by=by, at=_now(app))
    click.echo(f"id: {issued.token.id}")
    click.echo(f"principal: {principal}")
    click.echo(f"role: {role}")
    click.echo("secret (shown once; only its hash is stored):", err=True)
    click.echo(issued.secret)


def _token_json(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "principal": token.principal,
        "role": token.role,
        "created_at": format_time(token.created_at),
        "created_by": token.created_by,
        "revoked_at": format_time(token.revoked_at) if token.revoked_at is not None else None,
        "revoked_by": token.revoked_by,
        "active": token.revoked_at is None,
    }


@token_group.command("list")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text")
@click.option("--db", default=None, help=DB_HELP)
@click.option("--pack", "pack_path", default=None, help=PACK_HELP)
def list_command(fmt: str, db: str | None, pack_path: str | None) -> None:
    """Every token (never a secret): id, principal, role, who created and revoked it."""
    with reading(db, pack_path, None) as (app, _when):
        rows = [_token_json(t) for t in app.store.tokens()]
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2, sort_keys=True))
        return
    if not rows:
        click.echo("no API token in this store (create one with `escalade token create`)")
        return
    for r in rows:
        line = (
            f"{r['id']}  {r['principal']:<24} {r['role']:<9}"
            f" created {r['created_at']} by {r['created_by']}"
        )
        if r["revoked_at"] is not None:
            line += f"; revoked {r['revoked_at']} by {r['revoked_by']}"
        click.echo(line)


@token_group.command("revoke")
@click.argument("token_id", metavar="ID")
@BY
@click.option("--db", default=None, help=DB_HELP)
@click.option("--pack", "pack_path", default=None, help=PACK_HELP)
def revoke_command(token_id: str, by: str, db: str | None, pack_path: str | None) -> None:
    """Revoke the token ID at once (audited); it cannot be used again."""
    with opened(db, pack_path, None) as (app, _when):
        _acting(app, by)
        try:
            token = revoke_token(app.store, token_id, by=by, at=_now(app))
        except TokenError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"revoked: token {token.id} of {token.principal} ({token.role})")
