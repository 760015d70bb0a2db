"""SARIF 2.1.0 and GitHub annotations: schema-valid, stable rule ids, exact escaping."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from escalade.compiler import load_policy_set
from escalade.compiler.cli import main
from escalade.compiler.codes import CODES
from escalade.compiler.diagnostics import Diagnostic, Note
from escalade.compiler.nodes import Span
from escalade.compiler.sarif import (
    escape_data,
    escape_property,
    render_github,
    render_sarif,
    sarif_document,
)


def broken_diagnostics(shared: Path) -> tuple[list[Diagnostic], Path]:
    diags: list[Diagnostic] = []
    for path in sorted((shared / "examples" / "broken").glob("*.esc")):
        diags.extend(load_policy_set(path).diagnostics)
    return diags, shared


def test_sarif_validates_against_the_2_1_0_schema(shared: Path) -> None:
    schema = json.loads((shared / "schemas" / "sarif-schema-2.1.0.json").read_text("utf-8"))
    diags, root = broken_diagnostics(shared)
    assert {"E001", "E202", "E301", "E302"} <= {d.code for d in diags}
    doc = json.loads(render_sarif(diags, root))
    jsonschema.validate(doc, schema)
    empty = json.loads(render_sarif([], root))
    jsonschema.validate(empty, schema)


def test_sarif_rules_results_and_uris(shared: Path) -> None:
    diags, root = broken_diagnostics(shared)
    doc = sarif_document(diags, root)
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == list(CODES)
    assert rules[list(CODES).index("E302")]["name"] == "ambiguous-route"
    (amb,) = [r for r in run["results"] if r["ruleId"] == "E302"]
    assert rules[amb["ruleIndex"]]["id"] == "E302"
    assert amb["level"] == "error"
    loc = amb["locations"][0]["physicalLocation"]
    assert loc["artifactLocation"] == {
        "uri": "examples/broken/ambiguous_route.esc",
        "uriBaseId": "%SRCROOT%",
    }
    assert loc["region"] == {"startLine": 34, "startColumn": 8, "endLine": 34, "endColumn": 15}
    assert amb["properties"]["witness"]["type"] == "ticket.created"
    assert amb["relatedLocations"][0]["physicalLocation"]["region"]["startLine"] == 24
    (loop,) = [r for r in run["results"] if r["ruleId"] == "E301"]
    assert [x["physicalLocation"]["region"]["startLine"] for x in loop["relatedLocations"]] == [
        31,
        40,
    ]


def test_github_escaping_is_exact() -> None:
    assert escape_data("50% done\r\nnext") == "50%25 done%0D%0Anext"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"
    d = Diagnostic(
        "E302",
        "overlap: a, b\n100%",
        Span("dir,x/a:b.esc", 3, 5, 3, 9),
        help="fix it",
        notes=(Note(Span("dir,x/a:b.esc", 1, 1, 1, 2), "here"),),
    )
    line = render_github([d], root="/nonexistent-root")
    assert line == (
        "::error file=dir%2Cx/a%3Ab.esc,line=3,col=5,endLine=3,endColumn=9,"
        "title=E302 ambiguous-route::overlap: a, b%0A100%25"
        "%0Anote: dir,x/a:b.esc:1:1: here%0Ahelp: fix it\n"
    )
    assert line.count("\n") == 1


def test_github_warning_and_repo_relative_file(shared: Path) -> None:
    result = load_policy_set(shared / "examples" / "broken" / "ambiguous_route.esc")
    out = render_github(result.diagnostics, root=shared)
    lines = out.splitlines()
    assert lines[0].startswith("::warning file=examples/broken/ambiguous_route.esc,line=22,col=9,")
    assert lines[1].startswith(
        "::error file=examples/broken/ambiguous_route.esc,line=34,col=8,endLine=34,"
        "endColumn=15,title=E302 ambiguous-route::"
    )


def test_check_command_formats(shared: Path) -> None:
    path = str(shared / "examples" / "broken" / "handoff_loop.esc")
    result = CliRunner().invoke(main, ["check", path, "--format", "sarif"])
    assert result.exit_code == 1
    assert json.loads(result.output)["runs"][0]["results"][-1]["ruleId"] == "E301"
    result = CliRunner().invoke(main, ["check", path, "--format", "github"])
    assert result.exit_code == 1
    assert "title=E301 handoff-loop::" in result.output


def _repo_with_a_finding(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "policies").mkdir(parents=True)
    (root / "escalade.yaml").write_text("version: 1.0.0\n")
    (root / "policies" / "x.esc").write_text("person ann { }\n")  # W601 unused
    return root


def test_repo_relative_to_the_escalade_yaml_root(tmp_path: Path, monkeypatch: Any) -> None:
    """Run from a subdirectory, URIs stay relative to the directory of escalade.yaml."""
    from escalade.compiler.config import find_root

    root = _repo_with_a_finding(tmp_path)
    monkeypatch.chdir(root / "policies")
    diags = load_policy_set(Path(".")).diagnostics
    assert diags, "expected a finding"
    doc = json.loads(render_sarif(diags, find_root(Path("."))))
    location = doc["runs"][0]["results"][0]["locations"][0]["physicalLocation"]
    assert location["artifactLocation"] == {"uri": "policies/x.esc", "uriBaseId": "%SRCROOT%"}
    assert "file=policies/x.esc," in render_github(diags, find_root(Path(".")))


@pytest.mark.parametrize("fmt", ["sarif", "github"])
def test_check_cli_uses_the_repository_root(tmp_path: Path, monkeypatch: Any, fmt: str) -> None:
    root = _repo_with_a_finding(tmp_path)
    monkeypatch.chdir(root / "policies")
    result = CliRunner().invoke(main, ["check", ".", "--format", fmt])
    assert "policies/x.esc" in result.output
