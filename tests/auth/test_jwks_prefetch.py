"""`JwksCache.prefetch`: the keys fetched at startup, before the first fire needs them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from app.auth import JwksCache, JwksUnavailable
from tests.support import ManualClock
from tests.support.keys import JwksEndpoint, SigningKey, jwks_document

pytestmark = pytest.mark.asyncio

JWKS_URL = "https://portal.example.test/.well-known/jwks.json"
RSA = SigningKey.rsa("rsa-1")


@pytest.fixture
def endpoint() -> JwksEndpoint:
    return JwksEndpoint(jwks_document(RSA))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest_asyncio.fixture
async def http(endpoint: JwksEndpoint) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=endpoint.transport()) as client:
        yield client


@pytest.fixture
def cache(http: httpx.AsyncClient, clock: ManualClock) -> JwksCache:
    return JwksCache(http, JWKS_URL, refresh_interval=30, failure_ttl=5, clock=clock)


async def test_prefetched_keys_serve_the_first_use_without_a_fetch(
    cache: JwksCache, endpoint: JwksEndpoint
) -> None:
    await cache.prefetch()
    await cache.get_signing_key("rsa-1")

    assert endpoint.requests == 1


async def test_prefetch_of_a_fresh_set_fetches_nothing(
    cache: JwksCache, endpoint: JwksEndpoint
) -> None:
    await cache.get_signing_key("rsa-1")
    await cache.prefetch()

    assert endpoint.requests == 1


async def test_a_use_during_the_prefetch_waits_for_it_instead_of_fetching(
    cache: JwksCache, endpoint: JwksEndpoint
) -> None:
    endpoint.delay = 0.05
    prefetch = asyncio.create_task(cache.prefetch())
    await asyncio.sleep(0.01)  # the prefetch holds the fetch

    await cache.get_signing_key("rsa-1")
    await prefetch

    assert endpoint.requests == 1


async def test_a_failed_prefetch_is_not_held_against_the_first_use(
    cache: JwksCache, endpoint: JwksEndpoint
) -> None:
    endpoint.failure = 503
    await cache.prefetch()  # does not raise
    endpoint.failure = None

    await cache.get_signing_key("rsa-1")  # within the failure TTL, yet fetched again

    assert endpoint.requests == 2


async def test_a_use_waiting_on_a_failing_prefetch_shares_its_failure(
    cache: JwksCache, endpoint: JwksEndpoint
) -> None:
    endpoint.failure, endpoint.delay = 503, 0.05
    prefetch = asyncio.create_task(cache.prefetch())
    await asyncio.sleep(0.01)

    with pytest.raises(JwksUnavailable):
        await cache.get_signing_key("rsa-1")
    await prefetch

    assert endpoint.requests == 1
