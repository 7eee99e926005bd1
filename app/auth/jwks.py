"""A rate-limited cache of NAS's public signing keys, fetched from its JWKS URL.

Contract:
- Keys are cached by `kid`. While the cached set is fresh, a known `kid` never causes a fetch.
- The set is fresh for `max_age` seconds after the fetch that brought it, or for the JWKS
  answer's `Cache-Control: max-age` (less its `Age`) when that is shorter; `no-store`,
  `no-cache` and `max-age=0` count as 0. A lifetime from the answer is never taken below
  `MIN_FRESHNESS` (1 s), so a JWKS that forbids caching costs at most one fetch a second, not
  one per token. A set past its lifetime is fetched again on the next use, so a key NAS
  withdrew stops verifying within `max_age`.
- The first use fetches. An unknown `kid` against a fresh set triggers a refresh at most once
  per `refresh_interval` seconds (measured from the last successful fetch); otherwise it is
  refused at once with `UnknownSigningKey`.
- Only one fetch runs at a time. Callers that waited for a fetch use its outcome instead
  of fetching again.
- A failed fetch (transport error, non-200, malformed document, no usable key) is
  remembered for `failure_ttl` seconds: callers that would need a fetch in that window get
  `JwksUnavailable` without one. Keys of a fresh set keep working.
- A JWKS outage does not stop every fire at once: when the set has expired and fetching it
  again fails, its keys are still served (each failed fetch logs a WARNING) for up to another
  `max_age` seconds past its expiry; after that, or for a `kid` it does not hold, the answer
  is `JwksUnavailable`. A withdrawn key therefore verifies for at most `2 * max_age` after
  NAS withdrew it, and only while the JWKS cannot be fetched.
- A refresh replaces the whole set, so keys NAS has withdrawn are forgotten.
- `prefetch` (at startup) fetches as a first use would, for no caller: a fire arriving
  meanwhile waits for that fetch instead of starting another. Its failure is logged and
  shared with those waiting, but not remembered: the next use fetches again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from app.metrics.registry import Metrics

logger = logging.getLogger(__name__)

# JWK members only an asymmetric private key carries: a JWKS publishing them is misconfigured,
# and PyJWT would build a private key object that cannot `verify`.
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth"})


# What a key published without `alg` may verify, by key type (and curve): never `none` or HS*.
_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_CURVE_ALGORITHMS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}

# The shortest lifetime a JWKS answer's Cache-Control can give the cached set, in seconds.
MIN_FRESHNESS = 1.0


class NasSigningKey(jwt.PyJWK):
    """A public key from NAS's JWKS, with the JWS algorithms it may verify: its JWK's `alg`
    when published, else every algorithm of its key type (RSA: RS* and PS*; EC: the ES
    algorithm of its curve; OKP: EdDSA)."""

    def __init__(self, jwk: dict[str, Any]) -> None:
        super().__init__(jwk)
        alg = jwk.get("alg")
        if isinstance(alg, str):
            self.algorithms = frozenset({alg})
        elif jwk.get("kty") == "RSA":
            self.algorithms = _RSA_ALGORITHMS
        elif jwk.get("kty") == "EC" and jwk.get("crv") in _CURVE_ALGORITHMS:
            self.algorithms = frozenset({_CURVE_ALGORITHMS[jwk["crv"]]})
        elif jwk.get("kty") == "OKP":
            self.algorithms = frozenset({"EdDSA"})
        else:
            self.algorithms = frozenset({self.algorithm_name})


class JwksError(Exception):
    """Base of the errors `JwksCache.get_signing_key` raises."""


class JwksUnavailable(JwksError):
    """The JWKS could not be fetched (now or within the failure TTL); retrying later may help."""


class UnknownSigningKey(JwksError):
    """No usable key matches the token's `kid`, and a refresh is not permitted or did not help."""


class JwksCache:
    """Signing keys from one JWKS URL; see the module docstring for the refresh contract.

    Timeouts come from `http`; `clock` is a monotonic clock in seconds (injectable for tests).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        url: str,
        *,
        max_age: float = 300.0,
        refresh_interval: float = 30.0,
        failure_ttl: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        metrics: Metrics | None = None,
    ) -> None:
        self._http = http
        self._refreshes = (metrics or Metrics()).jwks_refreshes
        self._url = url
        self._max_age = max_age
        self._refresh_interval = refresh_interval
        self._failure_ttl = failure_ttl
        self._clock = clock
        self._lock = asyncio.Lock()
        self._keys: tuple[jwt.PyJWK, ...] = ()
        self._keys_by_kid: dict[str, jwt.PyJWK] = {}
        self._refreshed_at: float | None = None
        self._expires_at: float | None = None
        self._failed_until: float | None = None
        self._last_failure: str | None = None
        # Counts completed fetches, so a caller that waited on the lock can tell one happened.
        self._completed_fetches = 0

    async def get_signing_key(self, kid: str | None) -> jwt.PyJWK:
        """Return the public key for `kid`, fetching the JWKS if needed and permitted.

        A `kid` of None matches only when the JWKS holds exactly one usable key.
        Raises `JwksUnavailable` if a needed fetch fails or failed within the failure TTL
        (unless an expired set may still serve the key), and `UnknownSigningKey` if no key
        matches after a permitted refresh (or a refresh is rate-limited).
        """
        if self._is_fresh():
            key = self._lookup(kid)
            if key is not None:
                return key
            self._ensure_refresh_permitted(kid)
        elif self._failing():
            return self._stale_key(kid, self._recent_failure())

        try:
            await self._refresh_once()
        except JwksUnavailable as exc:
            return self._stale_key(kid, exc)
        key = self._lookup(kid)
        if key is None:
            raise UnknownSigningKey(self._describe_miss(kid))
        return key

    async def prefetch(self) -> None:
        """Fetch the set unless it is fresh or a failure is remembered; never raises."""
        async with self._lock:
            if self._is_fresh() or self._failing():
                return  # a fetch for a caller got there first
            try:
                await self._refresh()
            except JwksUnavailable:
                self._failed_until = None  # nobody asked yet: the first fire may try again

    def _is_fresh(self) -> bool:
        return self._expires_at is not None and self._clock() < self._expires_at

    def _failing(self) -> bool:
        return self._failed_until is not None and self._clock() < self._failed_until

    def _recent_failure(self) -> JwksUnavailable:
        return JwksUnavailable(f"JWKS fetch failed recently: {self._last_failure}")

    def _stale_key(self, kid: str | None, failure: JwksUnavailable) -> jwt.PyJWK:
        """The key for `kid` from an expired set still within its grace, else `failure`."""
        key = self._lookup(kid)
        if key is None or self._expires_at is None:
            raise failure
        if self._clock() >= self._expires_at + self._max_age:
            raise JwksUnavailable(f"JWKS expired and cannot be fetched: {failure}") from failure
        return key

    async def _refresh_once(self) -> None:
        """Fetch unless a fetch completed while we waited for the lock; share its failure."""
        fetches_seen = self._completed_fetches
        async with self._lock:
            if self._completed_fetches == fetches_seen:
                await self._refresh()
            elif self._last_failure is not None:
                # The fetch we waited for failed: share its outcome rather than retry at once.
                raise JwksUnavailable(f"JWKS fetch failed: {self._last_failure}")

    def _lookup(self, kid: str | None) -> jwt.PyJWK | None:
        if kid is None:
            return self._keys[0] if len(self._keys) == 1 else None
        return self._keys_by_kid.get(kid)

    def _describe_miss(self, kid: str | None) -> str:
        if kid is None:
            return f"token has no kid and the JWKS holds {len(self._keys)} keys"
        return f"no signing key with kid {kid!r}"

    def _ensure_refresh_permitted(self, kid: str | None) -> None:
        now = self._clock()
        if self._failing():
            raise self._recent_failure()
        if self._refreshed_at is not None and now - self._refreshed_at < self._refresh_interval:
            logger.debug("JWKS refresh suppressed by the rate limit", extra={"kid": kid})
            raise UnknownSigningKey(self._describe_miss(kid))

    async def _refresh(self) -> None:
        """Fetch the JWKS once and replace the cached set; record and raise on failure."""
        try:
            document, lifetime = await self._fetch_document()
            keys = _parse_jwks(document)
        except JwksUnavailable as exc:
            self._refreshes.labels(result="error").inc()
            self._record_failure(exc)
            raise
        self._refreshes.labels(result="ok").inc()
        now = self._clock()
        self._completed_fetches += 1
        self._keys = tuple(keys.values())
        self._keys_by_kid = {kid: key for kid, key in keys.items() if kid is not None}
        self._refreshed_at = now
        self._expires_at = now + self._freshness(lifetime)
        self._failed_until = None
        self._last_failure = None
        logger.info(
            "JWKS refreshed",
            extra={
                "url": self._url,
                "keys": len(self._keys),
                "kids": sorted(self._keys_by_kid),
                "fresh_for_seconds": self._expires_at - now,
            },
        )

    def _freshness(self, lifetime: float | None) -> float:
        if lifetime is None:
            return self._max_age
        return min(self._max_age, max(lifetime, MIN_FRESHNESS))

    def _record_failure(self, exc: JwksUnavailable) -> None:
        now = self._clock()
        self._completed_fetches += 1
        self._last_failure = str(exc)
        self._failed_until = now + self._failure_ttl
        extra: dict[str, Any] = {
            "url": self._url,
            "error": str(exc),
            "retry_in_seconds": self._failure_ttl,
        }
        if self._expires_at is not None and now >= self._expires_at:
            # Expired keys are still served for a while: say until when.
            extra["stale_keys_for_seconds"] = max(self._expires_at + self._max_age - now, 0.0)
        logger.warning("JWKS fetch failed; not retrying until the failure expires", extra=extra)

    async def _fetch_document(self) -> tuple[Any, float | None]:
        """The JWKS document and its lifetime from `Cache-Control` (None: not stated)."""
        try:
            response = await self._http.get(self._url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise JwksUnavailable(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code != 200:
            raise JwksUnavailable(f"HTTP {response.status_code}")
        try:
            document = response.json()
        except ValueError as exc:
            raise JwksUnavailable("response is not JSON") from exc
        return document, cache_lifetime(response.headers)


def cache_lifetime(headers: httpx.Headers) -> float | None:
    """Seconds an answer stays fresh by its `Cache-Control` (`max-age` less `Age`; `no-store`,
    `no-cache` and `max-age=0` give 0), or None when it states no usable lifetime. Several
    lifetimes: the shortest wins."""
    lifetimes: list[int] = []
    for value in headers.get_list("cache-control"):
        for directive in value.split(","):
            name, _, argument = directive.strip().partition("=")
            name, argument = name.strip().lower(), argument.strip().strip('"')
            if name in ("no-store", "no-cache") and not argument:
                lifetimes.append(0)
            elif name == "max-age" and (seconds := _delta_seconds(argument)) is not None:
                lifetimes.append(seconds)
    if not lifetimes:
        return None
    elapsed = _delta_seconds(headers.get("age", "").strip()) or 0
    return float(max(min(lifetimes) - elapsed, 0))


def _delta_seconds(text: str) -> int | None:
    """A delta-seconds value (digits only, RFC 9111 1.2.2); one too large counts as 2**31."""
    if not (text.isascii() and text.isdigit()):
        return None
    return 2**31 if len(text) > 10 else min(int(text), 2**31)


def _parse_jwks(document: Any) -> dict[str | None, jwt.PyJWK]:
    """Usable signing keys of a JWKS document, keyed by kid (None for a key without one).

    Unusable members (unknown type or curve, symmetric, encryption-only, private, duplicate
    kid) are skipped and logged by kid; the set fails only if none is usable.
    """
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise JwksUnavailable('document has no "keys" list')
    keys: dict[str | None, jwt.PyJWK] = {}
    for jwk in document["keys"]:
        kid = jwk.get("kid") if isinstance(jwk, dict) else None
        try:
            key = _signing_key_from_jwk(jwk)
            if kid in keys:
                raise _UnusableKey("duplicate kid")
        except _UnusableKey as exc:
            logger.warning("JWKS key skipped", extra={"kid": kid, "error": str(exc)})
            continue
        keys[kid] = key
    if not keys:
        raise JwksUnavailable("no usable signing key in the JWKS")
    return keys


def signing_keys(document: Any) -> list[jwt.PyJWK]:
    """The usable signing keys of a JWKS document, as the cache would keep them (for
    `chronos doctor`); `JwksUnavailable` when there is none."""
    return list(_parse_jwks(document).values())


class _UnusableKey(ValueError):
    pass


def _signing_key_from_jwk(jwk: Any) -> jwt.PyJWK:
    if not isinstance(jwk, dict):
        raise _UnusableKey("not a JSON object")
    if "kid" in jwk and not isinstance(jwk["kid"], str):
        raise _UnusableKey("kid is not a string")
    if jwk.get("kty") == "oct":
        raise _UnusableKey("symmetric key")
    if jwk.get("use", "sig") != "sig":
        raise _UnusableKey("not a signature key")
    if _PRIVATE_JWK_MEMBERS & jwk.keys():
        raise _UnusableKey("carries private key material")
    try:
        return NasSigningKey(jwk)
    except jwt.PyJWTError as exc:
        raise _UnusableKey(f"not a usable key ({type(exc).__name__})") from exc
