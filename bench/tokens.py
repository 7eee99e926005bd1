"""The bench's NAS signing key: an RSA key (RS256, as the NAS emulator signs) whose public
half the NAS stub publishes, and fire tokens minted with it."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

KID = "bench-nas"


@dataclass(frozen=True)
class BenchKey:
    private_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )

    def jwks(self) -> dict[str, Any]:
        jwk = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": KID, "alg": "RS256", "use": "sig"}]}

    def fire_token(
        self, audience: str, issuer: str, job_id: str, fire_at: str, *, ttl: int = 1800
    ) -> str:
        """A fire token as NAS mints one: its own `jti`, bound to `(job_id, fire_at)`."""
        now = int(time.time())
        claims = {
            "aud": audience,
            "iss": issuer,
            "purpose": "cron_fire",
            "iat": now,
            "exp": now + ttl,
            "jti": uuid.uuid4().hex,
            "job_id": job_id,
            "fire_at": fire_at,
        }
        return jwt.encode(claims, self.private_key, algorithm="RS256", headers={"kid": KID})
