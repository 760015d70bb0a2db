"""The on-call and operations tables of the SQL stores: absence windows, overrides,
silences, round-robin cursors, related tickets and their groups, post-mortem records (the
same SQL in SQLite and PostgreSQL, ``?`` placeholders).

A mixin of :class:`~escalade.runtime.store.sql.SQLStore`, kept apart so each module stays
small. Every write is part of the open transaction when there is one (it commits or
rolls back with the decision that made it), else runs on its own: related-ticket links and
group parents wait in the transaction's :class:`~escalade.runtime.store.unit.Unit` and are
written with its other rows before the commit (a query of their tables writes them
first); the other writes run at once (an id to return, a row to lock). Every read works on
a read-only open.

Absences are windows [since, until) per person (since 0: from the start of time). They
are read once and kept across transactions while the ``absences`` meta row (a version
every :meth:`Roster.set_absence` raises, in the same transaction) stays the same, so a
decision does not read them again unless someone marked a person absent since; the
windows kept are those still running at the earliest time asked about (an earlier time
reads them again).

Round-robin cursors: :meth:`Roster.advance_rotation` reads the cursor row locked until
the transaction ends (``SELECT ... FOR UPDATE`` on PostgreSQL; a SQLite transaction is
the only writer already), so two workers never hand out the same "next" member; callers
hold the ticket's transaction (a call outside one runs in a transaction of its own).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

from escalade.runtime.store.records import (
    SILENCE_SCOPES,
    OverrideRow,
    PostmortemRow,
    SilenceRow,
)
from escalade.runtime.store.unit import Unit
from escalade.runtime.store.writes import Write

# person -> their absence windows (since, until), sorted
Windows = dict[str, list[tuple[int, int]]]
# (absences version, the earliest time the windows kept answer for, the windows)
AbsenceCache = tuple[int | None, int, Windows]

_OVERRIDE_COLUMNS = "id, team, person, replaces, since, until, reason, actor"
_SILENCE_COLUMNS = "id, scope, name, since, until, reason, actor"
_POSTMORTEM_COLUMNS = (
    "escalation_id, draft, owner, due, created_at, completed_link, completed_by, completed_at"
)
# Rows a transaction holds until its commit: (table, columns, conflict clause).
_RELATED = (
    "related_tickets",
    "escalation_id, ticket, at, group_key",
    " ON CONFLICT(escalation_id, ticket) DO NOTHING",
)
_GROUPS = (
    "groups",
    "escalation_id, policy, group_key, at",
    " ON CONFLICT(escalation_id) DO UPDATE SET policy = excluded.policy,"
    " group_key = excluded.group_key, at = excluded.at",
)
# Escalation states that no longer take related tickets (the group is over).
_GROUP_ENDED = ("resolved", "closed")


class _Store(Protocol):
    _unit: Unit | None
    _absent: AbsenceCache | None

    def _row(self, sql: str, params: Sequence[Any] = ()) -> Any: ...
    def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[Any]: ...
    def _exec(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    def _exec_count(self, sql: str, params: Sequence[Any] = ()) -> int: ...
    def _insert(self, sql: str, params: Sequence[Any]) -> int: ...
    def _meta(self, key: str) -> str | None: ...
    def _set_meta(self, key: str, value: str) -> None: ...
    def _meta_unit(self) -> Unit: ...
    def _bump_roster(self) -> Unit | None: ...
    def _flush_escalations(self) -> None: ...
    def _for_update(self) -> str: ...
    def _send_write(self, write: Write) -> None: ...
    def transaction(self, *, exclusive: bool = False) -> AbstractContextManager[None]: ...


def by_person(rows: Sequence[Sequence[Any]]) -> Windows:
    """Rows (person, since, until) as each person's windows, sorted."""
    out: Windows = {}
    for person, since, until in rows:
        out.setdefault(str(person), []).append((int(since), int(until)))
    for windows in out.values():
        windows.sort()
    return out


def absent_until(windows: Sequence[tuple[int, int]], at: int) -> int | None:
    """The end of the absence that ``at`` falls in (windows that overlap or touch the one
    containing ``at`` extend it), or None (``windows`` sorted)."""
    end: int | None = None
    for since, until in windows:
        if end is None:
            if since <= at < until:
                end = until
        elif since <= end:
            end = max(end, until)
    return end


def absent_at(windows: Windows, at: int) -> dict[str, int]:
    """Who is absent at ``at``, until when."""
    out = {}
    for person, kept in windows.items():
        end = absent_until(kept, at)
        if end is not None:
            out[person] = end
    return out


def with_window(windows: Windows, person: str, since: int, until: int) -> Windows:
    """``windows`` with ``person``'s window starting at ``since`` set to end at ``until``."""
    kept = [w for w in windows.get(person, []) if w[0] != since]
    return {**windows, person: sorted([*kept, (since, until)])}


def next_member(
    members: Sequence[str], last: str | None, available: Callable[[str], bool]
) -> str | None:
    """The first available member after ``last`` in ``members`` (cyclic: ``last`` itself
    comes last; from the first when ``last`` is None or no longer a member)."""
    if not members:
        return None
    start = members.index(last) + 1 if last in members else 0
    for i in range(len(members)):
        candidate = members[(start + i) % len(members)]
        if available(candidate):
            return candidate
    return None


def _hold_or_write(
    store: _Store, into: tuple[str, str, str], keyed: int, row: tuple[Any, ...], upsert: bool
) -> None:
    """Inside a transaction, hold ``row`` (its key: its first ``keyed`` values) until the
    commit, written with the others; else write it now."""
    if store._unit is not None:
        store._unit.hold_row(into, row[:keyed], row, upsert)
    else:
        store._send_write(Write(into[0], into[1], [row], into[2]))


def _flushed(store: _Store, table: str) -> None:
    """Write the rows the transaction holds for ``table`` (before a query of it)."""
    if store._unit is not None and store._unit.rows_held:
        store._unit.flush_held(store._send_write, table)


def _check_window(since: int, until: int) -> None:
    if until <= since:
        raise ValueError(f"a window ends after it starts: since {since}, until {until}")


class Roster:
    """Absence windows, overrides, silences, rotation cursors, groups and post-mortems."""

    _unit: Unit | None
    _absent: AbsenceCache | None

    # --- absences ------------------------------------------------------------
    def set_absence(self: _Store, person: str, until: int, since: int | None = None) -> None:
        """Record ``person`` absent over [``since``, ``until``) (``since`` None: from the
        start of time, stored as 0); a window of theirs starting at ``since`` already is
        replaced, other windows stay."""
        start = 0 if since is None else since
        self._exec(
            "INSERT INTO absences(person, since, until) VALUES (?, ?, ?)"
            " ON CONFLICT(person, since) DO UPDATE SET until = excluded.until",
            (person, start, until),
        )
        kept = self._absent
        unit = self._bump_roster()
        if unit is None:
            return
        fresh = kept is not None and kept[0] == (unit.absences_version or 0) - 1
        if fresh and kept is not None:
            windows = with_window(kept[2], person, start, until)
            self._absent = (unit.absences_version, kept[1], windows)

    def _bump_roster(self: _Store) -> Unit | None:
        """Raise the roster version (meta ``absences``) after an absence, an override or a
        silence, so every process's kept copies are read again; the transaction's
        unit (None outside one, where the meta row is written at once)."""
        unit = self._unit if self._unit is None else self._meta_unit()
        self._absent = None
        if unit is None:
            self._set_meta("absences", str(int(self._meta("absences") or 0) + 1))
            return None
        unit.absences_version = (unit.absences_version or 0) + 1
        unit.absences_dirty = True
        return unit

    def roster_version(self: _Store) -> int | None:
        """The roster version as this transaction read it (None outside a transaction):
        a kept copy of the overrides stays good while it is unchanged."""
        unit = self._unit if self._unit is None else self._meta_unit()
        return None if unit is None else unit.absences_version or 0

    def absences(self: _Store, at: int) -> dict[str, int]:
        """Who is absent at ``at``, until when (the end of the absence ``at`` falls in)."""
        sql = "SELECT person, since, until FROM absences WHERE until > ?"
        unit = self._unit if self._unit is None else self._meta_unit()
        if unit is None:
            return absent_at(by_person(self._rows(sql, (at,))), at)
        kept = self._absent
        if kept is None or kept[0] != unit.absences_version or at < kept[1]:
            kept = self._absent = (unit.absences_version, at, by_person(self._rows(sql, (at,))))
        return absent_at(kept[2], at)

    def absence_windows(self: _Store, start: int, end: int) -> dict[str, list[tuple[int, int]]]:
        """Every absence window overlapping [``start``, ``end``), per person, sorted."""
        rows = self._rows(
            "SELECT person, since, until FROM absences WHERE since < ? AND until > ?"
            " ORDER BY person, since, until",
            (end, start),
        )
        return by_person(rows)

    # --- overrides -----------------------------------------------------------
    def add_override(
        self: _Store,
        team: str,
        person: str,
        since: int,
        until: int,
        replaces: str | None,
        reason: str,
        actor: str,
    ) -> int:
        """Record ``person`` on call for ``team`` over [``since``, ``until``); its id."""
        _check_window(since, until)
        found = self._insert(
            "INSERT INTO overrides(team, person, replaces, since, until, reason, actor)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (team, person, replaces, since, until, reason, actor),
        )
        self._bump_roster()
        return found

    def overrides(self: _Store, start: int, end: int, team: str | None = None) -> list[OverrideRow]:
        """The overrides (of ``team``, or every team) overlapping [``start``, ``end``), by
        start then id."""
        sql = f"SELECT {_OVERRIDE_COLUMNS} FROM overrides WHERE since < ? AND until > ?"
        params: list[Any] = [end, start]
        if team is not None:
            sql += " AND team = ?"
            params.append(team)
        rows = self._rows(sql + " ORDER BY since, id", params)
        return [
            OverrideRow(int(i), str(t), str(p), r, int(s), int(u), str(why), str(a))
            for i, t, p, r, s, u, why, a in rows
        ]

    # --- silences ------------------------------------------------------------
    def add_silence(
        self: _Store, scope: str, name: str, since: int, until: int, reason: str, actor: str
    ) -> int:
        """Hold the pages of policy or team ``name`` over [``since``, ``until``); its id."""
        if scope not in SILENCE_SCOPES:
            raise ValueError(f"a silence's scope is one of {SILENCE_SCOPES}, not {scope!r}")
        _check_window(since, until)
        found = self._insert(
            "INSERT INTO silences(scope, name, since, until, reason, actor)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (scope, name, since, until, reason, actor),
        )
        self._bump_roster()  # every process reads the silences again
        return found

    def silences(self: _Store, start: int, end: int) -> list[SilenceRow]:
        """The silences overlapping [``start``, ``end``), by start then id."""
        rows = self._rows(
            f"SELECT {_SILENCE_COLUMNS} FROM silences WHERE since < ? AND until > ?"
            " ORDER BY since, id",
            (end, start),
        )
        return [
            SilenceRow(int(i), str(sc), str(n), int(s), int(u), str(why), str(a))
            for i, sc, n, s, u, why, a in rows
        ]

    def end_silence(self: _Store, silence_id: int, at: int) -> bool:
        """End silence ``silence_id`` at ``at`` (its ``until`` becomes min(until, at)); False
        when it is unknown or over by ``at`` already."""
        changed = self._exec_count(
            "UPDATE silences SET until = ? WHERE id = ? AND until > ?", (at, silence_id, at)
        )
        if changed:
            self._bump_roster()
        return changed > 0

    # --- round-robin cursors ---------------------------------------------------
    def rotation_cursor(self: _Store, key: str) -> str | None:
        """The member rotation ``key`` handed out last (None: nobody yet)."""
        row = self._row("SELECT person FROM rotation_cursors WHERE key = ?", (key,))
        return None if row is None or row[0] is None else str(row[0])

    def set_rotation_cursor(self: _Store, key: str, person: str) -> None:
        """Record ``person`` as the member rotation ``key`` handed out last."""
        self._exec(
            "INSERT INTO rotation_cursors(key, person) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET person = excluded.person",
            (key, person),
        )

    def advance_rotation(
        self: _Store, key: str, members: Sequence[str], available: Callable[[str], bool]
    ) -> str | None:
        """Hand out the next member of rotation ``key``: the first available one after the
        last handed out, in ``members`` order and cyclic (from the first when the last is
        no longer a member), recorded as the last; None (nothing recorded) when nobody is
        available. Inside the caller's transaction, the cursor row stays locked until it
        ends, so no other worker hands out the same member meanwhile."""
        with self.transaction():
            # The row exists before it is locked: two first calls meet on its key.
            self._exec(
                "INSERT INTO rotation_cursors(key, person) VALUES (?, NULL)"
                " ON CONFLICT(key) DO NOTHING",
                (key,),
            )
            row = self._row(
                "SELECT person FROM rotation_cursors WHERE key = ?" + self._for_update(), (key,)
            )
            last = None if row is None or row[0] is None else str(row[0])
            chosen = next_member(members, last, available)
            if chosen is not None:
                self._exec("UPDATE rotation_cursors SET person = ? WHERE key = ?", (chosen, key))
            return chosen

    # --- related tickets and groups ----------------------------------------------
    def link_related(
        self: _Store, escalation_id: int, ticket: str, at: int, group_key: str
    ) -> None:
        """Record ``ticket`` as related to escalation ``escalation_id`` (grouped under
        ``group_key``); linking it again changes nothing. Inside a transaction the row is
        written with the others before the commit."""
        _hold_or_write(self, _RELATED, 2, (escalation_id, ticket, at, group_key), upsert=False)

    def related(self: _Store, escalation_id: int) -> list[tuple[str, int]]:
        """The tickets related to escalation ``escalation_id``: (ticket, at), as linked."""
        _flushed(self, _RELATED[0])
        rows = self._rows(
            "SELECT ticket, at FROM related_tickets WHERE escalation_id = ? ORDER BY at, ticket",
            (escalation_id,),
        )
        return [(str(t), int(a)) for t, a in rows]

    def set_group(self: _Store, escalation_id: int, policy: str, group_key: str, at: int) -> None:
        """Register escalation ``escalation_id`` as the parent of group ``group_key`` of
        ``policy`` (a parent registered again takes the new key). Inside a transaction the
        row is written with the others before the commit."""
        _hold_or_write(self, _GROUPS, 1, (escalation_id, policy, group_key, at), upsert=True)

    def group_parent(self: _Store, policy: str, group_key: str, since: int) -> int | None:
        """The parent of group ``group_key`` of ``policy``: an escalation of that policy
        registered with :meth:`set_group`, neither resolved nor closed, started at or after
        ``since`` (the latest started, when several are); None when there is none."""
        self._flush_escalations()  # a state change held for the commit counts
        _flushed(self, _GROUPS[0])
        row = self._row(
            "SELECT g.escalation_id FROM groups g JOIN escalations e ON e.id = g.escalation_id"
            " WHERE g.policy = ? AND g.group_key = ? AND e.policy = ? AND e.started_at >= ?"
            " AND e.state NOT IN (?, ?) ORDER BY e.started_at DESC, e.id DESC LIMIT 1",
            (policy, group_key, policy, since, *_GROUP_ENDED),
        )
        return None if row is None else int(row[0])

    # --- post-mortems --------------------------------------------------------------
    def save_postmortem(
        self: _Store, escalation_id: int, draft: str, owner: str | None, due: int | None, at: int
    ) -> None:
        """Record (or replace) the draft, owner and due time of an escalation's post-mortem;
        ``at`` is when it was first saved (kept by later saves, as is a completion)."""
        self._exec(
            "INSERT INTO postmortems(escalation_id, draft, owner, due, created_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT(escalation_id) DO UPDATE SET"
            " draft = excluded.draft, owner = excluded.owner, due = excluded.due",
            (escalation_id, draft, owner, due, at),
        )

    def postmortem_record(self: _Store, escalation_id: int) -> PostmortemRow | None:
        row = self._row(
            f"SELECT {_POSTMORTEM_COLUMNS} FROM postmortems WHERE escalation_id = ?",
            (escalation_id,),
        )
        if row is None:
            return None
        esc_id, draft, owner, due, created, link, by, done = row
        return PostmortemRow(
            int(esc_id),
            str(draft),
            owner,
            None if due is None else int(due),
            int(created),
            link,
            by,
            None if done is None else int(done),
        )

    def complete_postmortem(self: _Store, escalation_id: int, link: str, by: str, at: int) -> None:
        """Record the finished post-mortem (``link``, by ``by`` at ``at``); an escalation
        without a saved draft gets a record with an empty one."""
        self._exec(
            "INSERT INTO postmortems(escalation_id, draft, created_at, completed_link,"
            " completed_by, completed_at) VALUES (?, '', ?, ?, ?, ?)"
            " ON CONFLICT(escalation_id) DO UPDATE SET completed_link = excluded.completed_link,"
            " completed_by = excluded.completed_by, completed_at = excluded.completed_at",
            (escalation_id, at, link, by, at),
        )
