"""SARIF 2.1.0 and GitHub annotations: schema-valid, stable rule ids, exact escaping.

The schema is OASIS's SARIF 2.1.0 JSON schema (errata 01), copied unchanged into
tests/schemas/ (tests/schemas/README.md says where from), so the check runs offline.
"""

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
from tests.conftest import BROKEN, REPO

SARIF_SCHEMA = REPO / "tests" / "schemas" / "sarif-schema-2.1.0.json"
BROKEN_URI = "tests/cases/broken"  # the defect cases, relative to the repository root


def broken_diagnostics() -> tuple[list[Diagnostic], Path]:
    diags: list[Diagnostic] = []
    for path in sorted(BROKEN.glob("*.esc")):
        diags.extend(load_policy_set(path).diagnostics)
    return diags, REPO


def test_sarif_validates_against_the_2_1_0_schema() -> None:
    schema = json.loads(SARIF_SCHEMA.read_text("utf-8"))
    diags, root = broken_diagnostics()
    assert set(CODES) - {"W307"} <= {d.code for d in diags}
    doc = json.loads(render_sarif(diags, root))
    jsonschema.validate(doc, schema)
    empty = json.loads(render_sarif([], root))
    jsonschema.validate(empty, schema)


def test_sarif_rules_results_and_uris() -> None:
    diags, root = broken_diagnostics()
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
        "uri": f"{BROKEN_URI}/ambiguous_route.esc",
        "uriBaseId": "%SRCROOT%",
    }
    assert loc["region"] == {"startLine": 26, "startColumn": 8, "endLine": 26, "endColumn": 17}
    assert amb["properties"]["witness"]["type"] == "lead.updated"
    assert amb["relatedLocations"][0]["physicalLocation"]["region"]["startLine"] == 16
    (loop,) = [r for r in run["results"] if r["ruleId"] == "E301"]
    assert [x["physicalLocation"]["region"]["startLine"] for x in loop["relatedLocations"]] == [
        22,
        31,
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


def test_github_warning_and_repo_relative_file() -> None:
    diags = [
        *load_policy_set(BROKEN / "unused.esc").diagnostics,
        *load_policy_set(BROKEN / "ambiguous_route.esc").diagnostics,
    ]
    out = render_github(diags, root=REPO)
    lines = out.splitlines()
    assert lines[0].startswith(
        f"::warning file={BROKEN_URI}/unused.esc,line=14,col=9,endLine=14,endColumn=20,"
        "title=W601 unused::"
    )
    assert lines[1].startswith(
        f"::error file={BROKEN_URI}/ambiguous_route.esc,line=26,col=8,endLine=26,"
        "endColumn=17,title=E302 ambiguous-route::"
    )


def test_check_command_formats() -> None:
    path = str(BROKEN / "handoff_loop.esc")
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
