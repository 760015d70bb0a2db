"""Rule packs (``escalade.rulepack/v1``): canonical bytes, validation, typed access.

A pack is JSON with sorted keys, 2-space indent and a trailing newline, so the
same policy set always gives the same bytes. ``metadata.content_hash`` is the
sha256 of those canonical bytes computed with ``content_hash = ""`` and
``commit = null`` (so stamping a commit later does not change it).

Loading checks, in order: the JSON parses, the pack matches the published
schema (``rulepack.schema.json`` beside this module), the cross-references
hold (owners, handoffs, triggers, fields), and the content hash matches. Any
failure raises :class:`PackError` listing every problem with its location in
the pack (a JSON pointer such as ``/policies/2/owners/0/ack``); nothing is
half-loaded.

The verdicts are those of the strict JSON reader, of ``jsonschema`` and of
re-serializing the content, reached faster: canonical bytes (what the compiler
writes) are parsed by the plain parser and checked to be canonical, a compiled
validator gives the schema verdict (:mod:`escalade.runtime.packschema`), and the
hash of canonical bytes is one sha256 over them (:func:`intact_hash`). Any other
bytes, and any pack the compiled validator refuses, take the reference path,
which also words the problems.

>>> pack = RulePack.load("generated/rulepack.json")   # doctest: +SKIP
>>> pack.version, pack.policy("enterprise_critical").priority   # doctest: +SKIP
('1.0.0', 100)
"""

from __future__ import annotations

import gc
import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from escalade.runtime import canonical, packschema
from escalade.runtime.calendars import Calendar
from escalade.runtime.canonical import canonical_depth_at_most, parse_canonical, plain_json
from escalade.runtime.clock import read_time
from escalade.runtime.packops import (
    Grouping,
    Maintenance,
    PostmortemOwner,
    read_grouping,
    read_maintenance,
    read_postmortem_owner,
)
from escalade.runtime.packrefs import reference_problems
from escalade.runtime.packschema import FAST_MAX_DEPTH, schema_problems
from escalade.runtime.schedulecodec import read_calendar
from escalade.runtime.teams import Team, read_team
from escalade.runtime.textio import TextError, loads_json

FORMAT = "escalade.rulepack/v1"
MAX_PROBLEMS = 50

parse_time = read_time  # pack and policy times: a zone is required (the compiler imports this)
canonical_bytes = canonical.canonical_bytes  # the one byte form of a pack (the compiler's too)
pack_schema = packschema.pack_schema  # the published JSON Schema


class PackError(ValueError):
    """A pack that cannot be activated; ``problems`` says where and why, one per line."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        shown = self.problems[:MAX_PROBLEMS]
        more = len(self.problems) - len(shown)
        lines = [f"{source}: {p}" for p in shown]
        if more > 0:
            lines.append(f"{source}: ... and {more} more problem(s)")
        super().__init__("\n".join(lines))


# --------------------------------------------------------------------------- bytes and hash


def compute_content_hash(pack: Mapping[str, Any]) -> str:
    """``sha256:<hex>`` over the canonical bytes with ``content_hash=""`` and ``commit=null``."""
    metadata = dict(pack.get("metadata") or {})
    metadata["content_hash"] = ""
    metadata["commit"] = None
    blank = {**pack, "metadata": metadata}
    return "sha256:" + hashlib.sha256(canonical_bytes(blank)).hexdigest()


def seal(pack: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``pack`` with its content hash filled in."""
    metadata = dict(pack.get("metadata") or {})
    sealed = {**pack, "metadata": metadata}
    metadata["content_hash"] = compute_content_hash(sealed)
    return sealed


# Where canonical pack bytes hold the two values the content hash leaves out (blanked).
_METADATA = b'\n  "metadata": {\n'
_HASH_LINE = re.compile(rb'\n    "content_hash": "(sha256:[0-9a-f]{64})"(?=,?\n)')
_COMMIT_LINE = re.compile(rb'\n    "commit": (null|"(?:[^"\\\n]|\\.)*")(?=,?\n)')


def intact_hash(data: bytes) -> tuple[str, bytes] | None:
    """The content hash pack bytes state, and the JSON text of their commit, when the
    bytes hash to it with those two values blanked (``""`` and ``null``); else None.
    No parsing: one sha256 over the bytes.

    On the canonical bytes of a pack (what the compiler and :func:`seal` write) this
    is the content-hash check itself: blanking those two lines gives the bytes
    :func:`compute_content_hash` hashes. On any bytes, a result equal to a hash
    :func:`compute_content_hash` computed (a stored pack's) means they are that
    pack's canonical bytes, as sha256 does not collide."""
    start = data.find(_METADATA)
    end = data.find(b"\n  }", start + 1)
    if start < 0 or end < 0 or data.rfind(_METADATA) != start:
        return None
    claimed = _HASH_LINE.search(data, start, end + 1)
    commit = _COMMIT_LINE.search(data, start, end + 1)
    if claimed is None or commit is None:
        return None
    cuts = sorted([(*claimed.span(1), b""), (*commit.span(1), b"null")])
    view, digest, last = memoryview(data), hashlib.sha256(), 0
    for cut, after, blank in cuts:
        digest.update(view[last:cut])
        digest.update(blank)
        last = after
    digest.update(view[last:])
    stated = claimed.group(1).decode("ascii")
    if "sha256:" + digest.hexdigest() != stated:
        return None
    return stated, commit.group(1)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a pack is read: it allocates hundreds of thousands
    of containers (none in a cycle), and each collection on the way walks them all (at
    10,000 policies, 0.5 s of 1.4 s). Left as it was found (disabled stays disabled)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _hash_holds(raw: Mapping[str, Any], data: bytes | None) -> bool:
    """The content hash ``raw`` states is its content's. ``data``: the canonical bytes of
    ``raw`` (None: not read from them), checked with one hash over them."""
    meta = raw["metadata"]
    found = intact_hash(data) if data is not None else None
    if found is not None and (found[0], json.loads(found[1])) == (
        meta["content_hash"],
        meta["commit"],
    ):
        return True
    return bool(meta["content_hash"] == compute_content_hash(raw))


# --------------------------------------------------------------------------- typed view


@dataclass(frozen=True, slots=True)
class FieldType:
    """The declared type of one event field: ``kind`` and, for enums, ``values``."""

    kind: str
    values: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EventSchema:
    """The event kinds and object fields a pack declares: what events are read against.

    :class:`RulePack` has the same two attributes, so either serves ``parse_event``."""

    events: tuple[str, ...]
    objects: Mapping[str, Mapping[str, FieldType]]

    @classmethod
    def of(cls, schema: Mapping[str, Any]) -> EventSchema:
        """The typed view of a pack's ``schema`` section."""
        return cls(
            tuple(schema["events"]),
            {
                obj: {
                    name: FieldType(t["type"], tuple(t.get("values", ()))) for name, t in f.items()
                }
                for obj, f in schema["objects"].items()
            },
        )


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    display: str  # the `name` attribute, or the identifier when absent
    email: str | None
    pager: str | None
    slack: str | None
    timezone: str | None

    def contacts(self) -> list[tuple[str, str]]:
        """(kind, address) for each contact point, in a fixed order."""
        found = (("pager", self.pager), ("slack", self.slack), ("email", self.email))
        return [(k, v) for k, v in found if v]


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    kind: str
    target: str


@dataclass(frozen=True, slots=True)
class Owner:
    level: str
    ref: str
    kind: str  # person | team
    ack: int | None  # seconds; None = no timeout
    pick: str | None = None  # round_robin | all (a team level): how a member is picked


@dataclass(frozen=True, slots=True)
class Step:
    action: str
    args: tuple[Mapping[str, Any], ...]
    guide: str | None
    line: int
    undo: Step | None = None  # the compensating step `revert` runs

    def target(self) -> tuple[str, str] | None:
        """The first person, team or channel the step names, as ``(ref, kind)``."""
        for arg in self.args:
            if "ref" in arg:
                return str(arg["ref"]), str(arg.get("kind") or "")
        return None

    def argument(self, key: str) -> Any:
        """The value of the step's ``text``, ``field`` or ``word`` argument (None without)."""
        return next((arg[key] for arg in self.args if key in arg), None)


@dataclass(frozen=True, slots=True)
class DeliveryCheck:
    within: int
    retry: int
    then: str | None


@dataclass(frozen=True, slots=True)
class StateCheck:
    when: Mapping[str, Any]
    within: int


@dataclass(frozen=True, slots=True)
class CloseCheck:
    when: Mapping[str, Any] | None  # None: a post-mortem is required
    postmortem: bool


@dataclass(frozen=True, slots=True)
class Handoff:
    """Type A exception: on ``when`` (a condition) or ``failure``, hand off to ``policy``."""

    name: str
    when: Mapping[str, Any] | None
    failure: str | None
    policy: str


@dataclass(frozen=True, slots=True)
class Triage:
    """Type B exception path."""

    ref: str
    kind: str
    postmortem: bool
    revert: bool = False  # undo the steps that ran before triage


@dataclass(frozen=True, slots=True)
class ChainStop:
    """One assignment on the failover walk: at ``at`` seconds after start, ``owner`` gets it."""

    at: int
    owner: Owner
    round: int  # 1 for the first pass, 2 for the first repeat, ...


@dataclass(frozen=True, slots=True)
class ChainSchedule:
    """The owner chain over time when nobody acknowledges (SPEC §4).

    ``exhausted_at`` is when the escalation becomes ``unacknowledged``; None
    when the final level has no ack timeout (it stays with that owner).
    """

    stops: tuple[ChainStop, ...]
    exhausted_at: int | None


@dataclass(frozen=True, slots=True)
class Policy:
    """One compiled policy of a pack."""

    name: str
    title: str | None
    description: str | None
    file: str
    line: int
    approvers: tuple[str, ...]
    priority: int
    triggers: tuple[str, ...]
    after: int | None
    when: Mapping[str, Any] | None
    owners: tuple[Owner, ...]
    repeat: int
    sla_acknowledge: int | None
    sla_resolve: int | None
    steps: tuple[Step, ...]
    on: Mapping[str, tuple[Step, ...]]
    delivery_checks: tuple[DeliveryCheck, ...]
    state_checks: tuple[StateCheck, ...]
    close_checks: tuple[CloseCheck, ...]
    handoffs: tuple[Handoff, ...]
    triage: Triage | None
    cooldown: int
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    sla_calendars: Mapping[str, str] = field(default_factory=dict)  # SLA kind -> calendar
    revert_on: tuple[str, ...] = ()  # failure kinds with `on KIND revert`
    grouping: Grouping | None = None
    postmortem_owner: PostmortemOwner | None = None

    @property
    def source(self) -> str:
        return f"{self.file}:{self.line}"

    def owner(self, level: str) -> Owner | None:
        for o in self.owners:
            if o.level == level:
                return o
        return None

    def chain_schedule(self) -> ChainSchedule:
        """Who holds the escalation when, if nobody acknowledges.

        The chain walks primary -> backup -> escalation, each level for its ack
        timeout; ``repeat N`` walks it N more times; then it is unacknowledged.
        A level without an ack timeout keeps the escalation for good.

        >>> # primary 5m, backup 10m, escalation 15m, repeat 1:
        >>> # stops at 0, 5m, 15m, 30m, 35m, 45m; unacknowledged at 60m
        """
        stops: list[ChainStop] = []
        at = 0
        for round_no in range(1, self.repeat + 2):
            for owner in self.owners:
                stops.append(ChainStop(at, owner, round_no))
                if owner.ack is None:
                    return ChainSchedule(tuple(stops), None)
                at += owner.ack
        return ChainSchedule(tuple(stops), at if stops else None)

    def failure_handoff(self, failure: str) -> Handoff | None:
        """The Type A exception for a failure kind (``unacknowledged``, ...), if any."""
        for h in self.handoffs:
            if h.failure == failure:
                return h
        return None


def _steps(raw: Sequence[Mapping[str, Any]]) -> tuple[Step, ...]:
    return tuple(
        Step(
            s["action"],
            tuple(s["args"]),
            s["guide"],
            s["line"],
            Step(s["undo"]["action"], tuple(s["undo"]["args"]), None, s["line"])
            if "undo" in s
            else None,
        )
        for s in raw
    )


def _policy(raw: Mapping[str, Any]) -> Policy:
    sla = raw["sla"] or {}
    checks = raw["checks"]
    triage = raw["triage"]
    return Policy(
        name=raw["name"],
        title=raw["title"],
        description=raw["description"],
        file=raw["source"]["file"],
        line=raw["source"]["line"],
        approvers=tuple(raw["approvers"]),
        priority=raw["priority"],
        triggers=tuple(raw["triggers"]),
        after=raw["after"],
        when=raw["when"],
        owners=tuple(
            Owner(o["level"], o["ref"], o["kind"], o["ack"], o.get("pick")) for o in raw["owners"]
        ),
        repeat=raw["repeat"],
        sla_acknowledge=sla.get("acknowledge"),
        sla_resolve=sla.get("resolve"),
        sla_calendars={k: v for k, v in (sla.get("calendar") or {}).items() if v},
        revert_on=tuple(raw.get("revert_on", ())),
        grouping=read_grouping(raw),
        postmortem_owner=read_postmortem_owner(raw),
        steps=_steps(raw["steps"]),
        on={k: _steps(v) for k, v in sorted(raw["on"].items())},
        delivery_checks=tuple(
            DeliveryCheck(c["within"], c["retry"], c["then"]) for c in checks["delivery"]
        ),
        state_checks=tuple(StateCheck(c["when"], c["within"]) for c in checks["state"]),
        close_checks=tuple(
            CloseCheck(c.get("when"), bool(c.get("postmortem", False))) for c in checks["close"]
        ),
        handoffs=tuple(
            Handoff(e["name"], e["when"], e["failure"], e["handoff"]) for e in raw["exceptions"]
        ),
        triage=None
        if triage is None
        else Triage(
            triage["ref"], triage["kind"], triage["postmortem"], triage.get("revert", False)
        ),
        cooldown=raw["cooldown"],
        raw=raw,
    )


@dataclass(frozen=True, slots=True)
class RulePack:
    """A validated rule pack with typed accessors. Build it with ``load``/``from_bytes``."""

    version: str
    content_hash: str
    commit: str | None
    actions: tuple[str, ...]
    events: tuple[str, ...]
    objects: Mapping[str, Mapping[str, FieldType]]
    people: Mapping[str, Person]
    teams: Mapping[str, Team]
    channels: Mapping[str, Channel]
    policies: tuple[Policy, ...]
    raw: Mapping[str, Any] = field(repr=False, compare=False)
    _by_name: Mapping[str, Policy] = field(repr=False, compare=False, default_factory=dict)
    calendars: Mapping[str, Calendar] = field(default_factory=dict)
    maintenance: tuple[Maintenance, ...] = ()

    # ---- loading

    @classmethod
    def load(cls, path: str | Path, *, verify_hash: bool = True) -> RulePack:
        """Read and validate the pack at ``path``; raises :class:`PackError`."""
        p = Path(path)
        try:
            data = p.read_bytes()
        except OSError as exc:
            raise PackError(str(p), [f"cannot read the pack: {exc.strerror or exc}"]) from None
        return cls.from_bytes(data, source=str(p), verify_hash=verify_hash)

    @classmethod
    def from_bytes(
        cls, data: bytes, *, source: str = "<pack>", verify_hash: bool = True
    ) -> RulePack:
        """Parse and validate pack bytes; raises :class:`PackError`."""
        with _collector_paused():
            raw = parse_canonical(data)  # what the compiler and seal() write: read fast
            if raw is not None:
                return cls._checked(raw, source, verify_hash, data)
            try:
                raw = loads_json(data, source)
            except TextError as exc:
                raise PackError(source, [str(exc).removeprefix(f"{source}:").lstrip()]) from None
            return cls._checked(raw, source, verify_hash, None)

    @classmethod
    def from_dict(cls, raw: Any, *, source: str = "<pack>", verify_hash: bool = True) -> RulePack:
        """Validate an already-parsed pack; raises :class:`PackError`."""
        return cls._checked(raw, source, verify_hash, None)

    @classmethod
    def _checked(cls, raw: Any, source: str, verify_hash: bool, data: bytes | None) -> RulePack:
        """Validate ``raw`` and build its typed view. ``data``: the canonical bytes of
        ``raw``, when it was read from them."""
        if not isinstance(raw, dict):
            raise PackError(source, [f"/: a pack is a JSON object, not {_json_type(raw)}"])
        if raw.get("format") != FORMAT:
            got = raw.get("format")
            raise PackError(
                source,
                [f"/format: expected {FORMAT!r}, got {got!r} (a pack for another version?)"],
            )
        # Canonical bytes parse to JSON's own types; a caller's dict may hold anything.
        if data is not None:
            typed = canonical_depth_at_most(data, FAST_MAX_DEPTH)
        else:
            typed = plain_json(raw, FAST_MAX_DEPTH)
        problems = schema_problems(raw, json_typed=typed)
        if not problems:
            problems = reference_problems(raw)
        if not problems and verify_hash and not _hash_holds(raw, data):
            want = raw["metadata"]["content_hash"]
            problems = [
                f"/metadata/content_hash: the pack says {want or '(empty)'} but its content "
                f"hashes to {compute_content_hash(raw)}; it was changed after it was built"
            ]
        if problems:
            raise PackError(source, problems)
        return cls._build(raw)

    @classmethod
    def trusted(cls, raw: Mapping[str, Any]) -> RulePack:
        """The typed view of a pack validated before (the runtime's stored packs), unchecked.

        Raises :class:`PackError` when a key the typed view needs is missing."""
        try:
            return cls._build(raw)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise PackError("<pack>", [f"incomplete pack: {type(exc).__name__} {exc}"]) from None

    @classmethod
    def _build(cls, raw: Mapping[str, Any]) -> RulePack:
        meta = raw["metadata"]
        directory = raw["directory"]
        schema = EventSchema.of(raw["schema"])
        policies = tuple(_policy(p) for p in raw["policies"])
        return cls(
            version=meta["version"],
            content_hash=meta["content_hash"],
            commit=meta["commit"],
            actions=tuple(meta["actions"]),
            events=schema.events,
            objects=schema.objects,
            people={
                k: Person(k, v["name"] or k, v["email"], v["pager"], v["slack"], v["timezone"])
                for k, v in directory["people"].items()
            },
            teams={k: read_team(k, v) for k, v in directory["teams"].items()},
            calendars={k: read_calendar(k, v) for k, v in directory.get("calendars", {}).items()},
            maintenance=read_maintenance(directory),
            channels={
                k: Channel(k, v["kind"], v["target"]) for k, v in directory["channels"].items()
            },
            policies=policies,
            raw=raw,
            _by_name={p.name: p for p in policies},
        )

    # ---- accessors

    def policy(self, name: str) -> Policy:
        """The policy called ``name`` (KeyError when the pack has none)."""
        return self._by_name[name]

    def has_policy(self, name: str) -> bool:
        return name in self._by_name

    def field_type(self, path: str) -> FieldType | None:
        """The type of ``object.field``, or None when the schema does not declare it."""
        obj, _, name = path.partition(".")
        return self.objects.get(obj, {}).get(name)

    def display_name(self, ref: str) -> str:
        """A person's display name; a team, channel or anything else by its identifier."""
        person = self.people.get(ref)
        return person.display if person else ref

    def to_bytes(self) -> bytes:
        """The canonical bytes of this pack."""
        return canonical_bytes(self.raw)


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    return "a number"
