"""``escalade pack ...``: keys, detached signatures and (with a store) activation.

Runtime-side commands: they import neither lark, jinja2 nor the compiler.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from escalade.runtime.signing import (
    SignatureError,
    TrustedKeys,
    generate_keypair,
    key_id,
    load_private_key,
    sign,
)

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


def trusted_from_options(trust: tuple[Path, ...]) -> TrustedKeys:
    """Trusted keys from ``--trust`` files; ESCALADE_TRUSTED_KEYS (os.pathsep-separated) too."""
    paths = list(trust)
    env = os.environ.get("ESCALADE_TRUSTED_KEYS")
    if env:
        paths.extend(Path(p) for p in env.split(os.pathsep) if p)
    return TrustedKeys.from_files(paths)


@pack.command("verify")
@click.argument("pack_file", default=DEFAULT_PACK, type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--trust",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="A trusted public key (PEM); repeat for several (key rotation).",
)
def verify_cmd(pack_file: Path, trust: tuple[Path, ...]) -> None:
    """Check PACK's detached signature (PACK.sig) against the trusted keys."""
    try:
        keys = trusted_from_options(trust)
        if not keys:
            raise click.UsageError("no trusted key: give --trust KEY.pub")
        data = pack_file.read_bytes()
        sig_path = pack_file.with_name(pack_file.name + ".sig")
        signature = sig_path.read_bytes() if sig_path.exists() else None
        kid = keys.verify(data, signature)
    except SignatureError as exc:
        click.echo(f"refused: {pack_file}: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"error: cannot read {pack_file}: {exc.strerror}", err=True)
        sys.exit(1)
    click.echo(f"ok: {pack_file} signed by {kid}")
