"""`escalade test`: passes on policies/, fails with a located message on a wrong expectation."""

from __future__ import annotations

import shutil
from pathlib import Path

from click.testing import CliRunner

from escalade.compiler.cli import main


def test_policies_pass_and_every_policy_is_exercised(policies_dir: Path) -> None:
    result = CliRunner().invoke(main, ["test", str(policies_dir)])
    assert result.exit_code == 0, result.output
    assert " 0 failed" in result.output and "every policy is exercised" in result.output


def test_wrong_expectation_fails_with_location(tmp_path: Path, policies_dir: Path) -> None:
    copy = tmp_path / "policies"
    shutil.copytree(policies_dir, copy)
    test_file = copy / "customer_ops_test.esc"
    lines = test_file.read_text().splitlines()
    number = next(
        i for i, line in enumerate(lines) if "at 5m expect owner carol level backup" in line
    )
    lines[number] = lines[number].replace("carol", "bob")
    test_file.write_text("\n".join(lines) + "\n")
    result = CliRunner().invoke(main, ["test", str(copy)])
    assert result.exit_code == 1
    assert f"customer_ops_test.esc:{number + 1}:3:" in result.output
    assert "expected owner bob level backup, got carol level backup" in result.output


def test_syntax_error_is_located_and_unexercised_policies_listed(
    tmp_path: Path, policies_dir: Path
) -> None:
    copy = tmp_path / "policies"
    shutil.copytree(policies_dir, copy)
    for path in copy.glob("*_test.esc"):
        path.unlink()
    (copy / "broken_test.esc").write_text('test "x" {\n  at 0m evnt ticket.created {}\n}\n')
    (copy / "one_test.esc").write_text(
        'test "low" {\n  at 0m event ticket.created { ticket.id = "T", ticket.severity = low }\n'
        "  expect no escalation\n}\n"
    )
    result = CliRunner().invoke(main, ["test", str(copy)])
    assert result.exit_code == 1
    assert "broken_test.esc:2:9: syntax error" in result.output
    assert "1 passed, 1 failed" in result.output
    assert "policies no test exercises: content_review" in result.output
