"""Overrides recorded by another process reach an engine at its next transaction: the
store's roster version (raised by every override and absence) tells each process its
kept copy of the overrides is stale, without a refresh and without a read per event."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from escalade.runtime.clock import VirtualClock, parse_time
from escalade.runtime.engine import Engine
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0, critical

H = 3600


def test_an_override_from_another_process_is_used_at_the_next_assignment(
    tmp_path: Path, pack: dict[str, Any]
) -> None:
    path = str(tmp_path / "shared.db")
    first = SQLiteStore(path)
    other = SQLiteStore(path)
    try:
        engine = Engine(first, VirtualClock(T0), RecordingNotifier())
        engine.activate(pack, T0)
        engine.receive(json.dumps(critical("T1", "e1")), T0)  # reads and keeps the overrides
        assert engine.status("T1", T0)["owner"] == "alice"  # type: ignore[index]
        worker = Engine(other, VirtualClock(T0), RecordingNotifier())
        until = parse_time("2026-11-27T18:00:00Z")
        worker.override("cust_ops_oncall", "carol", None, until, None, "swap", "dana", at=T0 + 60)
        engine.receive(json.dumps(critical("T2", "e2")), T0 + 120)
        assert engine.status("T2", T0 + 120)["owner"] == "carol"  # type: ignore[index]
    finally:
        first.close()
        other.close()
