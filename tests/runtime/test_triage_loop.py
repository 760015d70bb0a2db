"""An escalation in triage whose messages can never be delivered stays in triage: the
failed delivery check of a triage notification is audited, not a new failure (before,
each retry window triaged again and notified again: 100 triages an hour)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from escalade.runtime.clock import VirtualClock
from escalade.runtime.engine import Engine
from escalade.runtime.notify.router import ChannelNotifier
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0, critical


def test_undeliverable_triage_does_not_loop(tmp_path: Path, pack: dict[str, Any]) -> None:
    store = SQLiteStore(str(tmp_path / "s.db"))
    try:
        engine = Engine(store, VirtualClock(T0), ChannelNotifier())  # no channel configured
        engine.activate(pack, T0)
        assert engine.receive(json.dumps(critical("T1", "e1")), T0).status == "applied"
        for minute in range(1, 61):
            engine.tick(T0 + minute * 60)
        status = engine.status("T1", T0 + 3600)
        assert status is not None and status["state"] == "triage"
        kinds = Counter(row["kind"] for row in status["history"])
        assert kinds["triage"] <= 2, kinds
        assert kinds["check_failed"] <= 1, kinds
    finally:
        store.close()
