"""Teams of a rule pack and who of them is on call (SPEC §4).

A team has members and, optionally, a schedule: layers of shifts in local time
with restrictions, and overrides on top (:mod:`escalade.runtime.schedule`). The
old ``rotation daily|weekly from "ISO"`` is read as a one-layer schedule, so
its answers are unchanged. A team without a schedule has nobody "on call":
every available member is notified and any of them may act.
"""

from __future__ import annotations

from collections.abc import Container, Mapping
from dataclasses import dataclass
from typing import Any

from escalade.runtime.schedule import Schedule, layer_from_rotation
from escalade.runtime.schedulecodec import read_schedule


@dataclass(frozen=True, slots=True)
class Team:
    name: str
    members: tuple[str, ...]
    rotation: str | None  # daily | weekly
    rotation_start: str | None  # ISO-8601
    schedule: Schedule | None = None

    @property
    def scheduled(self) -> bool:
        """True when one member at a time is on call (layers or a rotation)."""
        return self.schedule is not None

    def on_call(self, at: float, absent: Container[str] = ()) -> str | None:
        """The member on call at epoch seconds ``at``, or None without a schedule or
        when nobody is: an ``absent`` member passes to the next available member of
        the layer, then to the layers below (overrides first)."""
        if self.schedule is None:
            return None
        moment = int(at)
        away = {m: ((moment, moment + 1),) for m in self.people() if m in absent}
        return self.schedule.who(moment, away)

    def people(self) -> tuple[str, ...]:
        """Members and anyone an override puts on call, in order, each once."""
        extra = (o.person for o in self.schedule.overrides) if self.schedule else ()
        return tuple(dict.fromkeys((*self.members, *extra)))


def read_team(name: str, raw: Mapping[str, Any]) -> Team:
    """A team from its pack JSON; a bare ``rotation`` becomes its one layer."""
    members = tuple(raw["members"])
    rotation = raw["rotation"]
    schedule: Schedule | None = None
    if raw.get("schedule") is not None:
        schedule = read_schedule(raw["schedule"])
    elif rotation:
        layer = layer_from_rotation(members, rotation["period"], rotation["start"])
        schedule = Schedule((layer,))
    return Team(
        name,
        members,
        rotation["period"] if rotation else None,
        rotation["start"] if rotation else None,
        schedule,
    )
