"""The outbox as the engine drives it: receipts by key, reasons, delivery outside
transactions, retries with backoff, and messages to teams."""

from __future__ import annotations

from typing import Any

import pytest

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
