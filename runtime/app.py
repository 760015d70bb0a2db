"""Wiring the runtime, in one place: settings -> notifier -> store -> engine -> active pack.

The command line, the server and tests open the runtime through
:func:`open_runtime` (as OPA's ``runtime`` package wires config, store and
plugins for its CLI and server alike). Nothing here knows the command line:
problems are :class:`AppError` with a message for people, and warnings are
returned for the caller to show.

>>> with open_runtime("escalade.db", pack_path="generated/rulepack.json") as app:  # doctest: +SKIP
...     app.engine.receive(event_json)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from escalade.runtime.activation import PackRefused, activate_file, trusted_keys, verified_pack
from escalade.runtime.engine import ClockError, Engine
from escalade.runtime.links import link_config
from escalade.runtime.notify import DryRunNotifier, Notifier
from escalade.runtime.notify.router import ChannelNotifier
from escalade.runtime.pack import RulePack
from escalade.runtime.reach import missing_kinds
from escalade.runtime.settings import RuntimeSettings, SettingsError, load_settings
from escalade.runtime.signing import SignatureError
from escalade.runtime.store import Store, StoreError, open_store

DEFAULT_DB = "escalade.db"
DEFAULT_PACK = "generated/rulepack.json"


class AppError(Exception):
    """The runtime cannot be opened as asked; the message says why and what to do.

    ``param`` names the option at fault (``--at``, ``--db``), when one is."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass
class App:
    """An opened runtime: its settings, store and engine, and what the caller should show."""

    settings: RuntimeSettings
    store: Store
    engine: Engine
    warnings: list[str] = field(default_factory=list)
    read_only: bool = False


def runtime_settings(start: Path | None = None) -> RuntimeSettings:
    """The ``runtime:`` settings of the nearest ``escalade.yaml`` (defaults without one)."""
    try:
        return load_settings(start)
    except SettingsError as exc:
        raise AppError(f"invalid runtime settings:\n{exc}") from None


def store_url(db: str | None, settings: RuntimeSettings | None = None) -> str:
    """``db``, else ``runtime.database`` from ``escalade.yaml``, else ``escalade.db``."""
    if db:
        return db
    return (settings or runtime_settings()).database or DEFAULT_DB


def new_engine(store: Store, notifier: Notifier | None, settings: RuntimeSettings) -> Engine:
    """An engine with ``runtime.retry``, ``runtime.loop_breaker`` and ``runtime.max_clock_skew``,
    and the acknowledgment links of ``runtime.server.public_url`` (every process that has
    the key builds the same links)."""
    engine = Engine(
        store,
        notifier=notifier,
        retry_attempts=settings.retry.attempts,
        retry_base=settings.retry.base,
        retry_cap=settings.retry.cap,
        loop_limit=settings.loop_breaker.limit,
        loop_window=settings.loop_breaker.window,
        max_clock_skew=settings.max_clock_skew,
        last_resort=settings.last_resort,
    )
    engine.rt.links = link_config(settings)
    return engine


def configured_notifier(settings: RuntimeSettings) -> tuple[Notifier, list[str]]:
    """The notifier ``runtime.notifiers`` describes, with warnings for secrets whose
    environment variables are unset. Without the section every message is
    ``undeliverable`` (never a silent success); with ``dry_run: true`` every message
    is ``dry_run`` and nothing is sent."""
    notifiers = settings.notifiers
    if notifiers is None:
        return ChannelNotifier(), []
    if notifiers.dry_run:
        return DryRunNotifier(), []
    warnings = [
        f"${name} is not set; deliveries that need it will fail" for name in notifiers.missing_env()
    ]
    link_env = settings.server.link_secret_env
    if link_env and not os.environ.get(link_env):
        warnings.append(f"${link_env} is not set; messages go out without acknowledgment links")
    return ChannelNotifier.from_settings(notifiers), warnings


def unreachable(settings: RuntimeSettings, pack: RulePack) -> list[str]:
    """The channel kinds ``pack`` addresses that have no notifier (none in a dry run)."""
    notifiers = settings.notifiers
    if notifiers is not None and notifiers.dry_run:
        return []
    return missing_kinds(pack, notifiers.kinds() if notifiers is not None else set())


def last_resort_problem(settings: RuntimeSettings, pack: RulePack) -> str | None:
    """Why ``runtime.last_resort`` cannot serve with ``pack`` (None when it can, or is unset)."""
    spec = settings.last_resort
    if spec is None:
        return None
    if spec.ref not in pack.people and spec.ref not in pack.teams:
        return f"runtime.last_resort.ref {spec.ref!r} is neither a person nor a team of the pack"
    if spec.channel is not None and spec.channel not in pack.channels:
        return f"runtime.last_resort.channel {spec.channel!r} is not a channel of the pack"
    return None


def unreachable_message(kinds: list[str]) -> str:
    """What to tell an operator about channel kinds without a notifier."""
    return (
        f"no notifier for the channel kinds the active pack addresses: {', '.join(kinds)};"
        " their messages are undeliverable (configure runtime.notifiers."
        f"{kinds[0]}, or set runtime.notifiers.dry_run: true)"
    )


@contextmanager
def open_runtime(
    db: str | None,
    *,
    pack_path: str | None = None,
    at: int | None = None,
    settings: RuntimeSettings | None = None,
    notifier: Notifier | None = None,
) -> Iterator[App]:
    """The runtime over ``db`` with ``pack_path`` active and ``at`` checked against the clock.

    Trusted keys come from ``runtime.trusted_keys`` and ``$ESCALADE_TRUSTED_KEYS``;
    with any, an unsigned or tampered pack is refused (and audited) and the active
    pack keeps running. Without ``pack_path``, a store with no active pack gets
    ``generated/rulepack.json`` when it exists. ``notifier`` replaces the one the
    settings describe (tests)."""
    settings = settings or runtime_settings()
    warnings: list[str] = []
    if notifier is None:
        notifier, warnings = configured_notifier(settings)
    try:
        store = open_store(store_url(db, settings))
    except StoreError as exc:
        raise AppError(str(exc)) from None
    try:
        app = App(settings, store, new_engine(store, notifier, settings), warnings)
        if at is not None:
            try:
                app.engine.check_time(at)
            except ClockError as exc:
                raise AppError(str(exc), "--at") from None
        _activate(app, pack_path, at)
        missing = unreachable(settings, app.engine.active().pack)
        if missing:
            app.warnings.append(unreachable_message(missing))
        problem = last_resort_problem(settings, app.engine.active().pack)
        if problem is not None:
            app.warnings.append(problem)
        yield app
    finally:
        store.close()


@contextmanager
def open_reader(
    db: str | None, *, pack_path: str | None = None, settings: RuntimeSettings | None = None
) -> Iterator[App]:
    """The runtime over ``db`` for a command that only reads: the store is opened read-only
    (it must exist with an up-to-date schema), no timer fires, the clock does not move.

    ``pack_path`` (else the store's active pack, else ``generated/rulepack.json``) is
    loaded in memory for what needs the current directory (``oncall``), never activated;
    a file that holds the active pack's bytes is that pack (one hash, no validation)."""
    settings = settings or runtime_settings()
    try:
        store = open_store(store_url(db, settings), read_only=True)
    except StoreError as exc:
        raise AppError(str(exc)) from None
    try:
        app = App(settings, store, new_engine(store, None, settings), read_only=True)
        candidate = pack_path
        if candidate is None and store.active_pack() is None and Path(DEFAULT_PACK).exists():
            candidate = DEFAULT_PACK
        if candidate is not None:
            try:
                keys = trusted_keys((), settings)
                pack, _signer = verified_pack(Path(candidate), keys, app.engine)
            except (PackRefused, SignatureError) as exc:
                raise AppError(f"refusing the pack {candidate}: {exc}") from None
            active = store.active_pack()
            if active is None or store.pack_hash(active) != pack.content_hash:
                app.engine.pin(pack)  # the active pack itself needs no pin
        yield app
    finally:
        store.close()


def _activate(app: App, pack_path: str | None, at: int | None) -> None:
    """Activate ``pack_path`` (or the default pack for a store without one)."""
    store = app.store
    candidate = pack_path
    if candidate is None and store.active_pack() is None and Path(DEFAULT_PACK).exists():
        candidate = DEFAULT_PACK
    if candidate is None:
        if store.active_pack() is None:
            raise AppError(
                f"no rule pack: {DEFAULT_PACK} does not exist and the store has no active pack"
                " (build one with `escalade build`, or pass --pack FILE)"
            )
        return
    try:
        activate_file(app.engine, Path(candidate), trusted_keys((), app.settings), at)
    except (PackRefused, SignatureError) as exc:
        if store.active_pack() is None:
            raise AppError(f"refusing the pack {candidate}: {exc}") from None
        app.warnings.append(
            f"refused the pack {candidate}: {exc}; "
            f"keeping pack {app.engine.active().version} active"
        )
