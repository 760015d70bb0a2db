"""Hostile input to the compiler-side commands: a located message and exit 1 or 2, never a
traceback (``explain``, ``build``, ``test``)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from escalade.compiler.cli import main
from escalade.compiler.explain import ExplainError, explain_event
from escalade.runtime.pack import RulePack

REPO = Path(__file__).resolve().parent.parent.parent
PACK = REPO / "generated" / "rulepack.json"


def invoke(args: list[str], cwd: Path | None = None) -> Result:
    old = Path.cwd()
    os.chdir(cwd or REPO)
    try:
        result = CliRunner().invoke(main, args)
    finally:
        os.chdir(old)
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"traceback for {args}: {result.exception!r}\n{result.output}"
    )
    assert "Traceback" not in result.output
    return result


def event(data: Any = None, **top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": "e1", "type": "ticket.created", "at": "2026-11-27T10:00:00Z"}
    doc["data"] = {"ticket": {"id": "T1"}} if data is None else data
    doc.update(top)
    return {k: v for k, v in doc.items() if v is not None}


# --------------------------------------------------------------------------- explain


def explain_bytes(tmp_path: Path, data: bytes) -> Result:
    file = tmp_path / "event.json"
    file.write_bytes(data)
    return invoke(["explain", str(file), "--pack", str(PACK)])


def test_explain_missing_file_and_directory(tmp_path: Path) -> None:
    missing = invoke(["explain", str(tmp_path / "nope.json"), "--pack", str(PACK)])
    assert missing.exit_code == 2 and "nope.json" in missing.output
    folder = invoke(["explain", str(tmp_path), "--pack", str(PACK)])
    assert folder.exit_code == 2 and "is a directory" in folder.output


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "event.json:1:2: not JSON"),
        (b'{"id": "e1",\n  "type": }', "event.json:2:11: not JSON"),
        (b"", "event.json:1:1: not JSON"),
        (b"[1, 2]", "an event is a JSON object, not a list"),
        (b"42", "an event is a JSON object, not a number"),
        (b'"text"', "an event is a JSON object, not text"),
        (b"null", "an event is a JSON object, not null"),
        (b'{"id": "e\xff"}', "event.json:1:10: not UTF-8 text (byte 0xff)"),
        (b"\x89PNG\r\n\x1a\n\x00", "event.json:1:1: not UTF-8 text"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"id": "e", "x": NaN}', "NaN is not a JSON number"),
        (b'{"id": "e", "x": Infinity}', "Infinity is not a JSON number"),
    ],
)
def test_explain_unreadable_events(tmp_path: Path, data: bytes, message: str) -> None:
    result = explain_bytes(tmp_path, data)
    assert result.exit_code == 1
    assert message in result.output


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        (event(id=None), "missing `id`"),
        (event(type=None), "missing `type`"),
        (event(type="ticket.exploded"), "unknown event type 'ticket.exploded'"),
        (event(at=None), "missing `at`"),
        (event(at="yesterday"), "'yesterday' is not an ISO-8601 time"),
        (event(data=[]), "`data` must be an object"),
        (event(data={"ticket": 5}), "data.ticket must be an object"),
        (event(data={"ticket": {"id": "T", "severity": "critcal"}}), "'critcal' is not one of"),
        (event(data={"ticket": {"id": "T", "severity": 3}}), "ticket.severity: expected one of"),
        (event(data={"ticket": {"id": "T", "tags": "vip"}}), "ticket.tags: expected a list"),
        (event(data={"ticket": {"id": "T", "title": 7}}), "ticket.title: expected text"),
        (event(data={"account": {"tier": "pro"}}), "needs data.ticket.id"),
    ],
)
def test_explain_invalid_events_name_the_field(
    tmp_path: Path, doc: dict[str, Any], message: str
) -> None:
    result = explain_bytes(tmp_path, json.dumps(doc).encode())
    assert result.exit_code == 1
    assert "event.json: invalid event:" in result.output and message in result.output


def test_explain_five_megabyte_event(tmp_path: Path) -> None:
    doc = event(data={"ticket": {"id": "T1", "title": "x" * 5_000_000, "severity": "critical"}})
    result = explain_bytes(tmp_path, json.dumps(doc).encode())
    assert result.exit_code == 0
    assert "OWNER: critical_default" in result.output


def test_explain_accepts_a_bom_and_shows_ignored_fields(tmp_path: Path) -> None:
    doc = event(data={"ticket": {"id": "T1", "severty": "critical"}, "acount": {}})
    result = explain_bytes(tmp_path, b"\xef\xbb\xbf" + json.dumps(doc).encode())
    assert result.exit_code == 0
    assert "OWNER: none" in result.output
    assert "ignored, not in the schema (a typo?): ticket.severty, data.acount" in result.output


def test_explain_policies_missing_or_empty(tmp_path: Path) -> None:
    file = tmp_path / "event.json"
    file.write_text(json.dumps(event()))
    missing = invoke(["explain", str(file), "--policies", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "no such file or directory" in missing.output
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "schema.esc").write_text("event ticket.created\n")
    empty = invoke(["explain", str(file), "--policies", str(tmp_path / "set")])
    assert empty.exit_code == 1 and "has no policies" in empty.output


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=12,
)
_FIELDS = ["id", "title", "severity", "priority", "status", "tags", "root_cause", "tier", "x"]
_objects = st.dictionaries(
    st.sampled_from(["ticket", "account", "lead", "bogus"]),
    st.dictionaries(st.sampled_from(_FIELDS), _json, max_size=4) | _json,
    max_size=3,
)
_events = st.fixed_dictionaries(
    {},
    optional={
        "id": st.text(max_size=4) | _json,
        "type": st.sampled_from(["ticket.created", "lead.updated", "x.y"]) | _json,
        "at": st.sampled_from(["2026-11-27T10:00:00Z", "2026-11-27", "x"]) | _json,
        "data": _objects | _json,
    },
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(_json, _events))
def test_explain_random_json_never_crashes(doc: Any) -> None:
    pack = _pack()
    try:
        out = explain_event(pack, json.dumps(doc))
    except ExplainError as exc:
        assert str(exc)
        return
    assert out["event"]["type"] in pack.raw["schema"]["events"]
    assert out["owner"] is None or out["owner"] in {p.name for p in pack.policies}


_PACK: list[RulePack] = []


def _pack() -> RulePack:
    if not _PACK:
        _PACK.append(RulePack.load(PACK))
    return _PACK[0]


# --------------------------------------------------------------------------- build and test


@pytest.fixture
def project(tmp_path: Path, policies_dir: Path) -> Iterator[Path]:
    root = tmp_path / "repo"
    shutil.copytree(policies_dir, root / "policies")
    (root / "escalade.yaml").write_text("version: 1.0.0\n")
    yield root


def test_build_broken_set_is_refused_with_located_errors(project: Path) -> None:
    (project / "policies" / "customer_ops.esc").write_text("policy x {\n")
    result = invoke(["build"], project)
    assert result.exit_code == 1
    assert "policies/customer_ops.esc:1:" in result.output and "build refused" in result.output
    assert not (project / "generated").exists()


@pytest.mark.parametrize("content", ["", "event ticket.created\nschema ticket { id: text }\n"])
def test_build_without_policies_is_refused(tmp_path: Path, content: str) -> None:
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "a.esc").write_text(content)
    (tmp_path / "escalade.yaml").write_text("version: 1.0.0\n")
    result = invoke(["build"], tmp_path)
    assert result.exit_code == 1
    assert "declares no policies" in result.output
    assert not (tmp_path / "generated").exists()


def test_build_into_an_unwritable_output(project: Path) -> None:
    (project / "blocker").write_text("a file, not a directory\n")
    result = invoke(["build", "-o", "blocker/out"], project)
    assert result.exit_code == 1
    assert "blocker" in result.output


def run_tests(project: Path, text: str | bytes, name: str = "x_test.esc") -> Result:
    for old in (project / "policies").glob("*_test.esc"):
        old.unlink()
    target = project / "policies" / name
    target.write_bytes(text if isinstance(text, bytes) else text.encode())
    return invoke(["test", "policies"], project)


CRITICAL = 'at 0m event ticket.created { ticket.id = "T", ticket.severity = critical }'


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ('test "a" { at 0m evnt ticket.created {} }', "1:18", "syntax error"),
        ('test "a" { at 5x tick }', "1:15", "syntax error"),
        ('test "a {\n}', "1:6", "syntax error"),
        ('test "a" { postmortem "\\u12" }', "1:23", "invalid string"),
        ('test "a" { at 99999999999d tick }', "1:15", "longer than 100 years"),
        (f'test "a" {{ {CRITICAL}\n expect policy enterprise_critcal }}', "2:2", "unknown policy"),
        (f'test "a" {{ {CRITICAL}\n at 1m ack by alise }}', "2:2", "unknown person 'alise'"),
        (f'test "a" {{ {CRITICAL}\n expect owner nobody }}', "2:2", "unknown person or team"),
        (f'test "a" {{ {CRITICAL}\n expect state acked }}', "2:2", "unknown state 'acked'"),
        (f'test "a" {{ {CRITICAL}\n expect level boss }}', "2:2", "unknown level 'boss'"),
        (f'test "a" {{ {CRITICAL}\n expect action pgae }}', "2:2", "did you mean 'page'?"),
        ('test "a" { at 0m event ticket.exploded { ticket.id = "T" } }', "1:12", "event type"),
        (
            'test "a" { at 0m event ticket.created { ticket.id = "T", ticket.severty = low }\n'
            " expect no escalation }",
            "1:12",
            "unknown field 'ticket.severty'",
        ),
        (
            'test "a" { at 0m event ticket.created { ticket.id = "T", ticket.severity = 5 } }',
            "1:12",
            "ticket.severity: expected one of",
        ),
        (b'test "a" {\n tick \xff }', "2:7", "not UTF-8 text"),
    ],
)
def test_policy_test_files_with_mistakes(
    project: Path, text: str | bytes, where: str, message: str
) -> None:
    result = run_tests(project, text)
    assert result.exit_code == 1
    assert f"FAIL policies/x_test.esc:{where}:" in result.output
    assert message in result.output


def test_policy_tests_empty_directory_and_wrong_file(tmp_path: Path, project: Path) -> None:
    (tmp_path / "empty").mkdir()
    empty = invoke(["test", str(tmp_path / "empty")])
    assert empty.exit_code == 1 and "no *_test.esc files" in empty.output
    wrong = invoke(["test", "policies/customer_ops.esc"], project)
    assert wrong.exit_code == 2 and "not a policy test file" in wrong.output


def test_policy_tests_on_a_broken_set_show_the_diagnostics(project: Path) -> None:
    (project / "policies" / "customer_ops.esc").write_text("policy {\n")
    result = invoke(["test", "policies"], project)
    assert result.exit_code == 1
    assert "policies/customer_ops.esc:1:8: error[E001]" in result.output
    assert "Diagnostic(" not in result.output


def test_simulate_unreadable_replay_files(tmp_path: Path) -> None:
    binary = tmp_path / "day.jsonl"
    binary.write_bytes(b'{"id": "a"}\n\xff\xfe')
    result = invoke(["simulate", str(binary), "--pack", str(PACK)])
    assert result.exit_code == 1 and "day.jsonl:2:1: not UTF-8 text" in result.output
    deep = tmp_path / "deep.jsonl"
    deep.write_text("[" * 50_000 + "\n")
    result = invoke(["simulate", str(deep), "--pack", str(PACK)])
    # one malformed line is rejected (dead-lettered) and counted; the replay goes on
    assert result.exit_code == 0 and "0 events applied, 0 duplicates, 1 rejected" in result.output
