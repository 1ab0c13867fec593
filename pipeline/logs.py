"""Structured logs: one JSON object per line, for log shippers.

Fields: ``ts`` (UTC, RFC 3339), ``level``, ``logger``, ``message``, and whatever was passed
in ``extra`` (for example ``topic``, ``partition``, ``offset``). Exceptions add ``error``.
Settings objects and secrets are never logged by this project; request content never
reaches a log line because it never enters the system.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import orjson

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["error"] = self.formatException(record.exc_info)
        return orjson.dumps(doc, default=str).decode()


def json_handler() -> logging.Handler:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    return handler
