"""GitHub workflows validate against the workflow schema and keep forks safe.

Supply chain (issue #9): every action is pinned to a full commit SHA with its
version in a comment, checkout keeps no credentials, every job has a timeout
and its own minimal token, no failure is swallowed, and the comment poster
finds the pull request through the API, never from the fork's artifact.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOW_DIR = REPO / ".github" / "workflows"
WORKFLOWS = sorted(WORKFLOW_DIR.glob("*.yml")) + sorted(WORKFLOW_DIR.glob("*.yaml"))

SHA_PIN = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+(/[^@\s]+)?@[0-9a-f]{40}$")
VERSION_COMMENT = re.compile(r"^\s+# v\d+(\.\d+){0,2}$")
USES_LINE = re.compile(r"^\s*(?:-\s+)?uses:\s*(?P<ref>[^\s#]+)(?P<rest>.*)$")
SWALLOWED = re.compile(r"\|\|\s*(true|:)(?=\s|;|\)|$)", re.MULTILINE)

# The only token scopes a job may write with, and why.
WRITE_SCOPES = {
    ("pull-request.yml", "check"): {"security-events"},  # SARIF upload (same-repo PRs)
    ("pr-comment.yml", "comment"): {"pull-requests"},  # the sticky comment
    ("release.yml", "publish"): {"contents"},  # gh release create
}


def load_path(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, dict)
    # YAML 1.1 reads the key `on` as True
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def load(name: str) -> dict[str, Any]:
    return load_path(WORKFLOW_DIR / name)


def jobs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found = doc["jobs"]
    assert isinstance(found, dict) and found
    return found


def steps(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for job_id, job in jobs(doc).items():
        for step in job.get("steps", []):
            yield job_id, step


def step(doc: dict[str, Any], job_id: str, step_id: str) -> dict[str, Any]:
    found = [s for s in jobs(doc)[job_id]["steps"] if s.get("id") == step_id]
    assert len(found) == 1, f"{job_id} has no single step with id {step_id}"
    only: dict[str, Any] = found[0]
    return only


def check_jsonschema(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert exe is not None
    return subprocess.run([exe, *args], capture_output=True, text=True, check=False)


# --- schema -------------------------------------------------------------------


def test_workflows_validate_against_the_github_schema() -> None:
    assert len(WORKFLOWS) >= 3
    proc = check_jsonschema("--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    """The validation above can fail: a job without runs-on is refused."""
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\non: push\njobs:\n  a:\n    steps: 3\n")
    proc = check_jsonschema("--builtin-schema", "vendor.github-workflows", str(bad))
    assert proc.returncode != 0


def test_dependabot_keeps_the_pinned_actions_current() -> None:
    """The SHA pins are bumped (SHA and version comment) by Dependabot."""
    path = REPO / ".github" / "dependabot.yml"
    proc = check_jsonschema("--builtin-schema", "vendor.dependabot", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    doc = yaml.safe_load(path.read_text())
    assert any(u["package-ecosystem"] == "github-actions" for u in doc["updates"])


# --- supply chain, every workflow ---------------------------------------------


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit_sha_with_its_version(path: Path) -> None:
    doc = load_path(path)
    refs = [s["uses"] for _, s in steps(doc) if "uses" in s]
    refs += [j["uses"] for j in jobs(doc).values() if "uses" in j]
    assert refs, "a workflow without actions proves nothing here"
    for ref in refs:
        assert SHA_PIN.match(ref), f"{path.name}: {ref} is not pinned to a 40-hex commit SHA"
    lines = [m for m in map(USES_LINE.match, path.read_text().splitlines()) if m]
    # every `uses:` the YAML holds is on a line of its own that this test reads
    assert sorted(m["ref"] for m in lines) == sorted(refs)
    for m in lines:
        assert VERSION_COMMENT.match(m["rest"]), f"{path.name}: {m['ref']} has no `# vX.Y.Z`"


def test_one_action_one_pin_across_workflows() -> None:
    """Each action is pinned to one commit everywhere, and a commit to one version."""
    pins: dict[str, set[str]] = {}
    versions: dict[str, set[str]] = {}
    for path in WORKFLOWS:
        for m in filter(None, map(USES_LINE.match, path.read_text().splitlines())):
            action, _, sha = m["ref"].partition("@")
            owner_repo = "/".join(action.split("/")[:2])
            pins.setdefault(owner_repo, set()).add(sha)
            versions.setdefault(sha, set()).add(m["rest"].strip())
    assert {"actions/checkout", "actions/github-script"} <= set(pins)
    assert {a: s for a, s in pins.items() if len(s) > 1} == {}
    assert {s: v for s, v in versions.items() if len(v) > 1} == {}


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_checkout_drops_its_credentials(path: Path) -> None:
    for job_id, s in steps(load_path(path)):
        if s.get("uses", "").startswith("actions/checkout@"):
            assert s.get("with", {}).get("persist-credentials") is False, (
                f"{path.name}:{job_id} checks out with persisted credentials"
            )


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_every_job_has_a_timeout(path: Path) -> None:
    for job_id, job in jobs(load_path(path)).items():
        minutes = job.get("timeout-minutes")
        assert isinstance(minutes, int) and 1 <= minutes <= 60, (
            f"{path.name}:{job_id} timeout-minutes={minutes!r}"
        )


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_failure_is_swallowed(path: Path) -> None:
    text = path.read_text()
    assert not SWALLOWED.search(text), f"{path.name} swallows a failure with `|| true`"
    assert "continue-on-error" not in text


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_token_has_no_scope_by_default_and_each_job_only_what_it_needs(path: Path) -> None:
    doc = load_path(path)
    assert doc.get("permissions") == {}, f"{path.name}: top-level permissions must be {{}}"
    for job_id, job in jobs(doc).items():
        perms = job.get("permissions")
        assert isinstance(perms, dict), f"{path.name}:{job_id} declares no permissions"
        assert set(perms.values()) <= {"read", "write", "none"}
        writes = {scope for scope, level in perms.items() if level == "write"}
        assert writes <= WRITE_SCOPES.get((path.name, job_id), set()), (
            f"{path.name}:{job_id} writes with {sorted(writes)}"
        )


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda p: p.name)
def test_no_expression_is_spliced_into_code(path: Path) -> None:
    """Values reach shell and github-script code through env, never as `${{ }}` text."""
    for job_id, s in steps(load_path(path)):
        for code in (s.get("run"), s.get("with", {}).get("script")):
            if code is not None:
                assert "${{" not in code, f"{path.name}:{job_id} splices an expression into code"


# --- the pull request workflow ------------------------------------------------


def test_pull_request_workflow_has_no_secrets_and_a_read_only_token() -> None:
    text = (WORKFLOW_DIR / "pull-request.yml").read_text()
    assert "${{ secrets." not in text
    doc = load("pull-request.yml")
    assert "pull_request" in doc["on"]
    assert "pull_request_target" not in doc["on"]
    for job_id, job in jobs(doc).items():
        assert job["permissions"].get("contents") == "read", job_id


def _fake_venv(tmp_path: Path, stdout: str, status: int) -> dict[str, str]:
    """A work tree whose `escalade` prints STDOUT and exits STATUS."""
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (tmp_path / "out.txt").write_text(stdout)
    fake = bin_dir / "escalade"
    fake.write_text(f'#!/bin/sh\ncat "{tmp_path / "out.txt"}"\nexit {status}\n')
    fake.chmod(0o755)
    (bin_dir / "python").symlink_to(sys.executable)
    summary = tmp_path / "summary.md"
    summary.touch()
    return {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "BASE_SHA": "0" * 40}


def _run_step(script: str, cwd: Path, env: dict[str, str]) -> int:
    # how GitHub runs a `run:` step on ubuntu with the default shell
    return subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd,
        env=env,
        capture_output=True,
        check=False,
    ).returncode


SARIF = json.dumps({"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}}]})


@pytest.mark.parametrize(
    ("stdout", "status", "passes"),
    [
        (SARIF, 0, True),  # clean
        (SARIF, 1, True),  # findings: the SARIF is uploaded, annotations fail the job
        ("", 1, False),  # exit 1 with no SARIF log: a Python traceback
        ("not json", 1, False),
        (SARIF, 2, False),  # usage error
        ("", 139, False),  # killed
    ],
)
def test_sarif_step_tells_findings_from_a_crash(
    tmp_path: Path, stdout: str, status: int, passes: bool
) -> None:
    s = step(load("pull-request.yml"), "check", "sarif")
    assert (_run_step(s["run"], tmp_path, _fake_venv(tmp_path, stdout, status)) == 0) is passes
    upload = [
        x
        for x in jobs(load("pull-request.yml"))["check"]["steps"]
        if "upload-sarif" in x.get("uses", "")
    ]
    assert len(upload) == 1 and "steps.sarif.outcome == 'success'" in upload[0]["if"]


@pytest.mark.parametrize(("status", "passes"), [(0, True), (3, True), (1, False), (2, False)])
def test_diff_step_tells_a_behaviour_change_from_a_failure(
    tmp_path: Path, status: int, passes: bool
) -> None:
    doc = load("pull-request.yml")
    s = next(x for x in jobs(doc)["diff"]["steps"] if x.get("name") == "escalade diff")
    assert (_run_step(s["run"], tmp_path, _fake_venv(tmp_path, "## diff\n", status)) == 0) is passes


def test_the_artifact_holds_no_pull_request_number() -> None:
    for name in ("pull-request.yml", "pr-comment.yml"):
        text = (WORKFLOW_DIR / name).read_text()
        assert not re.search(r"pr[-_ ]?number", text, re.IGNORECASE), name
    diff = jobs(load("pull-request.yml"))["diff"]["steps"]
    keep = next(x for x in diff if x.get("name") == "keep the comment for the trusted poster")
    assert "pull_request.number" not in json.dumps(keep)
    assert keep["run"].split() == ["mkdir", "-p", "comment", "cp", "diff.md", "comment/diff.md"]


# --- the comment poster -------------------------------------------------------


def test_comment_poster_never_runs_pull_request_code() -> None:
    doc = load("pr-comment.yml")
    assert "workflow_run" in doc["on"]
    text = (WORKFLOW_DIR / "pr-comment.yml").read_text()
    assert "actions/checkout" not in text
    # only the artifact is read, by github-script: no shell step at all
    assert not re.search(r"^\s+(- )?run:", text, re.MULTILINE)
    for _, s in steps(doc):
        assert "run" not in s
        assert s.get("uses", "").split("@")[0] in {
            "actions/github-script",
            "actions/download-artifact",
        }


HARNESS = r"""
const fs = require('fs');
const sc = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const out = { outputs: {}, calls: [], notices: [], failed: null };
const page = (xs) => ({ data: xs });
const rest = {
  pulls: {
    list: async (p) => { out.calls.push(['pulls.list', p]); return page(sc.pulls); },
    get: async (p) => page((sc.pulls_now || sc.pulls).find(x => x.number === p.pull_number)),
  },
  actions: {
    listWorkflowRunArtifacts: async (p) => page({ artifacts: sc.artifacts }),
  },
  issues: {
    listComments: async (p) => { out.calls.push(['issues.listComments', p]); return page(sc.comments); },
    createComment: async (p) => { out.calls.push(['issues.createComment', p]); return page({}); },
    updateComment: async (p) => { out.calls.push(['issues.updateComment', p]); return page({}); },
  },
};
const github = { rest, paginate: async (fn, p) => (await fn(p)).data };
const context = { repo: { owner: 'org', repo: 'escalade' }, payload: { workflow_run: sc.run } };
const core = {
  setOutput: (k, v) => { out.outputs[k] = v; },
  notice: (m) => out.notices.push(String(m)),
  info: () => {}, warning: (m) => out.notices.push(String(m)),
  setFailed: (m) => { out.failed = String(m); },
};
const AsyncFunction = Object.getPrototypeOf(async function () {}).constructor;
new AsyncFunction('require', 'github', 'context', 'core', sc.script)(require, github, context, core)
  .then(() => console.log(JSON.stringify(out)))
  .catch((e) => { console.error(e); process.exit(1); });
"""

HEAD = "a" * 40
FORK = {"id": 99, "full_name": "mallory/escalade"}
RUN = {
    "id": 4242,
    "event": "pull_request",
    "head_sha": HEAD,
    "head_branch": "feature",
    "head_repository": FORK,
    "pull_requests": [],  # always empty for a fork's run
}


def pull(number: int, sha: str = HEAD, repo: dict[str, Any] = FORK) -> dict[str, Any]:
    return {"number": number, "state": "open", "head": {"sha": sha, "ref": "feature", "repo": repo}}


def post(tmp_path: Path, **scenario: Any) -> dict[str, Any]:
    """Run the poster's two github-script steps, as the workflow does, against a fake API."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    doc = load("pr-comment.yml")
    scripted = [s for _, s in steps(doc) if s.get("uses", "").startswith("actions/github-script@")]
    assert [s.get("id") for s in scripted] == ["pr", None]
    find, poster = scripted
    artifact = tmp_path / "comment"
    artifact.mkdir()
    (artifact / "diff.md").write_text(scenario.pop("diff", "## Behaviour\n\nno change\n"))
    # what a hostile fork's run would add to its artifact: it must change nothing
    (artifact / "pr-number").write_text("1\n")
    (artifact / "pr_number").write_text("1\n")
    scenario.setdefault("run", RUN)
    scenario.setdefault("comments", [])
    scenario.setdefault("artifacts", [{"name": "escalade-diff", "expired": False}])
    (tmp_path / "harness.js").write_text(HARNESS)

    def script(code: str, env: dict[str, str]) -> dict[str, Any]:
        sc = tmp_path / "scenario.json"
        sc.write_text(json.dumps({**scenario, "script": code}))
        proc = subprocess.run(
            [node, str(tmp_path / "harness.js"), str(sc)],
            cwd=tmp_path,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        out: dict[str, Any] = json.loads(proc.stdout)
        return out

    found = script(find["with"]["script"], {})
    result = {"found": found, "posted": None}
    # `if: steps.pr.outputs.number != ''` gates the download and the post
    assert poster["if"] == "steps.pr.outputs.number != ''"
    number = found["outputs"].get("number", "")
    if number != "":
        assert poster["env"] == {"PULL": "${{ steps.pr.outputs.number }}"}
        result["posted"] = script(poster["with"]["script"], {"PULL": number})
    return result


def writes(result: dict[str, Any]) -> list[list[Any]]:
    calls = result["posted"]["calls"] if result["posted"] else []
    return [c for c in calls if c[0] in ("issues.createComment", "issues.updateComment")]


def test_poster_comments_on_the_fork_pull_request_found_by_its_head_commit(tmp_path: Path) -> None:
    diff = "## Behaviour\n\n`$(rm -rf /)` ${{ secrets.X }} stays text\n"
    result = post(tmp_path, pulls=[pull(1, sha="b" * 40), pull(7)], diff=diff)
    assert result["found"]["outputs"] == {"number": "7"}
    assert result["found"]["calls"][0] == [
        "pulls.list",
        {"owner": "org", "repo": "escalade", "state": "open", "per_page": 100},
    ]
    [(_, created)] = writes(result)
    assert created["issue_number"] == 7  # not the 1 the artifact claims
    assert created["body"] == "<!-- escalade-diff -->\n" + diff


def test_poster_posts_nothing_without_an_open_pull_request_at_that_commit(tmp_path: Path) -> None:
    result = post(tmp_path, pulls=[pull(1, sha="b" * 40)])
    assert result["found"]["outputs"] == {}
    assert result["posted"] is None


def test_poster_ignores_the_same_commit_pushed_from_another_repository(tmp_path: Path) -> None:
    other = {"id": 5, "full_name": "someone/escalade"}
    result = post(tmp_path, pulls=[pull(3, repo=other)])
    assert result["found"]["outputs"] == {}
    assert result["posted"] is None


def test_poster_posts_nothing_when_the_pull_request_moved_on(tmp_path: Path) -> None:
    result = post(tmp_path, pulls=[pull(7)], pulls_now=[pull(7, sha="c" * 40)])
    assert result["found"]["outputs"] == {"number": "7"}
    assert writes(result) == []


def test_poster_posts_nothing_when_the_run_left_no_artifact(tmp_path: Path) -> None:
    result = post(tmp_path, pulls=[pull(7)], artifacts=[])
    assert result["posted"] is None


def test_poster_updates_its_one_sticky_comment(tmp_path: Path) -> None:
    comments = [
        {
            "id": 10,
            "user": {"login": "mallory", "type": "User"},
            "body": "<!-- escalade-diff -->\nfake",
        },
        {"id": 11, "user": {"login": "github-actions[bot]", "type": "Bot"}, "body": "lgtm"},
        {
            "id": 12,
            "user": {"login": "github-actions[bot]", "type": "Bot"},
            "body": "<!-- escalade-diff -->\nold",
        },
    ]
    result = post(tmp_path, pulls=[pull(7)], comments=comments)
    [(kind, params)] = writes(result)
    assert kind == "issues.updateComment" and params["comment_id"] == 12


def test_poster_truncates_a_huge_diff(tmp_path: Path) -> None:
    result = post(tmp_path, pulls=[pull(7)], diff="x" * 5_000_000)
    [(_, created)] = writes(result)
    assert len(created["body"]) < 60_100
    assert created["body"].endswith("(truncated; see the job summary)")


# --- release --------------------------------------------------------------------


def test_release_signs_with_a_repository_secret() -> None:
    text = (WORKFLOW_DIR / "release.yml").read_text()
    assert "secrets.ESCALADE_SIGNING_KEY" in text
    assert "pack sign" in text and "gh release create" in text
    # the key reaches the signing step only
    holders = [s for _, s in steps(load("release.yml")) if "ESCALADE_SIGNING_KEY" in json.dumps(s)]
    assert [s["name"] for s in holders] == ["sign"]
