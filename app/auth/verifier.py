"""Verification of the per-fire JWT that NAS sends to `POST /api/cron/fire`, and the identity
under which a verified token is bound to the one fire it may admit."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt

from app.auth.jwks import JwksCache, JwksUnavailable, UnknownSigningKey
from app.clock import InvalidInstant, parse_instant
from app.domain.fires import FIRE_PURPOSE

logger = logging.getLogger(__name__)

# Asymmetric only: `none` and HS* are refused before any key lookup, so a public key can
# never be used as an HMAC secret.
ALLOWED_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
REQUIRED_CLAIMS = ("exp", "aud", "iss")  # and purpose; iat and nbf are checked when present

_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")

# The longest `jti` used as it is in a token id; a longer one is hashed (see `fire_token_id`).
MAX_JTI_LENGTH = 196


class InvalidFireToken(Exception):
    """The fire token is refused; `reason` is short and safe to show to the caller."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SigningKeysUnavailable(InvalidFireToken):
    """The token could not be checked because NAS's JWKS is unreachable: transient (503)."""

    def __init__(self) -> None:
        super().__init__("signing keys unavailable")


@dataclass(frozen=True)
class VerifiedFireToken:
    """A fire token that passed verification.

    `token_id` names the token for the one-fire binding (see `fire_token_id`);
    `binding_expires_at` (`exp` + leeway, UTC) is when it stops verifying, so a binding kept
    until then outlives every acceptance of the token.
    """

    claims: dict[str, Any]
    token_id: str
    binding_expires_at: datetime


def fire_token_id(token: str, claims: dict[str, Any]) -> str:
    """The identity of a verified token: `jti:<jti>` for a non-empty string `jti` (hashed as
    `jti-sha256:<hex>` past `MAX_JTI_LENGTH`), else `sha256:<hex>` of its signed part (header
    and payload as sent, which the signature covers byte for byte). The signature is left out
    because its spelling is malleable (base64url padding, ECDSA's `s` or `n - s`): the same
    signed content is the same token. At most 200 characters."""
    jti = claims.get("jti")
    if isinstance(jti, str) and jti:
        if len(jti) <= MAX_JTI_LENGTH:
            return f"jti:{jti}"
        return f"jti-sha256:{hashlib.sha256(jti.encode()).hexdigest()}"
    signed_part = token.rpartition(".")[0]
    return f"sha256:{hashlib.sha256(signed_part.encode()).hexdigest()}"


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None if absent or malformed."""
    if not authorization:
        return None
    parts = authorization.split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        return None
    return parts[1]


class FireTokenVerifier:
    """Checks a fire token's header, signature, time claims, audience, issuer and purpose."""

    def __init__(
        self,
        jwks: JwksCache,
        *,
        audience: str,
        issuer: str,
        leeway: float = 30,
    ) -> None:
        self._jwks = jwks
        self._audience = audience
        # NAS may write its URL with or without a trailing slash: both are the same issuer.
        self._issuers = (issuer.rstrip("/"), issuer.rstrip("/") + "/")
        self._leeway = leeway

    async def prefetch_keys(self) -> None:
        """Fetch NAS's signing keys ahead of the first fire (see `JwksCache.prefetch`)."""
        await self._jwks.prefetch()

    async def verify(
        self,
        token: str,
        *,
        job_id: str | None = None,
        fire_at: datetime | None = None,
        check_binding: bool = True,
    ) -> VerifiedFireToken:
        """Return the token's claims and identity if it is a valid fire token, else raise
        `InvalidFireToken`.

        `exp`, `nbf` and `iat` are checked with `leeway` seconds; `exp`, `aud`, `iss` and
        `purpose == "cron_fire"` are required. A `job_id` or `fire_at` claim binds the token
        to one fire: it must equal the argument (`fire_at` compared as an instant), and a
        bound token is refused when the argument is None. `fire_at` must be timezone-aware.
        With `check_binding=False` only the token itself is checked (the body being unusable,
        the caller answers 400 for a valid token rather than 401).
        Raises `SigningKeysUnavailable` (a subclass) when the JWKS cannot be fetched.
        """
        if fire_at is not None and fire_at.utcoffset() is None:
            raise ValueError("fire_at must be timezone-aware")
        try:
            claims = await self._verified_claims(token)
            _check_purpose(claims)
            if check_binding:
                _check_fire_binding(claims, job_id=job_id, fire_at=fire_at)
        except InvalidFireToken as exc:
            logger.info("fire token rejected", extra={"reason": exc.reason})
            raise
        return VerifiedFireToken(
            claims=claims,
            token_id=fire_token_id(token, claims),
            binding_expires_at=self._binding_expiry(claims),
        )

    def _binding_expiry(self, claims: dict[str, Any]) -> datetime:
        # `exp` passed verification, so it is a number (or numeric string) PyJWT accepted.
        try:
            return datetime.fromtimestamp(float(claims["exp"]) + self._leeway, UTC)
        except (OverflowError, ValueError, OSError):  # past what a datetime holds: never expires
            return datetime.max.replace(tzinfo=UTC)

    async def _verified_claims(self, token: str) -> dict[str, Any]:
        # The header alone chooses the key; `jwt.decode` then parses the whole token once.
        header = _token_header(token)
        algorithm = header.get("alg")
        if not isinstance(algorithm, str) or algorithm not in ALLOWED_ALGORITHMS:
            raise InvalidFireToken("unsupported algorithm")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidFireToken("malformed token")

        try:
            signing_key = await self._jwks.get_signing_key(kid)
        except JwksUnavailable as exc:
            raise SigningKeysUnavailable() from exc
        except UnknownSigningKey as exc:
            raise InvalidFireToken("unknown signing key") from exc
        # The header's algorithm must be one the key may verify (its JWK `alg`, else those of
        # its key type), so an RSA key never verifies an ES256 token and vice versa.
        allowed = getattr(signing_key, "algorithms", frozenset({signing_key.algorithm_name}))
        if algorithm not in allowed:
            raise InvalidFireToken("algorithm does not match signing key")

        try:
            return jwt.decode(
                token,
                signing_key.key,
                algorithms=[algorithm],
                audience=self._audience,
                issuer=self._issuers,
                leeway=self._leeway,
                options={"require": list(REQUIRED_CLAIMS)},
            )
        except jwt.PyJWTError as exc:
            raise InvalidFireToken(_reason_for(exc)) from exc


def _token_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS, read from its first segment only (a tenth of the
    token): the payload and signature are left to `jwt.decode`, which checks the header again.
    Raises `InvalidFireToken("malformed token")` unless the token has three segments and its
    header is base64url-encoded JSON object."""
    segment, _, rest = token.partition(".")
    if "." not in rest:
        raise InvalidFireToken("malformed token")
    segment = segment.rstrip("=")  # padding is tolerated, as PyJWT does
    if not _BASE64URL.fullmatch(segment) or len(segment) % 4 == 1:
        raise InvalidFireToken("malformed token")
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, RecursionError) as exc:  # binascii.Error and JSONDecodeError included
        raise InvalidFireToken("malformed token") from exc
    if not isinstance(header, dict):
        raise InvalidFireToken("malformed token")
    return header


def _reason_for(error: jwt.PyJWTError) -> str:
    # Order matters: the specific errors subclass the generic ones.
    if isinstance(error, jwt.ExpiredSignatureError):
        return "token expired"
    if isinstance(error, jwt.ImmatureSignatureError):
        return "token not yet valid"
    if isinstance(error, jwt.InvalidAudienceError):
        return "wrong audience"
    if isinstance(error, jwt.InvalidIssuerError):
        return "wrong issuer"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"missing claim: {error.claim}"
    if isinstance(error, jwt.InvalidIssuedAtError):
        return "invalid iat claim"
    if isinstance(error, jwt.InvalidSignatureError):
        return "invalid signature"
    if isinstance(error, jwt.InvalidAlgorithmError):
        return "unsupported algorithm"
    if isinstance(error, jwt.DecodeError):
        return "malformed token"
    return "invalid token"


def _check_purpose(claims: dict[str, Any]) -> None:
    if "purpose" not in claims:
        raise InvalidFireToken("missing purpose")
    if claims["purpose"] != FIRE_PURPOSE:
        raise InvalidFireToken("wrong purpose")


def _check_fire_binding(
    claims: dict[str, Any], *, job_id: str | None, fire_at: datetime | None
) -> None:
    if "job_id" in claims and claims["job_id"] != job_id:
        raise InvalidFireToken("job_id mismatch")
    if "fire_at" in claims:
        claimed = _parse_instant(claims["fire_at"])
        if fire_at is None or claimed != fire_at.astimezone(UTC):
            raise InvalidFireToken("fire_at mismatch")


def _parse_instant(value: Any) -> datetime:
    """An ISO 8601 timestamp with offset (`Z` allowed) as a UTC datetime."""
    if not isinstance(value, str):
        raise InvalidFireToken("invalid fire_at claim")
    try:
        return parse_instant(value)
    except InvalidInstant as exc:
        raise InvalidFireToken("invalid fire_at claim") from exc
