"""FireTokenVerifier with real keys, real signed JWTs and a JWKS served over httpx."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.auth import (
    FireTokenVerifier,
    InvalidFireToken,
    JwksCache,
    SigningKeysUnavailable,
    bearer_token,
)
from tests.support import ManualClock
from tests.support.keys import JwksEndpoint, SigningKey, fire_claims, forge_token, jwks_document

pytestmark = pytest.mark.asyncio

AUDIENCE = "agent:instance-42"
ISSUER = "https://portal.example.test"
JWKS_URL = f"{ISSUER}/.well-known/jwks.json"
LEEWAY = 30

RSA = SigningKey.rsa("rsa-1")
EC = SigningKey.ec("ec-1")
STRANGER = SigningKey.rsa("stranger")

FIRE_AT = datetime(2030, 1, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def endpoint() -> JwksEndpoint:
    return JwksEndpoint(jwks_document(RSA, EC))


@pytest_asyncio.fixture
async def http(endpoint: JwksEndpoint) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=endpoint.transport()) as client:
        yield client


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def verifier(http: httpx.AsyncClient, clock: ManualClock) -> FireTokenVerifier:
    jwks = JwksCache(http, JWKS_URL, refresh_interval=30, failure_ttl=5, clock=clock)
    return FireTokenVerifier(jwks, audience=AUDIENCE, issuer=ISSUER, leeway=LEEWAY)


def claims(**extra: Any) -> dict[str, object]:
    return fire_claims(AUDIENCE, ISSUER, **extra)


async def rejection(verifier: FireTokenVerifier, token: str, **binding: object) -> str:
    """The reason `verify` gives for refusing `token` (fails the test if it accepts it)."""
    with pytest.raises(InvalidFireToken) as caught:
        await verifier.verify(token, **binding)  # type: ignore[arg-type]
    return caught.value.reason


# --- accepted tokens -------------------------------------------------------------------


@pytest.mark.parametrize("key", [RSA, EC], ids=["RS256", "ES256"])
async def test_valid_token_is_accepted(verifier: FireTokenVerifier, key: SigningKey) -> None:
    token = key.mint(claims(job_id="job-1"))

    verified = (await verifier.verify(token, job_id="job-1")).claims

    assert verified["purpose"] == "cron_fire"
    assert verified["aud"] == AUDIENCE
    assert verified["job_id"] == "job-1"


async def test_unbound_token_is_accepted_for_any_fire(verifier: FireTokenVerifier) -> None:
    token = RSA.mint(claims())

    verified = (await verifier.verify(token, job_id="job-1", fire_at=FIRE_AT)).claims

    assert "job_id" not in verified
    assert "fire_at" not in verified


async def test_token_without_kid_is_accepted_when_the_jwks_has_one_key(
    verifier: FireTokenVerifier, endpoint: JwksEndpoint
) -> None:
    endpoint.publish(EC)
    token = EC.mint(claims(), headers={"kid": None})

    assert (await verifier.verify(token)).claims["iss"] == ISSUER


async def test_token_without_kid_is_refused_when_the_jwks_has_several_keys(
    verifier: FireTokenVerifier,
) -> None:
    token = RSA.mint(claims(), headers={"kid": None})

    assert await rejection(verifier, token) == "unknown signing key"


# --- audience, issuer, purpose, required claims ---------------------------------------


async def test_wrong_audience_is_refused(verifier: FireTokenVerifier) -> None:
    token = RSA.mint(fire_claims("agent:someone-else", ISSUER))

    assert await rejection(verifier, token) == "wrong audience"


async def test_wrong_issuer_is_refused(verifier: FireTokenVerifier) -> None:
    token = RSA.mint(fire_claims(AUDIENCE, "https://evil.example.test"))

    assert await rejection(verifier, token) == "wrong issuer"


async def test_token_without_purpose_is_refused(verifier: FireTokenVerifier) -> None:
    token = RSA.mint(claims(purpose=None))

    assert await rejection(verifier, token) == "missing purpose"


async def test_token_for_another_purpose_is_refused(verifier: FireTokenVerifier) -> None:
    token = RSA.mint(claims(purpose="agent_access"))

    assert await rejection(verifier, token) == "wrong purpose"


@pytest.mark.parametrize("claim", ["exp", "aud", "iss"])
async def test_token_missing_a_required_claim_is_refused(
    verifier: FireTokenVerifier, claim: str
) -> None:
    token = RSA.mint(claims(**{claim: None}))

    assert await rejection(verifier, token) == f"missing claim: {claim}"


@pytest.mark.parametrize("claim", ["iat", "nbf"])
async def test_iat_and_nbf_are_optional(verifier: FireTokenVerifier, claim: str) -> None:
    token = RSA.mint(claims(**{claim: None}))

    assert (await verifier.verify(token)).claims["purpose"] == "cron_fire"


# --- time claims and leeway -----------------------------------------------------------


async def test_token_expired_beyond_leeway_is_refused(verifier: FireTokenVerifier) -> None:
    token = RSA.mint(claims(now=time.time() - 150, ttl=90))  # expired 60 s ago

    assert await rejection(verifier, token) == "token expired"


async def test_token_expired_within_leeway_is_accepted(verifier: FireTokenVerifier) -> None:
    token = RSA.mint(claims(now=time.time() - 100, ttl=90))  # expired 10 s ago

    assert (await verifier.verify(token)).claims["purpose"] == "cron_fire"


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_future_nbf_or_iat_within_leeway_is_accepted(
    verifier: FireTokenVerifier, claim: str
) -> None:
    token = RSA.mint(claims(**{claim: int(time.time()) + 20}))

    assert (await verifier.verify(token)).claims[claim] > time.time()


@pytest.mark.parametrize("claim", ["nbf", "iat"])
async def test_future_nbf_or_iat_beyond_leeway_is_refused(
    verifier: FireTokenVerifier, claim: str
) -> None:
    token = RSA.mint(claims(**{claim: int(time.time()) + 120}))

    assert await rejection(verifier, token) == "token not yet valid"


# --- algorithms and keys --------------------------------------------------------------


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
async def test_unsigned_token_is_refused_before_key_lookup(
    verifier: FireTokenVerifier, endpoint: JwksEndpoint, alg: str
) -> None:
    token = forge_token({"alg": alg, "typ": "JWT", "kid": "rsa-1"}, claims())

    assert await rejection(verifier, token) == "unsupported algorithm"
    assert endpoint.requests == 0


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
async def test_hmac_token_keyed_with_the_public_key_is_refused_before_key_lookup(
    verifier: FireTokenVerifier, endpoint: JwksEndpoint, alg: str
) -> None:
    # The classic confusion attack: the RSA public key (public knowledge) as HMAC secret.
    token = forge_token(
        {"alg": alg, "typ": "JWT", "kid": "rsa-1"}, claims(), hmac_secret=RSA.public_pem()
    )

    assert await rejection(verifier, token) == "unsupported algorithm"
    assert endpoint.requests == 0


async def test_token_from_an_unknown_key_is_refused(verifier: FireTokenVerifier) -> None:
    token = STRANGER.mint(claims())

    assert await rejection(verifier, token) == "unknown signing key"


async def test_token_signed_by_another_key_under_a_known_kid_is_refused(
    verifier: FireTokenVerifier,
) -> None:
    token = STRANGER.with_kid("rsa-1").mint(claims())

    assert await rejection(verifier, token) == "invalid signature"


async def test_rsa_key_does_not_verify_an_ec_token(verifier: FireTokenVerifier) -> None:
    token = EC.mint(claims(), headers={"kid": "rsa-1"})

    assert await rejection(verifier, token) == "algorithm does not match signing key"


async def test_key_published_for_rs256_does_not_verify_ps256(
    verifier: FireTokenVerifier,
) -> None:
    token = RSA.mint(claims(), algorithm="PS256")

    assert await rejection(verifier, token) == "algorithm does not match signing key"


@pytest.mark.parametrize("token", ["", "not-a-jwt", "a.b.c", "Bearer x.y.z"])
async def test_malformed_token_is_refused(verifier: FireTokenVerifier, token: str) -> None:
    assert await rejection(verifier, token) == "malformed token"


async def test_unreachable_jwks_is_a_distinct_transient_refusal(
    verifier: FireTokenVerifier, endpoint: JwksEndpoint, clock: ManualClock
) -> None:
    endpoint.failure = httpx.ConnectError("connection refused")
    token = RSA.mint(claims())

    for _ in range(3):
        with pytest.raises(SigningKeysUnavailable) as caught:
            await verifier.verify(token)
        assert caught.value.reason == "signing keys unavailable"
        assert isinstance(caught.value, InvalidFireToken)
    assert endpoint.requests == 1

    endpoint.failure = None
    clock.advance(5)
    assert (await verifier.verify(token)).claims["purpose"] == "cron_fire"
    assert endpoint.requests == 2


async def test_jwks_http_500_is_a_transient_refusal(
    verifier: FireTokenVerifier, endpoint: JwksEndpoint
) -> None:
    endpoint.failure = 500

    with pytest.raises(SigningKeysUnavailable):
        await verifier.verify(EC.mint(claims()))


async def test_rotated_key_is_picked_up_through_the_verifier(
    verifier: FireTokenVerifier, endpoint: JwksEndpoint, clock: ManualClock
) -> None:
    await verifier.verify(RSA.mint(claims()))
    rotated = SigningKey.ec("ec-rotated")
    endpoint.publish(RSA, EC, rotated)
    token = rotated.mint(claims())

    assert await rejection(verifier, token) == "unknown signing key"  # rate limited
    clock.advance(30)
    assert (await verifier.verify(token)).claims["purpose"] == "cron_fire"
    assert endpoint.requests == 2


# --- binding to one fire --------------------------------------------------------------


async def test_job_id_claim_must_match_the_fire(verifier: FireTokenVerifier) -> None:
    token = RSA.mint(claims(job_id="job-1"))

    assert await rejection(verifier, token, job_id="job-2") == "job_id mismatch"
    assert await rejection(verifier, token) == "job_id mismatch"
    assert (await verifier.verify(token, job_id="job-1")).claims["job_id"] == "job-1"


@pytest.mark.parametrize(
    "claimed",
    ["2030-01-02T09:00:00Z", "2030-01-02T09:00:00+00:00", "2030-01-02T11:00:00+02:00"],
)
@pytest.mark.parametrize(
    "argument",
    [FIRE_AT, FIRE_AT.astimezone(timezone(timedelta(hours=-5)))],
    ids=["utc", "minus-5h"],
)
async def test_fire_at_claim_matching_as_an_instant_is_accepted(
    verifier: FireTokenVerifier, claimed: str, argument: datetime
) -> None:
    token = RSA.mint(claims(fire_at=claimed))

    assert (await verifier.verify(token, fire_at=argument)).claims["fire_at"] == claimed


async def test_fire_at_claim_for_another_instant_is_refused(
    verifier: FireTokenVerifier,
) -> None:
    token = RSA.mint(claims(fire_at="2030-01-02T09:00:00Z"))

    assert await rejection(verifier, token, fire_at=FIRE_AT + timedelta(seconds=1)) == (
        "fire_at mismatch"
    )
    assert await rejection(verifier, token) == "fire_at mismatch"


@pytest.mark.parametrize("claimed", ["tomorrow", "2030-01-02T09:00:00", 1893574800])
async def test_unparseable_or_naive_fire_at_claim_is_refused(
    verifier: FireTokenVerifier, claimed: object
) -> None:
    token = RSA.mint(claims(fire_at=claimed))

    assert await rejection(verifier, token, fire_at=FIRE_AT) == "invalid fire_at claim"


async def test_naive_fire_at_argument_is_a_programming_error(
    verifier: FireTokenVerifier,
) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await verifier.verify(RSA.mint(claims()), fire_at=datetime(2030, 1, 2, 9, 0))


# --- Authorization header -------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Bearer abc.def.ghi", "abc.def.ghi"),
        ("bearer abc.def.ghi", "abc.def.ghi"),
        ("BEARER abc.def.ghi", "abc.def.ghi"),
        ("  Bearer   abc.def.ghi  ", "abc.def.ghi"),
        (None, None),
        ("", None),
        ("Bearer", None),
        ("Bearer ", None),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer abc def", None),
        ("abc.def.ghi", None),
    ],
)
async def test_bearer_token_parsing(header: str | None, expected: str | None) -> None:
    assert bearer_token(header) == expected


# --- keys published without `alg` ---------------------------------------------------------


def without_alg(*keys: SigningKey) -> dict[str, Any]:
    document = jwks_document(*keys)
    for jwk in document["keys"]:
        jwk.pop("alg", None)
    return document


@pytest.mark.parametrize("algorithm", ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"])
async def test_an_rsa_key_without_alg_verifies_every_rsa_algorithm(
    verifier: FireTokenVerifier, endpoint: JwksEndpoint, algorithm: str
) -> None:
    endpoint.document = without_alg(RSA, EC)
    token = RSA.mint(claims(), algorithm=algorithm)

    assert (await verifier.verify(token)).claims["purpose"] == "cron_fire"


async def test_an_ec_key_without_alg_verifies_its_curves_algorithm_only(
    verifier: FireTokenVerifier, endpoint: JwksEndpoint
) -> None:
    endpoint.document = without_alg(RSA, EC)

    assert (await verifier.verify(EC.mint(claims()))).claims["purpose"] == "cron_fire"
    assert await rejection(verifier, RSA.mint(claims(), headers={"kid": "ec-1"})) == (
        "algorithm does not match signing key"
    )
    ec384 = forge_token({"alg": "ES384", "kid": "ec-1", "typ": "JWT"}, claims())
    assert await rejection(verifier, ec384) == "algorithm does not match signing key"


async def test_the_issuer_with_or_without_a_trailing_slash_is_the_same(
    verifier: FireTokenVerifier,
) -> None:
    token = RSA.mint(fire_claims(AUDIENCE, ISSUER + "/"))

    assert (await verifier.verify(token)).claims["iss"] == ISSUER + "/"
    other = RSA.mint(fire_claims(AUDIENCE, ISSUER + "/other"))
    assert await rejection(verifier, other) == "wrong issuer"
