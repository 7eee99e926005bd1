"""Structured logs, rendered by structlog. Call sites log through stdlib `logging` with their own
fields (`extra=`); the context of the work in hand (`job_id`, `fire_at`, `attempt`, `run_key`)
is bound once with `log_context` (structlog's context variables) and added to every line
logged inside it, in this task and the tasks it starts.

`serve` writes one JSON object per line (`ts`, `level`, `logger`, `msg`, then the fields);
`dev` writes `time LEVEL logger: msg key=value ...`, coloured only on a terminal. Every record,
ours or a library's (uvicorn included), goes through the same `ProcessorFormatter` chain.

Secrets never reach the output, whatever the level: the libraries that would log SQL
parameters, request headers or bodies (database drivers, SQLAlchemy, httpx/httpcore, HTTP/2 and
multipart parsers, uvicorn's ASGI trace) are held at WARNING, and every string of every line
(message, fields, bound context, traceback) is passed through `app.redaction` (the agent's own
tokens, URL userinfo, bearer tokens, JWTs) before it is written.

A database or NAS that cannot be reached is logged as one line, `error="connection refused"
host=127.0.0.1:5432`, not as a traceback (`app.log_failures`); other exceptions keep theirs.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

from app.imports import import_without
from app.log_failures import connection_failure, failure_fields, is_traceback_text
from app.redaction import Secrets, mask_credentials

if TYPE_CHECKING:
    import structlog
    from structlog.typing import EventDict, Processor, WrappedLogger
else:
    # `structlog.dev` imports rich, and pygments through it (some 50 ms and 60 modules), for a
    # console renderer not used here: `chronos serve` loads neither.
    structlog = import_without("structlog", optional="rich")

__all__ = [
    "QUIET_LOGGERS",
    "ContextFilter",
    "JsonFormatter",
    "KeyValueFormatter",
    "configure_logging",
    "failure_fields",
    "log_context",
    "record_fields",
]

# The context of a fire or a run, first on each line that carries it.
CONTEXT_FIELDS = ("job_id", "job", "fire_at", "attempt", "run_key")
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "taskName"}
# uvicorn's copy of its message with ANSI colour codes; the plain `msg` says the same.
_DROPPED = frozenset({"color_message"})
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_AUTH_SCHEME = re.compile(r"(?i)bearer|basic")  # as case-blind as `mask_credentials`' own


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind `fields` to every log line inside the block (and tasks started in it)."""
    tokens = structlog.contextvars.bind_contextvars(**fields)
    try:
        yield
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


class ContextFilter(logging.Filter):
    """Copies the bound context onto each record as it is logged, so a handler that formats
    later (a queue, another thread) still writes it. A record whose message is a formatted
    traceback (uvicorn's failed lifespan) keeps the exception being handled, so a connection
    failure in it can be told apart."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "_log_context"):
            record._log_context = structlog.contextvars.get_contextvars()
        msg = record.msg
        if record.exc_info is None and isinstance(msg, str) and is_traceback_text(msg):
            record._handled_exc = sys.exc_info()[1]
        return True


def record_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The bound context, then the record's own `extra` fields (which win on a clash)."""
    bound = getattr(record, "_log_context", None)
    fields = dict(structlog.contextvars.get_contextvars() if bound is None else bound)
    for key, value in record.__dict__.items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value
    return fields


# -- the processor chain ---------------------------------------------------------------------


def add_bound_context(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """The context bound when the record was logged (else now), before the record's own
    fields: `ExtraAdder` then lets those win on a clash."""
    record = event.get("_record")
    bound = getattr(record, "_log_context", None)
    if bound is None:
        bound = structlog.contextvars.get_contextvars()
    for key in CONTEXT_FIELDS:  # in this order on every line, whatever the binding order
        if key in bound:
            event.setdefault(key, bound[key])
    for key, value in bound.items():
        event.setdefault(key, value)
    return event


def summarise_connection_failures(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    """An unreachable database or NAS is one line with its cause and host, not a traceback."""
    exc_info = event.get("exc_info")
    if exc_info is True:
        exc_info = sys.exc_info()
    exc = exc_info[1] if isinstance(exc_info, tuple) else exc_info
    if isinstance(exc, BaseException):
        fields = connection_failure(exc)
        if fields is not None:
            del event["exc_info"]
            event.update(fields)
        return event
    handled = getattr(event.get("_record"), "_handled_exc", None)
    if isinstance(handled, BaseException):
        fields = connection_failure(handled)
        if fields is not None:  # the message is that traceback: say what failed instead
            event["event"] = "cannot connect"
            event.update(fields, exc_type=type(handled).__name__)
    return event


def render_exception(logger: WrappedLogger, name: str, event: EventDict) -> EventDict:
    """The traceback as text under `exc`."""
    if event.get("exc_info"):
        event = structlog.processors.format_exc_info(logger, name, event)
        event["exc"] = event.pop("exception")
    else:
        event.pop("exc_info", None)
    return event


class Finish:
    """The line's head (`ts`, `level`, `logger`, `msg`) then its fields, each string masked:
    known secrets and credential shapes replaced by `***`, ANSI escapes removed."""

    def __init__(self, secrets: Secrets) -> None:
        self.secrets = secrets

    def __call__(self, _: WrappedLogger, name: str, event: EventDict) -> EventDict:
        record: logging.LogRecord | None = event.get("_record")
        created = record.created if record is not None else datetime.now(UTC).timestamp()
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower() if record is not None else name,
            "logger": record.name if record is not None else event.pop("logger", None),
            "msg": self.mask_value(event.pop("event", "")),
        }
        for key, value in event.items():
            if not key.startswith("_") and key not in _DROPPED and key not in line:
                line[key] = self.mask_value(value)
        return line

    def mask(self, text: str) -> str:
        text = self.secrets.mask(text)
        if _may_hold_credentials(text):
            text = mask_credentials(text)
        return _ANSI.sub("", text) if "\x1b" in text else text

    def mask_value(self, value: object) -> object:
        if isinstance(value, str):
            return self.mask(value)
        if isinstance(value, dict):
            return {k: self.mask_value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.mask_value(v) for v in value]
        return value


def _may_hold_credentials(text: str) -> bool:
    """False when none of `mask_credentials`' shapes can match (each needs one of these):
    most fields (ids, times, statuses) then skip its regular expressions."""
    if "://" in text or "eyJ" in text or "=" in text:
        return True
    return _AUTH_SCHEME.search(text) is not None


_LEVEL_COLOURS = {"debug": "\x1b[2m", "warning": "\x1b[33m", "error": "\x1b[31m"}
_LEVEL_COLOURS["critical"] = _LEVEL_COLOURS["error"]


class KeyValueRenderer:
    """`time LEVEL logger: msg key=value ...`, the traceback on the lines below. A value with a
    space, a quote or an `=` is quoted; None is left out. Colours only when `colours`."""

    def __init__(self, *, colours: bool = False) -> None:
        self.colours = colours

    def __call__(self, _: WrappedLogger, __: str, line: EventDict) -> str:
        trace = line.pop("exc", None)
        level = str(line.pop("level")).upper()
        if self.colours and (colour := _LEVEL_COLOURS.get(level.lower())):
            level = f"{colour}{level}\x1b[0m"
        msg = str(line.pop("msg"))
        if "\n" in msg:  # one line per record; only a traceback follows on lines of its own
            msg = msg.replace("\n", "\\n")
        head = f"{line.pop('ts')} {level} {line.pop('logger')}: {msg}"
        fields = " ".join(f"{k}={_kv(v)}" for k, v in line.items() if v is not None)
        text = f"{head} {fields}" if fields else head
        return f"{text}\n{trace}" if trace else text


def _kv(value: object) -> str:
    text = value if isinstance(value, str) else str(value)
    if not text or any(c in text for c in ' "=\n\t'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def _pre_chain() -> list[Processor]:
    return [add_bound_context, structlog.stdlib.ExtraAdder()]


def _formatter(renderer: Processor, secrets: Secrets) -> structlog.stdlib.ProcessorFormatter:
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_pre_chain(),
        processors=[summarise_connection_failures, render_exception, Finish(secrets), renderer],
    )


def JsonFormatter(secrets: Secrets | None = None) -> logging.Formatter:
    """One JSON object per line."""
    renderer = structlog.processors.JSONRenderer(default=str)
    return _formatter(renderer, secrets or Secrets())


def KeyValueFormatter(
    secrets: Secrets | None = None, *, colours: bool = False
) -> logging.Formatter:
    """Readable `key=value` lines for a terminal."""
    return _formatter(KeyValueRenderer(colours=colours), secrets or Secrets())


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


UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")


def configure_logging(
    level: str = "INFO",
    *,
    json_lines: bool = True,
    stream: TextIO | None = None,
    secrets: Iterable[str | None] = (),
) -> None:
    """Log to `stream` (stderr) at `level`, one JSON object per line or `key=value` lines
    (coloured only when `stream` is a terminal).

    `secrets` (the agent's tokens) are masked wherever they appear; the libraries of
    `QUIET_LOGGERS` are held at their floor whatever `level` is. `structlog.get_logger()`
    loggers write through the same handler.
    """
    out = stream or sys.stderr
    known = Secrets(s for s in secrets if s)
    if json_lines:
        formatter = JsonFormatter(known)
    else:
        formatter = KeyValueFormatter(known, colours=_is_terminal(out))
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    handler.addFilter(ContextFilter())
    handler.addFilter(QuietLibraries())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name, floor in QUIET_LOGGERS.items():
        logger = logging.getLogger(name)
        logger.setLevel(max(floor, root.level))
    # uvicorn's own logging config (applied by any server started with it) gives its loggers
    # handlers of their own and stops them propagating: their lines would bypass this one.
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers.clear()
        logger.propagate = True
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-like stream without a terminal
        return False
