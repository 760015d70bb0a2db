"""`runtime.database` in escalade.yaml is the store every runtime command uses by default."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from escalade.compiler.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_commands_default_to_runtime_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "escalade.yaml").write_text("version: 1.0.0\nruntime:\n  database: state/ops.db\n")
    (tmp_path / "state").mkdir()
    monkeypatch.chdir(tmp_path)
    event = REPO / "examples" / "events" / "enterprise_critical.json"
    pack = REPO / "generated" / "rulepack.json"
    run = CliRunner()
    result = run.invoke(main, ["event", str(event), "--pack", str(pack)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "state" / "ops.db").exists()
    assert not (tmp_path / "escalade.db").exists()
    ticket = json.loads(event.read_text())["data"]["ticket"]["id"]
    status = run.invoke(main, ["status", ticket, "--format", "json"])
    assert status.exit_code == 0 and json.loads(status.output)["policy"] == "enterprise_critical"
    assert run.invoke(main, ["audit", "verify"]).exit_code == 0
    history = run.invoke(main, ["pack", "history", "--format", "json"])
    assert history.exit_code == 0 and json.loads(history.output)["packs"]
