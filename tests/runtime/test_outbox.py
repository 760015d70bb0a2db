"""The outbox as the engine drives it: receipts by key, reasons, delivery outside
transactions, retries with backoff, and messages to teams."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from escalade.runtime import audit
from escalade.runtime.clock import VirtualClock
from escalade.runtime.engine import Engine
from escalade.runtime.notify import Delivery
from escalade.runtime.store import AuditRow, OutboxMessage
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0, critical


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

    def deliver(self, msg: OutboxMessage) -> Any:
        in_txn = self.store is not None and self.store._db.in_transaction
        self.calls.append((msg.key, in_txn))
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
        rows["open"].reason == "the notifier answered 'ok', not one of delivered, pending, failed"
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
    failed = audit_of(engine, "delivery_failed")
    assert [r.detail["key"] for r in failed] == [rows["open"].key, rows["snapshot"].key]
    assert "open" in failed[0].reason and "HTTP 404: no such war room" in failed[0].reason
    assert failed[0].policy == "enterprise_critical" and failed[0].pack_version
    # A refused step is a step failure (SPEC §4), and says why.
    step = audit_of(engine, "step_failed")
    assert step and "no such war room" in step[0].reason
    assert audit.verify(engine.store).ok
