"""The published pre-commit hooks, run with `pre-commit try-repo` on a real policy repository.

Offline: the hook's environment installs escalade from a local wheelhouse
(`make wheelhouse`, part of `make test`), never from a package index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def wheelhouse() -> Path:
    path = Path(os.environ.get("ESCALADE_WHEELHOUSE", REPO / ".venv" / "wheelhouse"))
    if not (path / ".done").exists():
        if os.environ.get("CI"):
            pytest.fail(f"no wheelhouse at {path}: run `make wheelhouse`")
        pytest.skip(f"no wheelhouse at {path}: run `make wheelhouse` (make test does)")
    return path


def git(root: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com"}
    env |= {"GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True, env=env)


def test_hook_manifest_runs_over_the_whole_set() -> None:
    hooks = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    ids = {h["id"]: h for h in hooks}
    assert set(ids) == {"escalade-check", "escalade-build-check", "escalade-fmt"}
    whole_set = [h for h in hooks if h["id"] != "escalade-fmt"]
    assert all(h["pass_filenames"] is False for h in whole_set)
    assert ids["escalade-fmt"]["pass_filenames"] is True  # files format independently


def test_try_repo_against_a_policy_repository(tmp_path: Path) -> None:
    wheels = wheelhouse()
    policy_repo = tmp_path / "policies-repo"
    shutil.copytree(REPO / "policies", policy_repo / "policies")
    shutil.copytree(REPO / "generated", policy_repo / "generated")
    (policy_repo / ".github").mkdir()
    shutil.copy(REPO / ".github" / "CODEOWNERS", policy_repo / ".github" / "CODEOWNERS")
    shutil.copy(REPO / "escalade.yaml", policy_repo / "escalade.yaml")
    git(policy_repo, "init", "-q")
    git(policy_repo, "add", "-A")
    git(policy_repo, "commit", "-qm", "policies")

    env = {
        **os.environ,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "VIRTUALENV_NO_DOWNLOAD": "1",
    }
    pre_commit = [sys.executable, "-m", "pre_commit", "try-repo", str(REPO), "--all-files"]

    ok = subprocess.run(
        pre_commit, cwd=policy_repo, env=env, capture_output=True, text=True, check=False
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "escalade check" in ok.stdout and "escalade build --check" in ok.stdout
    assert "escalade fmt --check" in ok.stdout
    assert "Passed" in ok.stdout

    schema = policy_repo / "policies" / "customer_ops.esc"
    schema.write_text(schema.read_text().replace("== critical and", "== critcal and"))
    bad = subprocess.run(
        pre_commit, cwd=policy_repo, env=env, capture_output=True, text=True, check=False
    )
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "E104" in bad.stdout
