"""One behaviour across the compiler's commands: the policy path defaults to `policies` of
the nearest escalade.yaml, `--color auto|always|never` honours NO_COLOR, `--format json`
prints one documented document, `test --junit` writes JUnit XML, and `fmt` lays out
policy tests and wraps long conditions."""

from __future__ import annotations

import io
import json
import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalade.compiler.cli import main
from escalade.compiler.fmt import ONE_LINE_WIDTH
from escalade.compiler.policytest import PolicyTest, parse_tests
from escalade.compiler.testfmt import format_test_source
from escalade.runtime.cli.output import use_color
from tests.compiler.test_fmt import assert_format_invariants, conditions, fmt
from tests.conftest import CASES, check_golden

ESC = "\x1b["
FAILING_TEST = """test "fails on purpose" {
  at 0m event ticket.created { ticket.id = "X1", ticket.severity = critical, account.tier = enterprise }
  at 1m expect owner carol level backup
}

test "passes" {
  at 0m event ticket.created { ticket.id = "X2", ticket.severity = critical, account.tier = enterprise }
  expect owner alice level primary
}
"""


def bundled_policies(repo: Path) -> int:
    """How many policies the bundled set has (the built pack says)."""
    return len(json.loads((repo / "generated" / "rulepack.json").read_text())["policies"])


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    result = CliRunner().invoke(main, list(args), env=env)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result


@pytest.fixture
def elsewhere(tmp_path: Path, repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository whose escalade.yaml keeps the policies in rules/, not policies/."""
    shutil.copytree(repo / "policies", tmp_path / "rules")
    (tmp_path / "escalade.yaml").write_text("version: 1.0.0\npolicies: rules/\noutput: out/\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --------------------------------------------------------------------------- the policy path


def test_every_command_reads_the_policy_folder_from_escalade_yaml(
    elsewhere: Path, repo: Path
) -> None:
    checked = invoke("check", "--format", "json")
    assert checked.exit_code == 0, checked.output
    policy_files = [
        f for f in (repo / "policies").glob("*.esc") if not f.name.endswith("_test.esc")
    ]
    assert json.loads(checked.stdout)["summary"]["files"] == len(policy_files)  # rules/
    tested = invoke("test", "--format", "json")
    assert tested.exit_code == 0, tested.output
    doc = json.loads(tested.stdout)
    test_files = list((repo / "policies").glob("*_test.esc"))
    assert doc["summary"]["failed"] == 0 and doc["summary"]["files"] == len(test_files)
    assert all(t["file"].startswith("rules/") for t in doc["tests"])

    assert invoke("build").exit_code == 0
    assert (elsewhere / "out" / "rulepack.json").is_file()
    assert invoke("build", "--check").exit_code == 0
    assert invoke("fmt", "--check").exit_code == 0
    graph = invoke("graph")
    assert graph.exit_code == 0 and graph.stdout.startswith("flowchart LR")

    events = elsewhere / "events.jsonl"
    event = json.loads((repo / "examples" / "events" / "enterprise_critical.json").read_text())
    events.write_text(json.dumps(event) + "\n")
    simulated = invoke("simulate", str(events), "--format", "json")
    assert simulated.exit_code == 0, simulated.output
    assert json.loads(simulated.stdout)["replay"]["applied"] == 1


@pytest.mark.parametrize("command", ["check", "test", "build", "fmt", "graph"])
def test_a_missing_policy_folder_is_a_usage_error_naming_escalade_yaml(
    elsewhere: Path, command: str
) -> None:
    (elsewhere / "escalade.yaml").write_text("policies: nowhere/\n")
    result = invoke(command)
    assert result.exit_code == 2
    assert "nowhere" in result.output and "escalade.yaml" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", ["check", "test", "fmt", "graph"])
def test_an_invalid_escalade_yaml_is_a_located_error(elsewhere: Path, command: str) -> None:
    (elsewhere / "escalade.yaml").write_text("version: 1.0.0\npolicies: 3\n")
    result = invoke(command)
    assert result.exit_code == 1
    assert "escalade.yaml:2:" in result.output and "policies" in result.output


# --------------------------------------------------------------------------- colour


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("choice", "environ", "tty", "expected"),
    [
        ("auto", {}, True, True),
        ("auto", {}, False, False),
        ("auto", {"NO_COLOR": "1"}, True, False),
        ("auto", {"NO_COLOR": ""}, True, True),  # set but empty: no-color.org says ignore it
        ("auto", {"FORCE_COLOR": "1"}, False, True),
        ("auto", {"FORCE_COLOR": "0"}, True, True),
        ("auto", {"NO_COLOR": "1", "FORCE_COLOR": "1"}, True, False),
        ("always", {"NO_COLOR": "1"}, False, True),
        ("never", {"FORCE_COLOR": "1"}, True, False),
    ],
)
def test_one_place_decides_colour(
    choice: str, environ: dict[str, str], tty: bool, expected: bool
) -> None:
    stream = Terminal() if tty else io.StringIO()
    assert use_color(choice, stream, environ) is expected


def test_commands_colour_only_when_asked_or_forced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a policy repository of its own: build stays inside it
    (tmp_path / "p.esc").write_text("policy p {\n  when ticket.severity == critcal\n}\n")
    for command in ("check", "build", "graph", "fmt"):
        args = (command, str(tmp_path / "p.esc") if command == "fmt" else str(tmp_path))
        if command == "fmt":
            (tmp_path / "p.esc").write_text("policy p {\n  when ticket.severity ==\n}\n")
        assert ESC in invoke(*args, "--color", "always").output, command
        assert ESC not in invoke(*args, "--color", "never").output, command
        assert ESC not in invoke(*args).output, command  # auto: not a terminal
        assert ESC in invoke(*args, env={"FORCE_COLOR": "1"}).output, command
        no_color = {"FORCE_COLOR": "1", "NO_COLOR": "1"}
        assert ESC not in invoke(*args, env=no_color).output, command


def test_test_failures_are_red_only_with_colour(elsewhere: Path) -> None:
    (elsewhere / "rules" / "bad_test.esc").write_text(FAILING_TEST)
    coloured = invoke("test", "--color", "always")
    assert coloured.exit_code == 1 and f"{ESC}31m" in coloured.stdout
    plain = invoke("test", env={"NO_COLOR": "1", "FORCE_COLOR": "1"})
    assert (
        plain.exit_code == 1
        and ESC not in plain.stdout
        and "FAIL rules/bad_test.esc" in plain.stdout
    )


# --------------------------------------------------------------------------- test results


def test_junit_counts_every_test_and_locates_each_failure(elsewhere: Path, repo: Path) -> None:
    (elsewhere / "rules" / "bad_test.esc").write_text(FAILING_TEST)
    (elsewhere / "rules" / "broken_test.esc").write_text('test "x" {\n  expect\n')
    result = invoke("test", "--junit", "report.xml")
    assert result.exit_code == 1
    root = ET.parse(elsewhere / "report.xml").getroot()  # noqa: S314 - our own output
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    bundled = {f"rules/{f.name}" for f in (repo / "policies").glob("*_test.esc")}
    assert set(suites) == {"rules/bad_test.esc", "rules/broken_test.esc", *bundled}
    bad = suites["rules/bad_test.esc"]
    assert (bad.get("tests"), bad.get("failures"), bad.get("errors")) == ("2", "1", "0")
    cases = {c.get("name"): c for c in bad.iter("testcase")}
    assert cases["passes"].find("failure") is None
    failure = cases["fails on purpose"].find("failure")
    assert failure is not None and cases["fails on purpose"].get("line") == "1"
    assert failure.get("message", "").startswith("rules/bad_test.esc:3:3: test 'fails on purpose'")
    broken = suites["rules/broken_test.esc"]
    assert (broken.get("tests"), broken.get("failures"), broken.get("errors")) == ("1", "0", "1")
    error = broken.find("testcase/error")
    assert error is not None and error.get("message", "").startswith("rules/broken_test.esc:2:3:")
    total = sum(int(s.get("tests", "0")) for s in suites.values())
    assert root.get("tests") == str(total) and root.get("failures") == "1"
    assert root.get("errors") == "1"


def test_test_json_lists_every_test_with_its_failures(elsewhere: Path, repo: Path) -> None:
    (elsewhere / "rules" / "bad_test.esc").write_text(FAILING_TEST)
    result = invoke("test", "rules/bad_test.esc", "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["version"] == 1 and doc["errors"] == []
    summary = doc["summary"]
    assert (summary["passed"], summary["failed"], summary["files"]) == (1, 1, 1)
    count = bundled_policies(repo)
    assert summary["policies"] == count and summary["exercised"] == count - len(doc["unexercised"])
    assert "enterprise_critical" not in doc["unexercised"]
    failed, passed = doc["tests"]
    assert (failed["name"], failed["passed"], failed["line"]) == ("fails on purpose", False, 1)
    assert failed["failures"][0].startswith("rules/bad_test.esc:3:3:")
    assert passed == {
        "file": "rules/bad_test.esc",
        "name": "passes",
        "line": 6,
        "column": 1,
        "passed": True,
        "failures": [],
    }


def test_an_unwritable_junit_file_is_a_clear_error(elsewhere: Path) -> None:
    result = invoke("test", "--junit", str(elsewhere / "no" / "such" / "dir" / "r.xml"))
    assert result.exit_code == 1
    assert "r.xml" in result.output and "Traceback" not in result.output


# --------------------------------------------------------------------------- json elsewhere


def test_build_fmt_and_graph_print_json(elsewhere: Path, repo: Path) -> None:
    built = invoke("build", "--format", "json")
    assert built.exit_code == 0
    doc = json.loads(built.stdout)
    assert doc["pack"]["version"] == "1.0.0" and doc["pack"]["policies"] == bundled_policies(repo)
    assert ".github/CODEOWNERS" in doc["files"] and "out/rulepack.json" in doc["files"]
    assert "out/runbooks/README.md" in doc["files"] and set(doc["changed"]) == set(doc["files"])
    fresh = json.loads(invoke("build", "--check", "--format", "json").stdout)
    assert fresh["stale"] == []
    (elsewhere / ".github" / "CODEOWNERS").write_text("# edited by hand\n")
    stale = invoke("build", "--check", "--format", "json")
    assert stale.exit_code == 1 and json.loads(stale.stdout)["stale"] == [".github/CODEOWNERS"]

    (elsewhere / "rules" / "messy_test.esc").write_text('test "x" {   expect no escalation }\n')
    checked = invoke("fmt", "--check", "--format", "json")
    assert checked.exit_code == 1
    assert json.loads(checked.stdout) == {
        "files": len(list((elsewhere / "rules").glob("*.esc"))),
        "changed": ["rules/messy_test.esc"],
        "errors": [],
        "written": False,
    }
    assert invoke("fmt", "--diff", "--format", "json").exit_code == 2

    graph = json.loads(invoke("graph", "--format", "json").stdout)
    assert {"id", "label", "kind"} == set(graph["nodes"][0])
    assert {"source", "target", "label", "kind"} == set(graph["edges"][0])


def test_a_refused_build_prints_checks_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a policy repository of its own: build stays inside it
    (tmp_path / "p.esc").write_text("policy p {\n  when ticket.severity == critcal\n}\n")
    result = invoke("build", str(tmp_path), "-o", str(tmp_path / "out"), "--format", "json")
    assert result.exit_code == 1
    doc = json.loads(result.stdout)
    assert doc["version"] == 1 and doc["summary"]["errors"] >= 1


# --------------------------------------------------------------------------- fmt


def shape_of(tests: list[PolicyTest]) -> Any:
    """Parsed tests without source positions."""
    return [(t.name, [(s.kind, s.args, s.offset) for s in t.stmts]) for t in tests]


FMT_TESTS = CASES / "fmt" / "tests"  # hand-laid-out policy tests; canonical in expected/


@pytest.mark.parametrize("case", sorted(FMT_TESTS.glob("*_test.esc")), ids=lambda p: p.stem)
def test_policy_tests_format_to_the_reference_layout(case: Path) -> None:
    text = case.read_text("utf-8")
    out = format_test_source(case.name, text).formatted
    assert out is not None and out != text
    assert shape_of(parse_tests("x", out)) == shape_of(parse_tests("x", text))
    assert format_test_source(case.name, out).formatted == out  # a fixed point
    for line in text.splitlines():
        if "#" in line:
            assert line[line.index("#") :].rstrip() in out
    check_golden(FMT_TESTS / "expected" / case.name, out)


def test_the_bundled_policy_tests_are_canonical(repo: Path) -> None:
    files = sorted((repo / "policies").glob("*_test.esc"))
    assert len(files) >= 4  # one per bundled use case
    for f in files:
        text = f.read_text("utf-8")
        assert format_test_source(f.name, text).formatted == text, f.name


def test_a_broken_policy_test_is_left_alone_with_the_located_reason(tmp_path: Path) -> None:
    broken = tmp_path / "broken_test.esc"
    broken.write_text('test "x" {\n  expect\n')
    result = invoke("fmt", str(broken))
    assert result.exit_code == 1
    assert "broken_test.esc:2:3: syntax error" in result.output
    assert broken.read_text() == 'test "x" {\n  expect\n'


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(conditions(), min_size=2, max_size=4), st.sampled_from(["and", "or"]))
def test_long_conditions_wrap_before_and_or(parts: list[list[str]], word: str) -> None:
    """However it wraps, the tree is the same, formatting again changes nothing, and every
    continuation line starts with `and` or `or`."""
    tokens: list[str] = []
    for i, part in enumerate(parts):
        tokens += ([word] if i else []) + ["(", *part, ")"]
    padding = "account.a_rather_long_field_name_to_push_the_line_well_past_its_width != critical"
    text = f"policy p {{\n  when {padding} {word} {' '.join(tokens)}\n}}\n"
    out = fmt(text)
    assert_format_invariants(text, out)
    body = out.splitlines()[1:-1]
    assert body[0].startswith("  when ")
    assert len(body) > 1  # the one-line form is longer than the width
    for line in body[1:]:
        assert line.lstrip().startswith(("and ", "or ")), line
    # a line wider than the width is one that cannot be cut: a single comparison
    for line in body:
        if len(line) > ONE_LINE_WIDTH:
            code = re.sub(r'"(?:[^"\\]|\\.)*"', '""', line.strip())
            assert " and " not in code[4:] and " or " not in code[4:], line
