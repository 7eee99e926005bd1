"""Structured logs. Call sites log an event with its own fields (`extra=`); the context of the
work in hand (`job_id`, `fire_at`, `attempt`, `run_key`) is bound once with `log_context` and
added to every line logged inside it, in this task and the tasks it starts.

`serve` writes one JSON object per line; `dev` writes `time level logger: event key=value`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
_context: ContextVar[dict[str, Any]] = ContextVar("log_context", default={})  # noqa: B039


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind `fields` to every log line inside the block (and tasks started in it)."""
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the bound context onto each record as it is logged, so a handler that formats
    later (a queue, another thread) still writes it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "_log_context"):
            record._log_context = dict(_context.get())
        return True


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The bound context, then the record's own `extra` fields (which win on a clash)."""
    bound = getattr(record, "_log_context", None)
    fields = dict(_context.get() if bound is None else bound)
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value
    return fields


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
            **record_fields(record),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class KeyValueFormatter(logging.Formatter):
    """Readable lines for a terminal: the event, then its fields as `key=value`."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = " ".join(f"{k}={v}" for k, v in record_fields(record).items() if v is not None)
        if not fields:
            return line
        head, sep, trace = line.partition("\n")
        return f"{head} {fields}{sep}{trace}"


def configure_logging(level: str = "INFO", *, json_lines: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else KeyValueFormatter())
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request URL at INFO; keep it for debugging only.
    logging.getLogger("httpx").setLevel(logging.WARNING)
