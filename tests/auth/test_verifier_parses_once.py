"""The verifier reads a fire token once: the key is chosen from the header alone, and PyJWT's
full parse (base64url checks of every segment, the costly part) runs a single time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from jwt.api_jws import PyJWS

from app.auth import FireTokenVerifier, JwksCache
from tests.support.keys import JwksEndpoint, SigningKey, fire_claims, jwks_document

pytestmark = pytest.mark.asyncio

AUDIENCE = "agent:instance-42"
ISSUER = "https://portal.example.test"
RSA = SigningKey.rsa("rsa-1")


@pytest_asyncio.fixture
async def verifier() -> AsyncIterator[FireTokenVerifier]:
    transport = JwksEndpoint(jwks_document(RSA)).transport()
    async with httpx.AsyncClient(transport=transport) as http:
        jwks = JwksCache(http, f"{ISSUER}/.well-known/jwks.json")
        yield FireTokenVerifier(jwks, audience=AUDIENCE, issuer=ISSUER)


async def test_a_token_is_parsed_by_pyjwt_once(
    verifier: FireTokenVerifier, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Counting, not timing: `PyJWS._load` is PyJWT's one parser of a compact token (used by
    # `get_unverified_header` and `decode` alike). Should PyJWT rename it, setattr fails here.
    loads: list[Any] = []
    parse = PyJWS._load

    def counting_load(self: PyJWS, jwt: str | bytes) -> Any:
        loads.append(jwt)
        return parse(self, jwt)

    token = RSA.mint(fire_claims(AUDIENCE, ISSUER, job_id="job-1"))
    await verifier.verify(token, job_id="job-1")  # the JWKS fetch is not what is counted
    monkeypatch.setattr(PyJWS, "_load", counting_load)

    await verifier.verify(token, job_id="job-1")

    assert len(loads) == 1


@pytest.mark.parametrize(
    "token",
    [
        "e30",  # one segment
        "e30.e30",  # two segments
        "W10.e30.sig",  # a header that is JSON but not an object
        "e3!0.e30.sig",  # not base64url
        "e.e30.sig",  # a base64url length no encoding has
        "bnVsbA.e30.sig",  # null
    ],
)
async def test_a_header_that_is_not_a_json_object_is_malformed(
    verifier: FireTokenVerifier, token: str
) -> None:
    from app.auth import InvalidFireToken

    with pytest.raises(InvalidFireToken) as caught:
        await verifier.verify(token)
    assert caught.value.reason == "malformed token"
