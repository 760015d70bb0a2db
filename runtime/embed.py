"""Deciding owners from Python: the matcher without the engine, its store or its timers.

::

    from escalade.runtime import load_pack, parse_event

    pack = load_pack("generated/rulepack.json")  # validated: PackError lists every problem
    event = parse_event(raw, pack)                # raw: JSON text, bytes or a dict
    owner = pack.owner(event)                     # the owning Policy, or None
    owner.name if owner else "nobody"

- :func:`load_pack` reads a compiled rule pack exactly as the runtime activates
  one (:meth:`RulePack.load <escalade.runtime.pack.RulePack.load>`: schema,
  cross-references, content hash) and builds its matcher once.
- :func:`parse_event` validates one event against the pack's schema, as the
  engine does before it applies it. A malformed event raises
  :class:`~escalade.runtime.events.EventError`; ``str(error)`` is the reason a
  dead letter would carry and ``error.event_id`` its id (when it had one).
  Unknown objects and fields are ignored and listed in ``event.unknown``.
- :meth:`Pack.owner` is the engine's decision: among the policies the event's
  kind triggers, the highest priority whose ``when`` holds on ``event.data``
  (ties, which the compiler rejects, go to the first name). :meth:`Pack.explain`
  says why, candidate by candidate.

A :class:`Pack` is immutable and its decisions only read it, so threads may
share one. The engine (:class:`~escalade.runtime.engine.Engine`) adds what an
embedding does not need: the durable store, escalation chains, timers and
notifications.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from escalade.runtime import events
from escalade.runtime.events import Event
from escalade.runtime.matcher import Explanation, IndexStats, Matcher
from escalade.runtime.pack import Policy, RulePack

__all__ = ["Pack", "load_pack", "parse_event"]


@dataclass(frozen=True, slots=True)
class Pack:
    """A validated rule pack with its matcher built: what :func:`load_pack` returns."""

    rules: RulePack
    matcher: Matcher

    @classmethod
    def of(cls, rules: RulePack) -> Pack:
        """The pack for an already loaded :class:`RulePack` (its matcher built here)."""
        return cls(rules, Matcher(rules))

    @property
    def policies(self) -> tuple[Policy, ...]:
        """Every policy of the pack, in the pack's order (by name)."""
        return self.rules.policies

    @property
    def version(self) -> str:
        """The version the pack was built with (``escalade build --version``)."""
        return self.rules.version

    @property
    def content_hash(self) -> str:
        """``sha256:<hex>`` of the pack's canonical bytes: which exact pack decided."""
        return self.rules.content_hash

    @property
    def stats(self) -> IndexStats:
        """How the matcher indexed the pack (entries, ``or`` disjuncts, the remainder)."""
        return self.matcher.stats()

    def owner(self, event: Event) -> Policy | None:
        """The policy that owns ``event`` (from :func:`parse_event`), or None: nobody."""
        return self.matcher.owner(event.type, event.data)

    def explain(self, event: Event) -> Explanation:
        """Every candidate of ``event`` atom by atom, and who owns it and why."""
        return self.matcher.explain(event.type, event.data)


def load_pack(path: str | Path, *, verify_hash: bool = True) -> Pack:
    """Read, validate and index the rule pack at ``path``; raises :class:`PackError`."""
    return Pack.of(RulePack.load(path, verify_hash=verify_hash))


def parse_event(raw: str | bytes | Mapping[str, Any], pack: Pack | RulePack) -> Event:
    """The event ``raw`` validated against ``pack``'s schema; raises :class:`EventError`."""
    return events.parse_event(raw, pack.rules if isinstance(pack, Pack) else pack)
