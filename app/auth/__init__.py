"""Fire verification: NAS's signing keys (`JwksCache`) and the fire-token check."""

from app.auth.jwks import JwksCache, JwksError, JwksUnavailable, UnknownSigningKey
from app.auth.verifier import (
    ALLOWED_ALGORITHMS,
    FireTokenVerifier,
    InvalidFireToken,
    SigningKeysUnavailable,
    VerifiedFireToken,
    bearer_token,
    fire_token_id,
)
from app.domain.fires import FIRE_PURPOSE

__all__ = [
    "ALLOWED_ALGORITHMS",
    "FIRE_PURPOSE",
    "FireTokenVerifier",
    "InvalidFireToken",
    "JwksCache",
    "JwksError",
    "JwksUnavailable",
    "SigningKeysUnavailable",
    "UnknownSigningKey",
    "VerifiedFireToken",
    "bearer_token",
    "fire_token_id",
]
