"""Giving leases back: a stopping replica releases the leases of the runs it stopped, so that
another replica resumes them at its next housekeeping round instead of after they expire."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from app.domain.records import FireRecord
from app.logs import log_context
from app.store import Store, StoreUnavailable

# The logger of the executor, whose shutdown this is part of.
log = logging.getLogger("app.runner.executor")

# How long a stopping replica tries; after that the leases are left to expire.
RELEASE_TIMEOUT_SECONDS = 5.0


def _log_fields(fire: FireRecord) -> dict[str, object]:
    return {"job_id": fire.job_id, "fire_at": fire.fire_at.isoformat(), "attempt": fire.attempt}


async def release_leases(store: Store, owner: str, fire_ids: Iterable[int]) -> list[FireRecord]:
    """Release the leases `owner` still holds among `fire_ids` (their runs were stopped); a fire
    that ended or that another replica took over meanwhile is left alone. Returns the fires
    released; none when the store could not be reached in time (the leases then expire)."""
    ids = sorted(fire_ids)
    if not ids:
        return []
    released: list[FireRecord] = []
    try:
        async with asyncio.timeout(RELEASE_TIMEOUT_SECONDS), store.transaction() as tx:
            for fire_id in ids:
                fire = await tx.fires.get(fire_id)
                if fire is None or fire.lease_owner != owner:
                    continue
                if await tx.fires.release_lease(fire.id, fire.fencing_token):
                    released.append(fire)
    except (StoreUnavailable, TimeoutError) as exc:
        log.warning(
            "leases of stopped runs not released: they expire instead",
            extra={"runs": len(ids), "error": str(exc) or exc.__class__.__name__},
        )
        return []
    for fire in released:
        with log_context(**_log_fields(fire)):
            log.warning("run stopped by shutdown; its lease released for another replica")
    return released
