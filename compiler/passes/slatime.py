"""How long an SLA can take in wall-clock time, for the timing checks (E401, W402).

An SLA in wall-clock time (``sla resolve 4h``) takes its target. One counted in a
business calendar (``sla resolve 12h within support_hours``) takes between its target
and far more: 12 support hours opened on Friday evening run into Tuesday. The checks
compare it by the LONGEST wall-clock time it can take for any start in the analysis
horizon (:func:`escalade.runtime.schedule.plan_horizon` of every schedule and calendar;
:meth:`escalade.runtime.calendars.Calendar.longest`): an ack timeout longer than
that always misses the SLA.

>>> # 2h within mon-fri 09:00-18:00: Friday 17:00 -> Monday 10:00, 65 hours
"""

from __future__ import annotations

from dataclasses import dataclass, field

from escalade.compiler import model as m
from escalade.runtime.clock import format_duration
from escalade.runtime.schedule import Horizon, ScheduleError, plan_horizon


@dataclass
class SlaLengths:
    """The wall-clock lengths of a policy set's SLAs (the horizon is planned once, when
    the first calendar SLA asks)."""

    pset: m.PolicySet
    _horizon: Horizon | None = None
    _lengths: dict[tuple[str, int], int | None] = field(default_factory=dict)

    def horizon(self) -> Horizon:
        if self._horizon is None:
            schedules = [t.schedule for _, t in sorted(self.pset.teams.items()) if t.schedule]
            calendars = [self.pset.calendars[name] for name in sorted(self.pset.calendars)]
            self._horizon = plan_horizon(schedules, calendars)
        return self._horizon

    def length(self, p: m.Policy, kind: str, target: int) -> int | None:
        """The longest wall-clock time ``p``'s ``kind`` SLA of ``target`` seconds takes;
        None when its calendar cannot be evaluated (another check reports why)."""
        name = p.sla_calendars.get(kind)
        if name is None:
            return target
        calendar = self.pset.calendars.get(name)
        if calendar is None:
            return None
        key = (name, target)
        if key not in self._lengths:
            try:
                h = self.horizon()
                self._lengths[key] = calendar.longest(target, (h.start, h.end))
            except ScheduleError:
                self._lengths[key] = None
        return self._lengths[key]

    def words(self, p: m.Policy, kind: str, target: int) -> str:
        """``4h``, or ``12h within support_hours (up to 3d18h of wall-clock time)``."""
        name = p.sla_calendars.get(kind)
        if name is None:
            return format_duration(target)
        longest = self.length(p, kind, target)
        most = "" if longest is None else f" (up to {format_duration(longest)} of wall-clock time)"
        return f"{format_duration(target)} within {name}{most}"
