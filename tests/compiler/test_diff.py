"""`escalade diff` on real git repositories: routing and timeline changes, with witnesses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from escalade.compiler.cli import main
from escalade.runtime.conditions import evaluate

REPO = Path(__file__).resolve().parent.parent.parent


def git(root: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
    }
    return subprocess.run(
        ["git", "-C", str(root), *args], check=True, capture_output=True, text=True, env=env
    ).stdout


@pytest.fixture
def policy_repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(REPO / "policies", root / "policies")
    shutil.copy(REPO / "escalade.yaml", root / "escalade.yaml")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "v1")
    return root


def run_diff(root: Path, *args: str) -> tuple[int, dict[str, object]]:
    result = CliRunner().invoke(main, ["diff", *args, "--repo", str(root), "--format", "json"])
    assert result.exit_code in (0, 3), result.output
    return result.exit_code, json.loads(result.output)


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_swapping_backup_and_escalation_is_a_timeline_change(policy_repo: Path) -> None:
    f = policy_repo / "policies" / "customer_ops.esc"
    edit(f, "owner backup carol ack 10m", "owner backup dana ack 10m")
    edit(f, "owner escalation dana ack 15m", "owner escalation carol ack 15m")
    code, doc = run_diff(policy_repo, "HEAD")
    assert code == 3
    assert doc["routing"] == []
    [timeline] = doc["timelines"]
    assert timeline["policy"] == "enterprise_critical"
    assert timeline["kinds"] == ["ticket.created", "ticket.updated"]
    assert any("backup" in c and "carol" in c and "dana" in c for c in timeline["changes"])
    event = timeline["event"]
    state = event["data"]
    assert state["ticket"]["severity"] == "critical" and state["account"]["tier"] == "enterprise"


def test_widening_a_condition_reports_newly_owned_events(policy_repo: Path) -> None:
    f = policy_repo / "policies" / "customer_ops.esc"
    edit(f, "  when ticket.severity == critical\n", "  when ticket.severity in (high, critical)\n")
    git(policy_repo, "commit", "-qam", "v2")
    code, doc = run_diff(policy_repo, "HEAD~1", "HEAD")
    assert code == 3
    [change] = doc["routing"]
    assert change["before"] is None and change["after"] == "critical_default"
    assert change["event"]["data"]["ticket"]["severity"] == "high"
    # the witness really is owned now: it satisfies the new condition
    cond = {"op": "in", "field": "ticket.severity", "values": ["high", "critical"]}
    assert evaluate(cond, change["event"]["data"])


def test_reordering_files_and_reformatting_is_no_behaviour_change(policy_repo: Path) -> None:
    policies = policy_repo / "policies"
    git(policy_repo, "mv", "policies/customer_ops.esc", "policies/zz_customer_ops.esc")
    f = policies / "zz_customer_ops.esc"
    edit(
        f,
        "when ticket.severity == critical and account.tier == enterprise",
        "when (account.tier == enterprise)\n       and ticket.severity == critical  # reordered",
    )
    f.write_text(f.read_text().replace("  ", "    "))
    code, doc = run_diff(policy_repo, "HEAD")
    assert code == 0
    assert doc["behaviour_changed"] is False
    assert doc["routing"] == [] and doc["timelines"] == []


def test_renaming_a_policy_alone_is_no_behaviour_change(policy_repo: Path) -> None:
    f = policy_repo / "policies" / "revenue_ops.esc"
    edit(f, "policy paid_lead_rejected {", "policy paid_lead_rejected_v2 {")
    code, doc = run_diff(policy_repo, "HEAD")
    assert code == 0
    assert doc["policies"]["renamed"] == [["paid_lead_rejected", "paid_lead_rejected_v2"]]


def test_directory_change_reaches_every_policy_that_pages_the_team(policy_repo: Path) -> None:
    f = policy_repo / "policies" / "directory.esc"
    edit(f, "members alice, bob\n  rotation weekly", "members bob, alice\n  rotation weekly")
    code, doc = run_diff(policy_repo, "HEAD")
    assert code == 3
    changed = {t["policy"] for t in doc["timelines"]}
    assert {"enterprise_critical", "critical_default", "vendor_outage"} <= changed


def test_broken_side_and_unknown_revision(policy_repo: Path) -> None:
    (policy_repo / "policies" / "broken.esc").write_text("policy {")
    result = CliRunner().invoke(main, ["diff", "HEAD", "--repo", str(policy_repo)])
    assert result.exit_code == 1 and "does not compile" in result.output
    result = CliRunner().invoke(main, ["diff", "no-such-rev", "--repo", str(policy_repo)])
    assert result.exit_code == 2 and "unknown revision" in result.output


def test_markdown_is_compact_with_collapsible_details(policy_repo: Path) -> None:
    f = policy_repo / "policies" / "customer_ops.esc"
    edit(f, "  when ticket.severity == critical\n", "  when ticket.severity in (high, critical)\n")
    result = CliRunner().invoke(main, ["diff", "HEAD", "--repo", str(policy_repo)])
    assert result.exit_code == 3
    out = result.output
    assert out.startswith("## Escalade")
    assert "| ticket.created, ticket.updated | *nobody* | `critical_default` |" in out
    assert "<details>" in out and "```json" in out
