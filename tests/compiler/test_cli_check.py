"""`escalade check` through click's CliRunner: formats and exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from escalade.compiler.cli import main

CASES = Path(__file__).resolve().parent.parent / "cases"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_clean_set_exits_zero(policies_dir: Path) -> None:
    code, out = invoke("check", str(policies_dir))
    assert code == 0
    assert out.strip().endswith("0 error(s), 0 warning(s)")


def test_errors_exit_one_with_caret(tmp_path: Path) -> None:
    (tmp_path / "p.esc").write_text("policy p {\n  when ticket.severity == critcal\n}\n")
    code, out = invoke("check", str(tmp_path))
    assert code == 1
    assert "error[E101] undefined-name" in out
    lines = out.splitlines()
    idx = next(i for i, line in enumerate(lines) if "when ticket.severity" in line)
    assert lines[idx + 1].rstrip().endswith("^" * len("ticket.severity"))


def test_warnings_fail_only_with_strict() -> None:
    case = str(CASES / "templates.esc")
    assert invoke("check", case)[0] == 0
    assert invoke("check", case, "--strict")[0] == 1


def test_json_format_is_stable() -> None:
    code, out = invoke("check", str(CASES / "timing.esc"), "--format", "json")
    assert code == 1
    doc = json.loads(out)
    assert doc["version"] == 1
    assert doc["summary"] == {"errors": 1, "warnings": 2, "files": 1}
    e401 = next(d for d in doc["diagnostics"] if d["code"] == "E401")
    assert (e401["line"], e401["column"], e401["name"], e401["severity"]) == (
        31,
        3,
        "ack-exceeds-sla",
        "error",
    )
    assert e401["notes"][0]["line"] == 34


def test_usage_errors_exit_two(tmp_path: Path) -> None:
    assert invoke("check", str(tmp_path / "missing"))[0] == 2
    assert invoke("check", "--format", "xml")[0] == 2
    assert invoke("nonsense")[0] == 2
