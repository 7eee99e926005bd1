"""JwksCache against a real httpx.AsyncClient whose transport serves a mock JWKS endpoint."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from app.auth import JwksCache, JwksUnavailable, UnknownSigningKey
from app.logs import JsonFormatter
from tests.support import ManualClock
from tests.support.keys import JwksEndpoint, SigningKey, jwks_document

pytestmark = pytest.mark.asyncio

JWKS_URL = "https://portal.example.test/.well-known/jwks.json"
REFRESH_INTERVAL = 30.0
FAILURE_TTL = 5.0

RSA = SigningKey.rsa("rsa-1")
EC = SigningKey.ec("ec-1")


@pytest.fixture
def endpoint() -> JwksEndpoint:
    return JwksEndpoint(jwks_document(RSA, EC))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest_asyncio.fixture
async def http(endpoint: JwksEndpoint) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=endpoint.transport()) as client:
        yield client


@pytest.fixture
def cache(http: httpx.AsyncClient, clock: ManualClock) -> JwksCache:
    return JwksCache(
        http, JWKS_URL, refresh_interval=REFRESH_INTERVAL, failure_ttl=FAILURE_TTL, clock=clock
    )


async def test_first_use_fetches_then_serves_known_kids_from_cache(
    cache: JwksCache, endpoint: JwksEndpoint
) -> None:
    assert endpoint.requests == 0

    rsa_key = await cache.get_signing_key("rsa-1")
    ec_key = await cache.get_signing_key("ec-1")
    await cache.get_signing_key("rsa-1")

    assert endpoint.requests == 1
    assert (rsa_key.key_type, rsa_key.algorithm_name) == ("RSA", "RS256")
    assert (ec_key.key_type, ec_key.algorithm_name) == ("EC", "ES256")


async def test_rotation_new_kid_is_fetched_by_one_refresh(
    cache: JwksCache, endpoint: JwksEndpoint, clock: ManualClock
) -> None:
    await cache.get_signing_key("rsa-1")
    rotated = SigningKey.rsa("rsa-2")
    endpoint.publish(rotated)
    clock.advance(REFRESH_INTERVAL)

    key = await cache.get_signing_key("rsa-2")
    await cache.get_signing_key("rsa-2")

    assert key.key_id == "rsa-2"
    assert endpoint.requests == 2
    # The refresh replaced the set: the withdrawn key is no longer trusted.
    with pytest.raises(UnknownSigningKey):
        await cache.get_signing_key("rsa-1")
    assert endpoint.requests == 2


async def test_unknown_kid_right_after_the_first_fetch_is_refused_without_refetch(
    cache: JwksCache, endpoint: JwksEndpoint, clock: ManualClock
) -> None:
    await cache.get_signing_key("rsa-1")
    endpoint.publish(RSA, SigningKey.rsa("rsa-2"))
    clock.advance(REFRESH_INTERVAL - 1)

    with pytest.raises(UnknownSigningKey):
        await cache.get_signing_key("rsa-2")
    assert endpoint.requests == 1


async def test_unknown_kids_refresh_at_most_once_per_interval(
    cache: JwksCache, endpoint: JwksEndpoint, clock: ManualClock
) -> None:
    await cache.get_signing_key("rsa-1")
    clock.advance(REFRESH_INTERVAL)

    for attempt in range(10):
        with pytest.raises(UnknownSigningKey):
            await cache.get_signing_key(f"attacker-{attempt}")
        clock.advance(2)  # 20 s in all: still inside the interval after the refresh
    assert endpoint.requests == 2

    clock.advance(REFRESH_INTERVAL - 20)
    with pytest.raises(UnknownSigningKey):
        await cache.get_signing_key("attacker-late")
    assert endpoint.requests == 3


async def test_concurrent_lookups_of_an_uncached_kid_fetch_once(
    cache: JwksCache, endpoint: JwksEndpoint
) -> None:
    endpoint.delay = 0.05

    keys = await asyncio.gather(*(cache.get_signing_key("ec-1") for _ in range(20)))

    assert endpoint.requests == 1
    assert {key.key_id for key in keys} == {"ec-1"}


async def test_concurrent_lookups_of_a_new_kid_after_the_interval_fetch_once(
    cache: JwksCache, endpoint: JwksEndpoint, clock: ManualClock
) -> None:
    await cache.get_signing_key("rsa-1")
    endpoint.publish(RSA, SigningKey.ec("ec-2"))
    endpoint.delay = 0.05
    clock.advance(REFRESH_INTERVAL)

    keys = await asyncio.gather(*(cache.get_signing_key("ec-2") for _ in range(20)))

    assert endpoint.requests == 2
    assert {key.key_id for key in keys} == {"ec-2"}


async def test_concurrent_lookups_against_a_failing_endpoint_fetch_once(
    cache: JwksCache, endpoint: JwksEndpoint
) -> None:
    endpoint.failure = 503
    endpoint.delay = 0.05

    results = await asyncio.gather(
        *(cache.get_signing_key("rsa-1") for _ in range(20)), return_exceptions=True
    )

    assert endpoint.requests == 1
    assert all(isinstance(result, JwksUnavailable) for result in results)


@pytest.mark.parametrize(
    "failure",
    [500, 404, httpx.ConnectError("connection refused"), httpx.ReadTimeout("timed out")],
    ids=["http-500", "http-404", "connect-error", "read-timeout"],
)
async def test_failed_fetch_is_cached_for_the_failure_ttl(
    cache: JwksCache,
    endpoint: JwksEndpoint,
    clock: ManualClock,
    failure: int | Exception,
) -> None:
    endpoint.failure = failure

    with pytest.raises(JwksUnavailable):
        await cache.get_signing_key("rsa-1")
    clock.advance(FAILURE_TTL - 0.1)
    with pytest.raises(JwksUnavailable):
        await cache.get_signing_key("rsa-1")
    assert endpoint.requests == 1

    endpoint.failure = None
    clock.advance(0.1)
    key = await cache.get_signing_key("rsa-1")
    assert key.key_id == "rsa-1"
    assert endpoint.requests == 2


@pytest.mark.parametrize(
    "body",
    [b"<html>oops</html>", b'{"no_keys": []}', b'{"keys": []}', b"[1, 2]", b'{"keys": "x"}'],
    ids=["not-json", "no-keys-member", "empty-set", "not-an-object", "keys-not-a-list"],
)
async def test_malformed_document_counts_as_a_failed_fetch(
    cache: JwksCache, endpoint: JwksEndpoint, body: bytes
) -> None:
    endpoint.raw_body = body

    with pytest.raises(JwksUnavailable):
        await cache.get_signing_key("rsa-1")
    with pytest.raises(JwksUnavailable):
        await cache.get_signing_key("rsa-1")
    assert endpoint.requests == 1


async def test_known_keys_keep_working_while_the_endpoint_fails(
    cache: JwksCache, endpoint: JwksEndpoint, clock: ManualClock
) -> None:
    await cache.get_signing_key("rsa-1")
    endpoint.failure = 500
    clock.advance(REFRESH_INTERVAL)

    with pytest.raises(JwksUnavailable):
        await cache.get_signing_key("rsa-new")
    assert (await cache.get_signing_key("rsa-1")).key_id == "rsa-1"
    # A new kid during the failure window: transient, and no further fetch.
    with pytest.raises(JwksUnavailable):
        await cache.get_signing_key("rsa-new")
    assert endpoint.requests == 2


async def test_refresh_after_failure_ttl_even_within_the_refresh_interval(
    cache: JwksCache, endpoint: JwksEndpoint, clock: ManualClock
) -> None:
    await cache.get_signing_key("rsa-1")
    clock.advance(REFRESH_INTERVAL)
    endpoint.failure = 500
    with pytest.raises(JwksUnavailable):
        await cache.get_signing_key("rsa-2")

    endpoint.failure = None
    endpoint.publish(RSA, SigningKey.rsa("rsa-2"))
    clock.advance(FAILURE_TTL)

    assert (await cache.get_signing_key("rsa-2")).key_id == "rsa-2"
    assert endpoint.requests == 3


async def test_unusable_keys_are_skipped_not_fatal(
    cache: JwksCache, endpoint: JwksEndpoint
) -> None:
    good = RSA.public_jwk()
    assert isinstance(RSA.private_key, rsa.RSAPrivateKey)
    endpoint.document = {
        "keys": [
            {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0", "alg": "HS256"},
            {**EC.public_jwk(), "kid": "enc", "use": "enc"},
            {"kty": "XYZ", "kid": "weird"},
            {**EC.public_jwk(), "kid": "bad-curve", "crv": "P-999", "alg": None},
            {**RSAAlgorithm.to_jwk(RSA.private_key, as_dict=True), "kid": "private"},
            {**RSA.public_jwk(), "kid": 7},
            "not-an-object",
            good,
        ]
    }

    assert (await cache.get_signing_key("rsa-1")).key_id == "rsa-1"
    for kid in ("hmac", "enc", "weird", "bad-curve", "private"):
        with pytest.raises(UnknownSigningKey):
            await cache.get_signing_key(kid)
    assert endpoint.requests == 1


async def test_duplicate_kid_keeps_the_first_key(cache: JwksCache, endpoint: JwksEndpoint) -> None:
    impostor = SigningKey.rsa("impostor").with_kid("rsa-1")
    endpoint.publish(RSA, impostor)

    key = await cache.get_signing_key("rsa-1")

    assert key.key.public_numbers() == RSA.private_key.public_key().public_numbers()


async def test_token_without_kid_uses_the_only_key(
    cache: JwksCache, endpoint: JwksEndpoint
) -> None:
    endpoint.publish(EC)

    key = await cache.get_signing_key(None)

    assert key.key_id == "ec-1"


async def test_token_without_kid_is_refused_when_several_keys_are_published(
    cache: JwksCache,
) -> None:
    with pytest.raises(UnknownSigningKey):
        await cache.get_signing_key(None)


async def test_token_without_kid_is_accepted_once_a_refresh_leaves_one_key(
    cache: JwksCache, endpoint: JwksEndpoint, clock: ManualClock
) -> None:
    with pytest.raises(UnknownSigningKey):
        await cache.get_signing_key(None)
    endpoint.publish(EC)
    clock.advance(REFRESH_INTERVAL)

    assert (await cache.get_signing_key(None)).key_id == "ec-1"
    assert endpoint.requests == 2


async def test_logs_refreshes_and_failures_without_key_material(
    cache: JwksCache,
    endpoint: JwksEndpoint,
    clock: ManualClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="app.auth.jwks")

    await cache.get_signing_key("rsa-1")
    clock.advance(REFRESH_INTERVAL)
    endpoint.failure = 500
    with pytest.raises(JwksUnavailable):
        await cache.get_signing_key("rsa-2")

    # Each line as the service writes it: the event and its fields.
    messages = [JsonFormatter().format(record) for record in caplog.records]
    assert any("refreshed" in message and "rsa-1" in message for message in messages)
    assert any("failed" in message and "HTTP 500" in message for message in messages)
    for secret_part in (RSA.public_jwk()["n"], EC.public_jwk()["x"]):
        assert all(secret_part not in message for message in messages)
