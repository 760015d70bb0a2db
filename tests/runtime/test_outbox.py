"""The outbox as the engine drives it: receipts by key, reasons, delivery outside
transactions, retries with backoff, and messages to teams."""

from __future__ import annotations

import copy
import json
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from escalade.runtime import audit
from escalade.runtime.clock import VirtualClock, format_time
from escalade.runtime.engine import Engine
from escalade.runtime.notify import Delivery
from escalade.runtime.notify.channels import SlackWebhook, SmtpEmail
from escalade.runtime.notify.router import ChannelNotifier, Choice
from escalade.runtime.store import AuditRow, OutboxMessage
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0, critical

REPO = Path(__file__).resolve().parents[2]


def test_a_late_receipt_is_found_by_key_without_reading_the_outbox(
    make_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, _, notifier = make_engine()
    notifier.silent.add("carol")  # the page goes out, no receipt comes back
    engine.receive(critical("T1", "e1"))
    [page] = [m for m in engine.store.outbox() if m.action == "page"]
    assert page.status == "sent" and page.delivered_at is None

    def no_scan(*args: Any) -> Any:
        raise AssertionError("record_receipt must not read the whole outbox")

    monkeypatch.setattr(engine.store, "outbox", no_scan)
    assert engine.record_receipt(page.key, T0 + 10) is True
    assert engine.record_receipt("esc-99/1", T0 + 10) is False
    found = engine.store.outbox_by_key(page.key)
    assert found is not None and (found.status, found.delivered_at) == ("delivered", T0 + 10)
    assert found.attempted_at == T0  # a receipt is not an attempt


# --- reasons -----------------------------------------------------------------


@dataclass
class Scripted:
    """A notifier that answers per target (or action) as the test says, in any shape.

    ``transactional`` says whether the engine may call it inside its transaction;
    ``calls`` records (key, in_transaction) for every attempt."""

    store: SQLiteStore | None = None
    transactional: bool = False
    answers: dict[str, Any] = field(default_factory=dict)
    calls: list[tuple[str, bool]] = field(default_factory=list)
    during: Callable[[OutboxMessage], None] | None = None

    def deliver(self, msg: OutboxMessage) -> Any:
        in_txn = self.store is not None and self.store._db.in_transaction
        self.calls.append((msg.key, in_txn))
        if self.during is not None:
            self.during(msg)
        answer = self.answers.get(msg.target or "", self.answers.get(msg.action, "delivered"))
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, list):
            return answer.pop(0) if len(answer) > 1 else answer[0]
        return answer


def scripted_engine(
    tmp_path: Path, pack: dict[str, Any], notifier: Scripted, name: str = "o.sqlite"
) -> Engine:
    store = SQLiteStore(str(tmp_path / name))
    notifier.store = store
    engine = Engine(store, VirtualClock(T0), notifier)
    engine.activate(pack, T0)
    return engine


def audit_of(engine: Engine, kind: str) -> list[AuditRow]:
    return [r for r in engine.store.audit_rows() if r.kind == kind]


@pytest.mark.parametrize("transactional", [True, False])
def test_bare_receipts_tuples_and_deliveries_are_all_understood(
    tmp_path: Path, pack: dict[str, Any], transactional: bool
) -> None:
    notifier = Scripted(
        transactional=transactional,
        answers={
            "create_ticket": "delivered",  # the old shape: just the receipt
            "oncall": ("delivered", "Slack answered ok"),
            "carol": Delivery("delivered", "pager accepted", channel="pager"),
            "open": "ok",  # not a receipt
        },
    )
    engine = scripted_engine(tmp_path, pack, notifier)
    engine.receive(critical("T1", "e1"))
    rows = {m.action + (f" {m.target}" if m.target else ""): m for m in engine.store.outbox()}
    assert rows["create_ticket"].status == "delivered" and rows["create_ticket"].reason is None
    assert (rows["notify oncall"].status, rows["notify oncall"].reason) == (
        "delivered",
        "Slack answered ok",
    )
    assert rows["page carol"].reason == "pager accepted"
    assert rows["open"].status == "failed"
    assert (
        rows["open"].reason
        == "the notifier answered 'ok', not one of delivered, pending, failed, undeliverable, dry_run"
    )


def test_a_failed_delivery_keeps_its_reason_on_the_row_and_in_the_audit_trail(
    tmp_path: Path, pack: dict[str, Any]
) -> None:
    notifier = Scripted(
        answers={
            "open": ("failed", "webhook: HTTP 404: no such war room"),
            "snapshot": RuntimeError("bug in a notifier"),
        }
    )
    engine = scripted_engine(tmp_path, pack, notifier)
    engine.receive(critical("T1", "e1"))
    rows = {m.action: m for m in engine.store.outbox()}
    assert rows["open"].status == "failed"
    assert rows["open"].reason == "webhook: HTTP 404: no such war room"
    assert rows["snapshot"].reason == "the notifier raised RuntimeError: bug in a notifier"
    status = engine.status("T1")
    assert status is not None
    shown = {a["action"]: (a["status"], a["attempts"], a["reason"]) for a in status["actions"]}
    assert shown["open"] == ("failed", 1, "webhook: HTTP 404: no such war room")
    failed = audit_of(engine, "delivery_failed")
    assert [r.detail["key"] for r in failed] == [rows["open"].key, rows["snapshot"].key]
    assert "open" in failed[0].reason and "HTTP 404: no such war room" in failed[0].reason
    assert failed[0].policy == "enterprise_critical" and failed[0].pack_version
    # A refused step is a step failure (SPEC §4), and says why.
    step = audit_of(engine, "step_failed")
    assert step and "no such war room" in step[0].reason
    assert audit.verify(engine.store).ok


# --- no network call inside a transaction ------------------------------------


def test_a_networked_notifier_is_called_with_no_transaction_and_no_write_lock(
    tmp_path: Path, pack: dict[str, Any]
) -> None:
    db = tmp_path / "lock.sqlite"
    others_could_write: list[bool] = []

    def another_writer(msg: OutboxMessage) -> None:
        # A second connection (another worker, the CLI) takes the write lock at once.
        other = sqlite3.connect(str(db), timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            others_could_write.append(True)
        except sqlite3.OperationalError:
            others_could_write.append(False)
        finally:
            other.close()

    notifier = Scripted(answers={"oncall": "pending"}, during=another_writer)
    engine = scripted_engine(tmp_path, pack, notifier, name=db.name)
    engine.receive(critical("T1", "e1"))
    first = len(notifier.calls)
    assert first == 6
    engine.advance(T0 + 60)  # the delivery check retries the silent room
    assert len(notifier.calls) == first + 1 and notifier.calls[-1][0] == notifier.calls[1][0]
    assert [in_txn for _, in_txn in notifier.calls] == [False] * len(notifier.calls)
    assert others_could_write == [True] * len(notifier.calls)
    statuses = [m.status for m in engine.store.outbox()]
    assert statuses.count("delivered") == 5 and statuses.count("sent") == 1


def test_the_in_process_notifier_keeps_one_commit_per_event(
    tmp_path: Path, pack: dict[str, Any]
) -> None:
    notifier = Scripted(transactional=True)
    engine = scripted_engine(tmp_path, pack, notifier)
    store = engine.store
    assert isinstance(store, SQLiteStore)
    commits: list[str] = []
    store._db.set_trace_callback(lambda sql: commits.append(sql) if sql == "COMMIT" else None)
    engine.receive(critical("T1", "e1"))
    assert len(commits) == 1
    assert len(notifier.calls) == 6 and all(in_txn for _, in_txn in notifier.calls)
    assert {m.status for m in store.outbox()} == {"delivered"}


def test_a_receipt_recorded_while_sending_is_not_overwritten(
    tmp_path: Path, pack: dict[str, Any]
) -> None:
    engine: Engine | None = None

    def receipt_arrives(msg: OutboxMessage) -> None:
        if msg.target == "carol" and engine is not None:
            assert engine.record_receipt(msg.key, T0)  # possible: no transaction is open

    notifier = Scripted(answers={"carol": "pending"}, during=receipt_arrives)
    engine = scripted_engine(tmp_path, pack, notifier)
    engine.receive(critical("T1", "e1"))
    [page] = [m for m in engine.store.outbox() if m.action == "page"]
    assert page.status == "delivered"
    assert not [t for t in engine.store.timers_of(1) if t.kind == "delivery"]


CRASH = """
import json, os, signal, sys
from escalade.runtime.clock import VirtualClock, format_time
from escalade.runtime.engine import Engine
from escalade.runtime.store.sqlite import SQLiteStore

class CrashAfterSend:
    transactional = False
    def deliver(self, msg):
        with open(sys.argv[3], "a") as sent:
            sent.write(msg.key + "\\n")
        if msg.action == "page":
            os.kill(os.getpid(), signal.SIGKILL)  # sent, and the receipt is never written
        return "delivered"

T0 = 1795773600  # 2026-11-27T10:00:00Z: the event's time is the processing time here
engine = Engine(SQLiteStore(sys.argv[1]), VirtualClock(T0), CrashAfterSend())
engine.activate(json.load(open(sys.argv[2])), T0)
engine.receive(sys.stdin.read())
"""


def test_a_crash_between_send_and_receipt_resends_under_the_same_key(
    tmp_path: Path, pack_file: Path, pack: dict[str, Any]
) -> None:
    db, log = tmp_path / "crash.sqlite", tmp_path / "sent.txt"
    proc = subprocess.run(  # the return code is asserted below
        [sys.executable, "-c", CRASH, str(db), str(pack_file), str(log)],
        check=False,
        input=json.dumps(critical("T1", "e1")),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == -9, proc.stderr
    before = log.read_text().split()
    page_key = before[-1]
    store = SQLiteStore(str(db))
    esc = store.open_escalation("T1")
    assert esc is not None and esc.state == "assigned"  # the decision was committed
    page = store.outbox_by_key(page_key)
    assert page is not None and (page.action, page.status, page.attempts) == ("page", "pending", 0)
    store.close()

    notifier = Scripted()
    engine = scripted_engine(tmp_path, pack, notifier, name=db.name)
    engine.advance(T0)  # the next process dispatches what the crash left pending
    resent = [key for key, _ in notifier.calls]
    # The receipts of a round of sends are written together after it: the crash came before
    # any, so every message sent before it goes again, once, under the same idempotency key
    # (the receiver drops the duplicate); nothing is lost.
    assert set(before) <= set(resent) and len(resent) == len(set(resent))
    for key in resent:
        again = engine.store.outbox_by_key(key)
        assert again is not None and (again.status, again.attempts) == ("delivered", 1)
    assert {m.status for m in engine.store.outbox()} == {"delivered"}


# --- retries -------------------------------------------------------------------


def sends_of(notifier: Scripted, key: str) -> int:
    return sum(1 for k, _ in notifier.calls if k == key)


@pytest.mark.parametrize("transactional", [True, False])
def test_a_message_without_a_delivery_check_is_retried_with_backoff_then_fails(
    tmp_path: Path, pack: dict[str, Any], transactional: bool
) -> None:
    notifier = Scripted(
        transactional=transactional,
        answers={"create_ticket": ("pending", "webhook: HTTP 503: maintenance")},
    )
    engine = scripted_engine(tmp_path, pack, notifier)
    engine.receive(critical("T1", "e1", status="escalated"))
    [row] = [m for m in engine.store.outbox() if m.action == "create_ticket"]
    assert "delivery" not in row.payload  # enterprise_critical checks notify/page only
    assert (row.status, row.reason) == ("sent", "webhook: HTTP 503: maintenance")
    # Backoff 1m, 2m, 4m, 8m after sends 1..4: five sends in all, each under the same key.
    for seconds, sends in [(59, 1), (60, 2), (179, 2), (180, 3), (420, 4), (900, 5)]:
        engine.advance(T0 + seconds)
        assert sends_of(notifier, row.key) == sends, seconds
    retries = audit_of(engine, "delivery_retry")
    assert [r.detail["attempt"] for r in retries] == [2, 3, 4, 5]
    assert "HTTP 503: maintenance" in retries[0].reason and "retry 1 of 4" in retries[0].reason
    # The fifth send gets its full backoff (16m) to answer, then the message has failed.
    engine.advance(T0 + 900 + 959)
    assert engine.store.outbox_by_key(row.key).status == "sent"  # type: ignore[union-attr]
    engine.advance(T0 + 900 + 960)
    failed = engine.store.outbox_by_key(row.key)
    assert failed is not None and failed.status == "failed" and failed.attempts == 5
    assert failed.reason == "no receipt after 5 attempts; last: webhook: HTTP 503: maintenance"
    [audited] = audit_of(engine, "delivery_failed")
    assert audited.reason.startswith("create_ticket was never delivered (attempt 5)")
    assert "step_failed" in [r.kind for r in engine.store.audit_rows()]
    engine.advance(T0 + 86400)
    assert sends_of(notifier, row.key) == 5  # capped: nothing more


@pytest.mark.parametrize("transactional", [True, False])
def test_a_transient_failure_is_retried_once_and_then_delivered(
    tmp_path: Path, pack: dict[str, Any], transactional: bool
) -> None:
    notifier = Scripted(
        transactional=transactional,
        answers={"open": [("pending", "no answer within 5s"), "delivered"]},
    )
    engine = scripted_engine(tmp_path, pack, notifier)
    engine.receive(critical("T1", "e1", status="escalated"))
    [row] = [m for m in engine.store.outbox() if m.action == "open"]
    engine.advance(T0 + 60)
    done = engine.store.outbox_by_key(row.key)
    assert done is not None and (done.status, done.attempts) == ("delivered", 2)
    assert done.delivered_at == T0 + 60 and done.reason is None
    engine.advance(T0 + 3 * 3600)
    assert sends_of(notifier, row.key) == 2 and not audit_of(engine, "delivery_failed")


def test_a_late_receipt_stops_the_retries(tmp_path: Path, pack: dict[str, Any]) -> None:
    notifier = Scripted(answers={"snapshot": "pending"})
    engine = scripted_engine(tmp_path, pack, notifier)
    engine.receive(critical("T1", "e1", status="escalated"))
    [row] = [m for m in engine.store.outbox() if m.action == "snapshot"]
    assert engine.record_receipt(row.key, T0 + 30)
    engine.advance(T0 + 3 * 3600)
    assert sends_of(notifier, row.key) == 1 and not audit_of(engine, "delivery_retry")


def test_a_retry_survives_the_close_of_its_escalation(tmp_path: Path, pack: dict[str, Any]) -> None:
    notifier = Scripted(answers={"create_ticket": "pending"})
    engine = scripted_engine(tmp_path, pack, notifier)
    engine.receive(critical("T1", "e1", status="escalated"))
    engine.ack("T1", "alice", T0 + 10)
    fixed = {"ticket": {"id": "T1", "root_cause": "bad deploy"}}
    at = "2026-11-27T10:00:15Z"
    engine.receive({"id": "e2", "type": "ticket.updated", "at": at, "data": fixed})
    engine.resolve("T1", T0 + 20)
    assert engine.close("T1", T0 + 30).status == "applied"
    engine.advance(T0 + 60)
    [row] = [m for m in engine.store.outbox() if m.action == "create_ticket"]
    assert sends_of(notifier, row.key) == 2


def test_the_delivery_check_keeps_its_own_meaning(make_engine: Any) -> None:
    """`check delivery within 5m else retry 2 then revops_mail`: receipt within 5m, else
    two retries 5m apart, then the fallback channel, then check_failed (no backoff)."""
    engine, _, notifier = make_engine()
    notifier.silent.update({"revops", "revops_mail"})
    lead = {"id": "L1", "source": "paid_campaign", "crm_status": "rejected"}
    engine.receive(
        {"id": "l1", "type": "lead.updated", "at": "2026-11-27T10:00:00Z", "data": {"lead": lead}}
    )

    def sent_to(target: str) -> int:
        return sum(1 for s in notifier.sent if s.target == target)

    for minute, room, mail in [(4, 1, 0), (5, 2, 0), (10, 3, 0), (15, 3, 1), (19, 3, 1)]:
        engine.advance(T0 + minute * 60)
        assert (sent_to("revops"), sent_to("revops_mail")) == (room, mail), minute
    assert not [t for t in engine.store.due_timers(T0 + 86400, 100) if t.kind == "redeliver"]
    engine.advance(T0 + 20 * 60)
    kinds = [r.kind for r in engine.store.audit_rows()]
    assert kinds.count("delivery_retry") == 2 and kinds.count("delivery_fallback") == 1
    assert "check_failed" in kinds and engine.status("L1")["state"] == "triage"  # type: ignore[index]


def test_retry_settings_are_checked(tmp_path: Path) -> None:
    engine = Engine(SQLiteStore(":memory:"), retry_base=30, retry_cap=100)
    assert [engine.retry_delay(n) for n in (1, 2, 3, 4, 60)] == [30, 60, 100, 100, 100]
    with pytest.raises(ValueError, match="retry_attempts >= 1"):
        Engine(SQLiteStore(":memory:"), retry_attempts=0)
    with pytest.raises(ValueError, match="retry_cap >= retry_base"):
        Engine(SQLiteStore(":memory:"), retry_base=60, retry_cap=10)


# --- messages to teams -----------------------------------------------------------


def team_pack(pack: dict[str, Any]) -> dict[str, Any]:
    """enterprise_critical also notifies the rotating on-call team and pages the SDR queue
    (a team without a rotation)."""
    changed = copy.deepcopy(pack)
    changed["metadata"]["content_hash"] = "sha256:" + "7" * 64
    for policy in changed["policies"]:
        if policy["name"] == "enterprise_critical":
            policy["steps"] = [
                {
                    "action": "notify",
                    "args": [{"ref": "cust_ops_oncall", "kind": "team"}, {"text": "Heads up"}],
                    "guide": None,
                    "line": 1,
                },
                {
                    "action": "page",
                    "args": [{"ref": "sdr_queue", "kind": "team"}],
                    "guide": None,
                    "line": 2,
                },
            ]
    return changed


def team_rows(engine: Engine, ticket: str) -> list[OutboxMessage]:
    return [m for m in engine.store.outbox() if m.ticket == ticket and "team" in m.payload]


def test_a_team_is_reached_through_its_on_call_member_or_every_member(
    make_engine: Any, pack: dict[str, Any]
) -> None:
    engine, _, _ = make_engine()
    active = engine.activate(team_pack(pack), T0)
    on_call = active.teams["cust_ops_oncall"].on_call(T0)
    other = "bob" if on_call == "alice" else "alice"
    engine.receive(critical("T1", "e1", status="escalated"))
    rows = team_rows(engine, "T1")
    assert [(m.action, m.target, m.target_kind, m.payload["team"]) for m in rows] == [
        ("notify", on_call, "person", "cust_ops_oncall"),
        ("page", "ines", "person", "sdr_queue"),
        ("page", "lena", "person", "sdr_queue"),
    ]
    assert rows[1].payload["contacts"] == {"email": "ines@example.com", "slack": "@ines"}
    assert len({m.key for m in rows}) == 3  # one idempotency key per person
    channels = ChannelNotifier(slack=SlackWebhook("S"), email=SmtpEmail("127.0.0.1", "e@x.org"))
    assert channels.choices(rows[0])[0] == Choice("slack", f"@{on_call}")  # type: ignore[index]
    assert channels.choices(rows[2])[0] == Choice("slack", "@lena")  # type: ignore[index]

    # At send time: the on-call member who is absent passes to the next; absent members
    # of a team without a rotation are left out.
    engine.absent(on_call, T0 + 86400, T0 + 60)
    engine.absent("lena", T0 + 86400, T0 + 60)
    engine.receive(critical("T2", "e2", status="escalated"), T0 + 120)
    assert [(m.action, m.target) for m in team_rows(engine, "T2")] == [
        ("notify", other),
        ("page", "ines"),
    ]


def test_a_team_with_nobody_available_fails_the_step(
    make_engine: Any, pack: dict[str, Any]
) -> None:
    engine, _, _ = make_engine()
    engine.activate(team_pack(pack), T0)
    for person in ("alice", "bob"):
        engine.absent(person, T0 + 86400, T0)
    engine.receive(critical("T1", "e1", status="escalated"))
    assert team_rows(engine, "T1") == []
    [failed] = audit_of(engine, "step_failed")
    assert failed.reason == "step notify cust_ops_oncall: nobody in cust_ops_oncall is available"


def test_with_no_channel_configured_every_message_is_undeliverable_and_triage_happens_once(
    tmp_path: Path, pack: dict[str, Any]
) -> None:
    """No runtime.notifiers: nothing pretends to be delivered; the undeliverable steps fail
    the escalation into its Type B triage once (not once per step)."""
    store = SQLiteStore(str(tmp_path / "none.db"))
    engine = Engine(store, VirtualClock(T0), ChannelNotifier())
    engine.activate(pack, T0)
    raw = json.loads((REPO / "examples" / "events" / "paid_lead_rejected.json").read_text())
    raw["at"] = format_time(T0)
    assert engine.receive(json.dumps(raw), T0).status == "applied"
    rows = store.outbox()
    assert rows and {m.status for m in rows} == {"undeliverable"}
    reasons = [m.reason or "" for m in rows]
    assert all("not configured" in r or "no configured channel" in r for r in reasons), reasons
    kinds = [r.kind for r in store.audit_rows()]
    assert kinds.count("triage") == 1 and "step_failed" in kinds
    assert "delivery_failed" in kinds
    assert sum(1 for m in rows if m.action == "create_task") <= 1
    store.close()


def test_reach_names_the_kinds_and_the_people_no_channel_can_reach(pack: dict[str, Any]) -> None:
    """A notify never goes to a pager: a person reached only by pager is named, not passed."""
    from escalade.runtime.pack import RulePack
    from escalade.runtime.reach import missing_kinds

    typed = RulePack.trusted(pack)
    assert missing_kinds(typed, set()) == ["email", "slack", "webhook"]
    assert missing_kinds(typed, {"slack", "email", "webhook"}) == []
    pager_only = copy.deepcopy(pack)
    pager_only["directory"]["people"]["carol"].update(email=None, slack=None)
    assert "carol (no slack or email contact)" in missing_kinds(
        RulePack.trusted(pager_only), {"slack", "email", "webhook", "pager"}
    )
