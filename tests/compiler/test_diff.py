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


# --------------------------------------------------------------------------- schedules, calendars


def test_layer_restriction_change_reports_the_first_instant_on_call_differs(
    policy_repo: Path,
) -> None:
    f = policy_repo / "policies" / "directory.esc"
    edit(f, "restrict mon-sun 07:00-20:00", "restrict mon-fri 07:00-20:00")
    git(policy_repo, "commit", "-qam", "europe rests at weekends")
    result = CliRunner().invoke(main, ["diff", "HEAD~1", "HEAD", "--repo", str(policy_repo)])
    assert result.exit_code == 3, result.output
    witness = (
        "support_oncall: at 2026-01-10T07:00:00Z (Sat 08:00 Europe/Berlin) "
        "base pages lena, head pages nobody"
    )
    out = result.output
    # listed under each policy that pages the team
    for policy in ("high_priority_sla_breach", "urgent_ticket_waiting"):
        block = out.split(f"- `{policy}` (", 1)[1].split("\n- `", 1)[0]
        assert f"  - {witness}" in block
    code, doc = run_diff(policy_repo, "HEAD~1", "HEAD")
    assert code == 3
    changed = {t["policy"]: t["changes"] for t in doc["timelines"]}
    assert set(changed) == {"high_priority_sla_breach", "urgent_ticket_waiting"}
    assert changed["urgent_ticket_waiting"] == [witness]


def test_layer_member_swap_names_who_is_paged_instead(policy_repo: Path) -> None:
    f = policy_repo / "policies" / "directory.esc"
    edit(f, "members nora, omar", "members omar, nora")
    code, doc = run_diff(policy_repo, "HEAD")
    assert code == 3
    lines = [c for t in doc["timelines"] for c in t["changes"] if c.startswith("support_oncall:")]
    assert lines and "base pages nora, head pages omar" in lines[0]


def test_schedule_rewritten_to_the_same_hours_is_no_behaviour_change(policy_repo: Path) -> None:
    f = policy_repo / "policies" / "directory.esc"
    edit(f, "layer europe {", "layer emea {")  # a layer's name is not who is on call
    code, doc = run_diff(policy_repo, "HEAD")
    assert code == 0, doc
    assert doc["timelines"] == []


def test_calendar_holiday_change_reports_the_due_time_change(policy_repo: Path) -> None:
    f = policy_repo / "policies" / "directory.esc"
    edit(f, 'except "2026-12-24"', 'except "2026-12-08", "2026-12-24"')
    git(policy_repo, "commit", "-qam", "a new holiday")
    code, doc = run_diff(policy_repo, "HEAD~1", "HEAD")
    assert code == 3
    [timeline] = doc["timelines"]
    assert timeline["policy"] == "urgent_ticket_waiting"
    assert timeline["kinds"] == ["ticket.created"] and timeline["event"] is not None
    # 12 open hours from Friday 2026-12-04 15:01 Berlin: 2h59m Friday, 9h Monday, 1m Tuesday,
    # which is now a holiday: Wednesday instead.
    assert (
        "resolve SLA (within support_hours): due 2026-12-08T08:01:00Z (base) vs "
        "2026-12-09T08:01:00Z (head) for a ticket opened 2026-12-04T14:01:00Z"
    ) in timeline["changes"]
    assert (
        "acknowledge SLA (within support_hours): due 2026-12-08T08:01:00Z (base) vs "
        "2026-12-09T08:01:00Z (head) for a ticket opened 2026-12-07T15:01:00Z"
    ) in timeline["changes"]


def test_calendar_hours_change_and_zone_change(policy_repo: Path) -> None:
    f = policy_repo / "policies" / "directory.esc"
    edit(f, 'mon-fri 09:00-18:00 "Europe/Berlin"', 'mon-fri 09:00-18:00 "Europe/Lisbon"')
    code, doc = run_diff(policy_repo, "HEAD")
    assert code == 3
    [timeline] = doc["timelines"]
    lines = [c for c in timeline["changes"] if c.startswith("resolve SLA")]
    assert lines and "(base) vs" in lines[0]
