"""``escalade init``: a new policy repository passes check, build --check and test at once.

The real ``escalade`` executable runs in a fresh directory, for the starter and for
each bundled use case: init, then check --strict, build --check, test and fmt --check
all exit 0 (no network: nothing is fetched). The bundled use cases are package data
generated from policies/ and must stay identical to it; the workflow and pre-commit
configuration a new repository gets are valid and use this project's hooks and pins.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from escalade.compiler import load_policy_set
from escalade.compiler.diagnostics import Collector
from escalade.compiler.parse import parse_source
from escalade.compiler.sarif import INFORMATION_URI
from escalade.compiler.scaffold import ScaffoldError, create, example_names
from escalade.compiler.scaffold.bundle import (
    BUNDLE_NAME,
    REGENERATE,
    bundle_json,
    bundled_files,
    use_cases,
)
from escalade.compiler.scaffold.prune import example_policies
from escalade.compiler.scaffold.render import escalade_version

REPO = Path(__file__).resolve().parents[2]
ESCALADE = Path(sys.executable).parent / "escalade"
BUNDLED_USE_CASES = ["content-ops", "customer-ops", "integrations", "revenue-ops", "support"]
WORKFLOW = ".github/workflows/escalade.yml"


def escalade(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ESCALADE), *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=300
    )


@pytest.mark.parametrize("example", [None, *BUNDLED_USE_CASES], ids=lambda e: e or "starter")
def test_a_new_repository_passes_check_build_check_and_test(
    example: str | None, tmp_path: Path
) -> None:
    target = tmp_path / "team-policies"
    init = escalade("init", str(target), *(["--example", example] if example else []), cwd=tmp_path)
    assert init.returncode == 0, init.stdout + init.stderr
    assert "Next steps:" in init.stdout
    for command in (
        ["check", "--strict"],
        ["build", "--check"],
        ["test"],
        ["fmt", "--check", "policies"],
    ):
        done = escalade(*command, cwd=target)
        assert done.returncode == 0, f"escalade {' '.join(command)}\n{done.stdout}{done.stderr}"
    assert "0 error(s), 0 warning(s)" in escalade("check", cwd=target).stdout
    assert (target / ".github" / "CODEOWNERS").is_file()
    assert (target / "generated" / "rulepack.json").is_file()
    if shutil.which("git"):
        assert (target / ".git").is_dir()


def test_the_bundled_use_cases_are_the_repositorys_policies() -> None:
    packaged = REPO / "compiler" / "scaffold" / BUNDLE_NAME
    assert packaged.read_text("utf-8") == bundle_json(REPO / "policies"), f"run: {REGENERATE}"
    assert bundled_files() == {
        p.name: p.read_text("utf-8") for p in sorted((REPO / "policies").glob("*.esc"))
    }
    assert example_names() == sorted(use_cases()) == BUNDLED_USE_CASES


def test_the_bundle_module_prints_the_bundle() -> None:
    printed = subprocess.run(
        [sys.executable, "-m", "escalade.compiler.scaffold.bundle", "policies"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    assert printed.decode("utf-8") == bundle_json(REPO / "policies")


@pytest.mark.parametrize("example", BUNDLED_USE_CASES)
def test_a_use_case_keeps_its_policy_and_test_and_only_what_they_use(example: str) -> None:
    files = example_policies(example)
    case = use_cases()[example]
    for own in (case.policy_file, case.test_file):
        assert files[own] == (REPO / "policies" / own).read_text("utf-8")
    others = [c.policy_file for c in use_cases().values() if c.name != example]
    assert not set(others) & set(files)
    sources = sorted((k, v) for k, v in files.items() if not k.endswith("_test.esc"))
    result = load_policy_set("policies", sources=sources)
    assert result.diagnostics == []
    everything = load_policy_set(REPO / "policies").pset
    assert result.pset is not None and everything is not None
    assert set(result.pset.people) < set(everything.people)  # the others' people are gone


def test_a_non_empty_directory_is_refused_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("ours\n")
    refused = escalade("init", str(tmp_path), cwd=tmp_path)
    assert refused.returncode == 1
    assert "is not empty (notes.txt)" in refused.stderr and "--force" in refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    forced = escalade("init", str(tmp_path), "--force", "--no-git", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert (tmp_path / "notes.txt").read_text() == "ours\n"
    assert (tmp_path / "escalade.yaml").is_file() and not (tmp_path / ".git").exists()


def test_a_fresh_clone_counts_as_empty_and_keeps_its_repository(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    created = create(tmp_path)
    assert created.git == "existing"
    assert "README.md" in created.sources and ".github/CODEOWNERS" in created.generated


def test_an_unknown_example_is_refused(tmp_path: Path) -> None:
    done = escalade("init", str(tmp_path / "x"), "--example", "billing-ops", cwd=tmp_path)
    assert done.returncode == 2
    assert "billing-ops" in done.stderr and "customer-ops" in done.stderr
    with pytest.raises(ScaffoldError, match="no bundled use case 'billing-ops'"):
        create(tmp_path / "y", "billing-ops")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


# ----------------------------------------------------------------- what the repository holds


@pytest.fixture(scope="module")
def starter(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("starter")
    create(root, git=False)
    return root


def test_the_workflow_installs_escalade_as_a_package_and_runs_the_checks(starter: Path) -> None:
    text = (starter / WORKFLOW).read_text("utf-8")
    doc = yaml.safe_load(text)
    assert doc["env"]["ESCALADE_PACKAGE"] == f"escalade=={escalade_version()}"
    runs = [s.get("run", "") for s in doc["jobs"]["policies"]["steps"]]
    assert 'python -m pip install "$ESCALADE_PACKAGE"' in runs
    assert any(r.startswith("escalade check policies/ --strict") for r in runs)
    assert "escalade build --check" in runs
    assert "escalade test policies/" in runs
    assert "make " not in text and "not published on PyPI yet" in text
    summary = [r for r in runs if "GITHUB_STEP_SUMMARY" in r]
    assert summary and (starter / summary[0].split()[1]).is_file()


def test_the_workflow_is_valid_and_pins_the_actions_this_repository_pins(starter: Path) -> None:
    exe = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert exe is not None
    valid = subprocess.run(
        [exe, "--builtin-schema", "vendor.github-workflows", str(starter / WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert valid.returncode == 0, valid.stdout + valid.stderr
    uses = re.compile(r"uses:\s*(\S+)\s*(#.*)?$", re.M)
    ours = {
        m.group(1): m.group(2)
        for p in (REPO / ".github" / "workflows").glob("*.yml")
        for m in uses.finditer(p.read_text("utf-8"))
    }
    theirs = {m.group(1): m.group(2) for m in uses.finditer((starter / WORKFLOW).read_text())}
    assert theirs and all(ours.get(ref) == tag for ref, tag in theirs.items()), theirs


def test_pre_commit_uses_every_escalade_hook(starter: Path) -> None:
    config = yaml.safe_load((starter / ".pre-commit-config.yaml").read_text("utf-8"))
    (repo,) = config["repos"]
    manifest = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text("utf-8"))
    assert repo["repo"] == INFORMATION_URI and repo["rev"] == f"v{escalade_version()}"
    assert [h["id"] for h in repo["hooks"]] == [h["id"] for h in manifest]
    valid = subprocess.run(
        [sys.executable, "-m", "pre_commit", "validate-config", ".pre-commit-config.yaml"],
        cwd=starter,
        capture_output=True,
        text=True,
        check=False,
    )
    assert valid.returncode == 0, valid.stdout + valid.stderr


def test_the_readme_names_every_policy_and_its_examples_compile(starter: Path) -> None:
    readme = (starter / "README.md").read_text("utf-8")
    assert readme.startswith("# starter")
    for path in sorted(p.relative_to(starter).as_posix() for p in starter.rglob("*.esc")):
        assert f"`{path}`" in readme
    assert "`critical_ticket` (Critical ticket)" in readme and "`outage`" in readme
    fences = re.findall(r"^```(\w*)\n(.*?)^```", readme, re.S | re.M)
    declarations, test = [block for lang, block in fences if not lang]
    tree = parse_source("readme.esc", declarations, Collector())
    assert tree is not None and len(tree.decls) == 5
    assert test.startswith('test "') and "expect owner" in test


def test_the_starter_uses_each_construct_of_the_language(starter: Path) -> None:
    text = "\n".join(p.read_text("utf-8") for p in sorted((starter / "policies").glob("*.esc")))
    statements = (
        "event ",
        "schema ",
        "person ",
        "team ",
        "rotation weekly",
        "channel ",
        "template ",
        "coverage ",
        "title ",
        "description ",
        "approvers ",
        "priority ",
        "trigger ",
        " after ",
        "when ",
        "owner primary",
        "owner backup",
        "owner escalation",
        "repeat ",
        "sla acknowledge",
        "sla resolve",
        "step ",
        "guide ",
        "on breach",
        "check delivery",
        "check state",
        "check close requires",
        "exception outage when",
        "handoff ",
        "exception unknown triage",
        "postmortem",
        "use ",
        "cooldown ",
        'test "',
        "expect ",
    )
    assert [s for s in statements if s not in text] == []
    created = json.loads((starter / "generated" / "rulepack.json").read_text("utf-8"))
    assert created["metadata"]["version"] == "0.1.0"
