"""Assignment strategies (issue #15 part 4): ``owner LEVEL round_robin(TEAM)`` hands the
level to the team's next available member after the last one assigned (a cursor per team,
in the store: durable across restarts and workers), ``owner LEVEL all(TEAM)`` pages every
member and the first ack owns it, ``step notify all(TEAM)`` reaches every member."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from escalade.compiler import load_policy_set
from escalade.compiler.backends.rulepack import build_pack
from escalade.runtime.clock import VirtualClock, format_time
from escalade.runtime.engine import Engine, Refused
from escalade.runtime.notify import RecordingNotifier
from escalade.runtime.store.sqlite import SQLiteStore
from tests.runtime.conftest import REPO, T0, pg_schema

H = 3600

STRATEGIES = """\
policy referral_round_robin {
  title "Referral leads, one SDR at a time"
  approvers "@example/revops"
  priority 40

  trigger lead.updated
  when lead.source == referral

  owner primary round_robin(sdr_queue) ack 1h
  owner backup farid ack 30m
  owner escalation kim

  step notify all(support_oncall) "Referral lead {{ lead.id }}"

  exception unknown triage kim
}

policy organic_all_hands {
  title "Organic leads, whoever of the SDR queue is first"
  approvers "@example/revops"
  priority 30

  trigger lead.updated
  when lead.source == organic

  owner primary all(sdr_queue) ack 1h
  owner backup farid ack 30m
  owner escalation kim

  exception unknown triage kim
}
"""

Factory = Callable[..., tuple[Engine, VirtualClock, RecordingNotifier]]


def policy_dir(root: Path, extra: str = STRATEGIES) -> Path:
    """The repository's policies (without their tests) plus ``extra``."""
    root.mkdir(parents=True, exist_ok=True)
    for source in (REPO / "policies").glob("*.esc"):
        if not source.name.endswith("_test.esc"):
            shutil.copy(source, root / source.name)
    (root / "strategies.esc").write_text(extra, "utf-8")
    return root


@pytest.fixture(scope="module")
def strategies_pack(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    result = load_policy_set(str(policy_dir(tmp_path_factory.mktemp("strategies"))))
    assert result.pset is not None and result.errors == 0, [
        (d.code, d.message) for d in result.diagnostics if d.severity == "error"
    ]
    return build_pack(result.pset)


@pytest.fixture
def engines(tmp_path: Path, strategies_pack: dict[str, Any]) -> Iterator[Factory]:
    """Engines on SQLite files under ``tmp_path``, the strategies pack active at T0;
    ``engines("x")`` again opens the same file (a restart)."""
    stores: list[SQLiteStore] = []

    def factory(name: str = "db") -> tuple[Engine, VirtualClock, RecordingNotifier]:
        store = SQLiteStore(str(tmp_path / f"{name}.sqlite"))
        stores.append(store)
        clock, notifier = VirtualClock(T0), RecordingNotifier()
        engine = Engine(store, clock, notifier)
        engine.activate(strategies_pack, T0)
        return engine, clock, notifier

    yield factory
    for store in stores:
        store.close()


def lead(ident: str, source: str, at: int = T0) -> dict[str, Any]:
    data = {"lead": {"id": ident, "source": source, "crm_status": "accepted"}}
    return {"id": f"ev-{ident}", "type": "lead.updated", "at": format_time(at), "data": data}


def owner_of(engine: Engine, ticket: str) -> tuple[str | None, str | None]:
    esc = engine.store.open_escalation(ticket)
    assert esc is not None
    return esc.owner, esc.owner_kind


def reasons(engine: Engine, kind: str) -> list[str]:
    return [r.reason for r in engine.store.audit_rows() if r.kind == kind]


def paged(notifier: RecordingNotifier, ticket: str, what: str = "owner") -> list[str]:
    """Who received the assignment notice (``owner``) or the step's text (``step``)."""
    return sorted(
        str(s.target)
        for s in notifier.sent
        if s.ticket == ticket
        and s.action == "notify"
        and ((s.text or "").startswith("You are") == (what == "owner"))
    )


# --- round_robin ----------------------------------------------------------------------


def test_round_robin_assigns_ines_lena_ines_across_a_restart(engines: Factory) -> None:
    """The done-when: the cursor lives in the store, so a new process goes on after lena."""
    engine, _, _ = engines()
    engine.receive(lead("L1", "referral"))
    engine.receive(lead("L2", "referral", T0 + 60), T0 + 60)
    assert owner_of(engine, "L1") == ("ines", "person")
    assert owner_of(engine, "L2") == ("lena", "person")
    engine.store.close()

    again, _, _ = engines()  # the same file, a new engine: a restart
    again.receive(lead("L3", "referral", T0 + 120), T0 + 120)
    again.receive(lead("L4", "referral", T0 + 180), T0 + 180)
    assert [owner_of(again, t)[0] for t in ("L3", "L4")] == ["ines", "lena"]
    assert reasons(again, "assigned") == [
        "primary owner ines (round robin in sdr_queue: first turn): assigned at start",
        "primary owner lena (round robin in sdr_queue: next after ines): assigned at start",
        "primary owner ines (round robin in sdr_queue: next after lena): assigned at start",
        "primary owner lena (round robin in sdr_queue: next after ines): assigned at start",
    ]
    row = next(r for r in again.store.audit_rows() if r.kind == "assigned")
    assert row.detail["pick"] == "round_robin" and row.detail["from"] == "sdr_queue"
    assert again.store.rotation_cursor("round_robin:sdr_queue") == "lena"


def test_round_robin_skips_an_absent_member_and_only_the_assignee_acks(engines: Factory) -> None:
    engine, _, notifier = engines()
    engine.absent("lena", T0 + 10 * H, T0, by="kim")
    for i in (1, 2):
        engine.receive(lead(f"L{i}", "referral", T0 + i), T0 + i)
    assert [owner_of(engine, t)[0] for t in ("L1", "L2")] == ["ines", "ines"]
    assert paged(notifier, "L2") == ["ines"]
    with pytest.raises(Refused, match="lena is not the current assignee"):
        engine.ack("L2", "lena", T0 + 10)
    engine.ack("L2", "ines", T0 + 10)
    assert owner_of(engine, "L2") == ("ines", "person")


def test_a_round_robin_owner_who_becomes_absent_passes_to_the_next_member(
    engines: Factory,
) -> None:
    engine, _, _ = engines()
    engine.receive(lead("L1", "referral"))
    assert owner_of(engine, "L1")[0] == "ines"
    engine.absent("ines", T0 + 10 * H, T0 + 60, by="kim")
    assert owner_of(engine, "L1")[0] == "lena"
    assert "round robin in sdr_queue: next after ines" in reasons(engine, "assigned")[-1]


def test_a_round_robin_level_with_nobody_available_is_skipped(engines: Factory) -> None:
    engine, _, _ = engines()
    for person in ("ines", "lena"):
        engine.absent(person, T0 + 10 * H, T0, by="kim")
    engine.receive(lead("L1", "referral", T0 + 1), T0 + 1)
    assert owner_of(engine, "L1") == ("farid", "person")
    assert reasons(engine, "skipped") == ["primary owner skipped: nobody in sdr_queue is available"]
    assert engine.store.rotation_cursor("round_robin:sdr_queue") is None  # nothing handed out


def test_the_ack_timeout_fails_over_from_the_round_robin_member(engines: Factory) -> None:
    engine, _, _ = engines()
    engine.receive(lead("L1", "referral"))
    engine.advance(T0 + H + 1)
    assert owner_of(engine, "L1") == ("farid", "person")
    engine.receive(lead("L2", "referral", T0 + H + 2), T0 + H + 2)
    assert owner_of(engine, "L2")[0] == "lena"  # the queue goes on where it was


# --- all(team) ------------------------------------------------------------------------


def test_all_pages_every_member_and_the_first_ack_owns_it(engines: Factory) -> None:
    engine, _, notifier = engines()
    engine.receive(lead("L1", "organic", T0), T0)
    assert owner_of(engine, "L1") == ("sdr_queue", "team")
    assert paged(notifier, "L1") == ["ines", "lena"]
    assert reasons(engine, "assigned") == [
        "primary owner sdr_queue (every member of sdr_queue is paged): assigned at start"
    ]
    with pytest.raises(Refused, match="kim is not the current assignee"):
        engine.ack("L1", "kim", T0 + 60)  # not a member
    engine.ack("L1", "lena", T0 + 120)
    assert owner_of(engine, "L1") == ("lena", "person")
    [row] = [r for r in engine.store.audit_rows() if r.kind == "acknowledged"]
    assert row.reason == "acknowledged by lena (first of sdr_queue) after 2m"
    assert row.detail["first_of"] == "sdr_queue"
    with pytest.raises(Refused, match="already acknowledged"):
        engine.ack("L1", "ines", T0 + 180)  # the second ack: lena owns it


def test_all_skips_absent_members_and_a_team_with_nobody(engines: Factory) -> None:
    engine, _, notifier = engines()
    engine.absent("ines", T0 + 10 * H, T0, by="kim")
    engine.receive(lead("L1", "organic", T0 + 1), T0 + 1)
    assert paged(notifier, "L1") == ["lena"]
    engine.absent("lena", T0 + 10 * H, T0 + 2, by="kim")
    engine.receive(lead("L2", "organic", T0 + 3), T0 + 3)
    assert owner_of(engine, "L2") == ("farid", "person")


# --- step notify all(team) ------------------------------------------------------------


def test_step_notify_all_reaches_every_member_of_a_scheduled_team(engines: Factory) -> None:
    """``notify support_oncall`` reaches its on-call member; ``all(support_oncall)`` every
    available member of every layer."""
    engine, _, notifier = engines()
    engine.absent("omar", T0 + 10 * H, T0, by="kim")
    engine.receive(lead("L1", "referral", T0 + 1), T0 + 1)
    assert paged(notifier, "L1", "step") == ["lena", "marc", "nora"]
    rows = [m for m in engine.store.outbox() if m.payload.get("team") == "support_oncall"]
    assert {m.payload.get("pick") for m in rows} == {"all"}


# --- two workers on PostgreSQL (optional) ---------------------------------------------


@pytest.mark.skipif(
    not os.environ.get("ESCALADE_TEST_PG_DSN"), reason="ESCALADE_TEST_PG_DSN is not set"
)
def test_two_workers_share_the_round_robin_cursor(strategies_pack: dict[str, Any]) -> None:
    dsn = os.environ["ESCALADE_TEST_PG_DSN"]
    with pg_schema(dsn, "rr") as opener:
        workers = []
        for _ in range(2):
            engine = Engine(opener(), VirtualClock(T0), RecordingNotifier())
            engine.activate(strategies_pack, T0)
            workers.append(engine)
        for i in range(4):
            workers[i % 2].receive(lead(f"L{i}", "referral", T0 + i), T0 + i)
        owners = [owner_of(workers[0], f"L{i}")[0] for i in range(4)]
        assert owners == ["ines", "lena", "ines", "lena"]


def test_a_silenced_round_robin_assignment_keeps_its_member_at_release(engines: Factory) -> None:
    """A silence holds the chain after the member was picked; its release pages that same
    member (the queue does not move twice for one assignment)."""
    engine, _, notifier = engines()
    engine.silence(("policy", "referral_round_robin"), None, T0 + H, "offsite", "kim", T0)
    engine.receive(lead("L1", "referral", T0 + 1), T0 + 1)
    assert owner_of(engine, "L1")[0] == "ines"
    engine.advance(T0 + H + 1)
    assert owner_of(engine, "L1")[0] == "ines"
    assert "ines keeps it" in reasons(engine, "assigned")[-1]
    assert paged(notifier, "L1") == ["ines"]  # the held page was never sent; this one is
    assert engine.store.rotation_cursor("round_robin:sdr_queue") == "ines"
    engine.receive(lead("L2", "referral", T0 + H + 2), T0 + H + 2)
    assert owner_of(engine, "L2")[0] == "lena"
