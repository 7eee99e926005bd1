"""The identity and binding expiry of a verified fire token (`VerifiedFireToken`)."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.auth import FireTokenVerifier, JwksCache, fire_token_id
from app.auth.verifier import MAX_JTI_LENGTH
from tests.support.keys import JwksEndpoint, SigningKey, fire_claims, jwks_document

pytestmark = pytest.mark.asyncio

AUDIENCE = "agent:instance-42"
ISSUER = "https://portal.example.test"
LEEWAY = 30

RSA = SigningKey.rsa("rsa-1")
EC = SigningKey.ec("ec-1")


@pytest_asyncio.fixture
async def verifier() -> AsyncIterator[FireTokenVerifier]:
    transport = JwksEndpoint(jwks_document(RSA, EC)).transport()
    async with httpx.AsyncClient(transport=transport) as http:
        jwks = JwksCache(http, f"{ISSUER}/.well-known/jwks.json")
        yield FireTokenVerifier(jwks, audience=AUDIENCE, issuer=ISSUER, leeway=LEEWAY)


def claims(**extra: Any) -> dict[str, Any]:
    return fire_claims(AUDIENCE, ISSUER, **extra)


def signed_part_hash(token: str) -> str:
    header, payload, _ = token.split(".")
    return "sha256:" + hashlib.sha256(f"{header}.{payload}".encode()).hexdigest()


async def token_id(verifier: FireTokenVerifier, token: str) -> str:
    return (await verifier.verify(token, check_binding=False)).token_id


async def test_the_jti_names_the_token(verifier: FireTokenVerifier) -> None:
    token = RSA.mint(claims(jti="delivery-7f3a"))

    assert await token_id(verifier, token) == "jti:delivery-7f3a"


async def test_tokens_sharing_a_jti_share_the_identity(verifier: FireTokenVerifier) -> None:
    first = RSA.mint(claims(jti="delivery-7f3a", job_id="job-1"))
    second = EC.mint(claims(jti="delivery-7f3a", job_id="job-2"))

    assert await token_id(verifier, first) == await token_id(verifier, second)


@pytest.mark.parametrize("jti", [None, ""], ids=["no-jti", "empty-jti"])
async def test_without_a_jti_the_signed_part_is_hashed(
    verifier: FireTokenVerifier, jti: str | None
) -> None:
    token = RSA.mint(claims(jti=jti))

    assert await token_id(verifier, token) == signed_part_hash(token)


async def test_the_same_token_always_has_the_same_identity(verifier: FireTokenVerifier) -> None:
    token = RSA.mint(claims())

    assert await token_id(verifier, token) == await token_id(verifier, token)


async def test_tokens_with_different_claims_differ(verifier: FireTokenVerifier) -> None:
    now = int(time.time())
    first = RSA.mint(claims(now=now))
    second = RSA.mint(claims(now=now, job_id="job-1"))

    assert await token_id(verifier, first) != await token_id(verifier, second)


async def test_a_second_signature_over_the_same_claims_is_the_same_token(
    verifier: FireTokenVerifier,
) -> None:
    # ECDSA signs with a fresh nonce: a captured token re-signed or re-encoded differs only
    # in its signature, and must not pass for a new token.
    same = claims(now=int(time.time()))
    first, second = EC.mint(same), EC.mint(same)
    assert first != second

    assert await token_id(verifier, first) == await token_id(verifier, second)


async def test_a_padded_signature_does_not_make_a_new_token(verifier: FireTokenVerifier) -> None:
    # PyJWT accepts base64url padding on the signature: the same token, spelled differently.
    token = RSA.mint(claims())
    signed, _, signature = token.rpartition(".")
    tampered = f"{signed}.{signature}{'=' * (-len(signature) % 4)}"
    assert tampered != token

    assert await token_id(verifier, tampered) == await token_id(verifier, token)


async def test_a_long_jti_is_hashed_to_fit(verifier: FireTokenVerifier) -> None:
    jti = "j" * (MAX_JTI_LENGTH + 1)
    first = RSA.mint(claims(jti=jti))
    second = RSA.mint(claims(jti=jti, job_id="job-1"))

    identity = await token_id(verifier, first)

    assert identity == "jti-sha256:" + hashlib.sha256(jti.encode()).hexdigest()
    assert identity == await token_id(verifier, second)
    assert len(identity) <= 200


async def test_identities_fit_the_store_column() -> None:
    longest_jti = fire_token_id("h.p.s", {"jti": "j" * MAX_JTI_LENGTH})
    assert longest_jti == "jti:" + "j" * MAX_JTI_LENGTH
    assert len(longest_jti) == 200
    assert len(fire_token_id("h.p.s", {})) == len("sha256:") + 64


async def test_the_binding_lasts_until_exp_plus_leeway(verifier: FireTokenVerifier) -> None:
    now = int(time.time())
    token = RSA.mint(claims(now=now, ttl=90))

    verified = await verifier.verify(token)

    assert verified.binding_expires_at == datetime.fromtimestamp(now + 90, UTC) + timedelta(
        seconds=LEEWAY
    )
    assert verified.binding_expires_at.utcoffset() == timedelta(0)


async def test_a_token_checked_without_its_binding_still_has_an_identity(
    verifier: FireTokenVerifier,
) -> None:
    token = RSA.mint(claims(jti="delivery-1", job_id="job-1"))

    verified = await verifier.verify(token, check_binding=False)

    assert verified.token_id == "jti:delivery-1"
    assert verified.claims["job_id"] == "job-1"
