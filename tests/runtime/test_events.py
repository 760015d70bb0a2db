"""Event validation: unknown fields counted, malformed events dead-lettered with a clear message."""

from __future__ import annotations

import json
from typing import Any

import pytest

from escalade.runtime.events import EventError, parse_event, parse_line
from escalade.runtime.pack import EventSchema
from tests.runtime.conftest import critical


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        ('{"type": "ticket.created", "at": "2026-11-27T10:00:00Z"}', "missing `id`"),
        ('{"id": "e", "at": "2026-11-27T10:00:00Z"}', "missing `type`"),
        (
            '{"id": "e", "type": "ticket.deleted", "at": "2026-11-27T10:00:00Z"}',
            "unknown event type",
        ),
        ('{"id": "e", "type": "ticket.created", "at": "yesterday", "data": {}}', "ISO-8601"),
        (
            '{"id": "e", "type": "ticket.created", "at": "2026-11-27T10:00:00Z", "data": {}}',
            "data.ticket.id",
        ),
        (
            '{"id": "e", "type": "ticket.created", "at": "2026-11-27T10:00:00Z",'
            ' "data": {"ticket": {"id": "T", "severity": "sev1"}}}',
            "ticket.severity: 'sev1' is not one of",
        ),
        (
            '{"id": "e", "type": "ticket.created", "at": "2026-11-27T10:00:00Z",'
            ' "data": {"ticket": {"id": "T", "tags": "vip"}}}',
            "ticket.tags: expected a list",
        ),
        (
            '{"id": "e", "type": "ticket.created", "at": "2026-11-27T10:00:00Z",'
            ' "data": {"ticket": {"id": 7}}}',
            "ticket.id: expected text",
        ),
    ],
)
def test_malformed_events_are_rejected_with_a_clear_message(
    pack: dict[str, Any], raw: str, message: str
) -> None:
    with pytest.raises(EventError, match=message.replace("(", r"\(")):
        parse_event(raw, EventSchema.of(pack["schema"]))


def test_values_are_normalised_and_unknowns_listed(pack: dict[str, Any]) -> None:
    event = critical("T1", "e1", tags=["b", "a", "b"], mood="x")
    event["data"]["weather"] = {"sky": "grey"}
    parsed = parse_event(json.dumps(event), EventSchema.of(pack["schema"]))
    assert parsed.ticket == "T1" and parsed.data["ticket"]["tags"] == ["a", "b"]
    assert set(parsed.unknown) == {"ticket.mood", "data.weather"}


def test_malformed_event_changes_nothing_but_the_dead_letter_table(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    before = list(engine.store.audit_rows())
    outcome = engine.receive(
        '{"id": "e", "type": "ticket.created", "at": "2026-11-27T10:00:00Z", "data": {"ticket": {"id": "T", "severity": 3}}}'
    )
    assert outcome.status == "dead_letter" and "ticket.severity" in outcome.message
    assert list(engine.store.audit_rows()) == before
    assert engine.store.open_escalation("T") is None and not engine.store.has_event("e")
    assert [d.event_id for d in engine.store.dead_letters()] == ["e"]


def test_replay_lines_hold_commands(pack: dict[str, Any]) -> None:
    cmd = parse_line(
        '{"command": "transfer", "at": "2026-11-27T10:00:00Z", "ticket": "T",'
        ' "to": "dana", "reason": "r", "sla": "2h"}',
        EventSchema.of(pack["schema"]),
    )
    assert getattr(cmd, "args", {})["sla"] == 7200
    with pytest.raises(EventError, match="unknown command"):
        parse_line(
            '{"command": "explode", "at": "2026-11-27T10:00:00Z"}', EventSchema.of(pack["schema"])
        )
