"""The operations parts of a rule pack (issue #15): grouping, post-mortem owners and
maintenance windows, read from pack JSON. Every key is optional in the pack, so packs
written before these existed read as "none".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from escalade.runtime.clock import parse_time


@dataclass(frozen=True, slots=True)
class Grouping:
    """``group by FIELD, ... within D``: later events of an open group attach to it."""

    fields: tuple[str, ...]
    within: int  # seconds


@dataclass(frozen=True, slots=True)
class PostmortemOwner:
    """``postmortem owner REF within D``: who completes the post-mortem, and by when."""

    ref: str
    kind: str  # person | team
    within: int  # seconds after the post-mortem is required


@dataclass(frozen=True, slots=True)
class Maintenance:
    """A planned window in the directory: pages for a policy or a team are held."""

    name: str
    policy: str | None
    team: str | None
    start: int
    end: int
    reason: str


def read_grouping(raw: Mapping[str, Any]) -> Grouping | None:
    group = raw.get("group")
    return None if group is None else Grouping(tuple(group["by"]), group["within"])


def read_postmortem_owner(raw: Mapping[str, Any]) -> PostmortemOwner | None:
    pm = raw.get("postmortem")
    return None if pm is None else PostmortemOwner(pm["owner"], pm["kind"], pm["within"])


def read_maintenance(directory: Mapping[str, Any]) -> tuple[Maintenance, ...]:
    return tuple(
        Maintenance(
            w["name"],
            w["policy"],
            w["team"],
            parse_time(w["from"]),
            parse_time(w["to"]),
            w["reason"],
        )
        for w in directory.get("maintenance", ())
    )
