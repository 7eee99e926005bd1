"""Structured logs. Call sites log an event with its own fields (`extra=`); the context of the
work in hand (`job_id`, `fire_at`, `attempt`, `run_key`) is bound once with `log_context` and
added to every line logged inside it, in this task and the tasks it starts.

`serve` writes one JSON object per line; `dev` writes `time level logger: event key=value`.

Secrets never reach the output, whatever the level: the libraries that would log SQL
parameters, request headers or bodies (database drivers, SQLAlchemy, httpx/httpcore, HTTP/2 and
multipart parsers, uvicorn's ASGI trace) are held at WARNING, and every line is passed through
`app.redaction` (the agent's own tokens, URL userinfo, bearer tokens, JWTs) before it is written.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

from app.redaction import Secrets, mask_credentials

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
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exc"] = record.exc_text
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


# Loggers that write SQL parameters, request headers or bodies below WARNING, and the lowest
# level each may write at. uvicorn's access lines (method, path, status) stay at INFO.
QUIET_LOGGERS: Mapping[str, int] = {
    "aiosqlite": logging.WARNING,  # DEBUG: every statement with its parameters
    "asyncpg": logging.WARNING,
    "sqlalchemy": logging.WARNING,  # engine INFO: statements and parameters; pool DEBUG
    "httpx": logging.WARNING,  # INFO: every request URL
    "httpcore": logging.WARNING,  # DEBUG: request and response traces
    "hpack": logging.WARNING,  # DEBUG: decoded header values
    "h2": logging.WARNING,
    "h11": logging.WARNING,
    "multipart": logging.WARNING,  # DEBUG: form parts
    "python_multipart": logging.WARNING,
    "uvicorn.asgi": logging.WARNING,  # TRACE: every ASGI message, bodies included
    "uvicorn.access": logging.INFO,
}


class QuietLibraries(logging.Filter):
    """Drops records of `QUIET_LOGGERS` (and their children) below their floor, even when a
    logger's level was lowered after `configure_logging`."""

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        while True:
            floor = QUIET_LOGGERS.get(name)
            if floor is not None:
                return record.levelno >= floor
            name, dot, _ = name.rpartition(".")
            if not dot:
                return True


class RedactingFilter(logging.Filter):
    """Masks `secrets` and anything shaped like a credential in the message, the traceback
    and the string fields of each record, before any handler formats it."""

    def __init__(self, secrets: Secrets) -> None:
        super().__init__()
        self.secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: the handler reports it, unmasked parts aside
            message = str(record.msg)
        record.msg = self.mask(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        for key, value in list(record.__dict__.items()):
            if key not in _STANDARD and key != "_log_context":
                record.__dict__[key] = self.mask_value(value)
        bound = getattr(record, "_log_context", None)
        if isinstance(bound, dict):
            record._log_context = {k: self.mask_value(v) for k, v in bound.items()}
        return True

    def mask(self, text: str) -> str:
        return mask_credentials(self.secrets.mask(text))

    def mask_value(self, value: object) -> object:
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {k: self.mask_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask_value(v) for v in value]
        return value


def configure_logging(
    level: str = "INFO",
    *,
    json_lines: bool = True,
    stream: TextIO | None = None,
    secrets: Iterable[str | None] = (),
) -> None:
    """Log to `stream` (stderr) at `level`, one JSON object per line or `key=value` lines.

    `secrets` (the agent's tokens) are masked wherever they appear; the libraries of
    `QUIET_LOGGERS` are held at their floor whatever `level` is.
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if json_lines else KeyValueFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(QuietLibraries())
    handler.addFilter(RedactingFilter(Secrets(s for s in secrets if s)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name, floor in QUIET_LOGGERS.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(floor, root.level))
