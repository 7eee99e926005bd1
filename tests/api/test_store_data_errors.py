"""A value the database refuses as data is a 400, never a 500 or a 503: the store raises
`StoreDataError` (PostgreSQL SQLSTATE class 22; SQLite's overflow and encoding errors)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.api.errors import install_error_handlers
from app.store import Store
from app.store.errors import StoreDataError

pytestmark = pytest.mark.asyncio


def job_values(**overrides: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": "job-1",
        "name": "n",
        "schedule": "every 1h",
        "timezone": "UTC",
        "target": {"type": "command", "argv": ["true"]},
        "runs_started": 0,
        "state": "scheduled",
        "anchor_at": now,
        "created_at": now,
        "updated_at": now,
        **overrides,
    }


@pytest.mark.parametrize(
    "overrides", [{"repeat": 2**63}, {"misfire_grace_seconds": 2**63}, {"name": "a\ud800"}]
)
async def test_a_value_the_database_refuses_is_a_store_data_error(
    store: Store, overrides: dict[str, Any]
) -> None:
    with pytest.raises(StoreDataError):
        async with store.transaction() as tx:
            await tx.jobs.insert(job_values(**overrides))
    async with store.transaction() as tx:
        assert await tx.jobs.list_all() == []


async def test_a_lookup_by_text_no_store_holds_is_a_store_data_error(store: Store) -> None:
    with pytest.raises(StoreDataError):
        async with store.transaction() as tx:
            await tx.jobs.get("\ud800")


async def test_the_api_answers_a_store_data_error_with_400() -> None:
    app = FastAPI()
    install_error_handlers(app, retry_after_seconds=1)

    @app.get("/boom")
    async def boom() -> None:
        raise StoreDataError("DBAPIError")

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as client:
        response = await client.get("/boom")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
