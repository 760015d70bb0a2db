"""Runtime test fixtures: the pack built from policies/, engines on temporary stores."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from escalade.compiler import load_policy_set
from escalade.compiler.backends.rulepack import build_pack
from escalade.runtime.clock import VirtualClock, parse_time
from escalade.runtime.engine import Engine
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.store.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parents[2]
T0 = parse_time("2026-11-27T10:00:00Z")


@pytest.fixture(scope="session")
def pack() -> dict[str, Any]:
    """The rule pack of the repository's policies/."""
    result = load_policy_set(str(REPO / "policies"))
    assert result.pset is not None and result.errors == 0
    return build_pack(result.pset)


@pytest.fixture
def pack_file(tmp_path: Path, pack: dict[str, Any]) -> Path:
    path = tmp_path / "rulepack.json"
    path.write_text(json.dumps(pack, sort_keys=True, indent=2) + "\n")
    return path


@pytest.fixture
def make_engine(
    tmp_path: Path, pack: dict[str, Any]
) -> Iterator[Callable[..., tuple[Engine, VirtualClock, RecordingNotifier]]]:
    """A factory: a fresh engine on a temporary SQLite file, pack active at T0."""
    stores: list[SQLiteStore] = []

    def factory(db: str | None = None) -> tuple[Engine, VirtualClock, RecordingNotifier]:
        store = SQLiteStore(db or str(tmp_path / f"db{len(stores)}.sqlite"))
        stores.append(store)
        clock = VirtualClock(T0)
        notifier = RecordingNotifier()
        engine = Engine(store, clock, notifier)
        engine.activate(pack, T0)
        return engine, clock, notifier

    yield factory
    for store in stores:
        store.close()


def critical(
    ticket: str, event_id: str, at: str = "2026-11-27T10:00:00Z", **extra: Any
) -> dict[str, Any]:
    """An enterprise critical ticket.created event."""
    data: dict[str, Any] = {
        "ticket": {"id": ticket, "title": "Checkout down", "severity": "critical", "status": "new"},
        "account": {"id": "acme", "name": "Acme", "tier": "enterprise"},
    }
    data["ticket"].update(extra)
    return {"id": event_id, "type": "ticket.created", "at": at, "data": data}


@contextlib.contextmanager
def pg_schema(dsn: str, prefix: str, **store_kw: Any) -> Iterator[Callable[[], Any]]:
    """An opener of PostgreSQL stores on ONE fresh schema (each call another connection);
    on exit every store is closed and the schema dropped."""
    from escalade.runtime.store.postgres import PostgresStore

    schema = f"{prefix}_{uuid.uuid4().hex[:16]}"
    opened: list[Any] = []

    def opener(**kw: Any) -> Any:
        store = PostgresStore(dsn, schema=schema, **store_kw, **kw)
        opened.append(store)
        return store

    try:
        yield opener
    finally:
        for store in opened:
            store.close()
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
