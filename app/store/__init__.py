"""Persistence: every SQL statement of the service lives in this package, one repository per
table (`jobs`, `fires`, `outbox`) over a shared transaction (`Store.transaction()`)."""

from app.store.engine import Store
from app.store.errors import DuplicateFire, StoreUnavailable
from app.store.tx import Tx

__all__ = ["DuplicateFire", "Store", "StoreUnavailable", "Tx"]
