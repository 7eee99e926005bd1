"""`Store.migration_status`: the schema's revision against the scripts' head."""

from __future__ import annotations

import pytest

from app.store import Store
from app.store.revisions import head_revision, migration_status, revision_chain


def test_the_chain_runs_from_the_head_to_the_first_script() -> None:
    chain = revision_chain()
    assert chain[0] == head_revision()
    assert chain[-1] == "0001"
    assert len(set(chain)) == len(chain)


@pytest.mark.asyncio
async def test_a_migrated_store_is_at_head(store: Store) -> None:
    status = await store.migration_status()
    assert status.at_head and status.behind == 0 and status.current == head_revision()


@pytest.mark.asyncio
async def test_an_empty_database_is_all_behind(empty_database_url: str) -> None:
    store = Store.from_url(empty_database_url)
    try:
        status = await store.migration_status()
        assert status.current is None and status.behind == len(revision_chain())
        await store.migrate("0005")
        status = await store.migration_status()
        assert status.current == "0005"
        assert status.behind == revision_chain().index("0005")
        assert not status.at_head
    finally:
        await store.close()


def test_an_unknown_revision_is_not_counted() -> None:
    status = migration_status({"9999"})
    assert status.current == "9999" and status.behind is None and not status.at_head
