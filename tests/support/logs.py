"""Logging as `chronos serve` or `chronos dev` sets it up, into a buffer, for one test."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import structlog

from app.logs import configure_logging


@contextmanager
def configured_logging(
    level: str = "DEBUG", stream: io.StringIO | None = None, **options: Any
) -> Iterator[io.StringIO]:
    """`configure_logging(level, stream=buffer, **options)`; the logging set-up before it (root
    handlers and level, every logger's level, structlog's configuration) restored after."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    loggers = logging.root.manager.loggerDict
    saved_levels = {n: lg.level for n, lg in loggers.items() if isinstance(lg, logging.Logger)}
    buffer = stream if stream is not None else io.StringIO()
    configure_logging(level, stream=buffer, **options)
    try:
        yield buffer
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)
        for name, logger in list(loggers.items()):
            if isinstance(logger, logging.Logger):
                logger.setLevel(saved_levels.get(name, logging.NOTSET))
        structlog.reset_defaults()


def json_lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    """Each line of `buffer` parsed as the JSON object it must be."""
    entries: list[dict[str, Any]] = []
    for line in buffer.getvalue().splitlines():
        entry = json.loads(line)
        assert isinstance(entry, dict), line
        entries.append(entry)
    return entries
