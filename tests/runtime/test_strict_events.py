"""Strict events (issue #9): hostile inputs are dead-lettered with a clear message, never a crash.

Each hostile event is refused by :func:`parse_event`, dead-lettered by the real
engine with nothing else changed, and rejected by ``escalade event`` with exit
status 1 and no traceback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from escalade.compiler.cli import main
from escalade.runtime.events import EventError, parse_event, storable_text
from escalade.runtime.pack import EventSchema
from escalade.runtime.store import Store
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import REPO, critical

AT = "2026-11-27T10:00:00Z"
GOOD_TICKET = '"ticket": {"id": "T1", "title": "Checkout down", "severity": "critical"}'


def event(id_: str = '"e1"', at: str = f'"{AT}"', ticket: str = GOOD_TICKET) -> str:
    """An event as JSON text, its parts written as JSON text (escapes stay escapes)."""
    return f'{{"id": {id_}, "type": "ticket.created", "at": {at}, "data": {{{ticket}}}}}'


# (name, JSON text, what the message says)
HOSTILE = [
    ("surrogate in id", event(id_=r'"s\ud800"'), r"the text at /id holds an unpaired surrogate"),
    ("NUL in id", event(id_=r'"e\u0000"'), r"`id` must be printable text: 'e\\x00' holds U\+0000"),
    ("escape in id", event(id_=r'"e\u001b[2J"'), r"`id` must be printable text: .* U\+001B"),
    ("long id", event(id_=json.dumps("e" * 201)), r"`id` is 201 characters long \(at most 200\)"),
    ("integer at", event(at="12345"), r"at: expected an ISO-8601 time with a zone .* a number"),
    ("naive at", event(at='"2026-11-27T10:00:00"'), r"has no zone: add Z \(UTC\) or an offset"),
    ("date-only at", event(at='"2026-11-27"'), r"has no zone"),
    (
        "duplicate top-level key",
        event(id_='"e1", "id": "e2"'),
        r"the key 'id' is repeated at the top level",
    ),
    (
        "duplicate nested key",
        event(ticket='"ticket": {"id": "T1", "severity": "low", "severity": "critical"}'),
        r"the key 'severity' is repeated at /data/ticket",
    ),
    (
        "surrogate in ticket id",
        event(ticket=r'"ticket": {"id": "T\udc00"}'),
        r"the text at /data/ticket/id holds an unpaired surrogate",
    ),
    (
        "NUL in ticket id",
        event(ticket=r'"ticket": {"id": "T\u0000"}'),
        r"data.ticket.id must be printable text: 'T\\x00' holds U\+0000",
    ),
    (
        "long ticket id",
        event(ticket=f'"ticket": {{"id": "{"T" * 500}"}}'),
        r"data.ticket.id is 500 characters long \(at most 200\)",
    ),
    (
        "newline in account id",
        event(ticket=GOOD_TICKET + r', "account": {"id": "acme\nx", "tier": "pro"}'),
        r"data.account.id must be printable text",
    ),
    (
        "surrogate in a title",
        event(ticket=r'"ticket": {"id": "T1", "title": "\ud83d down"}'),
        r"the text at /data/ticket/title holds an unpaired surrogate",
    ),
    (
        "surrogate in an unknown key",
        event(ticket=r'"ticket": {"id": "T1", "x\udfff": 1}'),
        r"the key 'x\\udfff' at /data/ticket holds an unpaired surrogate",
    ),
    ("a number too large", event(ticket='"ticket": {"id": "T1", "n": 1e400}'), r"too large"),
]
IDS = [name for name, _, _ in HOSTILE]


@pytest.mark.parametrize(("name", "raw", "message"), HOSTILE, ids=IDS)
def test_parse_event_refuses_hostile_events_with_a_clear_message(
    pack: dict[str, Any], name: str, raw: str, message: str
) -> None:
    for given in (raw, raw.encode()):
        with pytest.raises(EventError, match=message) as caught:
            parse_event(given, EventSchema.of(pack["schema"]))
        error = str(caught.value)
        assert "\n" not in error and error.isprintable(), error
        event_id = caught.value.event_id
        assert event_id is None or event_id == "e1"  # never an id that failed its check


def test_a_mapping_meets_the_same_rules_as_text(pack: dict[str, Any]) -> None:
    with pytest.raises(EventError, match=r"the text at /id holds an unpaired surrogate"):
        parse_event(critical("T1", "s\ud800"), EventSchema.of(pack["schema"]))
    with pytest.raises(EventError, match=r"NaN is not a JSON number"):
        parse_event(critical("T1", "e1", title=float("nan")), EventSchema.of(pack["schema"]))
    with pytest.raises(EventError, match=r"not JSON: .*not JSON serializable"):
        parse_event(critical("T1", "e1", title={1, 2}), EventSchema.of(pack["schema"]))
    with pytest.raises(EventError, match=r"has no zone"):
        parse_event(critical("T1", "e1", at="2026-11-27T10:00"), EventSchema.of(pack["schema"]))


@pytest.mark.parametrize(
    "at", ["2026-11-27T10:00:00Z", "2026-11-27T11:00:00+01:00", " 2026-11-27t10:00:00z "]
)
def test_zoned_times_are_read(pack: dict[str, Any], at: str) -> None:
    parsed = parse_event(event(at=json.dumps(at)), EventSchema.of(pack["schema"]))
    assert parsed.at == 1795773600


def test_well_formed_unicode_passes_unchanged(pack: dict[str, Any]) -> None:
    # an escaped surrogate *pair* is one character; printable non-ASCII ids are fine
    raw = event(
        id_='"évt-1"', ticket=r'"ticket": {"id": "Tü-1", "title": "\ud83d\udd25 down \u00e9"}'
    )
    parsed = parse_event(raw, EventSchema.of(pack["schema"]))
    assert (parsed.id, parsed.ticket) == ("évt-1", "Tü-1")
    assert parsed.data["ticket"]["title"] == "\U0001f525 down é"
    assert parsed.raw == raw


# --- through the real engine ---------------------------------------------------


def footprint(store: Store) -> tuple[Any, ...]:
    """Everything an event may change, except the dead letters and their counter."""
    counters = {k: v for k, v in store.counters().items() if k != "dead_letters"}
    return (
        store.clock(),
        store.count_events(),
        store.ticket_state("T1"),
        store.open_escalation("T1"),
        store.count_timers(),
        [row.hash for row in store.audit_rows()],
        store.outbox(),
        counters,
    )


@pytest.mark.parametrize(("name", "raw", "message"), HOSTILE, ids=IDS)
def test_the_engine_dead_letters_hostile_events_and_changes_nothing_else(
    make_engine: Any, name: str, raw: str, message: str
) -> None:
    engine, _, _ = make_engine()
    store = engine.store
    before = footprint(store)
    for given in (raw, raw.encode()):
        outcome = engine.receive(given)
        assert outcome.status == "dead_letter", outcome.message
        assert re.search(message, outcome.message), outcome.message
    assert footprint(store) == before
    letters = store.dead_letters()
    assert [d.raw for d in letters] == [raw, raw]  # kept as it came: replayable
    assert all(re.search(message, d.error) for d in letters)
    assert store.counters().get("dead_letters") == 2


def test_a_dead_letter_replays_once_the_event_is_fixed(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    assert engine.receive(event(at='"2026-11-27T10:00:00"')).status == "dead_letter"
    [(_, again)] = engine.replay_dead_letters()
    assert again.status == "dead_letter" and "has no zone" in again.message
    assert engine.receive(event()).status == "applied"


# --- through the command line ----------------------------------------------------


@pytest.mark.parametrize(("name", "raw", "message"), HOSTILE, ids=IDS)
def test_the_cli_rejects_hostile_events_with_status_1_and_no_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, raw: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)  # no escalade.yaml of the repository
    source = tmp_path / "event.json"
    source.write_text(raw + "\n", encoding="utf-8")
    db = tmp_path / "escalade.db"
    args = ["event", str(source), "--db", str(db), "--pack", str(REPO / "generated/rulepack.json")]
    result = CliRunner().invoke(main, [*args, "--at", AT])
    assert isinstance(result.exception, SystemExit), result.output
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    [said] = [line for line in result.output.splitlines() if line.startswith("rejected: ")]
    assert re.search(message, said), said
    store = SQLiteStore(str(db))
    try:
        [letter] = store.dead_letters()
        assert letter.raw == raw and store.count_events() == 0
    finally:
        store.close()


# --- what a dead letter keeps ------------------------------------------------------


def test_storable_text_is_the_input_unless_a_store_cannot_keep_it() -> None:
    valid = event(ticket=r'"ticket": {"id": "T1", "title": "tab\there \u00e9 \ud83d\udd25"}')
    assert storable_text(valid) == valid
    assert storable_text(valid.encode()) == valid
    assert storable_text("a\x00b\ud800c\n\t") == "a\\u0000b\\ud800c\n\t"
    assert storable_text(b"e\xff\x00") == "e\ufffd\\u0000"
    assert storable_text({"id": "s\ud800"}) == '{"id": "s\\ud800"}'
    assert storable_text({"id": {1, 2}}).startswith("{'id': {1, 2}")
    for text in (storable_text("\ud800\x00"), storable_text(b"\xed\xa0\x80")):
        text.encode("utf-8")  # UTF-8 and PostgreSQL text keep it
        assert "\x00" not in text


def test_text_no_store_can_keep_is_dead_lettered_as_escapes(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    raw = event(id_='"s\ud800"')  # from a Python caller: a lone surrogate, not an escape
    outcome = engine.receive(raw)
    assert outcome.status == "dead_letter" and "unpaired surrogate" in outcome.message
    [letter] = engine.store.dead_letters()
    assert letter.raw == storable_text(raw) == event(id_=r'"s\ud800"')
