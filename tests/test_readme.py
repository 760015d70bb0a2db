"""The README and docs/ are true: commands run, examples compile, links resolve.

Each fenced block of README.md with lines starting ``escalade `` (or ``$ escalade ``)
is a session: its lines run in order, through the real command
(``escalade.compiler.cli:main``), in a fresh copy of the bundled policies,
generated files and examples that is its own git repository. A line exits 0
unless its comment documents another code (``# exit 1: ...``).

Every block marked ``esc`` in docs/language.md is a complete file that, checked
with the repository's policies/, adds no finding. Links in README.md and docs/
stay inside the repository and point at files and headings that exist.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from escalade.compiler import load_policy_set
from escalade.compiler.cli import main

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
COPIED = ("policies", "generated", "examples", "escalade.yaml", ".github/CODEOWNERS")
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)
_EXIT = re.compile(r"#.*\bexit (\d+)\b")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_ESC_BLOCK = re.compile(r"^```esc\n(.*?)^```", re.S | re.M)
DOCS = sorted((REPO / "docs").glob("*.md"))


@dataclass(frozen=True)
class Command:
    line: str
    args: list[str]
    exit_code: int


def readme_sessions(text: str) -> list[list[Command]]:
    """The `escalade` lines of each fenced block that has any, in order."""
    sessions = []
    for block in _FENCE.findall(text):
        commands = []
        for raw in block.splitlines():
            line = raw.strip().removeprefix("$ ")
            if not line.startswith("escalade "):
                continue
            expected = _EXIT.search(line)
            args = shlex.split(line, comments=True)[1:]
            commands.append(Command(line, args, int(expected.group(1)) if expected else 0))
        if commands:
            sessions.append(commands)
    return sessions


SESSIONS = readme_sessions(README.read_text("utf-8"))


def test_the_readme_shows_commands_and_a_two_command_quick_start() -> None:
    text = README.read_text("utf-8")
    assert len(SESSIONS) >= 3
    quick = text.split("## Quick start", 1)[1]
    first_block = _FENCE.search(quick)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]


def _workspace(tmp: Path) -> Path:
    work = tmp / "repo"
    for name in COPIED:
        source = REPO / name
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    git = ["git", "-c", "user.name=readme", "-c", "user.email=readme@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=work, check=True)
    subprocess.run([*git, "add", "-A"], cwd=work, check=True)
    subprocess.run([*git, "commit", "-q", "-m", "README session"], cwd=work, check=True)
    return work


@pytest.mark.parametrize("session", SESSIONS, ids=lambda s: s[0].line[:60])
def test_every_readme_command_runs(
    session: list[Command], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ESCALADE_TRUSTED_KEYS", raising=False)
    monkeypatch.chdir(_workspace(tmp_path))
    for command in session:
        result = CliRunner().invoke(main, command.args)
        assert result.exit_code == command.exit_code, (
            f"$ {command.line}\n(exit {result.exit_code}, README says {command.exit_code})\n"
            f"{result.output}{result.exception!r}"
        )


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page."""
    text = _FENCE.sub("", page.read_text("utf-8"))
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", text, re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        out.add(slug)
    return out


@pytest.mark.parametrize("page", [README, *DOCS], ids=lambda p: p.name)
def test_links_stay_inside_the_repository_and_resolve(page: Path) -> None:
    links = _LINK.findall(_FENCE.sub("", page.read_text("utf-8")))
    for link in links:
        if page != README and link.startswith("https://"):
            continue  # docs may cite outside references; the README may not
        target, _, anchor = link.partition("#")
        assert "://" not in link and not link.startswith("/"), f"{page.name}: {link}"
        file = (page.parent / target).resolve() if target else page
        assert file.is_relative_to(REPO) and file.exists(), f"{page.name}: broken link {link}"
        if anchor and file.suffix == ".md":
            assert anchor in _anchors(file), f"{page.name}: no heading for {link}"


LANGUAGE_EXAMPLES = _ESC_BLOCK.findall((REPO / "docs" / "language.md").read_text("utf-8"))


def test_the_language_reference_has_checked_examples() -> None:
    assert len(LANGUAGE_EXAMPLES) >= 5


def _example_id(example: str) -> str:
    found = re.search(r"^(?:policy|template) (\w+)", example, re.M)
    return found.group(1) if found else example[:20]


@pytest.mark.parametrize("example", LANGUAGE_EXAMPLES, ids=_example_id)
def test_every_language_example_compiles_cleanly_with_the_policies(example: str) -> None:
    policies = REPO / "policies"
    sources = [
        (f"policies/{f.relative_to(policies).as_posix()}", f.read_text("utf-8"))
        for f in sorted(policies.rglob("*.esc"))
        if not f.name.endswith("_test.esc")
    ]
    result = load_policy_set(policies, sources=[*sources, ("policies/doc_example.esc", example)])
    found = [(d.code, d.span.file, d.span.line, d.message) for d in result.diagnostics]
    assert found == []
