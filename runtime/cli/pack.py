"""``escalade pack ...``: keys, detached signatures and (with a store) activation.

Runtime-side commands: they import neither lark, jinja2 nor the compiler.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from escalade.runtime.activation import PackRefused, activate_file, pack_history, trusted_keys
from escalade.runtime.app import store_url
from escalade.runtime.cli.options import DB_HELP
from escalade.runtime.cli.output import echo_json, format_option
from escalade.runtime.clock import TimeError, parse_time
from escalade.runtime.engine import ClockError, Engine, LoadedPack
from escalade.runtime.signing import (
    SignatureError,
    generate_keypair,
    key_id,
    load_private_key,
    sign,
)
from escalade.runtime.store import Store, StoreError, open_store

DEFAULT_PACK = Path("generated/rulepack.json")


@click.group("pack")
def pack() -> None:
    """Sign, verify, activate and roll back rule packs."""


@pack.command("keygen")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("keys"),
    show_default=True,
)
@click.option("--name", default="escalade", show_default=True, help="File name stem.")
def keygen(out_dir: Path, name: str) -> None:
    """Create an Ed25519 key pair: NAME.key (private, mode 600) and NAME.pub."""
    private_pem, public_pem = generate_keypair()
    out_dir.mkdir(parents=True, exist_ok=True)
    private_path = out_dir / f"{name}.key"
    public_path = out_dir / f"{name}.pub"
    if private_path.exists():
        raise click.UsageError(f"{private_path} exists; refusing to overwrite a private key")
    fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem)
    public_path.write_bytes(public_pem)
    kid = key_id(load_private_key(private_pem).public_key())
    click.echo(f"wrote {private_path} and {public_path} (key id {kid})")


def _read_private(key: Path | None, key_env: str | None) -> bytes:
    if key is not None:
        return key.read_bytes()
    if key_env:
        value = os.environ.get(key_env)
        if not value:
            raise click.UsageError(f"environment variable {key_env} is empty or unset")
        return value.encode()
    raise click.UsageError("give --key FILE or --key-env VARIABLE")


@pack.command("sign")
@click.argument("pack_file", default=DEFAULT_PACK, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--key", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key-env", help="Read the private key PEM from this environment variable.")
def sign_cmd(pack_file: Path, key: Path | None, key_env: str | None) -> None:
    """Write PACK.sig, a detached Ed25519 signature of PACK."""
    try:
        private = load_private_key(_read_private(key, key_env))
        data = pack_file.read_bytes()
    except SignatureError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"error: cannot read {pack_file}: {exc.strerror}", err=True)
        sys.exit(1)
    sig_path = pack_file.with_name(pack_file.name + ".sig")
    sig_path.write_bytes(sign(data, private))
    click.echo(f"signed {pack_file} -> {sig_path} (key id {key_id(private.public_key())})")


@pack.command("verify")
@click.argument("pack_file", default=DEFAULT_PACK, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--trust",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A trusted public key (PEM); repeat for several (key rotation).",
)
@format_option("text", "json")
def verify_cmd(pack_file: Path, trust: tuple[Path, ...], fmt: str) -> None:
    """Check PACK's detached signature (PACK.sig) against the trusted keys.

    JSON: {"pack": FILE, "ok": BOOL, "key_id": ID or null, "problem": TEXT or null}."""
    try:
        keys = trusted_keys(list(trust))
        if not keys:
            raise click.UsageError("no trusted key: give --trust KEY.pub")
        data = pack_file.read_bytes()
        sig_path = pack_file.with_name(pack_file.name + ".sig")
        signature = sig_path.read_bytes() if sig_path.exists() else None
        kid = keys.verify(data, signature)
    except SignatureError as exc:
        click.echo(f"refused: {pack_file}: {exc}", err=True)
        if fmt == "json":
            echo_json({"pack": str(pack_file), "ok": False, "key_id": None, "problem": str(exc)})
        sys.exit(1)
    except OSError as exc:
        click.echo(f"error: cannot read {pack_file}: {exc.strerror}", err=True)
        sys.exit(1)
    if fmt == "json":
        echo_json({"pack": str(pack_file), "ok": True, "key_id": kid, "problem": None})
    else:
        click.echo(f"ok: {pack_file} signed by {kid}")


# --- activation (needs a store) ------------------------------------------------------


def _store_options(fn: Any) -> Any:
    fn = click.option("--at", "at", metavar="TIME", help="Act at this ISO-8601 time.")(fn)
    fn = click.option("--db", default=None, help=DB_HELP)(fn)
    return fn


def _open(db: str | None, at: str | None) -> tuple[Store, Engine, int | None]:
    store = open_store(store_url(db))
    engine = Engine(store)
    when: int | None = None
    if at is not None:
        try:
            when = parse_time(at)
            engine.check_time(when)
        except (TimeError, ClockError) as exc:
            store.close()
            raise click.BadParameter(str(exc), param_hint="--at") from None
    return store, engine, when


@pack.command("activate")
@click.argument("pack_file", default=DEFAULT_PACK, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--trust", multiple=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--by",
    "actor",
    required=True,
    metavar="WHO",
    help="Who activates it: a person, or service:NAME for a release pipeline (audited).",
)
@click.option("--reason", help="Why (recorded in the audit trail).")
@format_option("text", "json")
@_store_options
def activate_cmd(
    pack_file: Path,
    trust: tuple[Path, ...],
    actor: str,
    reason: str | None,
    fmt: str,
    db: str | None,
    at: str | None,
) -> None:
    """Verify PACK (signature when keys are trusted, schema, hash) and make it active.

    New escalations use it; in-flight escalations keep the pack they started under.
    A refused pack is recorded in the audit trail and the active pack stays active.
    A downgrade (a lower version, or a pack a later activation superseded) is refused:
    that is `pack rollback`, with its reason.

    JSON: {"pack": FILE, "outcome": "active" or "refused", "version", "content_hash",
    "message"} (refused: the version and hash of the pack still active, or null)."""
    _check_actor(actor)
    store, engine, when = _open(db, at)
    try:
        keys = trusted_keys(list(trust))
        compiled = activate_file(engine, pack_file, keys, when, actor=actor, reason=reason)
        message = f"active: pack {compiled.version} ({pack_file})"
        _report(fmt, pack_file, "active", compiled, message)
    except (PackRefused, SignatureError) as exc:
        current = store.active_pack()
        kept = engine.pack(current) if current is not None else None
        keeping = f"pack {kept.version}" if kept is not None else "no pack"
        click.echo(f"refused: {pack_file}: {exc}\nkeeping {keeping} active", err=True)
        if fmt == "json":
            _report(fmt, pack_file, "refused", kept, str(exc))
        sys.exit(1)
    finally:
        store.close()


def _report(
    fmt: str, pack_file: Path | None, outcome: str, pack: LoadedPack | None, message: str
) -> None:
    """An activation's result: the message, or with ``--format json`` one document."""
    if fmt != "json":
        click.echo(message)
        return
    doc = {
        "pack": str(pack_file) if pack_file is not None else None,
        "outcome": outcome,
        "version": pack.version if pack is not None else None,
        "content_hash": pack.pack.content_hash if pack is not None else None,
        "message": message,
    }
    echo_json(doc)


def _hash_matches(content_hash: str, wanted: str) -> bool:
    """``sha256:<hex>`` given whole, or at least 8 hex digits of its start."""
    digits = wanted.removeprefix("sha256:")
    return len(digits) >= 8 and content_hash.removeprefix("sha256:").startswith(digits)


def _check_actor(actor: str) -> None:
    """``--by`` names who acts: a person's identifier or ``service:NAME``."""
    name = actor.removeprefix("service:")
    if not name or not name.replace("-", "_").replace(".", "_").isidentifier():
        raise click.BadParameter(
            f"{actor!r}: give a person (alice) or a service principal (service:release)",
            param_hint="--by",
        )


@pack.command("history")
@format_option("text", "json")
@click.option("--db", default=None, help=DB_HELP)
def history_cmd(fmt: str, db: str | None) -> None:
    """Every pack the store has seen, and each activation, rollback and refusal (a read:
    the store is opened read-only and never created)."""
    try:
        store = open_store(store_url(db), read_only=True)
    except StoreError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        rows, events = pack_history(Engine(store))
    finally:
        store.close()
    if fmt == "json":
        click.echo(json.dumps({"packs": rows, "events": events}, indent=2, sort_keys=True))
        return
    if not rows:
        click.echo("no pack has been activated in this store")
        return
    for r in rows:
        mark = "*" if r["active"] else " "
        commit = f" commit {str(r['commit'])[:12]}" if r["commit"] else ""
        click.echo(f"{mark} #{r['id']} {r['version']}{commit} last activated {r['activated_at']}")
    click.echo("")
    for e in events:
        click.echo(f"{e['at']}  {e['kind']:<17} {e['actor']:<12} {e['reason']}")


@pack.command("rollback")
@click.option(
    "--to",
    "target",
    help="Content hash (sha256:... or a prefix of its hex), version, version+hash label or"
    " #id (default: the previously active pack).",
)
@click.option("--reason", required=True, help="Why (recorded in the audit trail).")
@click.option(
    "--by",
    "actor",
    required=True,
    metavar="WHO",
    help="Who rolls back: a person, or service:NAME (audited).",
)
@format_option("text", "json")
@_store_options
def rollback_cmd(
    target: str | None, reason: str, actor: str, fmt: str, db: str | None, at: str | None
) -> None:
    """Re-activate an earlier pack for new escalations; in-flight ones are untouched.

    JSON: {"pack": null, "outcome": "rolled_back", "version", "content_hash", "message"}."""
    _check_actor(actor)
    store, engine, when = _open(db, at)
    try:
        rows, _ = pack_history(engine)
        current = next((r for r in rows if r["active"]), None)
        if current is None:
            raise click.ClickException("no pack is active: nothing to roll back")
        candidates = [r for r in rows if not r["active"]]
        if target is not None:
            wanted = target.removeprefix("#")
            candidates = [
                r
                for r in candidates
                if wanted in (str(r["id"]), r["version"], r["version"].split("+")[0])
                or _hash_matches(str(r["content_hash"]), wanted)
            ]
        else:
            candidates = [r for r in candidates if r["activated_at"] is not None]
        if not candidates:
            what = f"matching {target!r}" if target else "that was active before"
            raise click.ClickException(f"no earlier pack {what} in this store")
        # the most recently active of the matches
        chosen = max(candidates, key=lambda r: (r["activated_at"] or "", r["id"]))
        compiled = engine.pack(int(chosen["id"]))
        engine.activate(
            compiled.pack,
            when,
            actor=actor,
            reason=f"rollback from {current['version']} to {compiled.version}: {reason}",
            kind="pack_rolled_back",
        )
        message = f"rolled back: pack {compiled.version} is active (was {current['version']})"
        _report(fmt, None, "rolled_back", compiled, message)
    finally:
        store.close()
