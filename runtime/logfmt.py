"""Log lines as JSON (``runtime.logging.format: json``), with the current trace and span ids.

One JSON object per line: ``time`` (UTC, ISO 8601 with milliseconds), ``level``,
``logger``, ``message``, ``trace_id``/``span_id`` when the line was written inside a span
(:mod:`escalade.runtime.tracing`), ``exception`` with the formatted traceback when
there is one, and whatever ``extra={...}`` fields the caller gave. The text format
(the default) stays as it was.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from escalade.runtime import tracing

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(message)s"

# What every LogRecord has: not an ``extra`` field of the caller's.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonLines(logging.Formatter):
    """Formats a record as one line of JSON (see the module)."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = time.gmtime(record.created)
        line: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        ids = tracing.current_ids()
        if ids is not None:
            line["trace_id"], line["span_id"] = ids
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def formatter(kind: str) -> logging.Formatter:
    """The formatter of ``runtime.logging.format`` (``text`` or ``json``)."""
    if kind not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {', '.join(LOG_FORMATS)}, not {kind!r}")
    return JsonLines() if kind == "json" else logging.Formatter(TEXT_FORMAT)


def configure_logging(kind: str, level: int = logging.INFO) -> None:
    """Give the root logger a handler writing ``kind`` lines to stderr (its existing
    handlers, if any, get the formatter instead: the embedding process chose where)."""
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler())
        root.setLevel(level)
    for handler in root.handlers:
        handler.setFormatter(formatter(kind))


__all__ = ["LOG_FORMATS", "JsonLines", "configure_logging", "formatter"]
