"""The fault suite: real `chronos serve` and `chronos nas-emulator` processes on loopback,
under `kill -9`, NAS refusing or hanging, and the database going away. Every module is marked
`faults` and `e2e`, so `make test-fast` leaves it out and `make test` runs it."""

from __future__ import annotations

import pytest


@pytest.fixture
def postgres_url(database_url: str) -> str:
    """This test's PostgreSQL database; the test is skipped on SQLite."""
    if database_url.startswith("sqlite"):
        pytest.skip("needs PostgreSQL: set CHRONOS_TEST_DATABASE_URL")
    return database_url
