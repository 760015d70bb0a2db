"""Policy tests state when an SLA falls due (``expect due resolve "ISO"``) and who is on
call (``expect oncall TEAM PERSON``): failures and bad input give located messages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from escalade.compiler.policytest import pack_from_policies, parse_tests, run_files
from escalade.compiler.testfmt import format_test_source
from tests.conftest import REPO

OPEN_U1 = (
    '  start "2026-12-04T16:00:00Z"\n'
    '  at 0m event ticket.created { ticket.id = "U1", ticket.priority = urgent,'
    ' ticket.severity = high, account.id = "acme", account.tier = pro }\n'
)


@pytest.fixture(scope="module")
def pack() -> dict[str, Any]:
    return pack_from_policies(REPO / "policies")


def run(tmp_path: Path, pack: dict[str, Any], body: str) -> list[str]:
    """The failures of one test file holding ``test "t" { body }``."""
    path = tmp_path / "t_test.esc"
    path.write_text(f'test "t" {{\n{body}}}\n', "utf-8")
    return run_files(pack, [path]).failures


def test_due_and_oncall_hold(tmp_path: Path, pack: dict[str, Any]) -> None:
    body = OPEN_U1 + (
        '  expect due resolve "2026-12-08T10:00:00Z"\n'
        '  expect due resolve "2026-12-08T11:00:00+01:00"\n'
        "  expect oncall support_oncall marc\n"
        "  at 4h expect oncall support_oncall omar\n"  # 21:00 Berlin: the Americas layer
    )
    assert run(tmp_path, pack, body) == []


def test_oncall_needs_no_ticket(tmp_path: Path, pack: dict[str, Any]) -> None:
    body = '  start "2026-12-04T16:00:00Z"\n  expect oncall support_oncall marc\n'
    assert run(tmp_path, pack, body) == []


def test_a_wrong_due_says_what_the_runtime_computed(tmp_path: Path, pack: dict[str, Any]) -> None:
    failures = run(tmp_path, pack, OPEN_U1 + '  expect due resolve "2026-12-05T04:00:00Z"\n')
    assert failures == [
        f"{tmp_path / 't_test.esc'}:4:3: test 't': expected resolve due 2026-12-05T04:00:00Z,"
        " got 2026-12-08T10:00:00Z (2026-12-08T11:00:00+01:00 in Europe/Berlin,"
        " 12h within support_hours from 2026-12-04T16:00:00Z)"
    ]
    failures = run(
        tmp_path, pack, OPEN_U1 + '  expect due acknowledge "2026-12-04T19:00:00+01:00"\n'
    )
    assert failures[0].endswith(
        "expected acknowledge due 2026-12-04T19:00:00+01:00 (2026-12-04T18:00:00Z),"
        " got 2026-12-07T09:00:00Z (2026-12-07T10:00:00+01:00 in Europe/Berlin,"
        " 2h within support_hours from 2026-12-04T16:00:00Z)"
    )


def test_a_wrong_oncall_names_who_is(tmp_path: Path, pack: dict[str, Any]) -> None:
    failures = run(tmp_path, pack, OPEN_U1 + "  expect oncall support_oncall lena\n")
    assert failures == [
        f"{tmp_path / 't_test.esc'}:4:3: test 't': expected lena on call for support_oncall"
        " at 2026-12-04T16:00:00Z, got marc"
    ]
    failures = run(tmp_path, pack, OPEN_U1 + "  expect oncall support_oncall nobody\n")
    assert failures[0].endswith(
        "expected nobody on call for support_oncall at 2026-12-04T16:00:00Z, got marc"
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('expect due resolve "Tuesday 11:00"', "'Tuesday 11:00' is not an ISO-8601 time"),
        ('expect due respond "2026-12-08T10:00:00Z"', "unknown SLA kind 'respond'"),
        ("expect oncall support_on marc", "unknown team 'support_on' (did you mean"),
        ("expect oncall support_oncall marcus", "unknown person (or nobody) 'marcus'"),
    ],
)
def test_bad_input_is_located(
    tmp_path: Path, pack: dict[str, Any], line: str, message: str
) -> None:
    failures = run(tmp_path, pack, OPEN_U1 + f"  {line}\n")
    assert len(failures) == 1
    assert failures[0].startswith(f"{tmp_path / 't_test.esc'}:4:3: test 't': ")
    assert message in failures[0]


def test_a_policy_without_that_sla(tmp_path: Path, pack: dict[str, Any]) -> None:
    body = (
        '  at 0m event content.updated { content.id = "C1", content.pipeline = failed }\n'
        '  expect due acknowledge "2026-12-08T10:00:00Z"\n'
    )
    failures = run(tmp_path, pack, body)
    assert len(failures) == 1
    assert failures[0].endswith(
        "expected acknowledge due 2026-12-08T10:00:00Z,"
        " but policy publishing_block has no acknowledge SLA"
    )


def test_the_new_expectations_parse_and_format() -> None:
    text = (
        'test "x" {\n  at 0m   expect due   resolve "2026-12-08T10:00:00Z"\n'
        "  expect oncall  support_oncall   marc\n}\n"
    )
    tests = parse_tests("x_test.esc", text)
    assert [(s.kind, s.args) for s in tests[0].stmts] == [
        ("exp_due", ("resolve", "2026-12-08T10:00:00Z")),
        ("exp_oncall", ("support_oncall", "marc")),
    ]
    formatted = format_test_source("x_test.esc", text).formatted
    assert formatted == (
        'test "x" {\n  at 0m expect due resolve "2026-12-08T10:00:00Z"\n'
        "  expect oncall support_oncall marc\n}\n"
    )


def test_oncall_of_a_team_without_a_schedule_says_nobody_is(
    tmp_path: Path, pack: dict[str, Any]
) -> None:
    failures = run(
        tmp_path, pack, '  start "2026-12-04T16:00:00Z"\n  expect oncall sdr_queue ines\n'
    )
    assert len(failures) == 1 and "team sdr_queue has no schedule" in failures[0]
