"""Replay recorded history on a virtual clock and compute KPIs.

A replay file is JSON Lines: events in the pinned event format and operator
commands (``{"command": "ack", ...}``, see :mod:`escalade.runtime.events`).
Each line runs at its own ``at`` (a line earlier than the clock runs at the
clock: late arrivals are applied, not reordered). Timers due in between fire
first, exactly as in production, because it is the same engine and store. The
events between two commands go through the batch API
(:meth:`~escalade.runtime.engine.Engine.receive_many`): many per transaction,
with the same outcome as one transaction each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from escalade.runtime import kpi
from escalade.runtime.clock import VirtualClock
from escalade.runtime.engine import LOOP_LIMIT, LOOP_WINDOW, Engine, Refused
from escalade.runtime.engine.intake import BATCH
from escalade.runtime.engine.shell import typed_pack
from escalade.runtime.events import Command, EventError, parse_line
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.pack import RulePack
from escalade.runtime.store import Store
from escalade.runtime.store.sqlite import SQLiteStore


@dataclass(slots=True)
class Replay:
    """What a replay did, and the KPIs at its end."""

    kpis: dict[str, Any]
    applied: int = 0
    duplicates: int = 0
    rejected: int = 0
    commands: int = 0
    refused: list[str] = field(default_factory=list)


def run_command(engine: Engine, cmd: Command) -> None:
    """Apply one operator command (raises :class:`Refused` when the engine refuses it)."""
    at = max(cmd.at, engine.store.clock() or cmd.at)
    args = cmd.args
    if cmd.name == "ack":
        engine.ack(args["ticket"], args["by"], at)
    elif cmd.name == "resolve":
        engine.resolve(args["ticket"], at)
    elif cmd.name == "close":
        engine.close(args["ticket"], at)
    elif cmd.name == "transfer":
        engine.transfer(args["ticket"], args["to"], args["reason"], args["sla"], at)
    elif cmd.name == "absent":
        engine.absent(args["person"], args["until"], at)
    elif cmd.name == "postmortem":
        engine.postmortem(args["ticket"], args["link"], at)
    elif cmd.name == "silence":
        target = (args["scope"], args["name"])
        engine.silence(target, None, args["until"], args["reason"], "simulate", at)
    elif cmd.name == "revert":
        engine.revert(args["ticket"], args["reason"], "simulate", at)


def _apply_events(engine: Engine, waiting: list[tuple[str, int]], result: Replay) -> None:
    """Apply the events read since the last command, many per transaction; count them. An
    event that raised (a bug, never bad input) raises here, as it would alone."""
    for outcome in engine.receive_many(waiting):
        if outcome.error is not None:
            raise outcome.error
        if outcome.status == "applied":
            result.applied += 1
        elif outcome.status == "duplicate":
            result.duplicates += 1
        else:
            result.rejected += 1
    waiting.clear()


def replay(
    pack: Mapping[str, Any] | RulePack,
    lines: Iterable[str],
    *,
    store: Store | None = None,
    until: int | None = None,
    on_line: Callable[[], None] | None = None,
    loop_limit: int = LOOP_LIMIT,
    loop_window: int = LOOP_WINDOW,
) -> Replay:
    """Replay ``lines`` against ``pack`` (in a fresh in-memory store unless one is given).

    ``loop_limit``/``loop_window`` set the routing-loop breaker, as for :class:`Engine`."""
    typed = typed_pack(pack)
    own = store is None
    db: Store = store if store is not None else SQLiteStore(":memory:")
    clock = VirtualClock()
    engine = Engine(db, clock, RecordingNotifier(), loop_limit=loop_limit, loop_window=loop_window)
    result = Replay(kpis={})
    first = True
    waiting: list[tuple[str, int]] = []  # events read and not applied yet (one batch)
    try:
        for number, line in enumerate(lines, start=1):
            if on_line is not None:
                on_line()
            if not line.strip():
                continue
            try:
                item = parse_line(line, typed)
            except EventError:
                item = None
            if first:
                start = item.at if item is not None else 0
                clock.set(start)
                engine.activate(typed, start)
                first = False
            if item is not None:
                # Processing time is the replayed line's time, set explicitly (an event's
                # `at` never moves a live store's clock): history replays as it happened.
                clock.set(max(clock.now(), item.at))
            if item is None or not isinstance(item, Command):
                waiting.append((line, clock.now()))
                if len(waiting) >= BATCH:
                    _apply_events(engine, waiting, result)
                continue
            _apply_events(engine, waiting, result)
            result.commands += 1
            try:
                run_command(engine, item)
            except Refused as exc:
                result.refused.append(f"line {number}: {exc}")
        _apply_events(engine, waiting, result)
        if not first:
            engine.advance(until if until is not None else db.clock())
        result.kpis = kpi.compute(db)
    finally:
        if own:
            db.close()
    return result
