"""JwksCache expiry: the cached set is fetched again after `max_age` (or the answer's shorter
Cache-Control max-age), and an outage serves the expired keys for a bounded grace."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio

from app.auth import JwksCache, JwksUnavailable, UnknownSigningKey
from app.auth.jwks import MIN_FRESHNESS, cache_lifetime
from tests.support import ManualClock
from tests.support.keys import JwksEndpoint, SigningKey, jwks_document

pytestmark = pytest.mark.asyncio

JWKS_URL = "https://portal.example.test/.well-known/jwks.json"
MAX_AGE = 300.0
REFRESH_INTERVAL = 30.0
FAILURE_TTL = 5.0

RSA = SigningKey.rsa("rsa-1")
EC = SigningKey.ec("ec-1")


class CachingJwksEndpoint(JwksEndpoint):
    """A JWKS endpoint whose successful answers carry `headers` (Cache-Control, Age)."""

    def __init__(self) -> None:
        super().__init__(jwks_document(RSA, EC))
        self.headers: dict[str, str] = {}

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        response = await super().__call__(request)
        if response.status_code == 200:
            response.headers.update(self.headers)
        return response


@pytest.fixture
def endpoint() -> CachingJwksEndpoint:
    return CachingJwksEndpoint()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest_asyncio.fixture
async def http(endpoint: CachingJwksEndpoint) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=endpoint.transport()) as client:
        yield client


@pytest.fixture
def cache(http: httpx.AsyncClient, clock: ManualClock) -> JwksCache:
    return JwksCache(
        http,
        JWKS_URL,
        max_age=MAX_AGE,
        refresh_interval=REFRESH_INTERVAL,
        failure_ttl=FAILURE_TTL,
        clock=clock,
    )


async def fetches_after(cache: JwksCache, endpoint: JwksEndpoint, kid: str = "rsa-1") -> int:
    """Look `kid` up once and return how many requests the endpoint has answered so far."""
    await cache.get_signing_key(kid)
    return endpoint.requests


# --- max age ---------------------------------------------------------------------------


async def test_a_withdrawn_key_stops_verifying_after_max_age(
    cache: JwksCache, endpoint: CachingJwksEndpoint, clock: ManualClock
) -> None:
    await cache.get_signing_key("rsa-1")
    endpoint.publish(EC)

    clock.advance(MAX_AGE - 1)
    assert (await cache.get_signing_key("rsa-1")).key_id == "rsa-1"
    assert endpoint.requests == 1

    clock.advance(1)
    with pytest.raises(UnknownSigningKey):
        await cache.get_signing_key("rsa-1")
    assert endpoint.requests == 2
    assert (await cache.get_signing_key("ec-1")).key_id == "ec-1"
    assert endpoint.requests == 2


async def test_an_expired_set_is_fetched_once_then_served_from_cache(
    cache: JwksCache, endpoint: CachingJwksEndpoint, clock: ManualClock
) -> None:
    await cache.get_signing_key("rsa-1")
    clock.advance(MAX_AGE)

    assert [await fetches_after(cache, endpoint) for _ in range(3)] == [2, 2, 2]
    clock.advance(MAX_AGE - 1)
    assert await fetches_after(cache, endpoint) == 2


async def test_concurrent_lookups_of_an_expired_set_fetch_once(
    cache: JwksCache, endpoint: CachingJwksEndpoint, clock: ManualClock
) -> None:
    await cache.get_signing_key("rsa-1")
    clock.advance(MAX_AGE)
    endpoint.delay = 0.05

    keys = await asyncio.gather(*(cache.get_signing_key("rsa-1") for _ in range(20)))

    assert endpoint.requests == 2
    assert {key.key_id for key in keys} == {"rsa-1"}


@pytest.mark.parametrize(
    ("cache_control", "lifetime"),
    [("public, max-age=60", 60.0), ("max-age=3600", MAX_AGE), ("max-age=nonsense", MAX_AGE)],
    ids=["shorter-wins", "longer-ignored", "unparseable-ignored"],
)
async def test_cache_control_max_age_shortens_the_lifetime_only(
    cache: JwksCache,
    endpoint: CachingJwksEndpoint,
    clock: ManualClock,
    cache_control: str,
    lifetime: float,
) -> None:
    endpoint.headers = {"Cache-Control": cache_control}
    await cache.get_signing_key("rsa-1")

    clock.advance(lifetime - 1)
    assert await fetches_after(cache, endpoint) == 1
    clock.advance(1)
    assert await fetches_after(cache, endpoint) == 2


async def test_the_age_header_counts_against_max_age(
    cache: JwksCache, endpoint: CachingJwksEndpoint, clock: ManualClock
) -> None:
    endpoint.headers = {"Cache-Control": "max-age=60", "Age": "50"}
    await cache.get_signing_key("rsa-1")

    clock.advance(9)
    assert await fetches_after(cache, endpoint) == 1
    clock.advance(1)
    assert await fetches_after(cache, endpoint) == 2


@pytest.mark.parametrize(
    "cache_control", ["no-store", "no-cache", "max-age=0", "private, no-cache"]
)
async def test_an_uncacheable_jwks_is_fetched_at_most_once_a_second(
    cache: JwksCache, endpoint: CachingJwksEndpoint, clock: ManualClock, cache_control: str
) -> None:
    endpoint.headers = {"Cache-Control": cache_control}

    assert [await fetches_after(cache, endpoint) for _ in range(5)] == [1] * 5
    clock.advance(MIN_FRESHNESS)
    assert await fetches_after(cache, endpoint) == 2


async def test_unknown_kids_against_a_fresh_set_still_refresh_once_per_interval(
    cache: JwksCache, endpoint: CachingJwksEndpoint, clock: ManualClock
) -> None:
    endpoint.headers = {"Cache-Control": "max-age=120"}
    await cache.get_signing_key("rsa-1")

    for attempt in range(29):
        with pytest.raises(UnknownSigningKey):
            await cache.get_signing_key(f"attacker-{attempt}")
        clock.advance(1)
    assert endpoint.requests == 1

    clock.advance(REFRESH_INTERVAL - 29)
    with pytest.raises(UnknownSigningKey):
        await cache.get_signing_key("attacker-late")
    with pytest.raises(UnknownSigningKey):
        await cache.get_signing_key("attacker-later")
    assert endpoint.requests == 2


# --- outage after expiry ---------------------------------------------------------------


async def test_an_outage_serves_expired_keys_for_another_max_age(
    cache: JwksCache,
    endpoint: CachingJwksEndpoint,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await cache.get_signing_key("rsa-1")
    endpoint.failure = 503
    clock.advance(MAX_AGE)

    with caplog.at_level(logging.WARNING, logger="app.auth.jwks"):
        assert (await cache.get_signing_key("rsa-1")).key_id == "rsa-1"
    assert endpoint.requests == 2
    assert any("stale_keys_for_seconds" in vars(record) for record in caplog.records)

    # A kid the expired set does not hold is transient, not unknown: NAS retries the fire.
    with pytest.raises(JwksUnavailable):
        await cache.get_signing_key("rsa-new")

    clock.advance(MAX_AGE - 1)
    assert (await cache.get_signing_key("rsa-1")).key_id == "rsa-1"
    clock.advance(1)
    with pytest.raises(JwksUnavailable):
        await cache.get_signing_key("rsa-1")


async def test_an_outage_after_expiry_retries_once_per_failure_ttl(
    cache: JwksCache, endpoint: CachingJwksEndpoint, clock: ManualClock
) -> None:
    await cache.get_signing_key("rsa-1")
    endpoint.failure = httpx.ConnectError("connection refused")
    clock.advance(MAX_AGE)

    assert [await fetches_after(cache, endpoint) for _ in range(5)] == [2] * 5
    clock.advance(FAILURE_TTL)
    assert await fetches_after(cache, endpoint) == 3


async def test_concurrent_lookups_during_an_outage_after_expiry_fetch_once(
    cache: JwksCache, endpoint: CachingJwksEndpoint, clock: ManualClock
) -> None:
    await cache.get_signing_key("rsa-1")
    clock.advance(MAX_AGE)
    endpoint.failure = 500
    endpoint.delay = 0.05

    keys = await asyncio.gather(*(cache.get_signing_key("rsa-1") for _ in range(20)))

    assert endpoint.requests == 2
    assert {key.key_id for key in keys} == {"rsa-1"}


async def test_recovery_after_an_outage_drops_the_withdrawn_key(
    cache: JwksCache, endpoint: CachingJwksEndpoint, clock: ManualClock
) -> None:
    await cache.get_signing_key("rsa-1")
    endpoint.failure = 500
    clock.advance(MAX_AGE)
    assert (await cache.get_signing_key("rsa-1")).key_id == "rsa-1"

    endpoint.failure = None
    endpoint.publish(EC)
    clock.advance(FAILURE_TTL)
    with pytest.raises(UnknownSigningKey):
        await cache.get_signing_key("rsa-1")
    assert endpoint.requests == 3


async def test_a_first_fetch_that_fails_has_no_stale_keys_to_serve(
    cache: JwksCache, endpoint: CachingJwksEndpoint
) -> None:
    endpoint.failure = 500

    with pytest.raises(JwksUnavailable):
        await cache.get_signing_key("rsa-1")


# --- Cache-Control parsing -------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "lifetime"),
    [
        ({}, None),
        ({"Cache-Control": "public"}, None),
        ({"Cache-Control": "max-age=120"}, 120.0),
        ({"Cache-Control": 'MAX-AGE="45", must-revalidate'}, 45.0),
        ({"Cache-Control": "max-age=120, max-age=30"}, 30.0),
        ({"Cache-Control": "max-age=-5"}, None),
        ({"Cache-Control": "max-age=1.5"}, None),
        ({"Cache-Control": "no-store"}, 0.0),
        ({"Cache-Control": 'no-cache="Set-Cookie", max-age=60'}, 60.0),
        ({"Cache-Control": "max-age=60", "Age": "70"}, 0.0),
        ({"Cache-Control": "max-age=60", "Age": "soon"}, 60.0),
        ({"Cache-Control": "s-maxage=10"}, None),
        ({"Cache-Control": "max-age=" + "9" * 5000}, float(2**31)),
    ],
)
async def test_cache_lifetime(headers: dict[str, str], lifetime: float | None) -> None:
    assert cache_lifetime(httpx.Headers(headers)) == lifetime
