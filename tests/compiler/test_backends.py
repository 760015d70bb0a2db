"""Back ends: golden packs/runbooks/CODEOWNERS, determinism, schema, `build --check`.

Golden sets live in ``tests/cases/backends/<name>/`` (``*.esc``), their expected
outputs in ``<name>/expected/``; a missing or different one fails. Regenerate after an
intended change with ``ESCALADE_REGEN=1 .venv/bin/python -m pytest
tests/compiler/test_backends.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from escalade.compiler.backends.codeowners import OWNER_RE, line_problem, render_codeowners
from escalade.compiler.backends.rulepack import build_pack
from escalade.compiler.backends.runbooks import mermaid_label, render_runbooks
from escalade.compiler.build import build_outputs, load_for_build
from escalade.compiler.cli import main
from escalade.compiler.config import ConfigError, load_config
from escalade.runtime.pack import RulePack, canonical_bytes, pack_schema
from tests.conftest import BROKEN, check_golden

REPO = Path(__file__).resolve().parents[2]
CASES = REPO / "tests" / "cases" / "backends"
CASE_NAMES = sorted(p.name for p in CASES.iterdir() if p.is_dir())


def built(path: Path, root: Path = REPO, version: str = "0.0.0") -> RulePack:
    result = load_for_build(path, root, version)
    assert result.errors == 0, [str(d) for d in result.diagnostics]
    assert result.pset is not None
    raw = build_pack(result.pset)
    jsonschema.Draft202012Validator(pack_schema()).validate(raw)  # every pack built is valid
    return RulePack.from_dict(raw)


@pytest.mark.parametrize("name", CASE_NAMES)
def test_golden_pack_runbooks_codeowners(name: str) -> None:
    case = CASES / name
    result = load_for_build(case, REPO, "0.0.0")
    assert result.errors == 0 and result.pset is not None
    pack = built(case)
    check_golden(case / "expected" / f"{name}.rulepack.json", pack.to_bytes().decode("utf-8"))
    for page, text in render_runbooks(pack).items():
        check_golden(case / "expected" / "runbooks" / page, text)
    check_golden(case / "expected" / "CODEOWNERS", render_codeowners(result.pset))


def test_pack_paths_are_repo_relative_posix() -> None:
    pack = built(CASES / "minimal")
    for p in pack.policies:
        assert p.file == "tests/cases/backends/minimal/set.esc"
        assert not p.file.startswith("/")


def test_conditions_and_args_are_typed_in_the_pack() -> None:
    pack = built(CASES / "minimal")
    urgent, slow = pack.policy("urgent"), pack.policy("slow")
    score = urgent.raw["when"]["args"][1]["args"][0]
    assert score == {"op": "cmp", "field": "ticket.score", "cmp": ">=", "value": 7.5}
    age = slow.raw["when"]["args"][1]
    assert age == {"op": "cmp", "field": "ticket.age", "cmp": ">", "value": 7200}
    assert slow.after == 3600
    # template expansion: the step is located at the `use` line of the policy file
    notify = urgent.steps[0]
    assert notify.args[0] == {"ref": "alerts", "kind": "channel"}
    assert notify.line == 34
    assert urgent.steps[1].guide == "Read the last three comments first."
    assert slow.steps[0].args == ({"field": "ticket.title"}, {"text": "SLOW: {{ ticket.title }}"})
    assert [h.failure for h in urgent.handoffs] == ["unacknowledged"]
    assert pack.actions == ("manual", "notify", "set")


def test_determinism_across_two_build_directories(tmp_path: Path, policies_dir: Path) -> None:
    outputs = []
    for where in ("one", "two/deeper"):
        root = tmp_path / where
        shutil.copytree(policies_dir, root / "policies")
        shutil.copy(REPO / "escalade.yaml", root / "escalade.yaml")
        cwd = os.getcwd()
        os.chdir(tmp_path)  # build from outside the repository, by path
        try:
            result = CliRunner().invoke(main, ["build", str(root / "policies")])
        finally:
            os.chdir(cwd)
        assert result.exit_code == 0, result.output
        files = sorted(p for p in root.rglob("*") if p.is_file() and "policies" not in p.parts)
        outputs.append({p.relative_to(root).as_posix(): p.read_bytes() for p in files})
    assert outputs[0] == outputs[1]
    assert "generated/rulepack.json" in outputs[0]
    assert "generated/runbooks/enterprise_critical.md" in outputs[0]
    assert ".github/CODEOWNERS" in outputs[0]
    assert outputs[0]["generated/rulepack.json"] == (REPO / "generated/rulepack.json").read_bytes()


def test_generated_is_fresh() -> None:
    """The committed generated/ and CODEOWNERS are what `escalade build` would write."""
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        result = CliRunner().invoke(main, ["build", "--check"])
    finally:
        os.chdir(cwd)
    assert result.exit_code == 0, result.output


def test_build_check_reports_stale_and_leftover_files(tmp_path: Path, policies_dir: Path) -> None:
    shutil.copytree(policies_dir, tmp_path / "policies")
    (tmp_path / "escalade.yaml").write_text("version: 2.0.0\n")
    runner = CliRunner()
    assert runner.invoke(main, ["build", str(tmp_path / "policies")]).exit_code == 0
    page = tmp_path / "generated/runbooks/enterprise_critical.md"
    page.write_text(page.read_text().replace("Carol Diaz", "Somebody Else"))
    (tmp_path / "generated/runbooks/removed_policy.md").write_text("old\n")
    result = runner.invoke(main, ["build", "--check", str(tmp_path / "policies")])
    assert result.exit_code == 1
    assert "--- a/generated/runbooks/enterprise_critical.md" in result.output
    assert "+++ b/generated/runbooks/enterprise_critical.md" in result.output
    assert "-| backup | **Somebody Else**" in result.output
    assert "+++ /dev/null" in result.output  # the leftover page would be removed
    assert runner.invoke(main, ["build", str(tmp_path / "policies")]).exit_code == 0
    assert not (tmp_path / "generated/runbooks/removed_policy.md").exists()
    pack = RulePack.load(tmp_path / "generated/rulepack.json")
    assert pack.version == "2.0.0"


def test_build_refuses_a_set_with_errors(tmp_path: Path) -> None:
    shutil.copy(BROKEN / "enum_typo.esc", tmp_path / "enum_typo.esc")
    result = CliRunner().invoke(main, ["build", str(tmp_path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "E104" in result.output
    assert not (tmp_path / "out").exists()


def test_enterprise_critical_runbook_content() -> None:
    text = (REPO / "generated/runbooks/enterprise_critical.md").read_text()
    assert (
        "when a ticket is created or updated, its severity is *critical* and the account's tier "
        "is *enterprise*" in text
    )
    assert "| 5m | no ack → **Carol Diaz** (backup)" in text
    assert "| 15m | no ack → **Dana Okafor** (escalation)" in text
    assert "| 30m | no ack → pass 2 of the chain" in text
    assert "| 1h | unacknowledged → Type B: **Dana Okafor** triages, post-mortem required" in text
    assert "**cust_ops_oncall** hands over every Monday at 09:00 UTC, in this order: " in text
    assert "| 5m | no ack → **Carol Diaz** (backup) · acknowledge SLA breached unless" in text
    assert "```mermaid\nflowchart TD\n" in text
    assert "- [ ] Every notification is delivered within 1m (else retried 3 times)" in text
    assert "hand off to [`vendor_outage`](vendor_outage.md)" in text
    assert "Approvers: @example/customer-ops-leads" in text
    assert "policies/customer_ops.esc:3" in text and "Pack 1.0.0" in text
    index = (REPO / "generated/runbooks/README.md").read_text()
    assert "[`enterprise_critical`](enterprise_critical.md)" in index


_NODE = re.compile(r"^  ([A-Za-z][A-Za-z0-9_]*)(\[|\(\[|\()(\"[^\"]*\")(\]|\]\)|\))$")
_EDGE = re.compile(
    r"^  ([A-Za-z][A-Za-z0-9_]*) (-->|-\.->)(\|\"[^\"]*\"\|)? ([A-Za-z][A-Za-z0-9_]*)$"
)


RUNBOOK_PAGES = sorted(
    [*(REPO / "generated/runbooks").glob("*.md"), *CASES.glob("*/expected/runbooks/*.md")]
)


@pytest.mark.parametrize("page", RUNBOOK_PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_mermaid_blocks_are_safe(page: Path) -> None:
    blocks = re.findall(r"```mermaid\n(.*?)```", page.read_text(), re.S)
    if page.name == "README.md":
        assert not blocks
        return
    assert len(blocks) == 1
    lines = blocks[0].rstrip("\n").split("\n")
    assert lines[0] == "flowchart TD"
    ids = set()
    for line in lines[1:]:
        node, edge = _NODE.match(line), _EDGE.match(line)
        assert node or edge, f"unsafe Mermaid line in {page.name}: {line!r}"
        if node:
            ids.add(node.group(1))
        else:
            assert edge is not None
            assert {edge.group(1), edge.group(4)} <= ids, line  # edges join declared nodes
    assert "end" not in ids


def test_mermaid_label_escapes_quotes_and_markup() -> None:
    assert mermaid_label('say "hi" <b>#1</b>') == '"say #quot;hi#quot; #lt;b#gt;#35;1#lt;/b#gt;"'


def test_codeowners_lines_are_valid_by_githubs_rules() -> None:
    text = (REPO / ".github/CODEOWNERS").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines
    for line in lines:
        assert line_problem(line) is None, line
        pattern, *owners = line.split()
        assert pattern.startswith("/")
        assert owners and all(OWNER_RE.match(o) for o in owners)
    assert any(line.startswith("/.github/ ") for line in lines)
    assert any(line.startswith("/escalade.yaml ") for line in lines)
    by_path = {line.split()[0]: line.split()[1:] for line in lines}
    assert by_path["/policies/customer_ops.esc"] == ["@example/customer-ops-leads"]
    assert len(by_path["/policies/directory.esc"]) == 4  # shared: every approver


@pytest.mark.parametrize(
    "line",
    [
        "/x.esc",  # no owner
        "!/x.esc @org/team",
        "/x[ab].esc @org/team",
        "/x.esc org/team",
        "/x.esc @-bad",
    ],
)
def test_invalid_codeowners_lines_are_caught(line: str) -> None:
    assert line_problem(line) is not None


def test_build_check_reports_invalid_approver(tmp_path: Path) -> None:
    src = (CASES / "minimal/set.esc").read_text().replace('"@acme/support"', '"support team"')
    (tmp_path / "set.esc").write_text(src)
    result = CliRunner().invoke(main, ["build", str(tmp_path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "approver 'support team'" in result.output
    assert "set.esc:" in result.output


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("version: 1.0\n", "escalade.yaml:1:10"),
        ("version: 1.0.0\nbogus: 3\n", "escalade.yaml:2:1"),
        ("version: [1\n", "escalade.yaml:2:1"),
        ("- a\n", "escalade.yaml:1:1"),
    ],
)
def test_config_errors_are_located(tmp_path: Path, text: str, where: str) -> None:
    (tmp_path / "escalade.yaml").write_text(text)
    with pytest.raises(ConfigError, match=re.escape(where)):
        load_config(tmp_path)


def test_config_defaults_without_a_file(tmp_path: Path) -> None:
    config = load_config(tmp_path)
    assert (config.version, config.policies, config.output) == ("0.0.0", "policies/", "generated/")


def test_build_outputs_match_canonical_bytes(policies_dir: Path) -> None:
    result = load_for_build(policies_dir, REPO, "1.0.0")
    outputs = build_outputs(result, REPO, REPO / "generated")
    raw = json.loads(outputs.files["generated/rulepack.json"])
    assert canonical_bytes(raw) == outputs.files["generated/rulepack.json"]
    assert outputs.files["generated/rulepack.json"].endswith(b"}\n")
