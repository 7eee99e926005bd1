"""Real signing keys, JWTs and a mock JWKS endpoint for tests.

`SigningKey.rsa(kid)` / `SigningKey.ec(kid)` return the same key material for the same kid
within a test session (2048-bit RSA generation is slow); distinct kids get distinct keys, so a
test that needs a fresh or rotated key asks for a kid no other test uses.
Use `key.with_kid(other)` for a key that claims someone else's kid.

`write_private_key(key, path)` puts a session key where a NAS emulator reads its `key_file`,
so an emulator started per test loads a key instead of generating one.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import hashlib
import hmac
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@functools.cache
def _rsa_private_key(kid: str) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@functools.cache
def _ec_private_key(kid: str) -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@dataclass(frozen=True)
class SigningKey:
    """A private key with its kid and default JWS algorithm."""

    kid: str
    algorithm: str
    private_key: PrivateKey

    @classmethod
    def rsa(cls, kid: str = "rsa-1") -> SigningKey:
        """An RS256 key (RSA 2048), cached per kid."""
        return cls(kid=kid, algorithm="RS256", private_key=_rsa_private_key(kid))

    @classmethod
    def ec(cls, kid: str = "ec-1") -> SigningKey:
        """An ES256 key (P-256), cached per kid."""
        return cls(kid=kid, algorithm="ES256", private_key=_ec_private_key(kid))

    def with_kid(self, kid: str) -> SigningKey:
        """The same key material published or used under another kid."""
        return SigningKey(kid=kid, algorithm=self.algorithm, private_key=self.private_key)

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK, with `kid`, `alg` and `use="sig"`."""
        public_key = self.private_key.public_key()
        if isinstance(public_key, rsa.RSAPublicKey):
            jwk = RSAAlgorithm.to_jwk(public_key, as_dict=True)
        else:
            jwk = ECAlgorithm.to_jwk(public_key, as_dict=True)
        return {**jwk, "kid": self.kid, "alg": self.algorithm, "use": "sig"}

    def public_pem(self) -> bytes:
        """The public key as SubjectPublicKeyInfo PEM."""
        return self.private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def private_pem(self) -> bytes:
        """The private key as unencrypted PKCS#8 PEM (what an emulator's `key_file` holds)."""
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )

    def mint(
        self,
        claims: dict[str, Any],
        *,
        headers: dict[str, Any] | None = None,
        algorithm: str | None = None,
    ) -> str:
        """A JWT signed by this key, with `kid` in its header.

        `headers` are merged over `{"kid": ...}`; a header set to None is left out.
        """
        merged = {"kid": self.kid, **(headers or {})}
        return jwt.encode(
            claims,
            self.private_key,
            algorithm=algorithm or self.algorithm,
            headers={name: value for name, value in merged.items() if value is not None},
        )


NAS_KID = "nas-emulator"
"""The kid under which tests cache the NAS emulator's RSA key (one per session)."""


def nas_signing_key() -> SigningKey:
    """The NAS emulator's RSA key for this session; `SigningKey.rsa(other_kid)` for another."""
    return SigningKey.rsa(NAS_KID)


def write_private_key(key: SigningKey, path: Path) -> Path:
    """Write `key` as a 0600 PEM file at `path` unless a key file is there already (a restarted
    emulator keeps the key it had), and return `path`."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(key.private_pem())
    return path


def jwks_document(*keys: SigningKey) -> dict[str, Any]:
    """A JWKS publishing the public half of `keys`."""
    return {"keys": [key.public_jwk() for key in keys]}


def fire_claims(
    audience: str,
    issuer: str,
    *,
    ttl: int = 90,
    now: datetime | float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Claims of a NAS fire token issued at `now` (default: the current time).

    `extra` claims are added or override the defaults; one set to None is removed.
    """
    if now is None:
        issued_at = int(time.time())
    elif isinstance(now, datetime):
        issued_at = int(now.timestamp())
    else:
        issued_at = int(now)
    claims: dict[str, Any] = {
        "aud": audience,
        "iss": issuer,
        "purpose": "cron_fire",
        "iat": issued_at,
        "nbf": issued_at,
        "exp": issued_at + ttl,
        **extra,
    }
    return {name: value for name, value in claims.items() if value is not None}


def forge_token(
    header: dict[str, Any], claims: dict[str, Any], *, hmac_secret: bytes | None = None
) -> str:
    """A JWT built by hand, as an attacker would: HMAC-SHA256 signed if `hmac_secret` is
    given (whatever `header["alg"]` says), else with an empty signature (for `alg: none`).
    """
    signing_input = f"{_b64url_json(header)}.{_b64url_json(claims)}"
    signature = b""
    if hmac_secret is not None:
        signature = hmac.new(hmac_secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url(signature)}"


def _b64url_json(value: dict[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class JwksEndpoint:
    """A JWKS URL served through `httpx.MockTransport`; counts the requests it answers.

    Set `document` to rotate keys, `failure` to an HTTP status or an exception to make the
    endpoint fail, `delay` (seconds) to hold each answer so concurrent callers pile up.
    """

    def __init__(self, document: dict[str, Any] | None = None) -> None:
        self.document: Any = document if document is not None else {"keys": []}
        self.failure: int | Exception | None = None
        self.raw_body: bytes | None = None
        self.delay: float = 0.0
        self.requests = 0

    def publish(self, *keys: SigningKey) -> None:
        """Serve a JWKS with exactly `keys` from now on."""
        self.document = jwks_document(*keys)

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.delay:
            await asyncio.sleep(self.delay)
        if isinstance(self.failure, Exception):
            raise self.failure
        if self.failure is not None:
            return httpx.Response(self.failure, json={"error": "unavailable"})
        if self.raw_body is not None:
            return httpx.Response(200, content=self.raw_body)
        return httpx.Response(200, json=self.document)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)
