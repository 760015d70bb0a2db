"""An absence or an override that starts later moves what it takes away when it starts
(SPEC §4: an owner who becomes absent is replaced at once), by a timer row, so a restart
in between loses nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from escalade.runtime.clock import VirtualClock
from escalade.runtime.engine import Engine
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0

MIN = 60


def lead(ticket: str) -> str:
    data = {"lead": {"id": ticket, "source": "paid_campaign", "crm_status": "rejected"}}
    return json.dumps(
        {"id": f"e-{ticket}", "type": "lead.updated", "at": "2026-11-27T10:00:00Z", "data": data}
    )


def urgent(ticket: str) -> str:
    data = {
        "ticket": {"id": ticket, "title": "Export", "priority": "urgent", "severity": "high"},
        "account": {"id": "acme", "tier": "pro"},
    }
    return json.dumps(
        {"id": f"e-{ticket}", "type": "ticket.created", "at": "2026-11-27T10:00:00Z", "data": data}
    )


def owner(engine: Engine, ticket: str, at: int) -> str | None:
    status = engine.status(ticket, at)
    assert status is not None
    return status["owner"]  # type: ignore[no-any-return]


def test_a_future_absence_moves_the_ticket_when_it_starts_across_a_restart(
    tmp_path: Path, pack: dict[str, Any]
) -> None:
    path = str(tmp_path / "h.db")
    store = SQLiteStore(path)
    engine = Engine(store, VirtualClock(T0), RecordingNotifier())
    engine.activate(pack, T0)
    engine.receive(lead("L1"), T0)
    assert owner(engine, "L1", T0) == "erin"  # ack 12h
    engine.absent("erin", T0 + 5 * 60 * MIN, T0, by="kim", since=T0 + 60 * MIN)
    engine.tick(T0 + 59 * MIN)
    assert owner(engine, "L1", T0 + 59 * MIN) == "erin"
    store.close()
    store = SQLiteStore(path)  # a restart before the absence begins
    try:
        engine = Engine(store, VirtualClock(T0 + 59 * MIN), RecordingNotifier())
        engine.tick(T0 + 60 * MIN)
        assert owner(engine, "L1", T0 + 60 * MIN) == "farid"
        moved = [
            r
            for r in store.audit_rows()
            if r.ticket == "L1" and "erin is absent from" in (r.reason or "")
        ]
        assert moved, "the reassignment says why"
    finally:
        store.close()


def test_a_future_override_moves_what_the_team_gave_when_it_starts(
    make_engine: Any,
) -> None:
    engine, _, _ = make_engine()
    engine.receive(urgent("U1"), T0)  # Friday 11:00 Berlin: europe's on-call
    first = owner(engine, "U1", T0)
    assert first in ("lena", "marc")
    start, until = T0 + 10 * MIN, T0 + 60 * MIN
    engine.override("support_oncall", "nora", start, until, None, "cover", "ines", at=T0 + MIN)
    assert owner(engine, "U1", T0 + 5 * MIN) == first  # not yet
    engine.tick(start)
    assert owner(engine, "U1", start) == "nora"
