"""Helpers shared by the whole test suite; key and JWT helpers live in `tests.support.keys`."""

from __future__ import annotations

from datetime import datetime, timedelta


class ManualClock:
    """A monotonic clock that moves only when told to; pass it wherever a `clock` is injected."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class ManualUtcClock:
    """A wall clock (aware UTC datetimes) that moves only when told to: an `app.clock.Clock`."""

    def __init__(self, start: datetime) -> None:
        if start.utcoffset() is None:
            raise ValueError("a ManualUtcClock needs an aware start instant")
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)
