"""Who a reference reaches right now: on-call members, team recipients, absences (SPEC §4).

A scheduled team answers with its effective schedule: the pack's, with the overrides
recorded in the store on top (:func:`~escalade.runtime.engine.roster.effective_team`).

Assignment strategies (issue #15), for an owner level ``round_robin(T)`` or ``all(T)``
(:func:`resolve_owner`) and a step ``notify|page all(T)`` (:func:`every_member`):

- the candidates of a level are the members of ``T`` in declaration order; for a team
  with a schedule, the member the schedule (with the store's overrides) puts on call,
  so a pick over a scheduled team is its on-call member (the coverage check of the
  compiler counts exactly these, ``reachability.team_gaps``);
- ``round_robin(T)`` assigns a PERSON: the next available candidate after the last one
  the team handed out. The cursor is per team (``round_robin:T``), shared by every
  policy and level that picks from ``T``, so the queue's work is spread fairly; it
  lives in the store (durable across restarts, row-locked across workers);
- ``all(T)`` leaves the TEAM owning the level: every available candidate is paged and
  any member may acknowledge; the first ack makes that member the owner;
- a step ``notify|page all(T)`` reaches every available member, schedule or not (a
  plain ``notify T`` reaches a scheduled team's on-call member only).

Read-only except :func:`resolve_owner` for ``round_robin``, which advances the team's
cursor inside the assignment's transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from escalade.runtime.engine.loaded import LoadedPack
from escalade.runtime.engine.roster import team_at
from escalade.runtime.pack import Owner
from escalade.runtime.store import Store

ROUND_ROBIN = "round_robin"
ALL = "all"


def on_call(
    pack: LoadedPack, team: str, at: int, away: Mapping[str, int], store: Store | None = None
) -> str | None:
    """The team's on-call member at ``at`` (the next available one when absent), with the
    store's overrides when ``store`` is given.

    A team without a rotation answers with its first available member."""
    spec = pack.teams.get(team)
    if spec is None:
        return None
    if not spec.scheduled:
        return next((m for m in spec.members if m not in away), None)
    return team_at(store, spec, at).on_call(at, away)


def team_recipients(store: Store, pack: LoadedPack, team: str, at: int) -> list[str]:
    """Who a message to ``team`` goes to at ``at``: the on-call member of a team with a
    rotation, else every member; absent members are skipped (empty: nobody available)."""
    spec = pack.teams.get(team)
    if spec is None:
        return []
    away = store.absences(at)
    if spec.scheduled:
        member = on_call(pack, team, at, away, store)
        return [] if member is None else [member]
    return [m for m in spec.members if m not in away]


def resolve_ref(
    pack: LoadedPack,
    ref: str,
    kind: str,
    at: int,
    away: Mapping[str, int],
    store: Store | None = None,
) -> tuple[str, str] | None:
    """``(owner, owner_kind)`` for a chain reference, or None when nobody is available.

    A team with a rotation resolves to its on-call member (with the store's overrides when
    ``store`` is given); one without stays the team (any member may act) while at least one
    member is available."""
    if kind == "team" or ref in pack.teams:
        spec = pack.teams.get(ref)
        if spec is None:
            return None
        if spec.scheduled:
            member = on_call(pack, ref, at, away, store)
            return None if member is None else (member, "person")
        available = [m for m in spec.members if m not in away]
        return (ref, "team") if available else None
    return None if ref in away else (ref, "person")


def rotation_key(team: str) -> str:
    """The store key of ``team``'s round-robin cursor: one per team, whichever policy or
    level picks from it."""
    return f"{ROUND_ROBIN}:{team}"


def candidates(
    pack: LoadedPack, team: str, at: int, away: Mapping[str, int], store: Store | None = None
) -> list[str]:
    """The available members a ``round_robin``/``all`` level picks among at ``at``: the
    on-call member of a team with a schedule, else every member not absent, in order."""
    spec = pack.teams.get(team)
    if spec is None:
        return []
    if spec.scheduled:
        member = on_call(pack, team, at, away, store)
        return [] if member is None else [member]
    return [m for m in spec.members if m not in away]


def every_member(store: Store, pack: LoadedPack, team: str, at: int) -> list[str]:
    """Who a step ``notify|page all(team)`` reaches: every available member, with or
    without a schedule (empty: nobody available)."""
    spec = pack.teams.get(team)
    if spec is None:
        return []
    away = store.absences(at)
    return [m for m in spec.members if m not in away]


@dataclass(frozen=True, slots=True)
class Assignee:
    """Who an owner level is assigned to: ``owner`` of ``kind`` (person | team); ``how``
    says how a pick chose (empty for a plain reference)."""

    owner: str
    kind: str
    how: str = ""


def resolve_owner(
    pack: LoadedPack,
    owner: Owner,
    at: int,
    away: Mapping[str, int],
    store: Store,
    held: str | None = None,
) -> Assignee | None:
    """The assignee of chain level ``owner`` at ``at``, or None when nobody is available
    (the level is skipped). ``round_robin`` advances the team's cursor in ``store``, unless
    ``held``, the member this level was already handed to (assigned again when a silence
    ends), is still a candidate: they keep it, the queue does not move twice."""
    if owner.pick == ROUND_ROBIN:
        pool = candidates(pack, owner.ref, at, away, store)
        if held is not None and held in pool:
            return Assignee(held, "person", f"round robin in {owner.ref}: {held} keeps it")
        key = rotation_key(owner.ref)
        last = store.rotation_cursor(key)
        chosen = store.advance_rotation(key, pool, lambda person: person not in away)
        if chosen is None:
            return None
        after = f"next after {last}" if last is not None else "first turn"
        return Assignee(chosen, "person", f"round robin in {owner.ref}: {after}")
    if owner.pick == ALL:
        if not candidates(pack, owner.ref, at, away, store):
            return None
        return Assignee(owner.ref, "team", f"every member of {owner.ref} is paged")
    found = resolve_ref(pack, owner.ref, owner.kind, at, away, store)
    return None if found is None else Assignee(*found)
