"""How many fires this process works on at once, and the early, cheap refusal past that.

Cron fires arrive in bursts (the top of the minute, the hour). Working on all of them at once
makes each one slow: their arms at NAS queue behind each other until the fire path's arm
budget runs out, and every fire is answered 503 after its work was done, which NAS
re-delivers: more load. The gate lets `concurrency` fires work at a time and makes the others
wait their turn (a wait is not work: nothing is read, verified or written), so a burst is
admitted at the pace the process can keep. Only when the process truly is over capacity (more
than `queue` fires already waiting, or a fire that waited `max_wait` seconds without a turn)
is a fire refused, with 503 `overloaded` and `Retry-After`, before any work; each refusal is
counted (`shed`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from app.errors import Overloaded

log = logging.getLogger(__name__)

WARN_EVERY_SECONDS = 10.0  # one warning line per window while fires are refused


class FireGate:
    def __init__(self, *, concurrency: int, queue: int, max_wait: float, retry_after: int) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.concurrency = concurrency
        self.queue = queue
        self.max_wait = max_wait
        self.retry_after = retry_after
        self._slots = asyncio.Semaphore(concurrency)
        self.working = 0  # fires past the gate
        self.waiting = 0  # fires waiting for a turn
        self.shed = 0  # fires refused, since the start
        self._warned_at = float("-inf")
        self._shed_since_warning = 0

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Wait for a turn to work on a fire; `Overloaded` at once when too many wait, or
        when no turn came within `max_wait`."""
        if self._slots.locked() and self.waiting >= self.queue:
            self._refuse(f"{self.waiting} fires are already waiting")
        self.waiting += 1
        try:
            async with asyncio.timeout(self.max_wait):
                await self._slots.acquire()
        except TimeoutError:
            self._refuse(f"no turn within {self.max_wait:g} s")
        finally:
            self.waiting -= 1
        self.working += 1
        try:
            yield
        finally:
            self.working -= 1
            self._slots.release()

    def _refuse(self, why: str) -> None:
        self.shed += 1
        self._shed_since_warning += 1
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            log.warning(
                "fires refused: over capacity",
                extra={"reason": why, "refused": self._shed_since_warning, "total": self.shed},
            )
            self._warned_at = now
            self._shed_since_warning = 0
        raise Overloaded(
            f"the agent is over capacity ({why}); the fire was not read: retry",
            retry_after=self.retry_after,
        )
