"""Persistence: every SQL statement of the service lives in this package."""

from app.store.records import FireRecord, JobRecord, OutboxRecord
from app.store.store import (
    DuplicateFire,
    Store,
    StoreUnavailable,
    Tx,
    advanced_job,
    fire_dedup_key,
    new_fire,
)

__all__ = [
    "DuplicateFire",
    "FireRecord",
    "JobRecord",
    "OutboxRecord",
    "Store",
    "StoreUnavailable",
    "Tx",
    "advanced_job",
    "fire_dedup_key",
    "new_fire",
]
