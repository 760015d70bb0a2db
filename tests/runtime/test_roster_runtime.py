"""On call at run time (#13): store overrides and absence windows on top of the pack's
schedules, the gap check of ``absent``/``override`` (refused unless --accept-gap), the
calendar of ``oncall --from --until``, and the single pane's on-call page."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from escalade.runtime.cli import main
from escalade.runtime.clock import VirtualClock, parse_time
from escalade.runtime.engine import Engine, Refused
from escalade.runtime.notify import RecordingNotifier
from tests.runtime.conftest import T0, critical

Factory = Callable[..., tuple[Engine, VirtualClock, RecordingNotifier]]
H = 3600


def t(text: str) -> int:
    return parse_time(text)


def kinds(engine: Engine) -> list[str]:
    return [row.kind for row in engine.store.audit_rows()]


# --- the done-when: support_oncall left empty is refused, naming the window --------


def test_lena_absent_while_marc_is_leaves_support_oncall_empty(make_engine: Factory) -> None:
    engine, _, _ = make_engine()
    start, end = t("2026-12-07T08:00:00Z"), t("2026-12-09T17:00:00Z")  # 09:00 -> 18:00 Berlin
    # marc alone absent: lena covers europe, nobody is left alone
    engine.absent("marc", end, T0, by="ines", since=start, refuse_gaps=True)
    with pytest.raises(Refused) as refused:
        engine.absent("lena", end, T0 + 60, by="ines", since=start, refuse_gaps=True)
    message = str(refused.value)
    assert message.startswith("lena absent 2026-12-07T08:00:00Z")
    assert (
        "leaves support_oncall with nobody 2026-12-07 09:00\u201319:00 Europe/Berlin"
        " (08:00\u201318:00 UTC) and 2 more windows" in message
    )
    assert "used as primary by high_priority_sla_breach" in message
    assert "--accept-gap REASON" in message
    assert engine.store.absence_windows(start, end).keys() == {"marc"}  # nothing written
    # accepted: recorded, with the gap and its reason in the audit trail
    engine.absent(
        "lena", end, T0 + 60, by="ines", since=start, refuse_gaps=True, accept_gap="offsite"
    )
    assert engine.store.absence_windows(start, end).keys() == {"lena", "marc"}
    [accepted] = [r for r in engine.store.audit_rows() if r.kind == "gap_accepted"]
    assert accepted.actor == "ines" and "accepted: offsite" in accepted.reason
    assert accepted.detail["gaps"][0]["name"] == "support_oncall"
    assert len(accepted.detail["gaps"][0]["windows"]) == 3
    # the calendar shows the gap (nobody) where only europe would answer
    pack = engine.active()
    assert engine.oncall(pack, "support_oncall", t("2026-12-08T10:00:00Z")) is None
    assert engine.oncall(pack, "support_oncall", t("2026-12-08T20:00:00Z")) == "nora"


def test_a_future_absence_takes_effect_then(make_engine: Factory) -> None:
    engine, _, _ = make_engine()
    pack = engine.active()
    engine.absent("alice", T0 + 10 * H, T0, by="dana", since=T0 + 2 * H)
    assert engine.oncall(pack, "cust_ops_oncall", T0 + H) == "alice"
    assert engine.oncall(pack, "cust_ops_oncall", T0 + 3 * H) == "bob"
    assert engine.oncall(pack, "cust_ops_oncall", T0 + 11 * H) == "alice"


# --- overrides -----------------------------------------------------------------------


def test_an_override_inside_one_shift(make_engine: Factory) -> None:
    engine, _, _ = make_engine()
    pack = engine.active()
    start, end = t("2026-11-27T12:00:00Z"), t("2026-11-27T14:00:00Z")  # alice's week
    out = engine.override("cust_ops_oncall", "carol", start, end, "alice", "swap", "dana", at=T0)
    assert "carol for alice on cust_ops_oncall" in out.message
    who = [engine.oncall(pack, "cust_ops_oncall", start + d) for d in (-H, H, 3 * H)]
    assert who == ["alice", "carol", "alice"]
    [row] = [r for r in engine.store.audit_rows() if r.kind == "override"]
    assert row.actor == "dana" and row.reason.endswith(": swap")
    assert row.detail["replaces"] == "alice" and row.detail["person"] == "carol"


def test_an_override_across_a_shift_boundary(make_engine: Factory) -> None:
    engine, _, _ = make_engine()
    pack = engine.active()
    start, end = t("2026-11-30T06:00:00Z"), t("2026-11-30T12:00:00Z")  # hand-off at 09:00
    engine.override("cust_ops_oncall", "dana", start, end, "alice", "cover", "dana", at=T0)
    at = [t(f"2026-11-30T{h}:00:00Z") for h in ("05", "07", "10", "13")]
    assert [engine.oncall(pack, "cust_ops_oncall", x) for x in at] == [
        "alice",
        "dana",  # for alice, while alice's shift lasts
        "bob",  # bob's shift: the override for alice does not apply
        "bob",
    ]
    # a whole-team override (no --for) covers both shifts; the later one wins
    engine.override("cust_ops_oncall", "erin", start, end, None, "drill", "dana", at=T0)
    assert [engine.oncall(pack, "cust_ops_oncall", x) for x in at] == [
        "alice",
        "erin",
        "erin",
        "bob",
    ]


def test_an_override_outside_any_shift_or_invalid_is_refused(make_engine: Factory) -> None:
    engine, _, _ = make_engine()
    bobs_week = (t("2026-12-01T10:00:00Z"), t("2026-12-01T12:00:00Z"))
    cases: list[tuple[tuple[Any, ...], str]] = [
        (("cust_ops_oncall", "carol", *bobs_week, "alice"), "outside any shift"),
        (("nope", "carol", *bobs_week, None), "no team 'nope'"),
        (("sdr_queue", "carol", *bobs_week, None), "has no schedule"),
        (("cust_ops_oncall", "zed", *bobs_week, None), "'zed' is not a person"),
        (("cust_ops_oncall", "carol", *bobs_week, "ines"), "'ines' is not a member"),
        (("cust_ops_oncall", "carol", bobs_week[1], bobs_week[0], None), "is not after"),
    ]
    for args, why in cases:
        with pytest.raises(Refused, match=why):
            engine.override(*args, "r", "dana", at=T0)
    assert engine.store.overrides(0, 2**40) == [] and "override" not in kinds(engine)


def test_an_override_by_someone_absent_then_leaves_it_with_nobody(make_engine: Factory) -> None:
    engine, _, _ = make_engine()
    pack = engine.active()
    start, end = t("2026-11-27T11:00:00Z"), t("2026-11-27T15:00:00Z")
    engine.absent("carol", t("2026-11-27T14:00:00Z"), T0, by="dana", since=start + H)
    with pytest.raises(Refused) as refused:
        engine.override("cust_ops_oncall", "carol", start, end, "alice", "swap", "dana", at=T0)
    message = str(refused.value)
    assert "leaves the override with nobody 2026-11-27 12:00\u201314:00 UTC" in message
    assert "carol is absent then; alice would stay on call" in message
    assert engine.store.overrides(0, 2**40) == []
    engine.override(
        "cust_ops_oncall", "carol", start, end, "alice", "swap", "dana", "carol's call", T0
    )
    assert "gap_accepted" in kinds(engine)
    assert engine.oncall(pack, "cust_ops_oncall", start + 30 * 60) == "carol"
    assert engine.oncall(pack, "cust_ops_oncall", start + 90 * 60) == "alice"


def test_an_override_starting_now_reassigns_what_the_team_had_given(
    make_engine: Factory,
) -> None:
    engine, _, _ = make_engine()
    engine.receive(critical("T1", "e1"), T0)
    status = engine.status("T1", T0)
    assert status is not None and status["owner"] == "alice"
    out = engine.override(
        "cust_ops_oncall", "carol", None, T0 + 4 * H, None, "alice in a meeting", "dana", at=T0 + 60
    )
    assert "1 escalation(s) reassigned" in out.message
    status = engine.status("T1", T0 + 60)
    assert status is not None and status["owner"] == "carol"
    [row] = [r for r in engine.store.audit_rows() if r.kind == "assigned" and r.at == T0 + 60]
    assert "carol took cust_ops_oncall's on-call from alice" in row.reason


# --- the command line ----------------------------------------------------------------


def run(args: list[str], db: Path, pack_file: Path) -> tuple[int, str]:
    result = CliRunner().invoke(main, [*args, "--db", str(db), "--pack", str(pack_file)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def digest(db: Path) -> str:
    return hashlib.sha256(db.read_bytes()).hexdigest()


@pytest.fixture
def db(tmp_path: Path, pack_file: Path) -> Path:
    path = tmp_path / "escalade.db"
    assert CliRunner().invoke(main, ["migrate", "--db", str(path)]).exit_code == 0
    code, out = run(["tick", "--at", "2026-11-27T10:00:00Z"], path, pack_file)
    assert code == 0, out
    return path


AT = ["--at", "2026-11-27T10:00:00Z"]
WEEK = ["--from", "2026-12-07T08:00:00Z", "--until", "2026-12-09T17:00:00Z"]


def test_cli_absent_refused_then_accepted(db: Path, pack_file: Path) -> None:
    code, out = run(["absent", "marc", "--by", "ines", *WEEK, *AT], db, pack_file)
    assert code == 0, out
    before = digest(db)
    code, out = run(["absent", "lena", "--by", "ines", *WEEK, *AT], db, pack_file)
    assert code == 1 and "refused: lena absent" in out
    assert "2026-12-07 09:00\u201319:00 Europe/Berlin (08:00\u201318:00 UTC)" in out
    assert digest(db) == before  # nothing written
    accept = ["--accept-gap", "offsite", "--reason", "team offsite", "--format", "json"]
    code, out = run(["absent", "lena", "--by", "ines", *WEEK, *AT, *accept], db, pack_file)
    assert code == 0, out
    assert json.loads(out[out.index("{") :])["outcome"] == "applied"


def test_cli_override_and_calendar(db: Path, pack_file: Path) -> None:
    args = ["override", "cust_ops_oncall", "carol", "--for", "alice", "--by", "dana"]
    window = ["--from", "2026-11-27T12:00:00Z", "--until", "2026-11-27T14:00:00Z"]
    code, out = run([*args, *window, "--reason", "swap", *AT], db, pack_file)
    assert code == 0 and "carol for alice on cust_ops_oncall" in out
    before = digest(db)
    span = ["--from", "2026-11-27T11:00:00Z", "--until", "2026-11-27T15:00:00Z"]
    code, out = run(["oncall", "cust_ops_oncall", *span], db, pack_file)
    assert code == 0, out
    lines = out.strip().splitlines()
    assert lines[0] == "cust_ops_oncall on call, UTC:"
    assert lines[1:] == [
        "2026-11-27 11:00\u201312:00 UTC (11:00\u201312:00 UTC)  alice  (layer rotation)",
        "2026-11-27 12:00\u201314:00 UTC (12:00\u201314:00 UTC)  carol"
        "  (override for alice by dana: swap)",
        "2026-11-27 14:00\u201315:00 UTC (14:00\u201315:00 UTC)  alice  (layer rotation)",
    ]
    code, out = run(["oncall", "cust_ops_oncall", *span, "--format", "json"], db, pack_file)
    doc = json.loads(out)
    assert [s["person"] for s in doc["segments"]] == ["alice", "carol", "alice"]
    assert doc["segments"][1]["source"] == "store" and doc["gaps"] == []
    code, out = run(["oncall", "cust_ops_oncall", "--at", "2026-11-27T13:00:00Z"], db, pack_file)
    assert (code, out.strip()) == (0, "carol")
    assert digest(db) == before  # reads never write


def test_cli_calendar_names_a_gap(db: Path, pack_file: Path) -> None:
    for person in ("marc", "lena"):
        more = ["--accept-gap", "offsite"] if person == "lena" else []
        code, out = run(["absent", person, "--by", "ines", *WEEK, *AT, *more], db, pack_file)
        assert code == 0, out
    span = ["--from", "2026-12-07T07:00:00Z", "--until", "2026-12-07T20:00:00Z"]
    code, out = run(["oncall", "support_oncall", *span], db, pack_file)
    assert code == 1
    assert "08:00\u201318:00 UTC)  NOBODY  (nobody on call)" in out
    assert "gap: nobody in support_oncall is on call 2026-12-07 09:00\u201319:00" in out


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (["cust_ops_oncall", "carol", "--until", "2026-11-27T09:00:00Z"], "is not after"),
        (["nope", "carol", "--until", "2026-11-28T00:00:00Z"], "no team 'nope'"),
        (["cust_ops_oncall", "zed", "--until", "2026-11-28T00:00:00Z"], "'zed' is not a person"),
        (
            ["cust_ops_oncall", "carol", "--for", "ines", "--until", "2026-11-28T00:00:00Z"],
            "'ines' is not a member",
        ),
        (["cust_ops_oncall", "carol", "--until", "tomorrow"], "--until"),
    ],
)
def test_cli_override_bad_input(db: Path, pack_file: Path, args: list[str], expect: str) -> None:
    before = digest(db)
    code, out = run(["override", *args, "--reason", "r", "--by", "dana", *AT], db, pack_file)
    assert code == 2 and expect in out and "Traceback" not in out
    assert digest(db) == before


def test_cli_override_outside_any_shift_is_refused(db: Path, pack_file: Path) -> None:
    before = digest(db)
    window = ["--from", "2026-12-01T10:00:00Z", "--until", "2026-12-01T12:00:00Z"]
    args = ["override", "cust_ops_oncall", "carol", "--for", "alice", "--reason", "r"]
    code, out = run([*args, "--by", "dana", *window, *AT], db, pack_file)
    assert code == 1 and "outside any shift" in out
    assert digest(db) == before


def test_cli_absent_bad_input(db: Path, pack_file: Path) -> None:
    before = digest(db)
    bad = [
        (["absent", "lena", "--by", "ines", "--from", "2026-12-02T00:00:00Z"], "is not after"),
        (["absent", "zed", "--by", "ines"], "'zed' is not a person"),
    ]
    for args, expect in bad:
        code, out = run([*args, "--until", "2026-12-01T00:00:00Z", *AT], db, pack_file)
        assert code == 2 and expect in out, out
    assert digest(db) == before


def test_the_pane_shows_calendars_overrides_and_absences(make_engine: Factory) -> None:
    from escalade.runtime.web.panes import absences, oncall_board

    engine, _, _ = make_engine()
    start, end = t("2026-11-27T12:00:00Z"), t("2026-11-27T14:00:00Z")
    engine.override("cust_ops_oncall", "carol", start, end, "alice", "swap", "dana", at=T0)
    engine.absent("marc", t("2026-12-09T17:00:00Z"), T0, by="ines", since=t("2026-12-01T00:00:00Z"))
    board = {row["team"]: row for row in oncall_board(engine, T0)}
    cust = board["cust_ops_oncall"]
    assert (cust["now"], cust["next"], cust["next_at"]) == (
        "alice",
        "carol",
        "2026-11-27T12:00:00Z",
    )
    assert [e["person"] for e in cust["calendar"]][:3] == ["alice", "carol", "alice"]
    assert cust["overrides"][0]["reason"] == "swap"
    away = absences(engine, T0)
    assert [(a["person"], a["from"]) for a in away] == [("marc", "2026-12-01T00:00:00Z")]
