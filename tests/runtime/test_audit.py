"""The audit trail is hash-chained: edits, deletions and truncation are detected."""

from __future__ import annotations

from typing import Any

from escalade.runtime import audit
from tests.runtime.conftest import T0, critical


def _engine_with_history(make_engine: Any) -> Any:
    engine, _, _ = make_engine()
    engine.receive(critical("T1", "e1", status="escalated"))
    engine.advance(T0 + 20 * 60)
    engine.ack("T1", "dana", T0 + 21 * 60)
    return engine


def test_intact_trail_verifies(make_engine: Any) -> None:
    engine = _engine_with_history(make_engine)
    verdict = audit.verify(engine.store)
    assert verdict.ok and verdict.rows > 5
    rows = list(engine.store.audit_rows())
    assert all(r.pack_version and r.actor and r.reason for r in rows if r.escalation_id)
    assert rows[-1].actor == "dana"


def test_update_and_delete_are_refused_by_sql(make_engine: Any) -> None:
    engine = _engine_with_history(make_engine)
    for sql in ("UPDATE audit SET reason = 'x' WHERE seq = 2", "DELETE FROM audit WHERE seq = 2"):
        try:
            engine.store.execute(sql)
        except Exception as exc:  # sqlite3.IntegrityError
            assert "append-only" in str(exc)
        else:
            raise AssertionError(f"{sql} was allowed")


def _tamper(engine: Any, sql: str) -> None:
    store = engine.store
    store.execute("DROP TRIGGER audit_no_update")
    store.execute("DROP TRIGGER audit_no_delete")
    store.execute(sql)


def test_edited_row_is_detected(make_engine: Any) -> None:
    engine = _engine_with_history(make_engine)
    _tamper(engine, "UPDATE audit SET actor = 'mallory' WHERE seq = 3")
    verdict = audit.verify(engine.store)
    assert not verdict.ok and verdict.seq == 3 and "edited" in (verdict.problem or "")


def test_deleted_row_is_detected(make_engine: Any) -> None:
    engine = _engine_with_history(make_engine)
    _tamper(engine, "DELETE FROM audit WHERE seq = 4")
    verdict = audit.verify(engine.store)
    assert not verdict.ok and verdict.seq == 4


def test_cut_tail_is_detected(make_engine: Any) -> None:
    engine = _engine_with_history(make_engine)
    last = max(r.seq for r in engine.store.audit_rows())
    _tamper(engine, f"DELETE FROM audit WHERE seq = {int(last)}")  # noqa: S608 (an int)
    verdict = audit.verify(engine.store)
    assert not verdict.ok and "cut off" in (verdict.problem or "")
