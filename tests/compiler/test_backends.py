"""Back ends: golden packs/runbooks/CODEOWNERS, determinism, schema, `build --check`.

Golden sets live in ``tests/cases/backends/<name>/`` (``*.esc``), their expected
outputs in ``<name>/expected/``; a missing or different one fails. Regenerate after an
intended change with ``ESCALADE_REGEN=1 .venv/bin/python -m pytest
tests/compiler/test_backends.py`` and review the diff.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from escalade.compiler import CheckResult, algebra
from escalade.compiler.algebra import meet
from escalade.compiler.backends.codeowners import OWNER_RE, line_problem, render_codeowners
from escalade.compiler.backends.rivals import Rivals, policy_rivals
from escalade.compiler.backends.rulepack import build_pack
from escalade.compiler.backends.runbooks import mermaid_label, render_runbooks
from escalade.compiler.build import build_outputs, load_for_build
from escalade.compiler.cli import main
from escalade.compiler.config import ConfigError, load_config
from escalade.compiler.passes import analysis
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
    for page, text in render_runbooks(pack, policy_rivals(result.pset)).items():
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
    (tmp_path / "escalade.yaml").write_text("version: 1.0.0\n")  # a repository of its own
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
    pack = json.loads((REPO / "generated/rulepack.json").read_text())
    every_approver = {a for p in pack["policies"] for a in p["approvers"]}
    assert set(by_path["/policies/directory.esc"]) == every_approver  # shared: every approver
    assert len(every_approver) >= 4


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
    (tmp_path / "escalade.yaml").write_text("version: 1.0.0\n")  # a repository of its own
    result = CliRunner().invoke(main, ["build", str(tmp_path), "-o", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "E502" in result.output  # refused by the check, located, before any output
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


# --------------------------------------------------------------------------- precedence


def _set_text(policies: list[tuple[str, int, str, str]]) -> str:
    """A policy set: (name, priority, triggers, condition) each, on one small schema."""
    head = (
        "event ticket.created\nevent ticket.updated\n"
        "schema ticket { id: text  queue: text  severity: enum(low, medium, high, critical)"
        "  tier: enum(free, gold)  score: number  tags: set }\n"
        'person ann { email "ann@example.com" }\nperson ben { email "ben@example.com" }\n'
    )
    return head + "".join(
        f'policy {name} {{\n  title "{name}"  approvers "@acme/ops"  priority {priority}\n'
        f"  trigger {triggers}\n  when {when}\n"
        "  owner primary ann ack 5m  owner backup ben\n  exception unknown triage ben\n}\n"
        for name, priority, triggers, when in policies
    )


def _checked(tmp_path: Path, policies: list[tuple[str, int, str, str]]) -> CheckResult:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "set.esc").write_text(_set_text(policies))
    result = load_for_build(tmp_path, tmp_path, "0.0.0")
    assert result.pset is not None
    return result


def _all_pairs(result: CheckResult) -> dict[str, tuple[list[str], list[str]]]:
    """The baseline: every pair of policies, every pair of their cubes."""
    pset = result.pset
    assert pset is not None
    regions = analysis.analyse(pset).regions
    ranked = sorted(pset.policies.values(), key=lambda p: (-p.priority, p.name))
    out: dict[str, tuple[list[str], list[str]]] = {p.name: ([], []) for p in ranked}
    for p in ranked:
        for q in ranked:
            if q.priority == p.priority or not set(p.triggers) & set(q.triggers):
                continue
            cubes_p, cubes_q = regions[p.name].cubes, regions[q.name].cubes
            if any(meet(a, b) is not None for a in cubes_p for b in cubes_q):
                out[p.name][0 if q.priority > p.priority else 1].append(q.name)
    return out


def test_rivals_are_the_overlapping_policies_of_an_all_pairs_baseline(tmp_path: Path) -> None:
    rng = random.Random(12)
    atoms = [
        lambda: f'ticket.queue == "q{rng.randrange(5)}"',
        lambda: f"ticket.severity in ({', '.join(rng.sample(['low', 'high', 'critical'], 2))})",
        lambda: f"ticket.severity == {rng.choice(['low', 'medium', 'high', 'critical'])}",
        lambda: f'ticket.tags has "{rng.choice(["vip", "noise"])}"',
        lambda: f"ticket.score > {rng.randrange(5)}",
        lambda: f"ticket.tier == {rng.choice(['free', 'gold'])}",
    ]

    def conjunction() -> str:
        return " and ".join(rng.choice(atoms)() for _ in range(rng.choice([1, 2, 3])))

    policies = []
    for i in range(60):
        when = conjunction()
        if rng.random() < 0.3:  # several cubes for one policy
            when = f"({when}) or ({conjunction()}) or ({conjunction()})"
        triggers = rng.choice(
            ["ticket.created", "ticket.updated", "ticket.created, ticket.updated"]
        )
        policies.append((f"p{i:02d}", rng.randrange(1, 25), triggers, when))  # ties too
    result = _checked(tmp_path, policies)
    assert result.pset is not None
    baseline = _all_pairs(result)
    assert sum(len(h) for h, _ in baseline.values()) > 200  # a set with real competition
    for named in (3, 1000):
        rivals = policy_rivals(result.pset, named=named)
        for name, (higher, lower) in baseline.items():
            assert rivals[name] == Rivals(
                tuple(higher[:named]), len(higher), tuple(lower[:named]), len(lower)
            ), name


def test_a_page_names_a_few_rivals_and_counts_the_rest(tmp_path: Path) -> None:
    """A catch-all under every other policy: its page stays the same size as the set grows."""
    pages = {}
    for count in (15, 60):
        policies = [("catch_all", 0, "ticket.created", "ticket.score > 0")]
        policies += [
            (f"q{i:02d}", 10 + i, "ticket.created", f'ticket.queue == "q{i}" and ticket.score > 1')
            for i in range(count)
        ]
        policies += [
            ("elsewhere", 500, "ticket.updated", "ticket.score > 0"),  # another event kind
            ("never_both", 400, "ticket.created", "ticket.score < 0"),  # no event matches both
        ]
        result = _checked(tmp_path / str(count), policies)
        assert result.pset is not None and result.errors == 0
        pack = RulePack.from_dict(build_pack(result.pset))
        pages[count] = render_runbooks(pack, policy_rivals(result.pset))
        index = pages[count]["README.md"]
        assert all(f"[`{p.name}`]({p.name}.md)" in index for p in pack.policies)
    small, large = pages[15]["catch_all.md"], pages[60]["catch_all.md"]
    named = ", ".join(f"`q{i:02d}`" for i in range(59, 49, -1))
    assert (
        f"**Starts** when a ticket is created, its score is above 0. Priority 0: {named} and "
        "50 more (the [index](README.md) lists every policy) take precedence over it.\n" in large
    )
    assert len(large) - len(small) == len("50") - len("5")  # only the count grows
    assert "Priority 500.\n" in pages[60]["elsewhere.md"]
    assert "Priority 400.\n" in pages[60]["never_both.md"]
    # other queues never match the same ticket: only the catch-all competes
    assert "Priority 59: it takes precedence over `catch_all`.\n" in pages[60]["q49.md"]


def test_an_undecided_policy_competes_with_every_policy_of_its_kinds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(algebra, "MAX_CUBES", 0)  # every `and` is beyond the analysis budget
    result = _checked(
        tmp_path,
        [
            ("undecided", 50, "ticket.created", "ticket.severity == low and ticket.tier == gold"),
            ("above", 90, "ticket.created", "ticket.severity == critical"),
            ("below", 10, "ticket.created", "ticket.severity == high"),
            ("other_kind", 70, "ticket.updated", "ticket.severity == low"),
        ],
    )
    assert result.pset is not None
    assert any(d.code == "W307" for d in result.diagnostics)
    rivals = policy_rivals(result.pset)
    assert rivals["undecided"] == Rivals(("above",), 1, ("below",), 1)
    assert rivals["above"] == Rivals((), 0, ("undecided",), 1)
    assert rivals["below"] == Rivals(("undecided",), 1, (), 0)
    assert rivals["other_kind"] == Rivals()
