"""A long-running engine sees what other processes did to the store after refresh()."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from escalade.runtime.engine import Engine
from escalade.runtime.pack import compute_content_hash
from escalade.runtime.store.sqlite import SQLiteStore


def test_refresh_sees_a_pack_activated_elsewhere(tmp_path: Path, pack: dict[str, Any]) -> None:
    db = str(tmp_path / "shared.db")
    server = Engine(SQLiteStore(db))
    first = server.activate(pack, 1_700_000_000)
    other = copy.deepcopy(pack)
    other["metadata"]["version"] = "9.9.9"
    other["metadata"]["content_hash"] = compute_content_hash(other)
    operator = Engine(SQLiteStore(db))
    second = operator.activate(other, 1_700_000_060, actor="sam", reason="rollout")
    assert server.active().id == first.id  # cached until refreshed
    server.refresh()
    assert server.active().id == second.id
    assert server.active().version.startswith("9.9.9+")


def test_triage_owner_is_not_labelled_with_the_team_it_replaced(make_engine: Any) -> None:
    """After the chain runs out, status shows the triage owner without a stale 'on call for'."""
    from tests.runtime.conftest import T0, critical

    engine, _clock, _ = make_engine()
    engine.receive(critical("T9", "e9", status="new"))  # the state check will fail at 5m
    engine.advance(T0 + 3600 * 2)
    status = engine.status("T9")
    assert status["level"] == "triage"
    assert status["owner"] == "dana" and status["owner_from"] is None
