"""Faults of the agent-cron API injected at runtime through `/_emulator/faults` (emulator only).

NAS can answer 503 to agent-cron calls (`unavailable`) or hold them (`hold`: each call waits
until the fault ends, then is served as usual), for a number of seconds or until cleared. With
no fault set, which is the default, the emulator behaves exactly as without this module.
Holding deliveries is the arm registry's business (`ArmRegistry.hold_deliveries`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from app.errors import ServiceUnavailable

AGENT_CRON_CALLS = ("provision", "cancel", "list")
UNAVAILABLE_RETRY_AFTER_SECONDS = 1


class AgentCronMode(StrEnum):
    UNAVAILABLE = "unavailable"  # answer 503 with Retry-After
    HOLD = "hold"  # keep the call waiting until the fault ends, then serve it


@dataclass(frozen=True)
class AgentCronFault:
    mode: AgentCronMode
    calls: frozenset[str]
    until: float | None  # on the control's monotonic clock; None: until cleared


class FaultControl:
    """The agent-cron fault in force, if any; one at a time (setting one replaces the other)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._fault: AgentCronFault | None = None
        self._changed = asyncio.Event()

    def set_agent_cron(
        self, mode: AgentCronMode, *, seconds: float | None, calls: Iterable[str] | None = None
    ) -> AgentCronFault:
        """Put `mode` in force for `calls` (default: all three) for `seconds` (None: until
        cleared). Calls held by a previous fault are re-judged against this one."""
        chosen = frozenset(AGENT_CRON_CALLS if calls is None else calls)
        unknown = chosen - set(AGENT_CRON_CALLS)
        if unknown or not chosen:
            raise ValueError(f"calls: expected some of {AGENT_CRON_CALLS}, got {sorted(chosen)}")
        until = None if seconds is None else self._clock() + seconds
        self._fault = AgentCronFault(mode=mode, calls=chosen, until=until)
        self._signal()
        return self._fault

    def clear(self) -> None:
        """End the fault in force; held calls go on at once."""
        self._fault = None
        self._signal()

    def current(self) -> AgentCronFault | None:
        """The fault in force now (an expired one is forgotten)."""
        fault = self._fault
        if fault is not None and fault.until is not None and self._clock() >= fault.until:
            self._fault = None
            return None
        return fault

    def remaining_seconds(self, fault: AgentCronFault) -> float | None:
        return None if fault.until is None else max(fault.until - self._clock(), 0.0)

    async def admit(self, call: str) -> None:
        """Let one agent-cron call (`provision`, `cancel` or `list`) through: at once without a
        fault for it, after the hold ends under `hold`; `unavailable` raises a 503."""
        while (fault := self.current()) is not None and call in fault.calls:
            if fault.mode is AgentCronMode.UNAVAILABLE:
                raise ServiceUnavailable(
                    "NAS unavailable (fault injected through /_emulator/faults)",
                    retry_after=UNAVAILABLE_RETRY_AFTER_SECONDS,
                )
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.remaining_seconds(fault)):
                    await changed.wait()

    def _signal(self) -> None:
        # Wake every waiter with the event it holds; later waiters get a fresh one.
        self._changed.set()
        self._changed = asyncio.Event()
