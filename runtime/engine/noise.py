"""Noise control (issue #15): grouping and silences, where an escalation enters a policy.

Grouping (``group by account.id within 10m``): when an escalation enters a policy that
groups (by its trigger, a re-route or a handoff), the group key is read from the ticket's
current fields (a missing field: not grouped). While an escalation of the group started
within the window is open, the newcomer does not start a chain: its ticket is linked to
that parent as a related ticket, both are audited ``grouped``, and it holds no timers and
pages nobody (it stays ``triggered``, with no owner: the parent's owner has the group).
Closing the parent lists the related tickets still open, and closes them with it when
asked (``close --close-related``). Otherwise the escalation becomes the group's parent.

Silences (``escalade silence``, and the directory's maintenance windows): while a silence
covers an escalation (its policy, or for a team silence the team that owns it or that a
message goes to), its notify and page messages are written with status ``silenced``
(never sent: neither delivered nor failed), and an assignment is held: audited
``silenced``, no ack timer; a ``silence_end`` timer at the silence's end (or ``silence
end``) releases it (:func:`escalade.runtime.engine.timers.release`).

This module never imports the chain (which calls it); what starts a chain again lives
in :mod:`.timers`.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from escalade.runtime.clock import format_duration, format_time
from escalade.runtime.engine.context import Moment, Refused, Runtime
from escalade.runtime.engine.loaded import LoadedPack, PolicyRules
from escalade.runtime.packops import Grouping
from escalade.runtime.store import Escalation, Store, Timer

SILENCE_END = "silence_end"
GROUPED_COUNTER = "grouped:"  # + policy: grouped events, by policy
SILENCED_COUNTER = "silenced_messages"
FOREVER = 2**62


@dataclass(frozen=True, slots=True)
class Hold:
    """A silence in effect: a stored one (``silence`` its id) or a maintenance window."""

    scope: str  # policy | team
    name: str
    since: int
    until: int
    reason: str
    source: str  # "silence #3" | "maintenance NAME"
    silence: int | None = None

    def words(self) -> str:
        return f"{self.source} until {format_time(self.until)}: {self.reason}"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.silence,
            "source": self.source,
            "scope": self.scope,
            "name": self.name,
            "from": format_time(self.since),
            "until": format_time(self.until),
            "reason": self.reason,
        }


# Per store: (roster version, the earliest instant asked, the store's silences not over by
# then). Every assignment and message asks; the store raises its roster version whenever
# any process records or ends a silence, so the kept copy is read again only then.
_CACHE: weakref.WeakKeyDictionary[Store, tuple[int, int, list[Hold]]] = weakref.WeakKeyDictionary()


def forget(store: Store) -> None:
    """Silences changed (this process recorded or ended one): read them again."""
    _CACHE.pop(store, None)


def holds(store: Store, pack: LoadedPack, start: int, end: int) -> list[Hold]:
    """Every silence overlapping [``start``, ``end``): the store's and the pack's
    maintenance windows, by start."""
    return _with_maintenance(_stored(store, start, end), pack, start, end)


def _stored(store: Store, start: int, end: int) -> list[Hold]:
    return [
        Hold(r.scope, r.name, r.since, r.until, r.reason, f"silence #{r.id}", r.id)
        for r in store.silences(start, end)
    ]


def _with_maintenance(found: list[Hold], pack: LoadedPack, start: int, end: int) -> list[Hold]:
    found = [h for h in found if h.since < end and h.until > start]
    for w in pack.pack.maintenance:
        if w.start < end and w.end > start:
            scope, name = ("policy", w.policy) if w.policy else ("team", w.team or "")
            found.append(Hold(scope, name, w.start, w.end, w.reason, f"maintenance {w.name}"))
    return sorted(found, key=lambda h: (h.since, h.source))


def _now_holds(rt: Runtime, pack: LoadedPack, now: int) -> list[Hold]:
    store = rt.store
    version = store.roster_version()
    kept = _CACHE.get(store)
    if version is None or kept is None or kept[0] != version or now < kept[1]:
        kept = (-1 if version is None else version, now, _stored(store, now, FOREVER))
        if version is not None:
            _CACHE[store] = kept
    return _with_maintenance(kept[2], pack, now, now + 1)


def covering(
    rt: Runtime, pack: LoadedPack, policy: str, teams: Iterable[str | None], now: int
) -> Hold | None:
    """The silence holding pages of ``policy`` or of one of ``teams`` at ``now`` (the one
    that ends last), else None."""
    names = {t for t in teams if t}
    found = [
        h
        for h in _now_holds(rt, pack, now)
        if (h.scope == "policy" and h.name == policy) or (h.scope == "team" and h.name in names)
    ]
    return max(found, key=lambda h: h.until) if found else None


def owner_teams(esc: Escalation) -> tuple[str | None, ...]:
    """The teams the escalation's current owner stands for."""
    return (esc.facts.owner_from, esc.owner if esc.owner_kind == "team" else None)


def message_hold(
    rt: Runtime,
    esc: Escalation,
    pack: LoadedPack,
    rules: PolicyRules,
    m: Moment,
    target: tuple[str | None, str | None],
    payload: Mapping[str, Any],
) -> Hold | None:
    """The silence that holds a notify or page of ``esc`` to ``target`` (None: send it)."""
    ref, kind = target
    teams = (*owner_teams(esc), payload.get("team"), ref if kind == "team" else None)
    hold = covering(rt, pack, rules.name, teams, m.now)
    if hold is not None:
        rt.store.bump(SILENCED_COUNTER)
    return hold


def hold_assignment(
    rt: Runtime,
    esc: Escalation,
    pack: LoadedPack,
    rules: PolicyRules,
    m: Moment,
    at: tuple[int, int, str],
) -> bool:
    """After an assignment (chain position ``at``: index, cycle, ref): when a silence covers
    it, hold the chain (audited ``silenced``, released at the silence's end) and say so."""
    index, cycle, ref = at
    hold = covering(rt, pack, rules.name, (*owner_teams(esc), ref), m.now)
    if hold is None:
        return False
    rt.store.cancel_timers(esc.id, (SILENCE_END,))
    payload = {"index": index, "cycle": cycle, "policy": rules.name, **hold.as_json()}
    rt.store.add_timer(
        Timer(
            due=hold.until,
            kind=SILENCE_END,
            ticket=esc.ticket,
            escalation_id=esc.id,
            payload=payload,
        )
    )
    rt.audit(
        m,
        "silenced",
        esc,
        pack,
        rules.name,
        reason=f"pages held by {hold.words()}",
        detail=hold.as_json(),
    )
    return True


# --- grouping -----------------------------------------------------------------------
def group_key(grouping: Grouping, state: Mapping[str, Any]) -> str | None:
    """The group of a ticket: its values of the grouping's fields (None when one is
    missing: the ticket is not grouped)."""
    values = []
    for path in grouping.fields:
        obj, _, name = path.partition(".")
        value = (state.get(obj) or {}).get(name)
        if value in (None, "", []):
            return None
        values.append(value)
    return json.dumps(values, sort_keys=True, separators=(",", ":"))


def attach(
    rt: Runtime,
    esc: Escalation,
    pack: LoadedPack,
    rules: PolicyRules,
    state: Mapping[str, Any],
    m: Moment,
) -> bool:
    """``esc`` enters ``rules``, which groups: attach it to the open parent of its group
    (True: no chain starts), or register it as the group's parent (False)."""
    grouping = rules.policy.grouping
    key = None if grouping is None else group_key(grouping, state)
    if grouping is None or key is None:
        return False
    store = rt.store
    parent_id = store.group_parent(rules.name, key, m.now - grouping.within)
    parent = store.escalation(parent_id) if parent_id not in (None, esc.id) else None
    if parent is None:
        store.set_group(esc.id, rules.name, key, m.now)
        return False
    store.cancel_timers(esc.id, ("sla_acknowledge", "sla_resolve", SILENCE_END))
    store.link_related(parent.id, esc.ticket, m.now, key)
    fields = ", ".join(grouping.fields)
    same = f"same {fields} within {format_duration(grouping.within)}"
    detail = {"group": key, "fields": list(grouping.fields)}
    rt.audit(
        m,
        "grouped",
        parent,
        pack,
        rules.name,
        reason=f"ticket {esc.ticket} attached as a related ticket: {same}",
        detail={**detail, "related": esc.ticket},
    )
    rt.audit(
        m,
        "grouped",
        esc,
        pack,
        rules.name,
        reason=f"attached to ticket {parent.ticket}'s escalation: {same}; nobody paged",
        detail={**detail, "parent": parent.ticket, "parent_escalation": parent.id},
    )
    store.bump(GROUPED_COUNTER + rules.name)
    return True


def open_related(store: Store, esc: Escalation) -> list[Escalation]:
    """The open escalations of the tickets related to ``esc``."""
    found = []
    for ticket, _ in store.related(esc.id):
        child = store.open_escalation(ticket)
        if child is not None and child.id != esc.id:
            found.append(child)
    return found


def close_related(rt: Runtime, parent: Escalation, m: Moment, close: bool) -> str:
    """After ``parent`` closed: what its message adds of the related tickets still open,
    closing them (audited) when ``close``."""
    children = open_related(rt.store, parent)
    if not children:
        return ""
    tickets = ", ".join(c.ticket for c in children)
    if not close:
        return (
            f"; {len(children)} related ticket(s) still open: {tickets}"
            " (close them with --close-related)"
        )
    for child in children:
        pack = rt.pack(child.pack_id)
        rt.store.cancel_timers(child.id)
        if child.state != "resolved":
            rt.move(child, "resolve")
            child.resolved_at = m.now
        rt.move(child, "close")
        child.closed_at = m.now
        rt.audit(
            m,
            "closed",
            child,
            pack,
            child.policy,
            reason=f"closed with ticket {parent.ticket}, the parent of its group",
            detail={"with": parent.ticket, "parent_escalation": parent.id},
        )
        rt.store.update_escalation(child)
    return f"; closed {len(children)} related ticket(s): {tickets}"


# --- reading --------------------------------------------------------------------------
def noise_status(rt: Runtime, esc: Escalation) -> dict[str, Any]:
    """What status shows of grouping and silences: ``related`` tickets (with whether each
    is still open), ``grouped_into`` (the parent's ticket, for a related one) and
    ``silenced`` (until and why, while the chain is held)."""
    store = rt.store
    related = [
        {"ticket": t, "at": format_time(at), "open": store.open_escalation(t) is not None}
        for t, at in store.related(esc.id)
    ]
    grouped_into = None
    for row in store.audit_rows(esc.id):
        if row.kind == "grouped" and "parent" in row.detail:
            grouped_into = row.detail["parent"]
        elif row.kind in ("handoff", "rerouted"):
            grouped_into = None
    silenced = None
    for t in store.timers_of(esc.id):
        if t.kind == SILENCE_END:
            p = t.payload
            silenced = {"until": p.get("until"), "reason": p.get("reason"), "by": p.get("source")}
    return {"related": related, "grouped_into": grouped_into, "silenced": silenced}


def held_by(store: Store, silence: int) -> list[tuple[Escalation, Timer]]:
    """The escalations (with their timer) whose chain silence ``silence`` holds."""
    found = []
    for esc in store.open_escalations(FOREVER):
        for t in store.timers_of(esc.id):
            if t.kind == SILENCE_END and t.payload.get("id") == silence:
                found.append((esc, t))
    return found


# --- recording silences -----------------------------------------------------------------
def check_silence(
    pack: LoadedPack, scope: str, name: str, window: tuple[int, int], now: int, reason: str
) -> None:
    """:class:`Refused` (nothing written) unless the silence can be recorded."""
    start, until = window
    if scope == "policy" and name not in pack.rules:
        raise Refused(f"no policy {name!r} in pack {pack.version}")
    if scope == "team" and name not in pack.teams:
        raise Refused(f"no team {name!r} in the directory")
    if scope not in ("policy", "team"):
        raise Refused(f"a silence holds a policy or a team, not a {scope!r}")
    if until <= start:
        raise Refused(f"--until {format_time(until)} is not after --from {format_time(start)}")
    if until <= now:
        raise Refused(f"--until {format_time(until)} is not in the future")
    if not reason.strip():
        raise Refused("a silence needs a reason (--reason)")


def record_silence(
    rt: Runtime,
    pack: LoadedPack,
    target: tuple[str, str],
    window: tuple[int, int],
    reason: str,
    m: Moment,
) -> int:
    """Record a checked silence (in the open transaction) and audit it; its id."""
    (scope, name), (start, until) = target, window
    ident = rt.store.add_silence(scope, name, start, until, reason, m.actor)
    forget(rt.store)
    rt.audit(
        m,
        "silence",
        None,
        pack,
        name if scope == "policy" else None,
        reason=f"silence #{ident}: pages of {scope} {name} held from {format_time(start)}"
        f" until {format_time(until)}: {reason}",
        detail={"id": ident, "scope": scope, "name": name, "from": start, "until": until},
    )
    return ident


def end_silence(
    rt: Runtime, pack: LoadedPack, silence: int, m: Moment
) -> list[tuple[Escalation, Timer]]:
    """End silence ``silence`` now (audited); the chains it held, to release now.
    :class:`Refused` when it is unknown or over already."""
    found = [h for h in holds(rt.store, pack, m.now, FOREVER) if h.silence == silence]
    if not found:
        raise Refused(f"no silence #{silence} is in effect or to come")
    rt.store.end_silence(silence, m.now)
    forget(rt.store)
    hold = found[0]
    rt.audit(
        m,
        "silence_ended",
        None,
        pack,
        hold.name if hold.scope == "policy" else None,
        reason=f"silence #{silence} of {hold.scope} {hold.name} ended early"
        f" (it ran until {format_time(hold.until)})",
        detail={"id": silence, "scope": hold.scope, "name": hold.name},
    )
    return held_by(rt.store, silence)
