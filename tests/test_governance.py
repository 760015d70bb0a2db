"""End to end, with a real git repository: build, sign, activate, diff, roll back, refuse.

v1 is committed, built (stamped with its commit), signed and activated; an
escalation starts under it. v2 swaps the backup and escalation owners and
widens a condition: `diff` names the changed events with witnesses; v2 is
activated; the v1 escalation in flight keeps v1; `pack rollback` re-activates
v1 for new events; a tampered and an unsigned pack are refused while the
active pack keeps running.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from escalade.compiler.cli import main

REPO = Path(__file__).resolve().parent.parent
T0 = "2026-11-23T10:00:00Z"


def at(minutes: int) -> str:
    hour, minute = divmod(minutes, 60)
    return f"2026-11-23T{10 + hour:02d}:{minute:02d}:00Z"


def git(root: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    proc = subprocess.run(
        ["git", "-C", str(root), *args], check=True, capture_output=True, text=True, env=env
    )
    return proc.stdout.strip()


class Cli:
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.root = root
        self.db = str(root / "escalade.db")
        monkeypatch.chdir(root)

    def run(self, *args: str, expect: int = 0) -> str:
        result = CliRunner().invoke(main, list(args))
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        assert result.exit_code == expect, result.output
        return result.output

    def runtime(self, *args: str, expect: int = 0) -> str:
        return self.run(*args, "--db", self.db, expect=expect)

    def event(self, ticket: str, minutes: int, *extra: str) -> None:
        body = {
            "id": f"evt-{ticket}",
            "type": "ticket.created",
            "at": at(minutes),
            "data": {
                "ticket": {
                    "id": ticket,
                    "title": f"Outage {ticket}",
                    "severity": "critical",
                    "status": "escalated",
                },
                "account": {"id": "acme", "name": "Acme", "tier": "enterprise"},
            },
        }
        path = self.root / f"{ticket}.json"
        path.write_text(json.dumps(body))
        self.runtime("event", str(path), "--at", at(minutes), *extra)

    def status(self, ticket: str, minutes: int) -> dict[str, object]:
        """The ticket at ``minutes``: due timers fire first (``tick``; a read fires none)."""
        self.runtime("tick", "--at", at(minutes))
        out = self.runtime("status", ticket, "--format", "json", "--at", at(minutes))
        doc = json.loads(out)
        assert isinstance(doc, dict)
        return doc


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "policy-repo"
    shutil.copytree(REPO / "policies", root / "policies")
    shutil.copy(REPO / "escalade.yaml", root / "escalade.yaml")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "v1")
    return root


def release(cli: Cli, keys: Path, name: str, minutes: int) -> Path:
    """Build the policies at HEAD stamped with their commit, sign the pack, activate it."""
    cli.run("build", "policies", "-o", f"dist/{name}", "--stamp-commit")
    pack = cli.root / "dist" / name / "rulepack.json"
    cli.run("pack", "sign", str(pack), "--key", str(keys / "escalade.key"))
    cli.runtime("pack", "activate", str(pack), "--by", "service:release", "--at", at(minutes))
    return pack


def commit_v2(repo: Path) -> None:
    """v2: swap backup and escalation owners, widen critical_default, bump the version."""
    ops = repo / "policies" / "customer_ops.esc"
    edit(ops, "owner backup carol ack 10m", "owner backup dana ack 10m")
    edit(ops, "owner escalation dana ack 15m", "owner escalation carol ack 15m")
    edit(
        ops, "  when ticket.severity == critical\n", "  when ticket.severity in (high, critical)\n"
    )
    edit(repo / "escalade.yaml", "version: 1.0.0", "version: 1.1.0")
    git(repo, "commit", "-qam", "v2")


def check_diff_and_past_build(cli: Cli, repo: Path, v1: Path, v1_commit: str) -> None:
    """`diff` names the changed events with witnesses; building v1 again from git gives
    the same pack and leaves the work tree alone."""
    diff = json.loads(cli.run("diff", "HEAD~1", "HEAD", "--format", "json", expect=3))
    [timeline] = [t for t in diff["timelines"] if t["policy"] == "enterprise_critical"]
    assert timeline["event"]["data"]["account"]["tier"] == "enterprise"
    [routing] = diff["routing"]
    assert routing["after"] == "critical_default"
    assert routing["event"]["data"]["ticket"]["severity"] == "high"

    cli.run("build", "--rev", "HEAD~1", "-o", str(repo.parent / "rebuilt-v1"))
    rebuilt = json.loads((repo.parent / "rebuilt-v1" / "rulepack.json").read_text())
    assert rebuilt["metadata"]["commit"] == v1_commit
    assert (
        rebuilt["metadata"]["content_hash"]
        == json.loads(v1.read_text())["metadata"]["content_hash"]
    )
    assert git(repo, "status", "--porcelain", "--untracked-files=no") == ""


def check_bad_packs_refused(cli: Cli, repo: Path, v2: Path) -> None:
    """A tampered and an unsigned pack are refused (audited); the active v1 keeps running,
    even for a command handed the bad pack."""
    v3 = repo / "dist" / "v3.json"
    v3.write_text(v2.read_text().replace("Carol Diaz", "Mallory"))
    shutil.copy(repo / "dist" / "v2" / "rulepack.json.sig", repo / "dist" / "v3.json.sig")
    out = cli.runtime("pack", "activate", str(v3), "--by", "sam", "--at", at(13), expect=1)
    assert "tampered" in out and "keeping pack 1.0.0+" in out
    unsigned = repo / "dist" / "unsigned.json"
    shutil.copy(v2, unsigned)
    out = cli.runtime("pack", "activate", str(unsigned), "--by", "sam", "--at", at(13), expect=1)
    assert "unsigned" in out
    cli.event("T4", 14, "--pack", str(unsigned))
    assert str(cli.status("T4", 14)["pack_version"]).startswith("1.0.0+")
    history = json.loads(cli.runtime("pack", "history", "--format", "json"))
    active = [p for p in history["packs"] if p["active"]]
    assert [p["version"][:6] for p in active] == ["1.0.0+"]
    assert sum(1 for e in history["events"] if e["kind"] == "pack_refused") == 4


def test_release_rollback_and_refusal(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cli = Cli(repo, monkeypatch)
    keys = repo.parent / "keys"
    cli.run("pack", "keygen", "--out", str(keys))
    monkeypatch.setenv("ESCALADE_TRUSTED_KEYS", str(keys / "escalade.pub"))

    # v1: build stamped with its commit, sign, activate; an escalation starts under it
    v1_commit = git(repo, "rev-parse", "HEAD")
    v1 = release(cli, keys, "v1", 0)
    assert json.loads(v1.read_text())["metadata"]["commit"] == v1_commit
    cli.event("T1", 0)
    assert cli.status("T1", 0)["pack_version"].startswith("1.0.0+")  # type: ignore[union-attr]

    commit_v2(repo)
    check_diff_and_past_build(cli, repo, v1, v1_commit)
    v2 = release(cli, keys, "v2", 1)
    cli.event("T2", 1)

    # six minutes in: T1 (v1, in flight) fails over to carol; T2 (v2) to dana
    t1 = cli.status("T1", 6)
    t2 = cli.status("T2", 6)
    assert (t1["level"], t1["owner"]) == ("backup", "carol")
    assert str(t1["pack_version"]).startswith("1.0.0+")
    assert (t2["level"], t2["owner"]) == ("backup", "dana")
    assert str(t2["pack_version"]).startswith("1.1.0+")

    # no downgrade without rollback: v1, superseded by v2 and of a lower version, is
    # refused by `pack activate` (audited), and v2 stays active
    out = cli.runtime("pack", "activate", str(v1), "--by", "sam", "--at", at(7), expect=1)
    assert "lower than the active 1.1.0" in out and "pack rollback" in out
    # rollback: v1 again for new escalations, with actor and reason on the record
    v1_hash = json.loads(v1.read_text())["metadata"]["content_hash"]
    reason = "v2 pages the director first"
    cli.runtime(
        "pack", "rollback", "--to", v1_hash, "--reason", reason, "--by", "sam", "--at", at(7)
    )
    cli.event("T3", 7)
    t3 = cli.status("T3", 12)
    assert (t3["level"], t3["owner"]) == ("backup", "carol")
    t2 = cli.status("T2", 12)
    assert str(t2["pack_version"]).startswith("1.1.0+")  # in flight: untouched
    history = json.loads(cli.runtime("pack", "history", "--format", "json"))
    [rollback] = [e for e in history["events"] if e["kind"] == "pack_rolled_back"]
    assert rollback["actor"] == "sam" and reason in rollback["reason"]

    check_bad_packs_refused(cli, repo, v2)
    # v2 was left by a rollback only: activating it again rolls forward
    cli.runtime("pack", "activate", str(v2), "--by", "sam", "--at", at(15))

    cli.runtime("audit", "verify")
