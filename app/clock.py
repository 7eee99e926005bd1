"""Time at the edges: the one place the service reads the wall clock (services take a `Clock`
so tests can pass one) and the one parser of ISO 8601 instants."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class InvalidInstant(ValueError):
    """`problem` says what is wrong, so each caller can name it in its own words."""

    def __init__(self, problem: Literal["format", "offset", "range"]) -> None:
        super().__init__(problem)
        self.problem = problem


def parse_instant(text: str) -> datetime:
    """An ISO 8601 timestamp with a UTC offset (`Z` allowed), as an aware UTC datetime.

    A timestamp without an offset is refused: an instant must not depend on a zone guessed
    by the reader."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInstant("format") from exc
    if parsed.utcoffset() is None:
        raise InvalidInstant("offset")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidInstant("range") from exc
