"""GitHub workflows validate against the workflow schema and keep forks safe."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))


def load(name: str) -> dict[str, object]:
    doc = yaml.safe_load((REPO / ".github" / "workflows" / name).read_text())
    assert isinstance(doc, dict)
    # YAML 1.1 reads the key `on` as True
    if True in doc:
        doc["on"] = doc.pop(True)
    return doc


def test_workflows_validate_against_the_github_schema() -> None:
    assert len(WORKFLOWS) >= 3
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert exe is not None
    proc = subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", *map(str, WORKFLOWS)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    """The validation above can fail: a job without runs-on is refused."""
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\non: push\njobs:\n  a:\n    steps: 3\n")
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert exe is not None
    proc = subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode != 0


def test_pull_request_workflow_has_no_secrets_and_a_read_only_token() -> None:
    text = (REPO / ".github" / "workflows" / "pull-request.yml").read_text()
    assert "${{ secrets." not in text
    doc = load("pull-request.yml")
    assert doc["permissions"] == {"contents": "read"}
    assert "pull_request" in doc["on"]  # type: ignore[operator]
    assert "pull_request_target" not in doc["on"]  # type: ignore[operator]


def test_comment_poster_never_runs_pull_request_code() -> None:
    doc = load("pr-comment.yml")
    assert "workflow_run" in doc["on"]  # type: ignore[operator]
    text = (REPO / ".github" / "workflows" / "pr-comment.yml").read_text()
    assert "actions/checkout" not in text
    # only the artifact is read, by github-script: no shell step at all
    assert not re.search(r"^\s+(- )?run:", text, re.MULTILINE)


def test_release_signs_with_a_repository_secret() -> None:
    text = (REPO / ".github" / "workflows" / "release.yml").read_text()
    assert "secrets.ESCALADE_SIGNING_KEY" in text
    assert "pack sign" in text and "gh release create" in text
