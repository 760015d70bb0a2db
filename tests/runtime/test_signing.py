"""Ed25519 detached signatures: keygen, sign, verify, rotation and tampering."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from escalade.compiler.cli import main
from escalade.runtime.signing import (
    SignatureError,
    TrustedKeys,
    generate_keypair,
    load_private_key,
    sign,
)


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    code, out = run("pack", "keygen", "--out", str(tmp_path / "keys"))
    assert code == 0 and "key id ed25519:" in out
    assert (tmp_path / "keys" / "escalade.key").stat().st_mode & 0o777 == 0o600
    return tmp_path / "keys"


def test_sign_and_verify_round_trip(tmp_path: Path, keys: Path) -> None:
    pack = tmp_path / "rulepack.json"
    pack.write_text('{"format": "escalade.rulepack/v1"}\n')
    assert run("pack", "sign", str(pack), "--key", str(keys / "escalade.key"))[0] == 0
    sig = json.loads((tmp_path / "rulepack.json.sig").read_text())
    assert sig["algorithm"] == "ed25519" and sig["key_id"].startswith("ed25519:")
    code, out = run("pack", "verify", str(pack), "--trust", str(keys / "escalade.pub"))
    assert code == 0 and sig["key_id"] in out


def test_tampered_and_unsigned_packs_are_refused(tmp_path: Path, keys: Path) -> None:
    pack = tmp_path / "rulepack.json"
    pack.write_text('{"a": 1}\n')
    run("pack", "sign", str(pack), "--key", str(keys / "escalade.key"))
    pack.write_text('{"a": 2}\n')
    code, out = run("pack", "verify", str(pack), "--trust", str(keys / "escalade.pub"))
    assert code == 1 and "tampered" in out
    (tmp_path / "rulepack.json.sig").unlink()
    code, out = run("pack", "verify", str(pack), "--trust", str(keys / "escalade.pub"))
    assert code == 1 and "unsigned" in out


def test_key_rotation_trusts_a_set_of_keys() -> None:
    old_private, old_public = generate_keypair()
    new_private, new_public = generate_keypair()
    _, stranger_public = generate_keypair()
    data = b"pack bytes"
    old_sig = sign(data, load_private_key(old_private))
    new_sig = sign(data, load_private_key(new_private))
    both = TrustedKeys.from_pems([old_public, new_public])
    assert both.verify(data, old_sig) != both.verify(data, new_sig)
    only_new = TrustedKeys.from_pems([new_public])
    with pytest.raises(SignatureError, match="untrusted key"):
        only_new.verify(data, old_sig)
    with pytest.raises(SignatureError, match="untrusted key"):
        TrustedKeys.from_pems([stranger_public]).verify(data, new_sig)


def test_forged_signature_with_matching_hash_is_refused() -> None:
    private, public = generate_keypair()
    data = b"original"
    doc = json.loads(sign(data, load_private_key(private)))
    other = json.loads(sign(b"other", load_private_key(private)))
    doc["signature"] = other["signature"]
    with pytest.raises(SignatureError, match="does not verify"):
        TrustedKeys.from_pems([public]).verify(data, json.dumps(doc).encode())


def test_bad_key_files_give_errors_not_tracebacks(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pub"
    bad.write_text("not a key")
    pack = tmp_path / "p.json"
    pack.write_text("{}")
    code, out = run("pack", "verify", str(pack), "--trust", str(bad))
    assert code == 1 and "not a PEM public key" in out
    code, out = run("pack", "sign", str(pack), "--key", str(bad))
    assert code == 1 and "not a PEM private key" in out


def test_private_key_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    private, public = generate_keypair()
    monkeypatch.setenv("ESCALADE_SIGNING_KEY", private.decode())
    (tmp_path / "k.pub").write_bytes(public)
    pack = tmp_path / "p.json"
    pack.write_text("{}")
    assert run("pack", "sign", str(pack), "--key-env", "ESCALADE_SIGNING_KEY")[0] == 0
    assert run("pack", "verify", str(pack), "--trust", str(tmp_path / "k.pub"))[0] == 0
