"""`build` never surprises after a clean `check`: where CODEOWNERS goes, and what it refuses.

CODEOWNERS is written only inside the repository holding the policies: to
.github/CODEOWNERS when the output directory is the configured one, or where
``--codeowners`` says. Policies outside the repository root are refused.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from escalade.compiler import load_policy_set
from escalade.compiler.build import build_outputs
from escalade.compiler.cli import main

CASES = Path(__file__).resolve().parent.parent / "cases"
SET = (CASES / "backends" / "minimal" / "set.esc").read_text("utf-8")


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "repo"
    (root / "policies").mkdir(parents=True)
    (root / "escalade.yaml").write_text("version: 1.0.0\n")
    (root / "policies" / "set.esc").write_text(SET)
    monkeypatch.chdir(root)
    assert CliRunner().invoke(main, ["build"]).exit_code == 0
    return root


def test_build_elsewhere_leaves_the_repositorys_codeowners_alone(repo: Path) -> None:
    before = (repo / ".github" / "CODEOWNERS").read_text()
    assert "/generated/ " in before
    result = CliRunner().invoke(main, ["build", "-o", str(repo.parent / "elsewhere")])
    assert result.exit_code == 0, result.output
    assert (repo.parent / "elsewhere" / "rulepack.json").is_file()
    assert (repo / ".github" / "CODEOWNERS").read_text() == before
    assert "CODEOWNERS not written" in result.output


def test_codeowners_goes_where_the_option_says_inside_the_repository(repo: Path) -> None:
    ok = CliRunner().invoke(main, ["build", "-o", "out", "--codeowners", "out/CODEOWNERS"])
    assert ok.exit_code == 0, ok.output
    assert "/out/ " in (repo / "out" / "CODEOWNERS").read_text()
    outside = repo.parent / "CODEOWNERS"
    refused = CliRunner().invoke(main, ["build", "-o", "out", "--codeowners", str(outside)])
    assert refused.exit_code == 1
    assert "outside the repository" in refused.output and not outside.exists()


def test_policies_outside_the_repository_are_refused(repo: Path) -> None:
    other = repo.parent / "other"
    other.mkdir()
    (other / "set.esc").write_text(SET)
    before = (repo / ".github" / "CODEOWNERS").read_text()
    result = CliRunner().invoke(main, ["build", str(other)])
    assert result.exit_code == 1
    assert "outside the repository" in result.output
    assert (repo / ".github" / "CODEOWNERS").read_text() == before


def test_the_codeowners_injection_is_a_located_check_error() -> None:
    text = SET.replace('"@acme/support"', '"@example/revops @evil/team\\n* @attacker"')
    assert text != SET
    result = load_policy_set("p", sources=[("p/set.esc", text)])
    (found,) = [d for d in result.diagnostics if d.code == "E502"]
    line = text.split("\n")[found.span.line - 1]
    assert line[found.span.col - 1 :].startswith('"@example/revops @evil/team\\n* @attacker"')


def test_a_repeat_build_cannot_schedule_is_a_located_check_error() -> None:
    assert "  repeat 2\n" in SET
    text = SET.replace("  repeat 2\n", "  repeat 1000000000\n")
    result = load_policy_set("p", sources=[("p/set.esc", text)])
    (found,) = [d for d in result.diagnostics if d.code == "E105"]
    assert text.split("\n")[found.span.line - 1].strip() == "repeat 1000000000"


def test_a_tag_with_a_newline_stays_on_its_line_in_the_runbook(tmp_path: Path) -> None:
    text = SET.replace('has "vip"', 'has "vip\\n# H1"')
    assert text != SET
    result = load_policy_set("p", sources=[("p/set.esc", text)])
    assert result.errors == 0, result.diagnostics
    outputs = build_outputs(result, tmp_path, tmp_path / "generated")
    pages = [v.decode() for k, v in outputs.files.items() if k.endswith(".md")]
    assert any("vip # H1" in page for page in pages)
    assert not any(line.startswith("# H1") for page in pages for line in page.split("\n"))
