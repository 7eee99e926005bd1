"""The schema check at startup: a database at the scripts' head is served without Alembic,
one behind it (or without tables) is upgraded through Alembic."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from app.store import Store
from app.store.revisions import MIGRATIONS, head_revision
from tests.support.processes import base_env

HEAD_REVISION = head_revision()


def test_head_revision_is_the_head_alembic_computes() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [HEAD_REVISION]


def _script(folder: Path, revision: str, down_revision: str) -> None:
    (folder / f"{revision}_step.py").write_text(
        f'"""Step."""\n\nrevision = "{revision}"\ndown_revision = {down_revision}\n'
    )


def test_an_unreadable_or_branched_history_has_no_head(tmp_path: Path) -> None:
    _script(tmp_path, "0001", "None")
    _script(tmp_path, "0002", '"0001"')
    assert head_revision.__wrapped__(tmp_path) == "0002"
    _script(tmp_path, "0003", '"0001"')  # a second branch from 0001: two heads
    assert head_revision.__wrapped__(tmp_path) is None
    (tmp_path / "0003_step.py").write_text("revision = REVISION\ndown_revision = '0002'\n")
    assert head_revision.__wrapped__(tmp_path) is None  # not a quoted id: Alembic decides


@pytest.mark.asyncio
async def test_a_database_without_tables_is_upgraded_to_the_head(
    empty_database_url: str,
) -> None:
    store = Store.from_url(empty_database_url)
    try:
        assert await store.schema_revisions() == set()
        await store.migrate()
        assert await store.schema_revisions() == {HEAD_REVISION}
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_a_database_behind_the_head_is_upgraded(empty_database_url: str) -> None:
    store = Store.from_url(empty_database_url)
    try:
        await store.migrate("0006")
        assert await store.schema_revisions() == {"0006"}
        await store.migrate()
        assert await store.schema_revisions() == {HEAD_REVISION}
    finally:
        await store.close()


def test_a_database_at_the_head_is_served_without_importing_alembic(database_url: str) -> None:
    # In a fresh interpreter: this one imported Alembic for the fixtures already.
    script = textwrap.dedent(
        f"""
        import asyncio, sys
        from app.store import Store

        async def main():
            store = Store.from_url({database_url!r})
            try:
                await store.migrate()
            finally:
                await store.close()

        asyncio.run(main())
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("alembic", "mako"))
        assert not loaded, loaded
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        env=base_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
