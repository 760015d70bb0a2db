"""Bad schedules, calendars and times are located errors, never a traceback, a hang or a
read outside the policy set (found by a red-team pass over #13 and #15)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from escalade.compiler import load_policy_set
from escalade.runtime.cli import main

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    root = tmp_path / "policies"
    shutil.copytree(REPO / "policies", root)
    return root


def edit(root: Path, name: str, old: str, new: str) -> None:
    path = root / name
    text = path.read_text("utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), "utf-8")


def codes(root: Path) -> list[tuple[str, str]]:
    result = load_policy_set(root)
    return [(d.code, d.message) for d in result.diagnostics]


@pytest.mark.parametrize(
    ("old", "new", "code", "words"),
    [
        (
            'shift 1w\n    handoff 09:00\n    zone "Europe/Berlin"',
            'shift 1m\n    handoff 09:00\n    zone "Europe/Berlin"',
            "E106",
            "between 1h and 52w",
        ),
        (
            'zone "Europe/Berlin"\n    start',
            'zone "localtime"\n    start',
            "E106",
            "unknown time zone",
        ),
        ('start "2026-01-05"', 'start "9999-12-31"', "E106", "from 1970 to 2999"),
        ('except "2026-12-24"', 'except "0001-01-01", "2026-12-24"', "E106", "from 1970 to 2999"),
        (
            'except "2026-12-24"',
            'except file "/dev/zero"\n  except "2026-12-24"',
            "E106",
            "absolute path",
        ),
        (
            'except "2026-12-24"',
            'except file "../../../etc/passwd"\n  except "2026-12-24"',
            "E106",
            "outside the policy set",
        ),
    ],
)
def test_bad_schedules_are_located_errors(
    policies: Path, old: str, new: str, code: str, words: str
) -> None:
    edit(policies, "directory.esc", old, new)
    found = codes(policies)
    assert any(c == code and words in m for c, m in found), found
    assert not any("root:" in m for _, m in found)  # nothing of /etc/passwd in a message


def test_a_holidays_file_inside_the_set_is_read(policies: Path) -> None:
    (policies / "holidays.txt").write_text("# Berlin\n2026-12-31\nnot a date\n", "utf-8")
    edit(
        policies,
        "directory.esc",
        'except "2026-12-24"',
        'except file "holidays.txt"\n  except "2026-12-24"',
    )
    found = codes(policies)
    assert found == [("E106", "holidays.txt:3: not a date from 1970 to 2999")], found


def test_a_ten_year_duration_is_refused(policies: Path) -> None:
    edit(policies, "support.esc", "sla resolve 12h within", "sla resolve 99999999999d within")
    assert any(c == "E001" and "longer than ten years" in m for c, m in codes(policies))


def test_postmortem_owner_after_triage_is_its_own_statement(policies: Path) -> None:
    edit(
        policies,
        "customer_ops.esc",
        "  exception unknown triage dana postmortem\n  postmortem owner carol within 5d\n",
        "  exception unknown triage dana\n  postmortem owner carol within 5d\n"
        "  check close requires postmortem\n",
    )
    assert codes(policies) == []


@pytest.mark.parametrize(
    "args",
    [
        [
            "oncall",
            "support_oncall",
            "--from",
            "2026-12-01T00:00:00Z",
            "--until",
            "2028-12-01T00:00:00Z",
        ],
        ["oncall", "support_oncall", "--at", "0001-01-01T00:00:00Z"],
        ["absent", "lena", "--until", "9999-12-31T23:59:59Z", "--by", "ines"],
    ],
)
def test_far_times_and_long_calendars_are_usage_errors(tmp_path: Path, args: list[str]) -> None:
    db = str(tmp_path / "s.db")
    pack = str(REPO / "generated" / "rulepack.json")
    assert CliRunner().invoke(main, ["migrate", "--db", db]).exit_code == 0
    result = CliRunner().invoke(main, [*args, "--db", db, "--pack", pack])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
