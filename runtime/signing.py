"""Detached Ed25519 signatures for rule packs (``rulepack.json.sig``).

A signature file is JSON::

    {"format": "escalade.signature/v1", "algorithm": "ed25519",
     "key_id": "ed25519:3f2a...", "sha256": "<hex of the signed bytes>",
     "signature": "<base64>"}

The key id is derived from the public key, so a runtime can trust a *set* of
keys and keys can be rotated: verification picks the trusted key whose id the
signature names. Keys are stored as PEM (PKCS#8 private, SubjectPublicKeyInfo
public); a private key can also come from an environment variable (CI secrets).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_FORMAT = "escalade.signature/v1"


class SignatureError(Exception):
    """A signature is missing, malformed, made by an untrusted key, or does not match."""


def key_id(public: Ed25519PublicKey) -> str:
    """A stable short id for a public key: ``ed25519:`` + 16 hex of its sha256."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def generate_keypair() -> tuple[bytes, bytes]:
    """A new (private PEM, public PEM) pair."""
    private = Ed25519PrivateKey.generate()
    private_pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_pem, public_pem


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    """Parse a PEM private key; SignatureError when it is not an Ed25519 key."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"not a PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError("the private key is not an Ed25519 key")
    return key


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    """Parse a PEM public key; SignatureError when it is not an Ed25519 key."""
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError("the public key is not an Ed25519 key")
    return key


def sign(data: bytes, private: Ed25519PrivateKey) -> bytes:
    """The detached signature file's bytes for ``data``."""
    doc = {
        "format": SIGNATURE_FORMAT,
        "algorithm": "ed25519",
        "key_id": key_id(private.public_key()),
        "sha256": hashlib.sha256(data).hexdigest(),
        "signature": base64.b64encode(private.sign(data)).decode("ascii"),
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


@dataclass(frozen=True, slots=True)
class TrustedKeys:
    """The public keys a runtime accepts signatures from, by key id."""

    keys: dict[str, Ed25519PublicKey]

    @classmethod
    def from_pems(cls, pems: Iterable[bytes]) -> TrustedKeys:
        keys = {}
        for pem in pems:
            public = load_public_key(pem)
            keys[key_id(public)] = public
        return cls(keys)

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> TrustedKeys:
        pems = []
        for path in paths:
            try:
                pems.append(path.read_bytes())
            except OSError as exc:
                raise SignatureError(f"cannot read public key {path}: {exc.strerror}") from None
        return cls.from_pems(pems)

    def __bool__(self) -> bool:
        return bool(self.keys)

    def verify(self, data: bytes, signature: bytes | None) -> str:
        """Return the key id that signed ``data``; SignatureError when it cannot be trusted."""
        if signature is None:
            raise SignatureError(
                "the pack is unsigned (no .sig file) and a trusted key is configured"
            )
        try:
            doc = json.loads(signature)
        except (ValueError, UnicodeDecodeError):
            raise SignatureError("the signature file is not JSON") from None
        if not isinstance(doc, dict) or doc.get("format") != SIGNATURE_FORMAT:
            raise SignatureError(f"the signature file is not {SIGNATURE_FORMAT}")
        kid = doc.get("key_id")
        public = self.keys.get(kid) if isinstance(kid, str) else None
        if public is None:
            trusted = ", ".join(sorted(self.keys)) or "none"
            raise SignatureError(f"signed by untrusted key {kid!r} (trusted: {trusted})")
        if doc.get("sha256") != hashlib.sha256(data).hexdigest():
            raise SignatureError(
                "the pack does not match its signature (sha256 differs): tampered?"
            )
        try:
            public.verify(base64.b64decode(str(doc.get("signature", ""))), data)
        except (InvalidSignature, ValueError):
            raise SignatureError(
                "the signature does not verify: the pack was tampered with"
            ) from None
        return str(kid)
