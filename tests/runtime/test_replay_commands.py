"""Replay files carry the operations commands too (issue #15): a `silence` line holds
the pages of a policy from its `at` until `until`, and a `revert` line undoes what an
escalation ran, as `escalade silence` and `escalade revert` do."""

from __future__ import annotations

import json
from typing import Any

import pytest

from escalade.runtime.clock import format_time
from escalade.runtime.events import EventError, parse_command
from escalade.runtime.simulate import replay
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0
from tests.runtime.test_noise import outage


def test_a_silence_line_holds_pages_until_it_ends(pack: dict[str, Any]) -> None:
    silence = {
        "command": "silence",
        "at": format_time(T0),
        "scope": "policy",
        "name": "vendor_outage",
        "until": format_time(T0 + 1800),
        "reason": "vendor maintenance",
    }
    lines = [json.dumps(silence), json.dumps(outage(1, T0 + 60))]
    store = SQLiteStore(":memory:")
    try:
        result = replay(pack, lines, store=store, until=T0 + 1800)
        assert result.kpis["silenced_messages"] >= 1
        released = [r for r in store.audit_rows() if r.kind == "released"]
        assert [(r.ticket, r.at) for r in released] == [("T1", T0 + 1800)]
    finally:
        store.close()


def test_a_revert_line_undoes_the_publishing_lock(pack: dict[str, Any]) -> None:
    event = {
        "id": "c1",
        "type": "content.updated",
        "at": format_time(T0),
        "data": {"content": {"id": "C1", "title": "Spring", "pipeline": "failed", "qa": "pass"}},
    }
    revert = {"command": "revert", "at": format_time(T0 + 60), "ticket": "C1", "reason": "bad"}
    store = SQLiteStore(":memory:")
    try:
        replay(pack, [json.dumps(event), json.dumps(revert)], store=store)
        undone = [r for r in store.audit_rows() if r.kind == "undo"]
        assert undone and "unlock publishing" in (undone[0].reason or "")
    finally:
        store.close()


def test_a_silence_line_names_its_scope() -> None:
    bad = {"command": "silence", "at": format_time(T0), "scope": "person", "name": "x"}
    bad |= {"until": format_time(T0 + 60), "reason": "r"}
    with pytest.raises(EventError, match="scope must be policy or team"):
        parse_command(bad)
