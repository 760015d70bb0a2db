"""Escalade runtime: loads compiled rule packs and runs escalations.

Public API::

    from escalade.runtime import load_pack, parse_event     # embedding (docs/embedding.md)
    pack = load_pack("generated/rulepack.json")            # validated, matcher built
    pack.owner(parse_event(raw, pack))                     # the owning Policy, or None

    from escalade.runtime import Engine, RulePack, Matcher, SQLiteStore
    pack = RulePack.load("generated/rulepack.json")       # schema, references, hash
    Matcher(pack).owner("ticket.created", state)           # which policy owns an event
    engine = Engine(SQLiteStore("escalade.db"))            # the durable state machine

The runtime never imports lark, jinja2 or ``escalade.compiler``; its own
command line is ``python -m escalade.runtime`` (console script
``escalade-runtime``), for machines that run packs but never compile them.
"""

from __future__ import annotations

from escalade.runtime.embed import Pack, load_pack, parse_event
from escalade.runtime.engine import Engine
from escalade.runtime.events import EventError
from escalade.runtime.matcher import Matcher
from escalade.runtime.pack import PackError, RulePack
from escalade.runtime.store.sqlite import SQLiteStore

__all__ = [
    "Engine",
    "EventError",
    "Matcher",
    "Pack",
    "PackError",
    "RulePack",
    "SQLiteStore",
    "load_pack",
    "parse_event",
]
