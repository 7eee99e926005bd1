"""Readiness, as `/readyz` and `GET /api/status` report it."""

from __future__ import annotations

from dataclasses import dataclass

from app.services import DrainState, StartupState
from app.store import Store, StoreUnavailable


@dataclass(frozen=True)
class Readiness:
    ready: bool
    reason: str | None = None


async def readiness(store: Store, startup: StartupState, drain: DrainState) -> Readiness:
    """Ready when the agent is not draining, the store answers and the startup reconcile
    finished (it read NAS's list once); otherwise the first of these that fails is the
    reason."""
    if drain.draining:
        return Readiness(False, "draining")
    try:
        await store.ping()
    except StoreUnavailable:
        return Readiness(False, "store unreachable")
    if not startup.done:
        reason = "startup reconcile not finished"
        if startup.last_error:
            reason += f": {startup.last_error}"
        return Readiness(False, reason)
    return Readiness(True)
