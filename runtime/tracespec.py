"""``runtime.tracing`` and ``runtime.logging`` in ``escalade.yaml``: their schema (checked with
located errors by :mod:`escalade.runtime.settings`, which refuses a bad file) and what
``escalade serve`` does with them.

```yaml
runtime:
  tracing:
    otlp_endpoint: http://otel-collector:4318/v1/traces   # OTLP over HTTP
    service_name: escalade                                # default: escalade
  logging:
    format: json                                          # text (default) | json
```
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from escalade.runtime.logfmt import LOG_FORMATS

DEFAULT_SERVICE_NAME = "escalade"

TRACING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "otlp_endpoint": {"type": "string", "pattern": r"^https?://[^\s@]+$"},
        "service_name": {"type": "string", "pattern": r"^[A-Za-z0-9_.-]{1,100}$"},
    },
    "required": ["otlp_endpoint"],
    "additionalProperties": False,
}
LOGGING_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"format": {"enum": list(LOG_FORMATS)}},
    "additionalProperties": False,
}


@dataclass(frozen=True, slots=True)
class Observability:
    """What ``runtime.tracing`` and ``runtime.logging`` ask for."""

    otlp_endpoint: str | None = None
    service_name: str = DEFAULT_SERVICE_NAME
    log_format: str = "text"


def observability_of(section: Mapping[str, Any] | None) -> Observability:
    """The settings from a (schema-checked) ``runtime:`` section."""
    section = section or {}
    tracing = section.get("tracing") or {}
    logging = section.get("logging") or {}
    return Observability(
        otlp_endpoint=tracing.get("otlp_endpoint"),
        service_name=str(tracing.get("service_name", DEFAULT_SERVICE_NAME)),
        log_format=str(logging.get("format", "text")),
    )


def load_observability(config: Path | None) -> Observability:
    """The settings of ``config`` (an ``escalade.yaml`` that :func:`load_settings` already
    validated; defaults without one or when it cannot be read again)."""
    if config is None:
        return Observability()
    import yaml

    try:
        document = yaml.safe_load(config.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return Observability()
    section = document.get("runtime") if isinstance(document, Mapping) else None
    return observability_of(section if isinstance(section, Mapping) else None)


def apply_observability(settings: Observability) -> None:
    """Log lines in the configured format; traces to the configured OTLP endpoint.
    Raises :class:`~escalade.runtime.tracing.TracingUnavailable` without the otel extra."""
    from escalade.runtime import logfmt, tracing

    logfmt.configure_logging(settings.log_format)
    if settings.otlp_endpoint is not None:
        tracing.configure(settings.otlp_endpoint, settings.service_name)


__all__ = [
    "LOGGING_SCHEMA",
    "TRACING_SCHEMA",
    "Observability",
    "apply_observability",
    "load_observability",
    "observability_of",
]
