"""Server logs: uvicorn's text lines (the default) or one JSON object per line.

``TIDINGS_LOG_FORMAT=json`` gives every record as ``{"ts", "level", "logger",
"message", ...}`` plus the fields a record carries in ``extra``: ``connection``,
``notification``, ``user``, ``instance`` (host:pid:tag) and the start-up line's ``database``,
``broker`` and ``limits``. Messages pass through :func:`tidings.redaction.redact`
whatever the format, so tokens and passwords stay out.
"""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

import orjson
from uvicorn.config import LOGGING_CONFIG

from tidings.redaction import redact

FIELDS = ("connection", "notification", "user", "instance", "database", "broker", "limits")
"""``extra`` fields copied into JSON records."""


class JsonFormatter(logging.Formatter):
    """One JSON object per record (``tidings.logs`` module docstring)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for name in FIELDS:
            value = record.__dict__.get(name)
            if value is not None:
                entry[name] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["error"] = redact(self.formatException(record.exc_info))
        return orjson.dumps(entry, default=str).decode()


def log_config(log_format: str, level: str) -> dict[str, Any]:
    """uvicorn's logging configuration, with tidings' own loggers and the chosen format."""
    config = copy.deepcopy(LOGGING_CONFIG)
    if log_format == "json":
        json_formatter = {"()": "tidings.logs.JsonFormatter"}
        config["formatters"] = {"default": json_formatter, "access": dict(json_formatter)}
    config["loggers"]["tidings"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def limits_in_force(settings: Any) -> dict[str, Any]:
    """What the start-up line reports as limits."""
    return {
        "create_rate": settings.create_rate or "off",
        "create_burst": settings.create_burst,
        "max_connections_per_user": settings.max_connections_per_user,
        "inbound_rate": settings.inbound_rate,
        "read_rate": settings.read_rate,
        "outbox_size": settings.outbox_size,
        "max_request_bytes": settings.max_request_bytes,
        "workers": settings.workers,
    }
