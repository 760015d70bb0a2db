"""API tokens: created, listed and revoked through the CLI on a real SQLite file, then used
against the real server on 127.0.0.1:0 — every role against every route, the actor taken
from the token (never from the body), the deprecated token_env still accepted."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from escalade.compiler.cli import main
from escalade.runtime import audit
from escalade.runtime.cli.serve import check_credentials, is_loopback, serve_command
from escalade.runtime.clock import VirtualClock
from escalade.runtime.engine import Engine
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.pack import RulePack
from escalade.runtime.server import EscaladeServer
from escalade.runtime.store.sqlite import SQLiteStore
from escalade.runtime.tokens import OPEN_ROUTES, ROUTE_ROLES, needed_role, token_id_of
from escalade.runtime.web.answers import ROUTES
from tests.runtime.conftest import T0, critical
from tests.runtime.test_server import TIMEOUT, get_json, http, post_json

REPO = Path(__file__).resolve().parents[2]
PACK = REPO / "generated" / "rulepack.json"
PERSONS = {  # token name -> (PERSON, role); alice owns the critical tickets at T0
    "alice": ("alice", "responder"),
    "bob": ("bob", "responder"),
    "carol": ("carol", "lead"),
    "dana": ("dana", "admin"),
    "erin": ("erin", "responder"),  # revoked before the server starts
}
SERVICES = {"zendesk": "ingest", "ops": "admin"}


def cli(db: Path, *args: str) -> Result:
    """``escalade ARGS --db DB --pack generated/rulepack.json``."""
    result = CliRunner().invoke(main, [*args, "--db", str(db), "--pack", str(PACK)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


def create(db: Path, *args: str) -> tuple[str, str]:
    """(id, secret) of a token created with ``escalade token create ARGS``."""
    result = cli(db, "token", "create", *args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    token_id = lines[0].removeprefix("id: ")
    return token_id, lines[-1]


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


# --- the command line -----------------------------------------------------------


def test_create_prints_the_secret_once_and_the_store_keeps_only_its_hash(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    result = cli(db, "token", "create", "alice", "--role", "responder", "--by", "carol")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    secret = lines[-1]
    assert lines[:-1] == [lines[0], "principal: person:alice", "role: responder"]
    token_id = lines[0].removeprefix("id: ")
    assert secret.startswith(f"esc_{token_id}_") and token_id_of(secret) == token_id
    assert len(secret.removeprefix(f"esc_{token_id}_")) == 43  # 32 bytes, base64url
    assert result.stdout.count(secret) == 1
    store = SQLiteStore(str(db))
    try:
        rows = store.execute("SELECT * FROM api_tokens").fetchall()
        assert len(rows) == 1 and not any(secret in str(v) for v in rows[0])
        digest = store.execute("SELECT secret_hash FROM api_tokens").fetchone()[0]
        assert digest == hashlib.sha256(secret.encode()).hexdigest()
        created = [r for r in store.audit_rows() if r.kind == "token_created"]
        assert [(r.actor, r.detail) for r in created] == [
            ("carol", {"token": token_id, "principal": "person:alice", "role": "responder"})
        ]
        assert not any(secret in json.dumps(r.chained()) for r in store.audit_rows())
        assert audit.verify(store).ok
    finally:
        store.close()
    # the secret is never shown again: the list names the token, not its secret
    listed = cli(db, "token", "list")
    assert token_id in listed.stdout and secret not in listed.stdout


def test_a_service_token_and_what_create_refuses(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    token_id, secret = create(db, "--service", "zendesk", "--role", "ingest", "--by", "operator")
    assert secret.startswith(f"esc_{token_id}_")
    refused = [
        (["nobody", "--role", "responder", "--by", "alice"], "not a person"),
        (["alice", "--role", "ingest", "--by", "alice"], "person token's role"),
        (["--service", "zendesk", "--role", "lead", "--by", "alice"], "service token's role"),
        (["--service", "Bad Name", "--role", "ingest", "--by", "alice"], "service name"),
        (["alice", "--service", "x", "--role", "lead", "--by", "alice"], "one of the two"),
        (["--role", "lead", "--by", "alice"], "one of the two"),
        (["alice", "--role", "lead", "--by", "mallory"], "not a person"),
        (["alice", "--role", "lead"], "--by"),
    ]
    for args, words in refused:
        result = cli(db, "token", "create", *args)
        assert result.exit_code == 2, (args, result.output)
        assert words in result.output, (args, result.output)
    assert len(json.loads(cli(db, "token", "list", "--format", "json").stdout)) == 1


def test_list_and_revoke_are_audited_and_never_show_a_secret(tmp_path: Path) -> None:
    db = tmp_path / "t.db"
    alice_id, alice = create(db, "alice", "--role", "responder", "--by", "operator")
    ops_id, ops = create(db, "--service", "ops", "--role", "admin", "--by", "dana")
    result = cli(db, "token", "revoke", alice_id, "--by", "dana")
    assert result.exit_code == 0 and f"revoked: token {alice_id} of person:alice" in result.output
    listed = json.loads(cli(db, "token", "list", "--format", "json").stdout)
    assert [(t["id"], t["principal"], t["role"], t["active"]) for t in listed] == [
        (alice_id, "person:alice", "responder", False),
        (ops_id, "service:ops", "admin", True),
    ]
    assert listed[0]["revoked_by"] == "dana" and listed[1]["created_by"] == "dana"
    text = cli(db, "token", "list").stdout
    assert f"revoked {listed[0]['revoked_at']} by dana" in text
    for output in (text, json.dumps(listed)):
        assert alice not in output and ops not in output
    again = cli(db, "token", "revoke", alice_id, "--by", "dana")
    assert again.exit_code == 1 and "revoked already" in again.output
    unknown = cli(db, "token", "revoke", "feedface", "--by", "dana")
    assert unknown.exit_code == 1 and "no token" in unknown.output
    assert cli(db, "token", "revoke", ops_id, "--by", "nobody").exit_code == 2
    store = SQLiteStore(str(db))
    try:
        kinds = [(r.kind, r.actor) for r in store.audit_rows() if r.kind.startswith("token_")]
        assert kinds == [
            ("token_created", "operator"),
            ("token_created", "dana"),
            ("token_revoked", "dana"),
        ]
        assert audit.verify(store).ok
    finally:
        store.close()


# --- the server ---------------------------------------------------------------------


@dataclass
class Served:
    server: EscaladeServer
    engine: Engine
    db: Path
    secrets: dict[str, str]
    ids: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def audit(self) -> list[tuple[str, str]]:
        with self.server.lock:
            return [(r.kind, r.actor) for r in self.engine.store.audit_rows()]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """A server over a store whose tokens were made with `escalade token create` (erin's
    revoked); events are posted with zendesk's ingest token."""
    started: list[tuple[EscaladeServer, SQLiteStore]] = []

    def factory(**options: Any) -> Served:
        db = tmp_path / f"tokens{len(started)}.db"
        secrets, ids = {}, {}
        for name, (person, role) in PERSONS.items():
            ids[name], secrets[name] = create(db, person, "--role", role, "--by", "operator")
        for name, role in SERVICES.items():
            ids[name], secrets[name] = create(db, "--service", name, "--role", role, "--by", "dana")
        assert cli(db, "token", "revoke", ids["erin"], "--by", "dana").exit_code == 0
        store = SQLiteStore(str(db))
        engine = Engine(store, VirtualClock(T0), RecordingNotifier())
        engine.activate(RulePack.load(PACK).raw, T0)
        server = EscaladeServer(engine, "127.0.0.1", 0, tick_interval=0.05, **options)
        started.append((server, store))
        server.start()
        return Served(server, engine, db, secrets, ids)

    yield factory
    for server, store in started:
        server.stop(timeout=TIMEOUT)
        store.close()


def _ingest(run: Served, *tickets: str) -> None:
    for n, ticket in enumerate(tickets):
        event = critical(ticket, f"e-{ticket}-{n}")
        assert post_json(run.url + "/events", event, **bearer(run.secrets["zendesk"]))[0] == 200


# Each credential against each guarded route of ticket T-1 (owned by alice). The requests
# are chosen to change nothing: an allowed one is answered by the engine (409, 422).
REQUESTS = {
    "events": ("POST", "/events", critical("T-9", "e-9")),
    "read": ("GET", "/tickets/T-1", None),
    "close": ("POST", "/tickets/T-1/close", {}),  # not resolved: 409
    "transfer": ("POST", "/tickets/T-1/transfer", {"to": "bob", "sla": "2h"}),  # no reason: 422
    "postmortem": ("POST", "/tickets/T-1/postmortem", {}),  # no link: 422
    "ack": ("POST", "/tickets/T-1/ack", {"by": 7}),  # not a person: 403 for a person's token
}
# Expected status per credential, one column per request above (in that order).
EXPECTED: dict[str, tuple[int, ...]] = {
    "none": (401, 401, 401, 401, 401, 401),
    "unknown": (401, 401, 401, 401, 401, 401),
    "erin": (401, 401, 401, 401, 401, 401),  # revoked
    "zendesk": (200, 403, 403, 403, 403, 403),  # ingest: events only
    "alice": (403, 200, 409, 422, 422, 403),  # responder, owner; `by` 7 is not alice
    "bob": (403, 403, 403, 403, 403, 403),  # responder, not the owner
    "carol": (403, 200, 409, 422, 422, 403),  # lead
    "dana": (403, 200, 409, 422, 422, 403),  # admin (a person)
    "ops": (403, 200, 409, 422, 422, 422),  # admin service: names the person; 7 is no name
}


def test_each_role_against_each_route(served: Callable[..., Served]) -> None:
    run = served()
    _ingest(run, "T-1")
    for who, expected in EXPECTED.items():
        if who == "none":
            headers = {}
        elif who == "unknown":
            headers = bearer("esc_0123456789ab_" + "A" * 43)
        else:
            headers = bearer(run.secrets[who])
        for (name, (method, path, body)), want in zip(REQUESTS.items(), expected, strict=True):
            data = None if body is None else json.dumps(body).encode()
            status, answer_headers, raw = http(
                run.url + path,
                method=method,
                body=data,
                headers={"Content-Type": "application/json", **headers},
            )
            assert status == want, (who, name, status, raw)
            if status in (401, 403):
                assert "error" in json.loads(raw)
            if status == 401:
                assert answer_headers["WWW-Authenticate"] == 'Bearer realm="escalade"'
    with run.server.lock:
        assert run.engine.status("T-1")["state"] == "assigned"  # type: ignore[index]
    for path in ("/healthz", "/metrics"):  # probes and scrapers need no token
        assert http(run.url + path)[0] == 200


def test_a_403_names_the_role_the_route_needs(served: Callable[..., Served]) -> None:
    run = served()
    _ingest(run, "T-1")
    status, answer = post_json(
        run.url + "/events", critical("T-2", "e-2"), **bearer(run.secrets["carol"])
    )
    assert status == 403
    assert "needs the ingest role" in answer["error"] and "person:carol (lead)" in answer["error"]
    status, answer = get_json(run.url + "/tickets/T-1", **bearer(run.secrets["zendesk"]))
    assert status == 403
    assert "needs the responder role (responder or lead or admin)" in answer["error"]
    status, answer = get_json(run.url + "/tickets/T-1", **bearer(run.secrets["bob"]))
    assert status == 403 and "owned by alice" in answer["error"] and "lead" in answer["error"]


def test_a_responder_acts_on_its_own_ticket_as_itself(served: Callable[..., Served]) -> None:
    run = served()
    _ingest(run, "T-1")
    url, alice = run.url + "/tickets/T-1", bearer(run.secrets["alice"])
    status, answer = post_json(url + "/ack", {"by": "bob"}, **alice)
    assert status == 403 and "speaks for alice" in answer["error"]
    status, answer = post_json(url + "/ack", {"override": "I am sure"}, **alice)
    assert status == 403 and "override needs the lead role" in answer["error"]
    with run.server.lock:
        assert run.engine.status("T-1")["state"] == "assigned"  # type: ignore[index]
    status, answer = post_json(url + "/ack", {}, **alice)
    assert status == 200 and "acknowledged by alice" in answer["message"]
    assert post_json(url + "/resolve", {"by": "alice"}, **alice)[0] == 200
    assert run.audit()[-2:] == [("acknowledged", "alice"), ("resolved", "alice")]


def test_a_responder_cannot_act_on_someone_elses_ticket(served: Callable[..., Served]) -> None:
    run = served()
    _ingest(run, "T-1")
    url, bob = run.url + "/tickets/T-1", bearer(run.secrets["bob"])
    before = run.audit()
    for action, body in (
        ("ack", {}),
        ("resolve", {}),
        ("close", {}),
        ("postmortem", {"link": "x"}),
    ):
        status, answer = post_json(f"{url}/{action}", body, **bob)
        assert status == 403 and "owned by alice" in answer["error"], action
    status, answer = post_json(
        url + "/transfer", {"to": "bob", "reason": "mine", "sla": "1h"}, **bob
    )
    assert status == 403
    assert run.audit() == before  # nothing reached the engine
    with run.server.lock:
        assert run.engine.status("T-1")["owner"] == "alice"  # type: ignore[index]


def test_a_lead_acknowledges_for_someone_else_only_with_an_override(
    served: Callable[..., Served],
) -> None:
    run = served()
    _ingest(run, "T-1")
    url, carol = run.url + "/tickets/T-1", bearer(run.secrets["carol"])
    status, answer = post_json(url + "/ack", {}, **carol)
    assert status == 409 and "not the current assignee" in answer["error"]
    status, answer = post_json(url + "/ack", {"by": "alice", "override": "x"}, **carol)
    assert status == 403 and "speaks for carol" in answer["error"]  # never as alice
    status, answer = post_json(url + "/ack", {"override": "alice is on a plane"}, **carol)
    assert status == 200 and "acknowledged by carol" in answer["message"]
    with run.server.lock:
        rows = [r for r in run.engine.store.audit_rows() if r.kind == "ack_override"]
    assert [(r.actor, r.detail["by"], r.detail["owner"]) for r in rows] == [
        ("carol", "carol", "alice")
    ]
    assert "alice is on a plane" in rows[0].reason


def test_the_actor_is_the_tokens_principal_never_the_bodys(served: Callable[..., Served]) -> None:
    run = served()
    _ingest(run, "T-1", "T-2")
    dana, ops = bearer(run.secrets["dana"]), bearer(run.secrets["ops"])
    status, answer = post_json(run.url + "/tickets/T-1/resolve", {"by": "alice"}, **dana)
    assert status == 403 and "speaks for dana" in answer["error"]
    assert post_json(run.url + "/tickets/T-1/resolve", {}, **dana)[0] == 200
    # a service admin acts as itself; the body's `by` does not change that
    assert post_json(run.url + "/tickets/T-2/resolve", {"by": "alice"}, **ops)[0] == 200
    with run.server.lock:
        resolved = [
            (r.ticket, r.actor) for r in run.engine.store.audit_rows() if r.kind == "resolved"
        ]
    assert resolved == [("T-1", "dana"), ("T-2", "service:ops")]


def test_a_revoked_token_is_refused_at_once(served: Callable[..., Served]) -> None:
    run = served()
    _ingest(run, "T-1")
    alice = bearer(run.secrets["alice"])
    assert get_json(run.url + "/tickets/T-1", **alice)[0] == 200
    result = cli(run.db, "token", "revoke", run.ids["alice"], "--by", "dana")
    assert result.exit_code == 0, result.output
    status, headers, body = http(run.url + "/tickets/T-1", headers=alice)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert "revoked" in json.loads(body)["error"]
    # a secret with the right id but wrong bytes is unknown too
    forged = run.secrets["carol"][:-4] + "AAAA"
    assert get_json(run.url + "/tickets/T-1", **bearer(forged))[0] == 401


def test_token_env_is_still_an_ingest_and_admin_credential(served: Callable[..., Served]) -> None:
    run = served(token_env="SERVE_TOKEN", environ={"SERVE_TOKEN": "s3cret"})
    legacy = bearer("s3cret")
    assert post_json(run.url + "/events", critical("T-1", "e-1"), **legacy)[0] == 200
    assert get_json(run.url + "/tickets/T-1", **legacy)[0] == 200
    assert get_json(run.url + "/tickets/T-1", **bearer(run.secrets["alice"]))[0] == 200
    assert get_json(run.url + "/tickets/T-1", **bearer("wrong"))[0] == 401
    assert post_json(run.url + "/tickets/T-1/resolve", {}, **legacy)[0] == 200
    assert ("resolved", "service:token_env") in run.audit()


def test_a_server_without_credentials_is_open_until_a_token_exists(tmp_path: Path) -> None:
    db = tmp_path / "open.db"
    store = SQLiteStore(str(db))
    engine = Engine(store, VirtualClock(T0), RecordingNotifier())
    engine.activate(RulePack.load(PACK).raw, T0)
    server = EscaladeServer(engine, "127.0.0.1", 0, tick_interval=0.05)
    server.start()
    try:
        assert post_json(server.url + "/events", critical("T-1", "e-1"))[0] == 200
        status, _ = get_json(server.url + "/tickets/T-1", **bearer("esc_0123456789ab_x"))
        assert status == 401  # an unknown token is refused even here
        create(db, "alice", "--role", "responder", "--by", "operator")
        status, headers, _ = http(server.url + "/tickets/T-1")
        assert status == 401 and "WWW-Authenticate" in headers
    finally:
        server.stop(timeout=TIMEOUT)
        store.close()


def test_every_route_is_open_or_has_its_role() -> None:
    assert set(ROUTES) == set(ROUTE_ROLES) | OPEN_ROUTES
    assert not set(ROUTE_ROLES) & OPEN_ROUTES
    assert needed_role("/packs") == "admin"  # a route nobody listed is closed, not open


# --- escalade serve ---------------------------------------------------------------


def test_loopback_hosts() -> None:
    for host in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost", "LOCALHOST"):
        assert is_loopback(host), host
    for host in ("0.0.0.0", "::", "", "10.0.0.5", "example.com"):
        assert not is_loopback(host), host


def test_serve_refuses_a_public_address_without_any_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "escalade.yaml").write_text("runtime:\n  notifiers: {dry_run: true}\n")
    monkeypatch.chdir(tmp_path)
    args = ["--host", "0.0.0.0", "--port", "0", "--db", str(tmp_path / "s.db"), "--pack", str(PACK)]
    result = CliRunner().invoke(serve_command, args)
    assert result.exit_code == 2, result.output
    assert "refusing to serve on 0.0.0.0 without authentication" in result.output
    assert "escalade token create" in result.output


def test_serve_logs_how_it_authenticates(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    db = tmp_path / "s.db"
    store = SQLiteStore(str(db))
    try:
        with caplog.at_level(logging.WARNING, "escalade.runtime.server"):
            check_credentials(store, None, "127.0.0.1")
            check_credentials(store, "API_TOKEN", "0.0.0.0")
        messages = [(r.levelname, r.getMessage()) for r in caplog.records]
        assert messages[0][0] == "WARNING" and "WITHOUT authentication" in messages[0][1]
        assert messages[1][0] == "WARNING" and "token_env is deprecated" in messages[1][1]
        assert "$API_TOKEN" in messages[1][1]
        with pytest.raises(SystemExit) as refused:
            check_credentials(store, None, "0.0.0.0")
        assert refused.value.code == 2
    finally:
        store.close()
    create(db, "--service", "zendesk", "--role", "ingest", "--by", "operator")
    store = SQLiteStore(str(db))
    try:
        caplog.clear()
        check_credentials(store, None, "0.0.0.0")  # a token in the store: no complaint
        assert caplog.records == []
    finally:
        store.close()
