"""``runtime.notifiers.connectors`` in ``escalade.yaml``: which connector carries each action
(:mod:`escalade.runtime.notify.connectors`), its schema and its settings. No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

CONNECTOR_KINDS = ("jira", "webhook")
CONNECTOR_ACTIONS = ("create_ticket", "comment", "set", "label", "close")

CONNECTOR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "propertyNames": {"enum": list(CONNECTOR_ACTIONS)},
    "additionalProperties": {
        "type": "object",
        "properties": {
            "kind": {"enum": list(CONNECTOR_KINDS)},
            "url": {"type": "string", "pattern": r"^https?://[^\s@]+$"},
            "project": {"type": "string", "minLength": 1},
            "issue_type": {"type": "string", "minLength": 1},
            "user": {"type": "string", "minLength": 1},
            "token_env": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
            "close_transition": {"type": "string", "minLength": 1},
            "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 60},
        },
        "required": ["kind"],
        "if": {"properties": {"kind": {"const": "jira"}}},
        "then": {"required": ["url", "project", "token_env"]},
        "additionalProperties": False,
    },
}


@dataclass(frozen=True, slots=True)
class ConnectorSpec:
    """One action's connector: ``jira`` (a REST API) or ``webhook`` (the generic one)."""

    kind: str
    url: str = ""
    project: str = ""
    token_env: str | None = None
    user: str | None = None
    issue_type: str = "Task"
    close_transition: str = "31"
    fields: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 5.0


def connector_specs(raw: Mapping[str, Any] | None, timeout: float) -> dict[str, ConnectorSpec]:
    """The connectors by action from their (schema-checked) settings."""
    return {
        str(action): ConnectorSpec(
            kind=spec["kind"],
            url=str(spec.get("url", "")),
            project=str(spec.get("project", "")),
            token_env=spec.get("token_env"),
            user=spec.get("user"),
            issue_type=str(spec.get("issue_type", "Task")),
            close_transition=str(spec.get("close_transition", "31")),
            fields=dict(spec.get("fields") or {}),
            timeout=float(spec.get("timeout", timeout)),
        )
        for action, spec in (raw or {}).items()
    }
