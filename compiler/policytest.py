"""``escalade test``: policy tests (``*_test.esc``) run on the real engine.

A test file holds ``test "name" { ... }`` blocks (grammar in
``escalade/grammar/escalade_test.lark``). Each test gets a fresh in-memory
SQLite store, a virtual clock starting at ``start "..."`` (default
2026-11-27T10:00:00Z) and the pack built from the policy set; statements run in
order, ``at D`` moving the clock forward (timers due on the way fire first)::

    test "an ack at 3m stops failover" {
      at 0m event ticket.created { ticket.id = "T2", ticket.severity = critical, account.tier = enterprise }
      at 3m ack by alice
      at 20m expect state acknowledged
      expect owner alice
    }

Failures print as ``file:line:col: test "name": expected ..., got ...``. The
run ends with the policies no test exercised. :func:`pack_from_policies` also
gives ``escalade simulate`` its pack (building one is a compiler job).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from lark import Lark, Token, Tree, UnexpectedInput

from escalade.compiler import load_policy_set
from escalade.compiler.backends.rulepack import build_pack
from escalade.compiler.formats import render_text
from escalade.compiler.passes.checks import ACTIONS
from escalade.compiler.passes.lower import did_you_mean
from escalade.runtime.clock import TimeError, VirtualClock, format_time, parse_duration, parse_time
from escalade.runtime.engine import Engine, Refused
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.pack import RulePack
from escalade.runtime.store import STATES
from escalade.runtime.store.sqlite import SQLiteStore
from escalade.runtime.textio import decode_utf8

DEFAULT_START = "2026-11-27T10:00:00Z"


@lru_cache(maxsize=1)
def test_parser() -> Lark:
    """The LALR parser for ``*_test.esc`` files."""
    text = resources.files("escalade.grammar").joinpath("escalade_test.lark").read_text()
    return Lark(text, parser="lalr", propagate_positions=True, maybe_placeholders=True)


@dataclass(frozen=True, slots=True)
class Stmt:
    """One statement of a test: what to do, when, and where it is written."""

    kind: str
    args: tuple[Any, ...]
    offset: int | None
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class PolicyTest:
    name: str
    file: str
    line: int
    column: int
    stmts: tuple[Stmt, ...]


@dataclass(frozen=True, slots=True)
class TestResult:
    """One ``test "..."`` block run: where it is written and its located failures (none:
    it passed). ``seconds`` is the wall time it took."""

    file: str
    name: str
    line: int
    column: int
    failures: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return not self.failures


@dataclass(slots=True)
class TestRun:
    """Results of running test files: every test's :class:`TestResult` in file order, and
    the files that could not be read or parsed (``errors``: file -> located message)."""

    failures: list[str] = field(default_factory=list)
    passed: int = 0
    failed: int = 0
    exercised: set[str] = field(default_factory=set)
    results: list[TestResult] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    files: list[str] = field(default_factory=list)

    def record(self, result: TestResult) -> None:
        """Count one test's result."""
        self.results.append(result)
        self.failures.extend(result.failures)
        if result.passed:
            self.passed += 1
        else:
            self.failed += 1


class TestSyntaxError(Exception):
    """A test file that does not parse (message is located)."""


class _BadString(Exception):
    def __init__(self, tok: Token, message: str) -> None:
        super().__init__(message)
        self.tok = tok


def _string(tok: Token | None) -> str | None:
    if tok is None:
        return None
    try:
        return str(json.loads(str(tok)))
    except ValueError as exc:
        raise _BadString(tok, f"invalid string {tok}: {exc.args[0].split(':')[0]}") from None


def _value(tree: Tree[Token]) -> Any:
    kind = tree.data
    if kind == "v_string":
        return _string(tree.children[0])  # type: ignore[arg-type]
    if kind == "v_number":
        text = str(tree.children[0])
        return float(text) if "." in text else int(text)
    if kind == "v_true":
        return True
    if kind == "v_false":
        return False
    if kind == "v_name":
        return str(tree.children[0])
    return [_string(t) for t in tree.children if t is not None]  # type: ignore[arg-type]


def _stmt(tree: Tree[Token], offset: int | None) -> Stmt:
    kind = str(tree.data).removesuffix("_stmt")
    line, column = tree.meta.line, tree.meta.column
    kids = tree.children
    args: tuple[Any, ...]
    if kind == "event":
        fields = []
        for a in kids[1:]:
            if isinstance(a, Tree) and isinstance(a.children[1], Tree):
                fields.append((str(a.children[0]), _value(a.children[1])))
        args = (str(kids[0]), tuple(fields))
    else:
        if kind == "expect":
            exp = kids[0]
            assert isinstance(exp, Tree)
            kind = str(exp.data)
            kids = exp.children
        args = tuple(
            None
            if k is None
            else (_string(k) if isinstance(k, Token) and k.type == "STRING" else str(k))
            for k in kids
        )
    return Stmt(kind, args, offset, line, column)


def parse_tests(path: str, text: str) -> list[PolicyTest]:
    """Parse a ``*_test.esc`` file; :class:`TestSyntaxError` with ``file:line:col``."""
    try:
        tree = test_parser().parse(text)
    except UnexpectedInput as exc:
        context = exc.get_context(text).rstrip()
        expected = getattr(exc, "expected", None) or getattr(exc, "allowed", None) or set()
        hint = f" (expected one of: {', '.join(sorted(expected)[:8])})" if expected else ""
        raise TestSyntaxError(
            f"{path}:{exc.line}:{exc.column}: syntax error{hint}\n{context}"
        ) from None
    try:
        return _build_tests(path, tree)
    except _BadString as exc:
        tok = exc.tok
        raise TestSyntaxError(f"{path}:{tok.line}:{tok.column}: {exc}") from None


# A test's virtual clock stays within a century: further is a typo, and past the
# store's integer range.
MAX_DURATION = 100 * 365 * 86400


def _check_durations(path: str, tree: Tree[Token]) -> None:
    for tok in tree.scan_values(lambda v: isinstance(v, Token) and v.type == "DURATION"):
        try:
            seconds = parse_duration(str(tok))
        except TimeError as exc:
            raise TestSyntaxError(f"{path}:{tok.line}:{tok.column}: {exc}") from None
        if seconds > MAX_DURATION:
            raise TestSyntaxError(
                f"{path}:{tok.line}:{tok.column}: duration {tok} is longer than 100 years"
            )


def _build_tests(path: str, tree: Tree[Token]) -> list[PolicyTest]:
    _check_durations(path, tree)
    tests = []
    for node in tree.children:
        assert isinstance(node, Tree)
        name = _string(node.children[0])  # type: ignore[arg-type]
        stmts = []
        for st in node.children[1:]:
            assert isinstance(st, Tree)
            inner = st.children[-1]
            assert isinstance(inner, Tree)
            offset = None
            if st.data == "timed":
                offset = parse_duration(str(st.children[0]))
            stmt = _stmt(inner, offset)
            if offset is not None:
                stmt = Stmt(stmt.kind, stmt.args, offset, st.meta.line, st.meta.column)
            stmts.append(stmt)
        tests.append(PolicyTest(name or "", path, node.meta.line, node.meta.column, tuple(stmts)))
    return tests


class _Failure(Exception):
    pass


def _event_json(
    type_: str, fields: tuple[tuple[str, Any], ...], event_id: str, at: int
) -> dict[str, Any]:
    data: dict[str, dict[str, Any]] = {}
    for path, value in fields:
        obj, _, name = path.partition(".")
        data.setdefault(obj, {})[name] = value
    return {"id": event_id, "type": type_, "at": format_time(at), "data": data}


def run_test(pack: dict[str, Any], test: PolicyTest) -> tuple[list[str], set[str]]:
    """Run one test; return located failure messages and the policies it exercised."""
    try:
        start = _start_time(test)
    except _Failure as exc:
        return [str(exc)], set()
    store = SQLiteStore(":memory:")
    notifier = RecordingNotifier()
    clock = VirtualClock(start)
    engine = Engine(store, clock, notifier)
    engine.activate(pack, start)
    session = _Session(test, engine, clock, notifier, start, now=start)
    failures: list[str] = []
    try:
        for st in test.stmts:
            session.run(st)
        session.finish()
    except _Failure as exc:
        failures.append(str(exc))
    exercised = {
        r.policy
        for r in store.audit_rows()
        if r.policy and r.kind in ("triggered", "handoff", "rerouted")
    }
    store.close()
    return failures, exercised


def _where(test: PolicyTest, st: Stmt) -> str:
    return f"{test.file}:{st.line}:{st.column}: test {test.name!r}"


def _start_time(test: PolicyTest) -> int:
    """The test's first ``start "..."`` time, else :data:`DEFAULT_START`."""
    for st in test.stmts:
        if st.kind == "start":
            try:
                return parse_time(str(st.args[0]))
            except TimeError as exc:
                raise _Failure(f"{_where(test, st)}: {exc}") from None
    return parse_time(DEFAULT_START)


class _Expectation(Exception):
    """An expectation that does not hold (message: expected vs actual)."""


# Commands that need no ticket: they send events, name the ticket or set up the world.
_SETUP = frozenset({"event", "start", "tick", "ticket", "fail", "mute", "absent"})


@dataclass(slots=True)
class _Session:
    """One test running on its engine: the virtual time, the ticket the statements are
    about, and a refusal that the next statement must expect."""

    test: PolicyTest
    engine: Engine
    clock: VirtualClock
    notifier: RecordingNotifier
    start: int
    now: int
    ticket: str | None = None
    refusal: tuple[str, Stmt] | None = None
    events: int = 0

    def run(self, st: Stmt) -> None:
        """Move the clock to ``st``'s time, then run it; :class:`_Failure` when it fails."""
        if st.offset is not None:
            self._advance(st, self.start + st.offset)
        if st.kind == "exp_refused":
            self._expect_refused(st)
            return
        self.finish()
        try:
            self._execute(st)
        except Refused as exc:
            self.refusal = (str(exc), st)
        except _Expectation as exc:
            raise _Failure(f"{_where(self.test, st)}: {exc}") from None

    def finish(self) -> None:
        """A refusal nothing expected fails the test."""
        if self.refusal is not None:
            message, cmd = self.refusal
            raise _Failure(f"{_where(self.test, cmd)}: the command was refused: {message}")

    def _advance(self, st: Stmt, at: int) -> None:
        if at < self.now:
            raise _Failure(
                f"{_where(self.test, st)}: time goes back "
                f"({st.offset}s is before the previous statement)"
            )
        self.now = at
        self.clock.set(at)
        self.engine.advance(at)

    def _expect_refused(self, st: Stmt) -> None:
        where = _where(self.test, st)
        if self.refusal is None:
            raise _Failure(
                f"{where}: expected the previous command to be refused, but it was accepted"
            )
        wanted = st.args[0]
        if wanted is not None and wanted not in self.refusal[0]:
            raise _Failure(
                f"{where}: expected a refusal mentioning {wanted!r}, got: {self.refusal[0]}"
            )
        self.refusal = None

    def _execute(self, st: Stmt) -> None:
        if st.kind in _SETUP:
            self._set_up(st)
        elif st.kind == "exp_oncall":
            _expect_oncall(self.engine, str(st.args[0]), str(st.args[1]), self.now)
        elif self.ticket is None:
            raise _Expectation('no ticket yet: send an event first (or `ticket "ID"`)')
        elif st.kind.startswith("exp_"):
            _expect(self.engine, st.kind, st.args, self.ticket)
        else:
            _command(self.engine, st, self.ticket, self.now)

    def _set_up(self, st: Stmt) -> None:
        """An event, the ticket to talk about, or the world: failing and silent
        channels, absent people (``start`` and ``tick`` only move the clock)."""
        kind, args = st.kind, st.args
        if kind == "event":
            type_, fields = args
            event_id = f"{self.test.name}#{self.events + 1}"
            outcome = self.engine.receive(_event_json(type_, fields, event_id, self.now), self.now)
            if outcome.status != "applied":
                raise _Expectation(f"the event was not applied: {outcome.message}")
            self.ticket = outcome.ticket
            self.events += 1
        elif kind == "ticket":
            self.ticket = str(args[0])
        elif kind == "fail":
            self.notifier.failing.add(str(args[0]))
        elif kind == "mute":
            self.notifier.silent.add(str(args[0]))
        elif kind == "absent":
            until = self.now + parse_duration(str(args[1]))
            self.engine.absent(str(args[0]), until, self.now, by="test")


def _command(engine: Engine, st: Stmt, ticket: str, now: int) -> None:
    """What a person does to the ticket: ack, resolve, close, transfer, post-mortem."""
    kind, args = st.kind, st.args
    if kind == "ack":
        by = args[0]
        if by is None:
            status = engine.status(ticket)
            by = status["owner"] if status else None
        engine.ack(ticket, str(by), now)
    elif kind == "resolve":
        engine.resolve(ticket, now, by="test")
    elif kind == "close":
        engine.close(ticket, now, by="test")
    elif kind == "transfer":
        engine.transfer(
            ticket, str(args[0]), str(args[1]), parse_duration(str(args[2])), now, by="test"
        )
    elif kind == "postmortem":
        engine.postmortem(ticket, str(args[0]), now, by="test")


def _expect(engine: Engine, kind: str, args: tuple[Any, ...], ticket: str) -> None:
    if kind == "exp_refused":
        raise _Expectation("expected the previous command to be refused, but it was accepted")
    status = engine.status(ticket)
    if kind == "exp_no_escalation":
        if status is not None:
            raise _Expectation(
                f"expected no escalation, got {status['policy']} ({status['state']})"
            )
        return
    if status is None:
        raise _Expectation(f"expected an escalation for ticket {ticket}, got none")
    if kind in ("exp_action", "exp_no_action"):
        _expect_action(engine, kind, args, ticket)
    elif kind == "exp_owner":
        _expect_owner(status, *args)
    elif kind == "exp_due":
        _expect_due(status, str(args[0]), str(args[1]))
    elif kind in ("exp_level", "exp_state", "exp_policy"):
        key = kind.removeprefix("exp_")
        if status[key] != args[0]:
            raise _Expectation(f"expected {key} {args[0]}, got {status[key]}")


def _expect_owner(status: dict[str, Any], who: str, level: str | None) -> None:
    """The owner (or the person on call for them) is ``who``, at ``level`` if given."""
    matches = who in (status["owner"], status["owner_from"])
    if not matches or (level is not None and status["level"] != level):
        want = who + (f" level {level}" if level else "")
        got = f"{status['owner']}" + (
            f" (on call for {status['owner_from']})" if status["owner_from"] else ""
        )
        raise _Expectation(
            f"expected owner {want}, got {got} level {status['level']} (state {status['state']})"
        )


def _expect_due(status: dict[str, Any], kind: str, when: str) -> None:
    """The escalation's ``kind`` SLA falls due at ``when`` (any UTC offset: the same
    instant), as ``status`` shows it (calendar time included)."""
    want = format_time(parse_time(when))
    sla = (status.get("sla") or {}).get(kind)
    if sla is None:
        raise _Expectation(
            f"expected {kind} due {when}, but policy {status['policy']} has no {kind} SLA"
        )
    if sla["due"] != want:
        shown = want if want == when else f"{when} ({want})"
        local = f"{sla['due_local']} in {sla['zone']}, " if sla.get("due_local") else ""
        within = f" within {sla['calendar']}" if sla.get("calendar") else ""
        raise _Expectation(
            f"expected {kind} due {shown}, got {sla['due']} "
            f"({local}{sla['target']}{within} from {status['started_at']})"
        )


def _expect_oncall(engine: Engine, team: str, person: str, now: int) -> None:
    """``team``'s on-call member at the test's time is ``person`` (``nobody``: none is),
    as the runtime answers it (schedules, overrides, absences)."""
    pack = engine.active()
    spec = pack.teams.get(team)
    if spec is not None and not spec.scheduled:
        raise _Expectation(
            f"team {team} has no schedule: nobody is on call by itself (every available "
            "member is notified); give it layers or a rotation, or expect an owner instead"
        )
    got = engine.oncall(pack, team, now)
    want = None if person == NOBODY else person
    if got != want:
        raise _Expectation(
            f"expected {got_or_nobody(want)} on call for {team} at {format_time(now)}, "
            f"got {got_or_nobody(got)}"
        )


def got_or_nobody(person: str | None) -> str:
    return NOBODY if person is None else person


def _expect_action(engine: Engine, kind: str, args: tuple[Any, ...], ticket: str) -> None:
    """``expect action`` (a message was sent) or ``expect no action`` (none was)."""
    action, target = args[0], args[1]
    text = args[2] if kind == "exp_action" else None
    sent = [m for m in engine.store.outbox() if m.ticket == ticket]
    found = [
        m
        for m in sent
        if m.action == action
        and (
            target is None
            or target
            in (m.target, m.payload.get("team"), m.payload.get("word"), m.payload.get("field"))
        )
        and (text is None or text in str(m.payload.get("text") or ""))
    ]
    what = " ".join(str(a) for a in args if a is not None)
    if kind == "exp_action" and not found:
        seen = ", ".join(sorted({f"{m.action} {m.target or ''}".strip() for m in sent})) or "none"
        raise _Expectation(f"expected action {what}, got: {seen}")
    if kind == "exp_no_action" and found:
        raise _Expectation(
            f"expected no action {what}, but it was sent at {format_time(found[0].created_at)}"
        )


LEVELS = ("primary", "backup", "escalation", "triage", "transfer")
NOBODY = "nobody"  # `expect oncall TEAM nobody`: nobody is on call


def check_names(pack: RulePack, test: PolicyTest) -> list[str]:
    """Names a test uses that the pack does not know, as located messages.

    Caught before the run: an unknown field would be ignored by the runtime and a
    misspelt policy, person or state would make an expectation fail for the wrong
    reason (or, with ``expect no ...``, pass for the wrong one)."""
    people, teams = set(pack.people), set(pack.teams)
    kinds: dict[str, tuple[str, set[str]]] = {
        "policy": ("policy", {p.name for p in pack.policies}),
        "owner": ("person or team", people | teams),
        "person": ("person", people),
        "team": ("team", teams),
        "oncall": ("person (or nobody)", people | {NOBODY}),
        "sla": ("SLA kind", {"acknowledge", "resolve"}),
        "target": ("person, team or channel", people | teams | set(pack.channels)),
        "level": ("level", set(LEVELS)),
        "state": ("state", set(STATES)),
        "action": ("action", set(ACTIONS)),
        "event": ("event type", set(pack.events)),
        "field": (
            "field",
            {f"{o}.{f}" for o, fields in pack.objects.items() for f in fields},
        ),
    }
    uses: dict[str, tuple[str, ...]] = {
        "ack": ("person",),
        "absent": ("person",),
        "transfer": ("owner",),
        "fail": ("target",),
        "mute": ("target",),
        "exp_owner": ("owner", "level"),
        "exp_level": ("level",),
        "exp_state": ("state",),
        "exp_policy": ("policy",),
        "exp_action": ("action",),
        "exp_no_action": ("action",),
        "exp_due": ("sla",),
        "exp_oncall": ("team", "oncall"),
    }
    problems = []
    for st in test.stmts:
        named: list[tuple[str, Any]] = []
        if st.kind == "event":
            named = [("event", st.args[0])] + [("field", path) for path, _ in st.args[1]]
        else:
            named = list(zip(uses.get(st.kind, ()), st.args, strict=False))
        for kind, name in named:
            what, known = kinds[kind]
            if name is None or name in known:
                continue
            hint = did_you_mean(str(name), known)
            problems.append(
                f"{test.file}:{st.line}:{st.column}: test {test.name!r}: "
                f"unknown {what} {name!r}" + (f" ({hint})" if hint else "")
            )
        if st.kind == "exp_due":
            problems += _time_problems(test, st, str(st.args[1]))
    return problems


def _time_problems(test: PolicyTest, st: Stmt, text: str) -> list[str]:
    """A located message when ``text`` is not an ISO-8601 time (none when it is)."""
    try:
        parse_time(text)
    except TimeError as exc:
        return [f"{test.file}:{st.line}:{st.column}: test {test.name!r}: {exc}"]
    return []


def read_test_file(path: Path) -> list[PolicyTest]:
    """Read and parse one test file; :class:`TestSyntaxError` when unreadable or invalid."""
    return parse_tests(str(path), read_utf8(path))


def read_utf8(path: Path) -> str:
    """A test or replay file as text (LF line ends); :class:`TestSyntaxError` says where
    it is not UTF-8."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TestSyntaxError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return decode_utf8(data, str(path)).replace("\r\n", "\n")
    except ValueError as exc:
        raise TestSyntaxError(str(exc)) from None


def run_files(pack: dict[str, Any], files: list[Path]) -> TestRun:
    """Run every test in ``files`` against ``pack`` (a file that does not parse counts as
    one failure and is listed in ``errors``)."""
    run = TestRun()
    typed = RulePack.trusted(pack)
    for path in files:
        run.files.append(str(path))
        try:
            tests = read_test_file(path)
        except TestSyntaxError as exc:
            run.errors[str(path)] = str(exc)
            run.failures.append(str(exc))
            run.failed += 1
            continue
        for test in tests:
            started = time.perf_counter()
            failures = check_names(typed, test)
            if not failures:
                failures, exercised = run_test(pack, test)
                run.exercised |= exercised
            seconds = time.perf_counter() - started
            where = (test.file, test.name, test.line, test.column)
            run.record(TestResult(*where, tuple(failures), seconds))
    return run


class PolicySetError(Exception):
    """The policy set gives no pack to test or replay; the message is for people."""


def pack_from_policies(policies: Path) -> dict[str, Any]:
    """The pack built from the policy set under ``policies``; :class:`PolicySetError`
    (with its errors rendered) when it has errors or no policies."""
    result = load_policy_set(str(policies))
    if result.pset is None or result.errors:
        errors = [d for d in result.diagnostics if d.severity == "error"]
        text = render_text(errors, result.diags.sources, color=False)
        raise PolicySetError(
            f"{text}{policies}: the policy set has {result.errors} error(s); fix them first"
        )
    if not result.pset.policies:
        raise PolicySetError(f"{policies}: the policy set has no policies")
    return build_pack(result.pset)
