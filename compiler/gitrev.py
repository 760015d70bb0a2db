"""Reading a policy set as it was at a git revision, without touching the work tree."""

from __future__ import annotations

import subprocess
from pathlib import Path


class GitError(Exception):
    """A git command failed: not a repository, unknown revision, unreadable object."""


def _git(root: Path, *args: str) -> bytes:
    # The user's own git from PATH (S607), a list of arguments and no shell (S603). What
    # a user gives cannot read as an option: resolve refuses a revision starting with
    # "-", and paths come after "--" or behind a commit id.
    try:
        proc = subprocess.run(  # noqa: S603
            ["git", "-C", str(root), *args],  # noqa: S607
            capture_output=True,
            check=False,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise GitError(f"cannot run git: {exc}") from None
    if proc.returncode != 0:
        message = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise GitError(message[-1] if message else f"git {' '.join(args)} failed")
    return proc.stdout


def repo_root(start: Path) -> Path:
    """The top of the git work tree that holds ``start``."""
    return Path(_git(start, "rev-parse", "--show-toplevel").decode().strip())


def resolve(root: Path, rev: str) -> str:
    """The full commit id of ``rev``; GitError for an unknown revision."""
    if rev.startswith("-"):
        raise GitError(f"not a revision: {rev!r}")
    try:
        return _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}").decode().strip()
    except GitError:
        raise GitError(f"unknown revision {rev!r}") from None


def read_file(root: Path, commit: str, path: str) -> bytes | None:
    """A file's bytes at ``commit``, or None when it does not exist there."""
    try:
        return _git(root, "cat-file", "blob", f"{commit}:{path}")
    except GitError:
        return None


def list_files(root: Path, commit: str, folder: str, suffix: str) -> list[str]:
    """Repo-relative paths of the files under ``folder`` at ``commit`` ending in ``suffix``."""
    folder = folder.strip("/")
    out = _git(root, "ls-tree", "-r", "--name-only", "-z", commit, "--", folder or ".")
    names = [p for p in out.decode("utf-8", "replace").split("\0") if p]
    return sorted(p for p in names if p.endswith(suffix))


def dirty(root: Path, paths: list[str]) -> list[str]:
    """Paths under ``paths`` with uncommitted changes (untracked files included)."""
    out = _git(root, "status", "--porcelain", "-z", "--", *paths)
    return [entry[3:] for entry in out.decode("utf-8", "replace").split("\0") if len(entry) > 3]
