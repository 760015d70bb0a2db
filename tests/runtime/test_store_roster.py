"""On-call and operations state in the store (store/roster.py, migration 5 of SQLite and 4
of PostgreSQL): absence windows, overrides, silences, round-robin cursors, related tickets
and groups, post-mortem records; on every back end, on old stores and read-only opens.

The PostgreSQL cases need a server: ``ESCALADE_TEST_PG_DSN`` (printed by
``scripts/postgres-for-tests.sh``)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from escalade.runtime.store import (
    Escalation,
    OverrideRow,
    PostmortemRow,
    SilenceRow,
    StoreError,
)
from escalade.runtime.store import postgres as pg_module
from escalade.runtime.store import sqlite as sqlite_module
from escalade.runtime.store.roster import absent_until, next_member
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import T0, pg_schema

PG_DSN = os.environ.get("ESCALADE_TEST_PG_DSN")
NO_PG = "no PostgreSQL server (ESCALADE_TEST_PG_DSN unset; scripts/postgres-for-tests.sh)"
H = 3600
SQLITE_MIGRATIONS = sqlite_module.MIGRATIONS
PG_MIGRATIONS = pg_module.MIGRATIONS


class Backend:
    """Opens connections to ONE fresh store; ``module`` holds its MIGRATIONS."""

    def __init__(self, name: str, opener: Callable[..., Any], module: ModuleType) -> None:
        self.name = name
        self.open = opener  # open(read_only=False): another connection to the same store
        self.module = module
        # the migrations that bring an old store to the schema before this one
        self.before = len(module.MIGRATIONS) - 1


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.skipif(PG_DSN is None, reason=NO_PG)),
    ]
)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "sqlite":
        path = str(tmp_path / "roster.sqlite")
        opened: list[SQLiteStore] = []

        def opener(**kw: Any) -> SQLiteStore:
            store = SQLiteStore(path, **kw)
            opened.append(store)
            return store

        yield Backend("sqlite", opener, sqlite_module)
        for store in opened:
            store.close()
        return
    assert PG_DSN is not None
    with pg_schema(PG_DSN, "roster") as pg_opener:
        yield Backend("postgres", pg_opener, pg_module)


def _escalation(store: Any, ticket: str, policy: str, started_at: int) -> Escalation:
    pack_id = store.add_pack("sha256:roster", "1.0.0", "{}", T0)
    esc = Escalation(
        ticket=ticket, policy=policy, pack_id=pack_id, priority=1, started_at=started_at
    )
    store.insert_escalation(esc)
    return esc


# --- absences -------------------------------------------------------------------------
def test_absences_are_windows_per_person(backend: Backend) -> None:
    store = backend.open()
    store.set_absence("alice", T0 + H)  # from the start of time, as before
    store.set_absence("bob", T0 + 3 * H, since=T0 + 2 * H)
    store.set_absence("bob", T0 + 6 * H, since=T0 + 5 * H)
    assert store.absences(T0) == {"alice": T0 + H}
    assert store.absences(T0 + 2 * H) == {"bob": T0 + 3 * H}
    assert store.absences(T0 + 3 * H) == {}  # until is exclusive
    assert store.absences(T0 + 5 * H) == {"bob": T0 + 6 * H}
    assert store.absence_windows(T0, T0 + 24 * H) == {
        "alice": [(0, T0 + H)],
        "bob": [(T0 + 2 * H, T0 + 3 * H), (T0 + 5 * H, T0 + 6 * H)],
    }
    assert store.absence_windows(T0 + H, T0 + 2 * H) == {}  # [start, end): neither overlaps
    assert store.absence_windows(T0 + 2 * H, T0 + 2 * H + 1) == {"bob": [(T0 + 2 * H, T0 + 3 * H)]}
    store.set_absence("bob", T0 + 4 * H, since=T0 + 2 * H)  # same start: replaced
    store.set_absence("alice", T0 + 2 * H)  # from the start of time again: replaced
    assert store.absence_windows(T0, T0 + 24 * H) == {
        "alice": [(0, T0 + 2 * H)],
        "bob": [(T0 + 2 * H, T0 + 4 * H), (T0 + 5 * H, T0 + 6 * H)],
    }
    # a window that starts where another ends extends it
    store.set_absence("bob", T0 + 5 * H, since=T0 + 4 * H)
    assert store.absences(T0 + 3 * H) == {"bob": T0 + 6 * H}


def test_absences_in_transactions_follow_the_writes_and_the_rollbacks(backend: Backend) -> None:
    mine, other = backend.open(), backend.open()
    with mine.transaction():
        assert mine.absences(T0) == {}
        mine.set_absence("bob", T0 + H, since=T0)
        assert mine.absences(T0) == {"bob": T0 + H}
        mine.set_absence("bob", T0 + 3 * H, since=T0 + 2 * H)
        assert mine.absences(T0 + 2 * H) == {"bob": T0 + 3 * H}
        assert mine.absences(T0 - 1) == {}  # before the windows kept: read again
    other.set_absence("carol", T0 + H, since=T0 - H)  # another connection: a new version
    with mine.transaction():
        assert mine.absences(T0) == {"bob": T0 + H, "carol": T0 + H}
    with pytest.raises(RuntimeError), mine.transaction():
        mine.set_absence("dave", T0 + H)
        assert "dave" in mine.absences(T0)
        raise RuntimeError("rolled back")
    with mine.transaction():
        assert mine.absences(T0) == {"bob": T0 + H, "carol": T0 + H}
    assert other.absences(T0) == {"bob": T0 + H, "carol": T0 + H}


def test_absent_until_joins_windows_that_touch() -> None:
    windows = [(0, 10), (5, 20), (20, 30), (40, 50)]
    assert absent_until(windows, 3) == 30
    assert absent_until(windows, 35) is None
    assert absent_until(windows, 45) == 50
    assert absent_until([], 0) is None


# --- overrides and silences --------------------------------------------------------------
def test_overrides_are_kept_and_found_by_window_and_team(backend: Backend) -> None:
    store = backend.open()
    first = store.add_override("payments", "ines", T0, T0 + 2 * H, "kofi", "swap", "op:ana")
    with store.transaction():
        second = store.add_override("core", "lena", T0 + H, T0 + 3 * H, None, "cover", "op:bo")
    assert second > first > 0
    a = OverrideRow(first, "payments", "ines", "kofi", T0, T0 + 2 * H, "swap", "op:ana")
    b = OverrideRow(second, "core", "lena", None, T0 + H, T0 + 3 * H, "cover", "op:bo")
    assert store.overrides(T0, T0 + 24 * H) == [a, b]
    assert store.overrides(T0, T0 + 24 * H, team="core") == [b]
    assert store.overrides(T0 + 2 * H, T0 + 24 * H) == [b]  # a ended at T0 + 2h
    assert store.overrides(T0 - H, T0) == []
    with pytest.raises(ValueError, match="ends after it starts"):
        store.add_override("core", "lena", T0, T0, None, "empty", "op:bo")


def test_silences_are_kept_found_and_ended_early(backend: Backend) -> None:
    store = backend.open()
    held = store.add_silence("policy", "enterprise-critical", T0, T0 + 4 * H, "deploy", "op:a")
    team = store.add_silence("team", "payments", T0 + H, T0 + 2 * H, "drill", "op:b")
    assert store.silences(T0, T0 + H) == [
        SilenceRow(held, "policy", "enterprise-critical", T0, T0 + 4 * H, "deploy", "op:a")
    ]
    assert [s.id for s in store.silences(T0 + H, T0 + 5 * H)] == [held, team]
    with store.transaction():
        assert store.end_silence(held, T0 + 30 * 60) is True
    assert store.end_silence(held, T0 + H) is False  # over by then already
    assert store.end_silence(9999, T0) is False  # unknown
    assert [(s.id, s.until) for s in store.silences(T0, T0 + 5 * H)] == [
        (held, T0 + 30 * 60),
        (team, T0 + 2 * H),
    ]
    assert store.silences(T0 + H, T0 + 5 * H) == [
        SilenceRow(team, "team", "payments", T0 + H, T0 + 2 * H, "drill", "op:b")
    ]
    with pytest.raises(ValueError, match="scope"):
        store.add_silence("person", "ines", T0, T0 + H, "no", "op:a")


# --- rotation cursors -----------------------------------------------------------------
MEMBERS = ("ines", "kofi", "lena")


def _available(person: str) -> bool:
    return person != "kofi"


def test_the_rotation_cursor_is_an_upsert_and_survives_reopening(backend: Backend) -> None:
    store = backend.open()
    assert store.rotation_cursor("payments") is None
    store.set_rotation_cursor("payments", "kofi")
    store.set_rotation_cursor("payments", "lena")
    store.close()
    again = backend.open()
    assert again.rotation_cursor("payments") == "lena"
    assert again.rotation_cursor("core") is None


def test_advance_rotation_cycles_skipping_the_unavailable_across_reopens(
    backend: Backend,
) -> None:
    handed = []
    for _ in range(3):
        store = backend.open()  # each pick on a fresh connection: the cursor is durable
        with store.transaction():
            handed.append(store.advance_rotation("payments", MEMBERS, _available))
        store.close()
    assert handed == ["ines", "lena", "ines"]
    store = backend.open()
    assert store.rotation_cursor("payments") == "ines"
    assert store.advance_rotation("payments", MEMBERS, lambda p: False) is None
    assert store.rotation_cursor("payments") == "ines"  # nothing handed out: unchanged
    store.set_rotation_cursor("payments", "zoe")  # no longer a member: from the first
    assert store.advance_rotation("payments", MEMBERS, lambda p: True) == "ines"
    assert store.advance_rotation("core", MEMBERS, lambda p: p == "lena") == "lena"
    assert store.advance_rotation("core", MEMBERS, lambda p: p == "lena") == "lena"
    assert store.advance_rotation("core", (), lambda p: True) is None


def test_a_rolled_back_pick_is_not_recorded(backend: Backend) -> None:
    store = backend.open()
    store.set_rotation_cursor("payments", "ines")
    with pytest.raises(RuntimeError), store.transaction():
        assert store.advance_rotation("payments", MEMBERS, _available) == "lena"
        raise RuntimeError("the decision failed")
    assert store.rotation_cursor("payments") == "ines"


def test_next_member_is_cyclic_in_member_order() -> None:
    assert next_member(MEMBERS, None, _available) == "ines"
    assert next_member(MEMBERS, "ines", _available) == "lena"
    assert next_member(MEMBERS, "lena", _available) == "ines"
    assert next_member(MEMBERS, "kofi", _available) == "lena"
    assert next_member(MEMBERS, "ines", lambda p: p == "ines") == "ines"


@pytest.mark.skipif(PG_DSN is None, reason=NO_PG)
def test_two_postgres_workers_never_hand_out_the_same_member() -> None:
    assert PG_DSN is not None
    with pg_schema(PG_DSN, "rot") as opener:
        first, second = opener(), opener()
        first.set_rotation_cursor("payments", "lena")
        got: list[str | None] = []
        started = threading.Event()

        def other_worker() -> None:
            with second.transaction():
                started.set()
                got.append(second.advance_rotation("payments", MEMBERS, lambda p: True))

        with first.transaction():
            assert first.advance_rotation("payments", MEMBERS, lambda p: True) == "ines"
            worker = threading.Thread(target=other_worker)
            worker.start()
            started.wait(5)
            worker.join(0.5)
            assert worker.is_alive()  # it waits for the cursor row this transaction holds
        worker.join(10)
        assert got == ["kofi"]
        assert first.rotation_cursor("payments") == "kofi"


# --- related tickets and groups ---------------------------------------------------------
def test_related_tickets_and_the_group_parent(backend: Backend) -> None:
    store = backend.open()
    with store.transaction():
        parent = _escalation(store, "T1", "outage", T0)
        store.set_group(parent.id, "outage", "db-eu", T0)
        assert store.group_parent("outage", "db-eu", T0) == parent.id  # the same transaction
    other = _escalation(store, "T2", "outage", T0 + H)
    store.set_group(other.id, "outage", "db-us", T0 + H)
    store.link_related(parent.id, "T3", T0 + 60, "db-eu")
    store.link_related(parent.id, "T4", T0 + 30, "db-eu")
    store.link_related(parent.id, "T3", T0 + 90, "db-eu")  # again: no change
    assert store.related(parent.id) == [("T4", T0 + 30), ("T3", T0 + 60)]
    assert store.related(other.id) == []
    assert store.group_parent("outage", "db-eu", T0 - H) == parent.id
    assert store.group_parent("outage", "db-eu", T0 + 1) is None  # started before `since`
    assert store.group_parent("other-policy", "db-eu", T0) is None
    assert store.group_parent("outage", "db-us", T0) == other.id
    assert store.group_parent("outage", "nothing", T0) is None
    with store.transaction():
        parent.state = "acknowledged"
        store.update_escalation(parent)
        assert store.group_parent("outage", "db-eu", T0) == parent.id
        parent.state = "resolved"
        store.update_escalation(parent)  # held for the commit, and it counts already
        assert store.group_parent("outage", "db-eu", T0) is None
    other.state = "closed"
    store.update_escalation(other)
    assert store.group_parent("outage", "db-us", T0) is None


# --- post-mortems ---------------------------------------------------------------------
def test_postmortem_records_are_saved_replaced_and_completed(backend: Backend) -> None:
    store = backend.open()
    assert store.postmortem_record(1) is None
    with store.transaction():
        store.save_postmortem(1, "# Draft", "ines", T0 + 48 * H, T0)
    assert store.postmortem_record(1) == PostmortemRow(1, "# Draft", "ines", T0 + 48 * H, T0)
    store.save_postmortem(1, "# Draft 2", None, None, T0 + H)  # created_at stays
    assert store.postmortem_record(1) == PostmortemRow(1, "# Draft 2", None, None, T0)
    store.complete_postmortem(1, "https://wiki/pm/1", "ines", T0 + 2 * H)
    store.save_postmortem(1, "# Draft 3", "lena", None, T0 + 3 * H)  # completion stays
    assert store.postmortem_record(1) == PostmortemRow(
        1, "# Draft 3", "lena", None, T0, "https://wiki/pm/1", "ines", T0 + 2 * H
    )
    store.complete_postmortem(2, "https://wiki/pm/2", "kofi", T0)  # no draft saved
    assert store.postmortem_record(2) == PostmortemRow(
        2, "", None, None, T0, "https://wiki/pm/2", "kofi", T0
    )


# --- migration and read-only opens --------------------------------------------------------
def test_an_old_store_keeps_its_absences_and_a_read_only_open_refuses_it(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = backend.module.MIGRATIONS
    monkeypatch.setattr(backend.module, "MIGRATIONS", current[: backend.before])
    old = backend.open()
    assert old.schema_version() == backend.before
    for person, until in (("alice", T0 + H), ("bob", T0 - H)):  # the old table's columns
        old._exec("INSERT INTO absences(person, until) VALUES (?, ?)", (person, until))
    old.close()
    monkeypatch.setattr(backend.module, "MIGRATIONS", current)
    with pytest.raises(StoreError, match=f"schema version {backend.before}, this release"):
        backend.open(read_only=True)  # reads never migrate
    store = backend.open()
    assert store.schema_version() == len(current)
    assert store.absences(T0) == {"alice": T0 + H}
    assert store.absence_windows(0, T0 + 24 * H) == {
        "alice": [(0, T0 + H)],
        "bob": [(0, T0 - H)],
    }
    store.set_absence("alice", T0 + 2 * H)  # the migrated window (since 0) is replaced
    assert store.absence_windows(T0, T0 + 24 * H) == {"alice": [(0, T0 + 2 * H)]}


def test_a_read_only_open_reads_every_new_table(backend: Backend) -> None:
    writer = backend.open()
    with writer.transaction():
        esc = _escalation(writer, "T1", "outage", T0)
        writer.set_absence("ines", T0 + H, since=T0)
        override = writer.add_override("core", "lena", T0, T0 + H, None, "cover", "op:a")
        silence = writer.add_silence("team", "core", T0, T0 + H, "drill", "op:a")
        writer.set_rotation_cursor("core", "lena")
        writer.set_group(esc.id, "outage", "db", T0)
        writer.link_related(esc.id, "T2", T0 + 1, "db")
        writer.save_postmortem(esc.id, "# Draft", "ines", None, T0)
    reader = backend.open(read_only=True)
    assert reader.absences(T0) == {"ines": T0 + H}
    assert reader.absence_windows(T0, T0 + H) == {"ines": [(T0, T0 + H)]}
    assert [o.id for o in reader.overrides(T0, T0 + H)] == [override]
    assert [s.id for s in reader.silences(T0, T0 + H)] == [silence]
    assert reader.rotation_cursor("core") == "lena"
    assert reader.group_parent("outage", "db", T0) == esc.id
    assert reader.related(esc.id) == [("T2", T0 + 1)]
    record = reader.postmortem_record(esc.id)
    assert record is not None and record.draft == "# Draft"
    with reader.transaction():  # a read-only transaction reads them too
        assert reader.absences(T0 + 1) == {"ines": T0 + H}


def test_groups_and_links_held_by_a_transaction_commit_or_roll_back_with_it(
    backend: Backend,
) -> None:
    store, other = backend.open(), backend.open()
    with store.transaction():
        esc = _escalation(store, "T1", "outage", T0)
        store.set_group(esc.id, "outage", "db-eu", T0)
        store.set_group(esc.id, "outage", "db-us", T0 + 1)  # the later one is kept
        store.link_related(esc.id, "T2", T0 + 5, "db-us")
        store.link_related(esc.id, "T2", T0 + 9, "db-us")  # the first one is kept
        assert other.related(esc.id) == []  # not written yet
        assert store.related(esc.id) == [("T2", T0 + 5)]
        store.link_related(esc.id, "T3", T0 + 7, "db-us")  # held again, with the escalation
        esc.state = "acknowledged"
        store.update_escalation(esc)
    assert other.related(esc.id) == [("T2", T0 + 5), ("T3", T0 + 7)]
    assert other.group_parent("outage", "db-us", T0) == esc.id
    assert other.group_parent("outage", "db-eu", T0) is None
    with pytest.raises(RuntimeError), store.transaction():
        store.link_related(esc.id, "T4", T0 + 8, "db-us")
        store.set_group(esc.id, "outage", "db-eu", T0 + 8)
        raise RuntimeError("rolled back")
    assert store.related(esc.id) == [("T2", T0 + 5), ("T3", T0 + 7)]
    assert store.group_parent("outage", "db-us", T0) == esc.id
