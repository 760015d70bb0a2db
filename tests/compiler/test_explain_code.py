"""Help that teaches: ``escalade explain-code``, SARIF rules that link to their docs, and
help lines that show the declaration to write.

``explain-code`` prints one code's documentation from the registry (what, why, an
example that triggers it and the fix); every SARIF rule carries ``helpUri`` to its
section of docs/diagnostics.md and the meaning as ``fullDescription``; every
declaration a help line shows is code that compiles.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from escalade.compiler import load_policy_set
from escalade.compiler.cli.explain_code import explain_code_command
from escalade.compiler.codes import (
    CODES,
    DECLARATIONS,
    Code,
    declaration,
    declare_help,
    field_help,
    find_code,
    object_help,
)
from escalade.compiler.sarif import DIAGNOSTICS_DOC, DOCS_URI, INFORMATION_URI, sarif_rules

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / DIAGNOSTICS_DOC


def explain(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(explain_code_command, list(args))
    return result.exit_code, result.output


def github_anchors(markdown: str) -> set[str]:
    """GitHub's anchors for the headings of a Markdown page (outside code fences)."""
    text = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    return {
        re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-")
        for h in re.findall(r"^#{1,6} (.+)$", text, re.M)
    }


@pytest.mark.parametrize("code", list(CODES.values()), ids=lambda c: c.code)
def test_explain_code_prints_what_why_example_and_fix(code: Code) -> None:
    status, out = explain(code.code)
    assert status == 0, out
    assert out.startswith(f"{code.code} {code.name} ({code.severity})")
    flat = " ".join(out.split())
    for prose in (code.meaning, code.why, code.fix):
        assert " ".join(prose.split()) in flat
    for source in (code.example, code.fixed):
        indented = "\n".join(f"    {line}" if line else "" for line in source.strip().split("\n"))
        assert indented in out
    assert out.rstrip().endswith(f"#{code.code.lower()}-{code.name}")


def test_a_code_is_found_by_any_case_or_by_its_name() -> None:
    assert find_code("e302") is CODES["E302"]
    assert find_code(" ambiguous-route ") is CODES["E302"]
    assert find_code("E999") is None
    assert explain("w601")[1] == explain("unused")[1] == explain("W601")[1]


def test_an_unknown_code_is_a_usage_error_with_a_suggestion() -> None:
    status, out = explain("E3020")
    assert status == 2
    assert "no diagnostic code 'E3020'; did you mean E302?" in out


def test_without_a_code_every_code_is_listed() -> None:
    status, out = explain()
    assert status == 0
    rows = [line.split()[0] for line in out.splitlines() if re.match(r"^[EW]\d{3} ", line)]
    assert rows == list(CODES)


def test_json_and_markdown_carry_the_same_documentation() -> None:
    code = CODES["E101"]
    doc = json.loads(explain("E101", "--format", "json")[1])
    assert (doc["code"], doc["meaning"], doc["example"]) == (code.code, code.meaning, code.example)
    assert doc["help_uri"].endswith("#e101-undefined-name")
    listed = json.loads(explain("--format", "json")[1])
    assert [c["code"] for c in listed] == list(CODES)
    markdown = explain("E101", "--format", "markdown")[1]
    assert markdown.startswith("# E101 undefined-name\n")
    assert f"```\n{code.fixed}```" in markdown


def test_every_sarif_rule_links_to_its_section_of_the_diagnostics_page() -> None:
    anchors = github_anchors(DOC.read_text("utf-8"))
    rules = sarif_rules()
    assert [r["id"] for r in rules] == list(CODES)
    for rule in rules:
        page, _, anchor = rule["helpUri"].partition("#")
        assert page == f"{DOCS_URI}{DIAGNOSTICS_DOC}"
        assert page.startswith(INFORMATION_URI + "/")
        assert anchor in anchors, rule["helpUri"]


def test_sarif_rules_describe_the_code_in_full() -> None:
    for rule in sarif_rules():
        code = CODES[rule["id"]]
        assert rule["shortDescription"]["text"] == code.description
        assert rule["fullDescription"]["text"] == f"{code.description} {code.meaning}"


# ----------------------------------------------------------------- declarations in help lines

BASE = 'person alice { email "alice@example.com" }\nperson bob { email "bob@example.com" }\n'
DECLARED_NAME = {
    "person": ("pat", lambda pset: pset.people),
    "team": ("night_shift", lambda pset: pset.teams),
    "channel": ("pager_alerts", lambda pset: pset.channels),
    "event": ("ticket.created", lambda pset: pset.schema.events),
    "object": ("ticket", lambda pset: pset.schema.objects),
    "template": ("war_room", lambda pset: pset.templates),
    "policy": ("vendor_outage", lambda pset: pset.policies),
}


def test_every_kind_of_name_has_a_declaration_to_show() -> None:
    assert set(DECLARED_NAME) == set(DECLARATIONS)


@pytest.mark.parametrize("kind", list(DECLARATIONS))
def test_each_declaration_shown_in_help_compiles_and_declares_the_name(kind: str) -> None:
    name, declared = DECLARED_NAME[kind]
    source = BASE + declaration(kind, name) + "\n"
    result = load_policy_set("policies", sources=[("policies/help.esc", source)])
    errors = [(d.code, d.message) for d in result.diagnostics if d.severity == "error"]
    assert errors == []
    assert result.pset is not None and name in declared(result.pset)


def test_help_lines_show_the_declaration_as_code() -> None:
    assert declare_help("pat", ["person", "team"]) == (
        'declare it in the directory: `person pat { email "pat@example.com" }` '
        "or `team pat { members alice, bob }`"
    )
    assert declare_help("ticket.escalated", ["event"]) == (
        "declare it in the schema: `event ticket.escalated`"
    )
    assert "`schema ticket { id: text }`" in object_help("ticket")
    assert "`event ticket.created`" in object_help("ticket")
    assert field_help("ticket", "severity").startswith(
        "add it to `schema ticket { ... }`: `severity: text` (types: text, number,"
    )


UNKNOWN_OWNER = """\
policy p {
  approvers "@org/team"
  trigger ticket.created
  owner primary pat ack 5m
  owner backup alice
  exception unknown triage alice
}
event ticket.created
schema ticket { id: text }
person alice { email "alice@example.com" }
"""


def test_an_unknown_owner_is_told_how_to_declare_it() -> None:
    result = load_policy_set("policies", sources=[("policies/p.esc", UNKNOWN_OWNER)])
    (finding,) = [d for d in result.diagnostics if d.code == "E101"]
    assert finding.help is not None and declaration("person", "pat") in finding.help
