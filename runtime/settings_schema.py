"""The JSON Schema of ``runtime:`` in ``escalade.yaml``, and the keys that would hold a secret.

:mod:`escalade.runtime.settings` validates against it with located errors.
"""

from __future__ import annotations

from typing import Any

from escalade.runtime.connectorspec import CONNECTOR_SCHEMA
from escalade.runtime.tracespec import LOGGING_SCHEMA, TRACING_SCHEMA

_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_TIMEOUT: dict[str, Any] = {"type": "number", "exclusiveMinimum": 0, "maximum": 60}
_COUNT: dict[str, Any] = {"type": "integer", "minimum": 1}
_DURATION: dict[str, Any] = {"type": "string", "minLength": 1}  # parse_duration checks the rest
# No blank, quote or angle bracket: the URL goes into mail, Slack markup and HTML as it is.
_PUBLIC_URL = r"^https?://[^\s<>|\"'`]+$"


def _endpoint(secret: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "url": {"type": "string", "pattern": r"^https?://[^\s]+$"},
            secret: {"$ref": "#/$defs/env_name"},
            "accepted": {"enum": ["pending", "delivered"]},
            "timeout": _TIMEOUT,
        },
        "required": ["url", secret],
        "additionalProperties": False,
    }


_HEADER = {"type": "string", "pattern": r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$"}
# One entry of a source's field map (escalade.runtime.sourcemaps): a JSON pointer, or an
# object with one of pointer, value or template (sources.source_problems checks which).
_MAP_ENTRY: dict[str, Any] = {
    "type": ["string", "object"],
    "properties": {
        "pointer": {"type": "string"},
        "value": {"type": ["string", "number", "boolean", "array"]},
        "template": {"type": "string", "minLength": 1},
        "values": {
            "type": "object",
            "additionalProperties": {"type": ["string", "number", "boolean", "null"]},
        },
        "default": {"type": ["string", "number", "boolean", "null"]},
        "required": {"type": "boolean"},
        "format": {"enum": ["epoch_s", "epoch_ms"]},
    },
    "additionalProperties": False,
}
_SOURCE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "auth": {
            "type": "object",
            "properties": {
                "method": {"enum": ["hmac", "stripe", "standard_webhooks", "bearer"]},
                "header": _HEADER,
                "prefix": {"type": "string"},
                "encoding": {"enum": ["hex", "base64"]},
                "timestamp_header": _HEADER,
                "tolerance": _DURATION,
                "secret_env": {"$ref": "#/$defs/env_name"},
                "token_env": {"$ref": "#/$defs/env_name"},
            },
            "required": ["method"],
            "if": {"properties": {"method": {"const": "bearer"}}},
            "then": {"required": ["token_env"]},
            "else": {"required": ["secret_env"]},
            "additionalProperties": False,
        },
        "map": {
            "type": "object",
            "properties": {
                "id": _MAP_ENTRY,
                "type": _MAP_ENTRY,
                "at": _MAP_ENTRY,
                "fields": {
                    "type": "object",
                    "propertyNames": {"pattern": r"^[a-z_][a-z0-9_]*\.[a-z_][a-z0-9_]*$"},
                    "additionalProperties": _MAP_ENTRY,
                },
            },
            "required": ["id", "type", "fields"],
            "additionalProperties": False,
        },
        "expect_every": _DURATION,
    },
    "required": ["auth", "map"],
    "additionalProperties": False,
}

RUNTIME_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "escalade.yaml runtime settings",
    "type": "object",
    "$defs": {"env_name": {"type": "string", "pattern": _ENV_NAME}},
    "properties": {
        "database": {"type": "string", "minLength": 1},
        "server": {
            "type": "object",
            "properties": {
                "host": {"type": "string", "minLength": 1},
                "port": {"type": "integer", "minimum": 0, "maximum": 65535},
                "token_env": {"$ref": "#/$defs/env_name"},
                # Where people reach the server: acknowledgment links start with it.
                "public_url": {"type": "string", "pattern": _PUBLIC_URL},
                "link_secret_env": {"$ref": "#/$defs/env_name"},
            },
            "dependentRequired": {
                "public_url": ["link_secret_env"],
                "link_secret_env": ["public_url"],
            },
            "additionalProperties": False,
        },
        "sources": {
            "type": "object",
            "propertyNames": {"pattern": r"^[a-z][a-z0-9_-]{0,62}$"},
            "additionalProperties": _SOURCE,
        },
        "tracing": TRACING_SCHEMA,  # escalade.runtime.tracespec
        "logging": LOGGING_SCHEMA,
        "trusted_keys": {"type": "array", "items": {"type": "string", "minLength": 1}},
        "max_clock_skew": _DURATION,
        "last_resort": {
            "type": "object",
            "properties": {
                "ref": {"type": "string", "pattern": r"^[a-z_][a-z0-9_]*$"},
                "channel": {"type": "string", "pattern": r"^[a-z_][a-z0-9_]*$"},
            },
            "required": ["ref"],
            "additionalProperties": False,
        },
        "retry": {
            "type": "object",
            "properties": {"attempts": _COUNT, "base": _DURATION, "cap": _DURATION},
            "additionalProperties": False,
        },
        "loop_breaker": {
            "type": "object",
            "properties": {"limit": _COUNT, "window": _DURATION},
            "additionalProperties": False,
        },
        "notifiers": {
            "type": "object",
            "properties": {
                "timeout": _TIMEOUT,
                "dry_run": {"type": "boolean"},
                "slack": {
                    "type": "object",
                    "properties": {
                        "webhook_url_env": {"$ref": "#/$defs/env_name"},
                        "signing_secret_env": {"$ref": "#/$defs/env_name"},
                        "timeout": _TIMEOUT,
                    },
                    "required": ["webhook_url_env"],
                    "additionalProperties": False,
                },
                "email": {
                    "type": "object",
                    "properties": {
                        "host": {"type": "string", "minLength": 1},
                        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                        "sender": {"type": "string", "pattern": r"^[^\s@]+@[^\s@]+$"},
                        "starttls": {"type": "boolean"},
                        "username": {"type": "string", "minLength": 1},
                        "password_env": {"$ref": "#/$defs/env_name"},
                        "timeout": _TIMEOUT,
                    },
                    "required": ["host", "sender"],
                    "dependentRequired": {
                        "username": ["password_env"],
                        "password_env": ["username"],
                    },
                    "additionalProperties": False,
                },
                "webhook": _endpoint("secret_env"),
                "pager": _endpoint("secret_env"),
                "connectors": CONNECTOR_SCHEMA,
            },
            "anyOf": [
                {"required": [k]}
                for k in ("slack", "email", "webhook", "pager", "dry_run", "connectors")
            ],
            "additionalProperties": False,
        },
    },
    "additionalProperties": False,
}

# Keys that would hold a secret in the file; the message says which ``*_env`` to use.
INLINE_SECRETS = {
    "password": "password_env",
    "secret": "secret_env",
    "token": "an environment variable named by *_env",
    "api_key": "an environment variable named by *_env",
    "webhook_url": "webhook_url_env",
    "link_secret": "link_secret_env",
    "signing_secret": "signing_secret_env",
    "routing_key": "the person's or channel's pager id (the pack carries it)",
}
