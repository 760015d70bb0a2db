"""Who a reference reaches right now: on-call members, team recipients, absences (SPEC §4).

A scheduled team answers with its effective schedule: the pack's, with the overrides
recorded in the store on top (:func:`~escalade.runtime.engine.roster.effective_team`).
Read-only: nothing here writes to the store.
"""

from __future__ import annotations

from collections.abc import Mapping

from escalade.runtime.engine.loaded import LoadedPack
from escalade.runtime.engine.roster import team_at
from escalade.runtime.store import Store


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
