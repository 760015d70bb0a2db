"""Source heartbeats: a source silent past ``expect_every`` opens an escalation through
``source.silent``; its next request sends ``source.recovered``; the timer lives in the
store, so a restart keeps it; ``POST /sources/<name>/heartbeat`` authenticates like the
source."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from escalade.runtime import heartbeats
from escalade.runtime.clock import VirtualClock
from escalade.runtime.engine import Engine
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.server import EscaladeServer
from escalade.runtime.settings import parse_settings
from escalade.runtime.web.sources import attach_sources
from tests.runtime.conftest import T0
from tests.runtime.test_sources import EXAMPLES, SECRETS, TIMEOUT, post

EVERY = 15 * 60
TICKET = "source:zendesk"
Factory = Callable[..., tuple[Engine, VirtualClock, RecordingNotifier]]


def sight(engine: Engine, at: int, name: str = "zendesk") -> dict[str, Any] | None:
    with engine.store.transaction():
        return heartbeats.seen(engine.store, name, EVERY, at)


def test_a_source_silent_past_expect_every_opens_an_escalation_and_recovers(
    make_engine: Factory,
) -> None:
    engine, _clock, notifier = make_engine()
    assert sight(engine, T0) is None
    engine.advance(T0 + 600)
    assert sight(engine, T0 + 600) is None  # seen again: the silence starts over
    engine.advance(T0 + EVERY + 60)  # the first timer fires and is armed again
    assert engine.store.open_escalation(TICKET) is None
    engine.advance(T0 + 600 + EVERY)
    esc = engine.store.open_escalation(TICKET)
    assert esc is not None and esc.policy == "source_silent" and esc.owner == "carol"
    state, _ = engine.store.ticket_state(TICKET)
    assert state["source"]["status"] == "silent" and state["source"]["name"] == "zendesk"
    assert any("zendesk" in (s.text or "") for s in notifier.sent)
    engine.advance(T0 + 600 + 3 * EVERY)  # still silent: no second source.silent
    assert engine.store.count_events() == 1

    recovered = sight(engine, T0 + 4 * EVERY)
    assert recovered is not None and recovered["type"] == "source.recovered"
    assert engine.receive(json.dumps(recovered)).status == "applied"
    state, _ = engine.store.ticket_state(TICKET)
    assert state["source"]["status"] == "live"
    assert sight(engine, T0 + 4 * EVERY + 1) is None  # live again: no second recovery


def test_the_silence_timer_survives_a_restart(make_engine: Factory, tmp_path: Any) -> None:
    db = str(tmp_path / "hb.sqlite")
    engine, _clock, _notifier = make_engine(db)
    sight(engine, T0)
    engine.store.close()
    again, _clock, _notifier = make_engine(db)
    assert again.store.open_escalation(TICKET) is None
    again.advance(T0 + EVERY)
    esc = again.store.open_escalation(TICKET)
    assert esc is not None and esc.policy == "source_silent"


def test_health_reads_the_last_sighting_and_silence(make_engine: Factory) -> None:
    engine, _clock, _notifier = make_engine()
    sight(engine, T0)
    (found,) = heartbeats.health(engine.store, {"zendesk": EVERY})
    assert found.last_seen == T0 and not found.silent and found.since(T0 + 30) == 30
    engine.advance(T0 + EVERY)
    (found,) = heartbeats.health(engine.store, {"zendesk": EVERY})
    assert found.silent


@pytest.fixture
def salesforce_server(make_engine: Factory) -> Iterator[tuple[EscaladeServer, Engine, Any]]:
    text = (EXAMPLES / "salesforce.yaml").read_text("utf-8")
    text = text.replace("      auth:", "      expect_every: 15m\n      auth:", 1)
    settings = parse_settings(text, EXAMPLES, "salesforce.yaml")
    engine, clock, _notifier = make_engine()
    server = EscaladeServer(engine, "127.0.0.1", 0, environ=SECRETS, tick_interval=3600)
    attach_sources(server, settings.sources, wall=lambda: float(clock.now()))
    server.start()
    yield server, engine, clock
    server.stop(timeout=TIMEOUT)


def test_the_heartbeat_endpoint_authenticates_like_the_source_and_ends_a_silence(
    salesforce_server: tuple[EscaladeServer, Engine, Any],
) -> None:
    server, engine, clock = salesforce_server
    url = f"{server.url}/sources/salesforce/heartbeat"
    token = {"Authorization": f"Bearer {SECRETS['SALESFORCE_SOURCE_TOKEN']}"}
    status, answer = post(url, b"", {"Authorization": "Bearer wrong"})
    assert status == 401, answer
    clock.set(T0 + EVERY)  # armed when the sources were attached, never seen since
    server.tick_once()
    with server.lock:
        esc = engine.store.open_escalation("source:salesforce")
    assert esc is not None and esc.policy == "source_silent"
    clock.set(T0 + EVERY + 60)
    status, answer = post(url, b"", token)
    assert status == 200 and answer["outcome"] == "seen", answer
    with server.lock:
        state, _ = engine.store.ticket_state("source:salesforce")
    assert state["source"]["status"] == "live"
    assert state["source"]["silent_since"] == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0))


def _source_lines(server: EscaladeServer) -> list[str]:
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/metrics", timeout=TIMEOUT) as answer:
        text = answer.read().decode()
    return [line for line in text.splitlines() if line.startswith("escalade_source_")]


def test_metrics_show_each_watched_source_silent_then_back(
    salesforce_server: tuple[EscaladeServer, Engine, Any],
) -> None:
    server, _engine, clock = salesforce_server
    clock.set(T0 + EVERY)  # never seen since the sources were attached
    server.tick_once()
    lines = _source_lines(server)
    assert 'escalade_source_silent{source="salesforce"} 1.0' in lines
    assert not any(line.startswith("escalade_source_seconds_since_seen{") for line in lines)
    clock.set(T0 + EVERY + 60)
    token = {"Authorization": f"Bearer {SECRETS['SALESFORCE_SOURCE_TOKEN']}"}
    status, answer = post(f"{server.url}/sources/salesforce/heartbeat", b"", token)
    assert status == 200, answer
    clock.set(T0 + EVERY + 90)
    lines = _source_lines(server)
    assert 'escalade_source_silent{source="salesforce"} 0.0' in lines
    assert 'escalade_source_seconds_since_seen{source="salesforce"} 30.0' in lines
