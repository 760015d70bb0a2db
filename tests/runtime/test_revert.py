"""Compensating actions (issue #15): ``undo`` steps, ``escalade revert`` and the policy's
``on check_failed revert`` — through the outbox, audited, never twice."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from escalade.compiler import load_policy_set
from escalade.compiler.backends.rulepack import build_pack
from escalade.compiler.cli import main
from escalade.runtime.clock import VirtualClock, format_time
from escalade.runtime.engine import Engine, Refused, undo
from escalade.runtime.notify import Delivery, RecordingNotifier
from escalade.runtime.notify.channels import GenericWebhook
from escalade.runtime.store import OutboxMessage
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0
from tests.runtime.test_notify_channels import ENV, receiving

MIN = 60


def event(event_id: str, kind: str, at: int, **fields: Any) -> dict[str, Any]:
    """``content__id="C1"`` sets ``data.content.id``."""
    data: dict[str, Any] = {}
    for key, value in fields.items():
        obj, _, name = key.partition("__")
        data.setdefault(obj, {})[name] = value
    return {"id": event_id, "type": kind, "at": format_time(at), "data": data}


def blocked(ticket: str = "C1", at: int = T0) -> dict[str, Any]:
    """content.updated with a failed pipeline: publishing_block locks publishing."""
    fields = {"content__id": ticket, "content__title": "Spring story"}
    return event(f"{ticket}-{at}", "content.updated", at, content__pipeline="failed", **fields)


def rows(engine: Engine, kind: str) -> list[Any]:
    return [r for r in engine.store.audit_rows() if r.kind == kind]


def actions(engine: Engine) -> list[tuple[str, str, str | None]]:
    """(key, action, what it undoes) of every outbox row, in order."""
    return [(m.key, m.action, m.payload.get("undoes")) for m in engine.store.outbox()]


# --- the done-when: publishing block --------------------------------------------------


def test_revert_unlocks_publishing_and_lists_the_rest_as_needing_a_person(
    make_engine: Any,
) -> None:
    engine, _, notifier = make_engine()
    engine.receive(blocked())
    lock = next(m for m in engine.store.outbox() if m.action == "lock")
    outcome = engine.revert("C1", "pipeline failure was a false alarm", "gwen", T0 + 5 * MIN)
    assert outcome.status == "applied"
    unlock = [m for m in engine.store.outbox() if m.action == "unlock"]
    assert len(unlock) == 1
    [msg] = unlock
    assert msg.payload["word"] == "publishing" and msg.payload["undoes"] == lock.key
    assert msg.key != lock.key and msg.key.startswith("esc-")
    assert msg.status == "dry_run"  # delivered by the notifier, with its receipt
    assert [s.key for s in notifier.sent if s.action == "unlock"] == [msg.key]
    [undone] = rows(engine, "undo")
    assert undone.actor == "gwen" and undone.detail["undoes"] == lock.key
    assert undone.detail["key"] == msg.key and undone.detail["undo"] == "unlock publishing"
    [record] = rows(engine, "revert")
    assert record.actor == "gwen"
    assert record.detail["reason"] == "pipeline failure was a false alarm"
    assert record.detail["undone"] == ["lock publishing -> unlock publishing"]
    # newest first: create_task, notify, (lock undone), snapshot
    assert record.detail["needs_person"] == [
        'create_task "Roll back C1"',
        'notify editorial "Publishing locked for Spring story"',
        "snapshot content",
    ]
    assert "needs a person: snapshot content" in outcome.message


def test_a_second_revert_is_refused_and_emits_nothing(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(blocked())
    engine.revert("C1", "false alarm", "gwen", T0 + MIN)
    before = actions(engine)
    trail = len(list(engine.store.audit_rows()))
    with pytest.raises(Refused, match="nothing left to undo"):
        engine.revert("C1", "again", "gwen", T0 + 2 * MIN)
    assert actions(engine) == before
    assert len(list(engine.store.audit_rows())) == trail


def test_revert_needs_a_reason_and_an_open_escalation(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    engine.receive(blocked())
    with pytest.raises(Refused, match="needs a reason"):
        engine.revert("C1", "  ", "gwen", T0 + MIN)
    with pytest.raises(Refused, match="no open escalation"):
        engine.revert("NOPE", "why", "gwen", T0 + MIN)
    assert not rows(engine, "revert") and not rows(engine, "undo")


def test_steps_without_any_undo_refuse_and_name_what_a_person_undoes(make_engine: Any) -> None:
    engine, _, _ = make_engine()
    fields = {"ticket__id": "S1", "ticket__priority": "high", "ticket__status": "open"}
    engine.receive(event("s1", "ticket.sla_breached", T0, ticket__title="Login slow", **fields))
    engine.advance(T0 + 30 * MIN)  # started; no failover yet: no step with an undo ran
    before = actions(engine)
    with pytest.raises(Refused, match=r"nothing left to undo.*snapshot last_state"):
        engine.revert("S1", "wrong ticket", "ines", T0 + 31 * MIN)
    assert actions(engine) == before and not rows(engine, "revert")


# --- restore, reverse order ------------------------------------------------------------


def test_restore_puts_the_title_back_newest_first(make_engine: Any) -> None:
    engine, _, notifier = make_engine()
    fields = {"ticket__id": "S1", "ticket__priority": "high", "ticket__status": "open"}
    engine.receive(event("s1", "ticket.sla_breached", T0, ticket__title="Login slow", **fields))
    engine.advance(T0 + 30 * MIN)  # `after 30m`: starts
    working = {"ticket__id": "S1", "ticket__status": "in_progress"}  # standard_qa's check
    engine.receive(event("s2", "ticket.updated", T0 + 31 * MIN, **working), T0 + 31 * MIN)
    engine.advance(T0 + 35 * MIN)  # failover: set ticket.title "URGENT: Login slow"
    upstream = {"ticket__id": "S1", "ticket__title": "URGENT: Login slow"}
    engine.receive(event("s3", "ticket.updated", T0 + 36 * MIN, **upstream), T0 + 36 * MIN)
    engine.advance(T0 + 40 * MIN)  # the second failover sets it again
    sets = [m for m in engine.store.outbox() if m.action == "set"]
    assert [m.payload["before"] for m in sets] == ["Login slow", "URGENT: Login slow"]
    engine.revert("S1", "customer withdrew", "ines", T0 + 41 * MIN)
    restores = [m for m in engine.store.outbox() if m.payload.get("undoes")]
    # the newest set is undone first; the last restore leaves the original title
    assert [m.payload["undoes"] for m in restores] == [sets[1].key, sets[0].key]
    assert [(m.action, m.payload["field"], m.payload["text"]) for m in restores] == [
        ("set", "ticket.title", "URGENT: Login slow"),
        ("set", "ticket.title", "Login slow"),
    ]
    assert [s.text for s in notifier.sent if s.action == "set"][-1] == "Login slow"
    [record] = rows(engine, "revert")
    assert record.detail["undone"] == [
        'set ticket.title "URGENT: Login slow" -> restore',
        'set ticket.title "URGENT: Login slow" -> restore',
    ]
    assert record.detail["needs_person"][-1] == 'create_ticket "SLA breach: Login slow"'


# --- the policy asks for it ----------------------------------------------------------

GUARDED = """
event content.updated

schema content {
  id: text
  pipeline: enum(ok, failed)
  publishing: enum(open, locked)
}

person gwen { email "gwen@example.com" }
person hugo { email "hugo@example.com" }

policy guarded_publish {
  approvers "@example/content-ops"
  trigger content.updated
  when content.pipeline == failed
  owner primary gwen ack 30m
  owner backup hugo ack 30m
  step lock publishing undo unlock publishing
  step notify gwen "Locked {{ content.id }}"
  check state content.publishing == locked within 10m
  on check_failed revert
  exception unknown triage hugo%s
}
"""


def small_engine(tmp_path: Path, source: str) -> Engine:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "guarded.esc").write_text(source)
    result = load_policy_set(str(folder))
    assert result.pset is not None and result.errors == 0
    store = SQLiteStore(str(tmp_path / "small.sqlite"))
    engine = Engine(store, VirtualClock(T0), RecordingNotifier())
    engine.activate(build_pack(result.pset), T0)
    return engine


def test_on_check_failed_revert_undoes_before_triage(tmp_path: Path) -> None:
    engine = small_engine(tmp_path, GUARDED % "")
    engine.receive(event("c1", "content.updated", T0, content__id="C1", content__pipeline="failed"))
    engine.advance(T0 + 10 * MIN)  # nobody showed the lock: check_failed
    kinds = [r.kind for r in engine.store.audit_rows()]
    assert kinds.index("check_failed") < kinds.index("revert") < kinds.index("triage")
    [record] = rows(engine, "revert")
    assert record.actor == "escalade" and record.reason.startswith("revert (on check_failed")
    assert record.detail["undone"] == ["lock publishing -> unlock publishing"]
    assert record.detail["needs_person"] == ['notify gwen "Locked C1"']
    assert [a for _, a, u in actions(engine) if u] == ["unlock"]
    with pytest.raises(Refused, match="nothing left to undo"):
        engine.revert("C1", "again", "hugo", T0 + 11 * MIN)
    engine.store.close()


def test_triage_revert_undoes_once(tmp_path: Path) -> None:
    source = GUARDED.replace("  on check_failed revert\n", "") % " revert"
    engine = small_engine(tmp_path, source)
    engine.receive(event("c1", "content.updated", T0, content__id="C1", content__pipeline="failed"))
    engine.advance(T0 + 10 * MIN)  # check_failed -> triage, which reverts first
    engine.absent("hugo", T0 + 3 * 3600, T0 + 11 * MIN)  # triage again: nothing left
    [record] = rows(engine, "revert")
    assert record.reason.startswith("revert (triage revert: check_failed")
    assert [a for _, a, u in actions(engine) if u] == ["unlock"]
    engine.store.close()


# --- delivery: a real webhook, crashes and restarts ----------------------------------


@dataclass
class HookForSteps:
    """Steps go to a real signed webhook; notices are recorded. ``crash_on``: raise (a crash
    of the process) instead of delivering that action, once."""

    hook: GenericWebhook
    crash_on: set[str] = field(default_factory=set)
    notices: RecordingNotifier = field(default_factory=RecordingNotifier)

    def deliver(self, msg: OutboxMessage) -> Delivery:
        if msg.action in ("notify", "page"):
            return self.notices.deliver(msg)
        if msg.action in self.crash_on:
            self.crash_on.discard(msg.action)
            raise KeyboardInterrupt(f"crash while sending {msg.key}")
        return self.hook.send(msg, None)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ALL_PROXY", raising=False)


def test_unlock_is_delivered_by_the_webhook_once_across_a_crash(
    tmp_path: Path, pack: dict[str, Any]
) -> None:
    db = str(tmp_path / "hook.sqlite")
    with receiving() as receiver:
        hook = GenericWebhook(receiver.url("/hook"), "ESC_TEST_WEBHOOK_SECRET", 2, environ=ENV)
        first = Engine(SQLiteStore(db), VirtualClock(T0), HookForSteps(hook, {"unlock"}))
        first.activate(pack, T0)
        first.receive(blocked())
        with pytest.raises(KeyboardInterrupt):  # committed, then the process dies sending
            first.revert("C1", "false alarm", "gwen", T0 + MIN)
        first.store.close()
        # restart: the pending unlock goes out under its key; a revert finds nothing left
        again = Engine(SQLiteStore(db), VirtualClock(T0 + 2 * MIN), HookForSteps(hook))
        again.advance(T0 + 2 * MIN)
        with pytest.raises(Refused, match="nothing left to undo"):
            again.revert("C1", "false alarm", "gwen", T0 + 3 * MIN)
        unlocks = [m for m in again.store.outbox() if m.action == "unlock"]
        assert len(unlocks) == 1 and unlocks[0].status == "delivered"
        posted = [r for r in receiver.on("/hook") if r.json["action"] == "unlock"]
        assert [r.headers["idempotency-key"] for r in posted] == [unlocks[0].key]
        assert posted[0].signature_ok is True
        assert posted[0].json["payload"]["undoes"] == "esc-1/2"
        assert len(rows(again, "revert")) == 1
        again.store.close()


def test_a_crash_before_the_commit_writes_nothing(
    make_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, _, _ = make_engine()
    engine.receive(blocked())
    before = actions(engine)

    def crash(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the process died mid-decision")

    with monkeypatch.context() as patched:
        patched.setattr(undo, "_record", crash)
        with pytest.raises(RuntimeError):
            engine.revert("C1", "false alarm", "gwen", T0 + MIN)
    assert actions(engine) == before and not rows(engine, "undo")
    engine.revert("C1", "false alarm", "gwen", T0 + 2 * MIN)
    assert [a for _, a, u in actions(engine) if u] == ["unlock"]


# --- the command line --------------------------------------------------------------


def cli(args: list[str], db: Path, pack_file: Path, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(
        main, [*args, "--db", str(db), "--pack", str(pack_file)], input=stdin
    )
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def test_cli_revert(tmp_path: Path, pack_file: Path) -> None:
    db = tmp_path / "cli.db"
    code, out = cli(["event", "-", "--at", format_time(T0)], db, pack_file, json.dumps(blocked()))
    assert code == 0, out
    at = ["--at", format_time(T0 + MIN)]
    args = ["revert", "C1", "--by", "gwen", "--reason", "false alarm", *at]
    code, out = cli([*args, "--format", "json"], db, pack_file)
    assert code == 0, out
    doc = json.loads(out)
    assert doc["outcome"] == "applied" and doc["undone"] == ["lock publishing -> unlock publishing"]
    assert doc["needs_person"][-1] == "snapshot content"
    assert doc["escalation"]["ticket"] == "C1"
    code, out = cli(args, db, pack_file)
    assert code == 1 and "refused: ticket C1: nothing left to undo" in out


def test_cli_revert_text_and_bad_input(tmp_path: Path, pack_file: Path) -> None:
    db = tmp_path / "cli.db"
    code, _ = cli(["event", "-", "--at", format_time(T0)], db, pack_file, json.dumps(blocked()))
    at = ["--at", format_time(T0 + MIN)]
    code, out = cli(["revert", "C1", "--by", "gwen", *at], db, pack_file)
    assert code == 2 and "needs a reason" in out and "Traceback" not in out
    code, out = cli(["revert", "NOPE", "--by", "gwen", "--reason", "x", *at], db, pack_file)
    assert code == 1 and "ticket NOPE has no open escalation" in out
    code, out = cli(["revert", "C1", "--by", "nobody", "--reason", "x", *at], db, pack_file)
    assert code == 2 and "not a person" in out
    code, out = cli(["revert", "C1", "--by", "gwen", "--reason", "x", *at], db, pack_file)
    assert code == 0, out
    assert "undone: lock publishing -> unlock publishing" in out
    assert 'needs a person: create_task "Roll back C1"' in out
