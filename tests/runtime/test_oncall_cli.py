"""`escalade oncall` says who is on call only for a team with a schedule; a team without
one lists its available members, every one of whom a message reaches."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from escalade.runtime.cli import main

REPO = Path(__file__).resolve().parents[2]
AT = "2026-11-27T12:00:00Z"


def run(tmp_path: Path, *args: str) -> tuple[int, str]:
    db = str(tmp_path / "s.db")
    pack = str(REPO / "generated" / "rulepack.json")
    CliRunner().invoke(main, ["migrate", "--db", db])
    result = CliRunner().invoke(main, [*args, "--db", db, "--pack", pack, "--at", AT])
    return result.exit_code, result.output


def test_a_team_without_a_schedule_lists_its_available_members(tmp_path: Path) -> None:
    code, out = run(tmp_path, "oncall", "sdr_queue")
    assert code == 0 and out.strip() == (
        "ines, lena (no schedule: every available member is notified)"
    )
    code, out = run(tmp_path, "oncall", "sdr_queue", "--format", "json")
    doc = json.loads(out)
    assert (doc["on_call"], doc["scheduled"], doc["available"]) == (None, False, ["ines", "lena"])


def test_a_scheduled_team_names_its_on_call_member(tmp_path: Path) -> None:
    code, out = run(tmp_path, "oncall", "support_oncall", "--format", "json")
    doc = json.loads(out)
    assert code == 0 and doc["scheduled"] is True and doc["available"] == []
    assert doc["on_call"] in ("lena", "marc")  # Friday 13:00 Berlin: europe's layer


def test_an_override_without_a_reason_is_a_usage_error(tmp_path: Path) -> None:
    code, out = run(
        tmp_path,
        "override",
        "support_oncall",
        "nora",
        "--until",
        "2026-11-28T00:00:00Z",
        "--reason",
        " ",
        "--by",
        "ines",
    )
    assert code == 2 and "an override needs a reason" in out
