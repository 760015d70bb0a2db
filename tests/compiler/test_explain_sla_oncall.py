"""``escalade explain`` shows each SLA's due instant for the event's time (calendar time
for ``within CAL``) and who each owner level reaches then (nobody, in a coverage gap)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from escalade.compiler.cli import main
from tests.conftest import REPO


def urgent(at: str) -> dict[str, Any]:
    data = {
        "ticket": {"id": "U1", "priority": "urgent", "severity": "high"},
        "account": {"id": "acme", "tier": "pro"},
    }
    return {"id": "e1", "type": "ticket.created", "at": at, "data": data}


def explain(tmp_path: Path, policies: Path, event: dict[str, Any], *fmt: str) -> str:
    path = tmp_path / "event.json"
    path.write_text(json.dumps(event), "utf-8")
    result = CliRunner().invoke(main, ["explain", str(path), "--policies", str(policies), *fmt])
    assert result.exit_code == 0, result.output
    return result.output


def test_calendar_slas_fall_due_in_support_hours(tmp_path: Path) -> None:
    policies = REPO / "policies"
    doc = json.loads(
        explain(tmp_path, policies, urgent("2026-12-04T16:00:00Z"), "--format", "json")
    )
    assert doc["owner"] == "urgent_ticket_waiting"
    assert doc["sla"] == {
        "acknowledge": {
            "target": 7200,
            "due": "2026-12-07T09:00:00Z",
            "calendar": "support_hours",
            "zone": "Europe/Berlin",
            "due_local": "2026-12-07T10:00:00+01:00",
        },
        "resolve": {
            "target": 43200,
            "due": "2026-12-08T10:00:00Z",
            "calendar": "support_hours",
            "zone": "Europe/Berlin",
            "due_local": "2026-12-08T11:00:00+01:00",
        },
    }
    primary = doc["chain"][0]
    assert (primary["reaches"], primary["when"]) == ("marc", "2026-12-04T16:00:00Z")
    assert [row.get("reaches") for row in doc["chain"]] == ["marc", "ines", "jon"]
    text = explain(tmp_path, policies, urgent("2026-12-04T16:00:00Z"))
    assert "SLAs if it starts at 2026-12-04T16:00:00Z:" in text
    assert (
        "  resolve due 2026-12-08 11:00 Europe/Berlin"
        " (2026-12-08T10:00:00Z; 12h within support_hours)"
    ) in text


def test_wall_clock_slas_fall_due_target_later(tmp_path: Path) -> None:
    event = urgent("2026-12-04T16:00:00Z")
    event["data"]["ticket"]["severity"] = "critical"
    event["data"]["account"]["tier"] = "enterprise"
    doc = json.loads(explain(tmp_path, REPO / "policies", event, "--format", "json"))
    assert doc["owner"] == "enterprise_critical"
    assert doc["sla"]["resolve"] == {
        "target": 14400,
        "due": "2026-12-04T20:00:00Z",
        "calendar": None,
    }
    assert "  resolve due 2026-12-04T20:00:00Z (4h)" in explain(tmp_path, REPO / "policies", event)


def test_a_level_in_a_coverage_gap_reaches_nobody(tmp_path: Path) -> None:
    root = tmp_path / "set"
    shutil.copytree(REPO / "policies", root / "policies")
    directory = root / "policies" / "directory.esc"
    text = directory.read_text("utf-8")
    cut = re.sub(r"  layer americas \{.*?\n  \}\n", "", text, flags=re.S)
    assert cut != text
    directory.write_text(cut, "utf-8")
    # Friday 21:00 Berlin: Europe's layer ends at 20:00, no Americas layer any more.
    event = urgent("2026-12-04T20:00:00Z")
    doc = json.loads(explain(tmp_path, root / "policies", event, "--format", "json"))
    primary = doc["chain"][0]
    assert primary["reaches"] is None
    assert primary["who"] == "support_oncall (team; nobody on call)"
    assert doc["chain"][1]["reaches"] == "ines"
    text = explain(tmp_path, root / "policies", event)
    assert "primary: support_oncall (team; nobody on call) — ack within 30m" in text
