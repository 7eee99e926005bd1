"""Helpers shared by the whole test suite; key and JWT helpers live in `tests.support.keys`."""

from __future__ import annotations


class ManualClock:
    """A monotonic clock that moves only when told to; pass it wherever a `clock` is injected."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
