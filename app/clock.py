"""The one place the service reads the wall clock; services take a `Clock` so tests can pass one."""

from collections.abc import Callable
from datetime import UTC, datetime

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)
