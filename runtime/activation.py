"""Activating rule packs: verify first, activate second, and never lose the running pack.

A pack file is read once; when trusted keys are configured its detached
signature (``PACK.sig``) must verify with one of them; then the runtime's own
validation runs (schema, references, content hash). Only then does the engine
activate it, unless it is a downgrade (a lower version, or a pack a later
activation superseded): that only ``pack rollback`` may do, with its reason. Any failure is recorded in the audit trail as ``pack_refused``
and the previously active pack stays active.

A file that holds the active pack's bytes (``escalade event --pack P`` run after
run) is that pack: one hash says so, and it was validated when it was activated,
so it is neither validated nor activated again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from escalade.runtime.clock import format_time
from escalade.runtime.engine import Engine, LoadedPack
from escalade.runtime.pack import PackError, RulePack, intact_hash
from escalade.runtime.settings import RuntimeSettings, SettingsError, load_settings
from escalade.runtime.signing import SignatureError, TrustedKeys

TRUST_ENV = "ESCALADE_TRUSTED_KEYS"


class PackRefused(Exception):
    """The pack was not activated; the message says why. The active pack is unchanged."""


def trusted_keys(
    paths: tuple[Path, ...] | list[Path] = (), settings: RuntimeSettings | None = None
) -> TrustedKeys:
    """Keys from ``paths``, ``runtime.trusted_keys`` in ``escalade.yaml`` (``settings``, else
    the nearest file's) and ``$ESCALADE_TRUSTED_KEYS`` (os.pathsep-separated)."""
    if settings is None:
        try:
            settings = load_settings()
        except SettingsError as exc:
            raise SignatureError(f"invalid runtime settings: {exc}") from None
    every = [*paths, *settings.trusted_keys]
    env = os.environ.get(TRUST_ENV)
    if env:
        every.extend(Path(p) for p in env.split(os.pathsep) if p)
    return TrustedKeys.from_files(every)


def verified_pack(
    path: Path, keys: TrustedKeys, engine: Engine | None = None
) -> tuple[RulePack, str | None]:
    """Read, signature-check (when ``keys``) and validate a pack; raises PackRefused.

    With ``engine``, a file that holds the bytes of the store's active pack is that
    pack, checked by one hash: it was validated when it was activated."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PackRefused(f"cannot read {path}: {exc.strerror}") from None
    signer: str | None = None
    if keys:
        sig_path = path.with_name(path.name + ".sig")
        try:
            signature = sig_path.read_bytes() if sig_path.exists() else None
            signer = keys.verify(data, signature)
        except (SignatureError, OSError) as exc:
            raise PackRefused(str(exc)) from None
    active = _active_pack_of(engine, data) if engine is not None else None
    if active is not None:
        return active.pack, signer
    try:
        pack = RulePack.from_bytes(data, source=str(path))
    except PackError as exc:
        raise PackRefused(str(exc)) from None
    return pack, signer


def _active_pack_of(engine: Engine, data: bytes) -> LoadedPack | None:
    """The store's active pack when ``data`` are its canonical bytes (commit aside)."""
    store = engine.store
    current = store.active_pack()
    if current is None:
        return None
    found = intact_hash(data)
    if found is None or found[0] != store.pack_hash(current):
        return None
    return engine.pack(current)


ACTIVATIONS = ("pack_activated", "pack_rolled_back")
PACK_EVENTS = (*ACTIVATIONS, "pack_refused")


def _version(text: str) -> Version | None:
    try:
        return Version(text)
    except InvalidVersion:
        return None


def downgrade_problem(engine: Engine, pack: RulePack) -> str | None:
    """Why activating ``pack`` would be a downgrade that only ``pack rollback`` may do
    (None when it is not): a lower version (PEP 440 order) than the active pack's, or a
    pack that was active before and was superseded by a later activation. A pack left
    only by a rollback may be activated again (rolling forward)."""
    store = engine.store
    current = store.active_pack()
    if current is None or store.pack_hash(current) == pack.content_hash:
        return None
    active = engine.pack(current).pack
    new, old = _version(pack.version), _version(active.version)
    if new is not None and old is not None and new < old:
        return (
            f"version {pack.version} is lower than the active {active.version}:"
            " going back is `escalade pack rollback --to ... --by ... --reason ...`"
        )
    left_by: str | None = None  # how the pack last stopped being active
    was_active = False
    for row in store.audit_rows():
        if row.kind not in ACTIVATIONS:
            continue
        if row.detail.get("content_hash") == pack.content_hash:
            was_active, left_by = True, None
        elif was_active and left_by is None:
            left_by = row.kind
    if left_by == "pack_activated":
        return (
            f"pack {pack.version} ({pack.content_hash[:19]}) was active before and a later"
            " activation superseded it: bring it back with `escalade pack rollback`"
        )
    return None


def activate_file(
    engine: Engine,
    path: Path,
    keys: TrustedKeys,
    at: int | None = None,
    *,
    actor: str = "escalade",
    reason: str | None = None,
) -> LoadedPack:
    """Verify and activate ``path``; on refusal, audit it and raise PackRefused."""
    try:
        pack, signer = verified_pack(path, keys, engine)
    except PackRefused as exc:
        engine.refuse_pack(str(path), str(exc), at, actor)
        raise
    current = engine.store.active_pack()
    if current is not None and engine.store.pack_hash(current) == pack.content_hash:
        return engine.pack(current)  # already active: nothing changes, nothing to audit
    problem = downgrade_problem(engine, pack)
    if problem is not None:
        engine.refuse_pack(str(path), problem, at, actor)
        raise PackRefused(problem)
    why = reason or f"activated {path}" + (f", signed by {signer}" if signer else "")
    return engine.activate(pack, at, actor=actor, reason=why)


def pack_history(engine: Engine) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every pack the store holds (oldest first) and every activation, rollback and refusal
    with its actor and reason (oldest first): what ``escalade pack history`` and the Packs
    page show."""
    store = engine.store
    active = store.active_pack()
    packs = []
    for row in store.packs():
        loaded = engine.pack(int(row["id"]))
        packs.append(
            {
                "id": row["id"],
                "version": loaded.version,
                "content_hash": row["content_hash"],
                "commit": loaded.pack.commit,
                "added_at": _when(row["added_at"]),
                "activated_at": _when(row["activated_at"]),
                "active": row["id"] == active,
            }
        )
    events = [
        {
            "at": format_time(r.at),
            "kind": r.kind,
            "actor": r.actor,
            "reason": r.reason,
            "pack": r.pack_version,
        }
        for r in store.audit_rows()
        if r.kind in PACK_EVENTS
    ]
    return packs, events


def _when(at: int | None) -> str | None:
    return format_time(at) if at is not None else None
