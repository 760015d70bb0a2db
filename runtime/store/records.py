"""The records of the on-call and operations tables (overrides, silences, post-mortems):
what :class:`~escalade.runtime.store.Store` returns of them, frozen (a change is a new call
to the store, never an edit of a returned row). Re-exported by the store package."""

from __future__ import annotations

from dataclasses import dataclass

SILENCE_SCOPES = ("policy", "team")


@dataclass(frozen=True, slots=True)
class OverrideRow:
    """``person`` takes ``team``'s on-call over [``since``, ``until``) (in place of
    ``replaces``, when one scheduled member is meant), recorded at run time by ``actor``."""

    id: int
    team: str
    person: str
    replaces: str | None
    since: int
    until: int
    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class SilenceRow:
    """Pages of a policy or a team (``scope`` is ``policy`` or ``team``, ``name`` which one)
    are held over [``since``, ``until``); ending a silence early lowers ``until``."""

    id: int
    scope: str
    name: str
    since: int
    until: int
    reason: str
    actor: str


@dataclass(frozen=True, slots=True)
class PostmortemRow:
    """An escalation's post-mortem: the draft and who owns it by when, then where the
    finished one is (``completed_*``, None until it is completed)."""

    escalation_id: int
    draft: str
    owner: str | None
    due: int | None
    created_at: int
    completed_link: str | None = None
    completed_by: str | None = None
    completed_at: int | None = None
