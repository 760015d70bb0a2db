"""Inbound sources end to end: each example under examples/sources/ signed as its vendor
signs, POSTed to a real server on loopback, an escalation created; one byte changed is
401, logged and counted but never audited; a payload the map cannot read is 422 and a
dead letter with the raw payload."""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from escalade.runtime.engine import Engine
from escalade.runtime.server import EscaladeServer
from escalade.runtime.settings import RuntimeSettings, SettingsError, parse_settings
from escalade.runtime.sources import SourceAuth, sign, verify
from escalade.runtime.web.sources import attach_sources

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "sources"
TIMEOUT = 10.0
SECRETS = {
    "ZENDESK_WEBHOOK_SECRET": "zd-signing-secret-1",
    "JIRA_WEBHOOK_SECRET": "jira-secret-2",
    "SALESFORCE_SOURCE_TOKEN": "sf-token-3",
    "ALERTMANAGER_SOURCE_TOKEN": "am-token-4",
}


def example(name: str) -> tuple[RuntimeSettings, bytes]:
    text = (EXAMPLES / f"{name}.yaml").read_text("utf-8")
    return parse_settings(text, EXAMPLES, f"{name}.yaml"), (EXAMPLES / f"{name}.json").read_bytes()


def post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    for key, value in headers.items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


@pytest.fixture
def serving(
    make_engine: Callable[..., tuple[Engine, Any, Any]],
) -> Iterator[Callable[[RuntimeSettings], tuple[EscaladeServer, Engine]]]:
    started: list[EscaladeServer] = []

    def factory(settings: RuntimeSettings) -> tuple[EscaladeServer, Engine]:
        engine, _clock, _notifier = make_engine()
        server = EscaladeServer(engine, "127.0.0.1", 0, environ=SECRETS, tick_interval=0.05)
        attach_sources(server, settings.sources)
        server.start()
        started.append(server)
        return server, engine

    yield factory
    for server in started:
        server.stop(timeout=TIMEOUT)


EXPECTED = {
    "zendesk": ("ZD-5158", "critical_default"),
    "jira": ("OPS-42", "critical_default"),
    "salesforce": ("SF-00001027", "enterprise_critical"),
    "alertmanager": ("alert-CheckoutErrorRate", "critical_default"),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_vendor_signed_example_opens_the_escalation_and_one_changed_byte_is_401(
    name: str,
    serving: Callable[[RuntimeSettings], tuple[EscaladeServer, Engine]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings, body = example(name)
    server, engine = serving(settings)
    auth = settings.sources[name].auth
    headers = sign(auth, body, SECRETS[auth.env], int(time.time()))
    url = f"{server.url}/sources/{name}"
    with server.lock:
        trail = len(list(engine.store.audit_rows()))
    middle = len(body) // 2
    tampered = body[:middle] + bytes([body[middle] ^ 1]) + body[middle + 1 :]
    with caplog.at_level(logging.WARNING, logger="escalade.runtime.security"):
        if auth.method == "bearer":  # a token does not cover the body: a wrong token then
            status, answer = post(url, body, {"Authorization": "Bearer wrong"})
        else:
            status, answer = post(url, tampered, headers)
    assert status == 401, answer
    assert f"source {name}" in answer["error"]
    with server.lock:
        assert len(list(engine.store.audit_rows())) == trail  # never audited
    assert server.security.counts["source_signature"] == 1
    assert f"source {name}" in caplog.text
    assert body.decode()[:40] not in caplog.text and SECRETS[auth.env] not in caplog.text

    status, answer = post(url, body, headers)
    ticket, policy = EXPECTED[name]
    assert status == 200 and answer["outcome"] == "applied", answer
    assert answer["ticket"] == ticket and answer["source"] == name
    with server.lock:
        escalation = engine.store.open_escalation(ticket)
    assert escalation is not None and escalation.policy == policy


def test_a_stale_signed_timestamp_is_401(
    serving: Callable[[RuntimeSettings], tuple[EscaladeServer, Engine]],
) -> None:
    settings, body = example("zendesk")
    server, _engine = serving(settings)
    auth = settings.sources["zendesk"].auth
    stale = sign(auth, body, SECRETS[auth.env], int(time.time()) - 3600)
    status, answer = post(f"{server.url}/sources/zendesk", body, stale)
    assert status == 401 and "stale" in answer["error"]


def test_a_payload_the_map_cannot_read_is_a_422_dead_letter_with_the_raw_payload(
    serving: Callable[[RuntimeSettings], tuple[EscaladeServer, Engine]],
) -> None:
    settings, body = example("zendesk")
    server, engine = serving(settings)
    auth = settings.sources["zendesk"].auth
    doc = json.loads(body)
    doc["detail"]["priority"] = "SOMEDAY"  # no mapping for it
    odd = json.dumps(doc).encode()
    status, answer = post(
        f"{server.url}/sources/zendesk", odd, sign(auth, odd, SECRETS[auth.env], int(time.time()))
    )
    assert status == 422 and answer["outcome"] == "dead_letter"
    assert "'SOMEDAY' at /detail/priority has no mapping" in answer["error"]
    with server.lock:
        letters = engine.store.dead_letters()
    assert [letter.raw for letter in letters] == [odd.decode()]
    assert letters[0].error.startswith("source zendesk: map.fields.ticket.severity")


def test_an_unknown_source_is_404_and_a_missing_secret_503(
    serving: Callable[[RuntimeSettings], tuple[EscaladeServer, Engine]],
) -> None:
    settings, body = example("zendesk")
    server, _engine = serving(settings)
    status, answer = post(f"{server.url}/sources/nope", body, {})
    assert status == 404 and "zendesk" in answer["error"]
    server.environ = {}
    status, answer = post(f"{server.url}/sources/zendesk", body, {})
    assert status == 503 and "$ZENDESK_WEBHOOK_SECRET" in answer["error"]


STANDARD = SourceAuth("standard_webhooks", secret_env="S")
STRIPE = SourceAuth("stripe", secret_env="S")
GITHUB = SourceAuth("hmac", secret_env="S", header="X-Hub-Signature-256", prefix="sha256=")


@pytest.mark.parametrize("auth", [STANDARD, STRIPE, GITHUB], ids=lambda a: a.method)
def test_each_signature_scheme_verifies_its_own_signature_and_refuses_a_changed_body(
    auth: SourceAuth,
) -> None:
    secret = "whsec_c2VjcmV0LWJ5dGVz" if auth.method == "standard_webhooks" else "s3cret"
    body, now = b'{"a": 1}', 1_800_000_000
    headers = {k.lower(): v for k, v in sign(auth, body, secret, now).items()}
    assert verify(auth, headers, body, secret, now + 10) is None
    assert verify(auth, headers, b'{"a": 2}', secret, now) == "the signature does not match"
    assert verify(auth, headers, body, "other", now) == "the signature does not match"
    if auth.method != "hmac":
        assert "stale" in (verify(auth, headers, body, secret, now + 3600) or "")


def test_github_signature_header_is_the_documented_one() -> None:
    # GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!"
    expected = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
    assert sign(GITHUB, b"Hello, World!", "It's a Secret to Everybody", 0) == {
        "X-Hub-Signature-256": expected
    }


BAD = """\
runtime:
  sources:
    zendesk:
      auth: {method: hmac, secret: inline-value}
      map:
        id: {template: "no pointer"}
        type: {pointer: type, values: {a: b}}
        fields:
          ticket.title: /subject
      expect_every: soon
"""


def test_bad_source_settings_are_located_errors() -> None:
    with pytest.raises(SettingsError) as caught:
        parse_settings(BAD, Path("."), "escalade.yaml")
    text = str(caught.value)
    assert "escalade.yaml:4:" in text and "secrets are never written" in text
    assert "inline-value" not in text
    fixed = BAD.replace("secret: inline-value", "secret_env: ZD")
    with pytest.raises(SettingsError) as caught:
        parse_settings(fixed, Path("."), "escalade.yaml")
    lines = str(caught.value).splitlines()
    assert any(
        line.startswith("escalade.yaml:4:") and "method hmac needs header" in line for line in lines
    )
    assert any(line.startswith("escalade.yaml:6:") and "{/json/pointer}" in line for line in lines)
    assert any(line.startswith("escalade.yaml:7:") and "starts with /" in line for line in lines)
    assert any("map ticket.id too" in line for line in lines)
    assert any(line.startswith("escalade.yaml:10:") and "expect_every" in line for line in lines)


def test_source_test_prints_the_mapped_event_and_its_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from escalade.runtime.cli.source import source_group

    (tmp_path / "escalade.yaml").write_text((EXAMPLES / "zendesk.yaml").read_text("utf-8"))
    monkeypatch.chdir(tmp_path)
    pack = str(REPO / "generated" / "rulepack.json")
    sample = str(EXAMPLES / "zendesk.json")
    result = CliRunner().invoke(
        source_group, ["test", "zendesk", sample, "--pack", pack, "--format", "json"]
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["owner"] == "critical_default" and doc["ticket"] == "ZD-5158"
    assert doc["event"]["data"]["ticket"]["severity"] == "critical"
    text = CliRunner().invoke(source_group, ["test", "zendesk", sample, "--pack", pack])
    assert "owner: critical_default" in text.output and '"id": "ZD-5158"' in text.output
    bad = tmp_path / "bad.json"
    bad.write_text('{"id": "x", "type": "zen:event-type:ticket.created", "time": "now"}')
    failed = CliRunner().invoke(source_group, ["test", "zendesk", str(bad), "--pack", pack])
    assert failed.exit_code == 1
    assert "map.fields.ticket.id: the payload has nothing at" in failed.output
    unknown = CliRunner().invoke(source_group, ["test", "nope", sample, "--pack", pack])
    assert unknown.exit_code == 2 and "known: zendesk" in unknown.output


def test_source_requests_are_labelled_by_route_not_by_name() -> None:
    """Metrics and the access log name the route; a source's name stays out of labels."""
    from escalade.runtime.web.answers import route_of

    assert route_of("/sources/zendesk") == "/sources/{name}"
    assert route_of("/sources/") == "/sources/{name}"
