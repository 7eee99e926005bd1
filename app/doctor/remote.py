"""Checks that reach out: the database and its migrations, NAS's answer to the agent's token,
NAS's published keys, and the clock against NAS's."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from app.auth import ALLOWED_ALGORITHMS
from app.auth.jwks import JwksUnavailable, signing_keys
from app.doctor.checks import Check, failed, passed, warned
from app.nas import (
    CredentialsRefused,
    CredentialsUnavailable,
    ListUnsupported,
    NasClient,
    NasError,
    RetryBudget,
    build_credentials,
)
from app.settings import ConfigError, Settings
from app.store import Store, StoreUnavailable

MIGRATE_FIX = "run `chronos migrate` (`chronos serve` also migrates when it starts)"
SKEW_WARN_SECONDS = 5.0


@dataclass
class NasClock:
    """`Date` headers of NAS's answers, with the local time each arrived."""

    samples: list[tuple[datetime, datetime]] = field(default_factory=list)

    async def record(self, response: httpx.Response) -> None:
        raw = response.headers.get("date")
        if not raw:
            return
        try:
            theirs = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            return
        if theirs.tzinfo is not None:
            self.samples.append((datetime.now(UTC), theirs))


async def database(settings: Settings) -> tuple[Store | None, Check]:
    """The store, opened and answering, or None and why not. A SQLite file that does not
    exist is not created here."""
    name, url = "database", settings.database_url
    fix = "check CHRONOS_DATABASE_URL, and that the database server is up and reachable"
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1].split("?", 1)[0]
        if path and path != ":memory:" and not await asyncio.to_thread(os.path.exists, path):
            return None, failed(name, f"no database file at {path} yet", MIGRATE_FIX)
    try:
        store = Store.from_url(url)
    except ConfigError as exc:
        return None, failed(name, str(exc), fix)
    try:
        await store.ping()
    except StoreUnavailable as exc:
        await store.close()
        return None, failed(name, f"unreachable ({exc})", fix)
    except Exception as exc:  # a refused login, an unknown database: say what it is
        await store.close()
        return None, failed(name, f"cannot connect ({type(exc).__name__}: {exc})"[:300], fix)
    return store, passed(name, f"{store.dialect} answers")


async def migrations(store: Store) -> Check:
    name = "migrations"
    status = await store.migration_status()
    if status.at_head:
        return passed(name, f"at head ({status.head})")
    if status.current is None:
        return failed(name, f"not migrated ({status.behind} migrations to apply)", MIGRATE_FIX)
    if status.behind is None:
        return failed(
            name,
            f"at {status.current}, unknown to this version (head {status.head})",
            "run the Chronos version that migrated this database, or a newer one",
        )
    return failed(
        name, f"at {status.current}, {status.behind} behind head {status.head}", MIGRATE_FIX
    )


def nas_http(settings: Settings, clock: NasClock) -> httpx.AsyncClient:
    from app.version import USER_AGENT

    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.nas_read_timeout, connect=settings.nas_connect_timeout),
        headers={"User-Agent": USER_AGENT},
        event_hooks={"response": [clock.record]},
    )


async def nas_token(settings: Settings, http: httpx.AsyncClient) -> Check:
    """One `list` through the real client, without retries: does NAS take the agent's token?"""
    name = "NAS token"
    assert settings.portal_url
    budget = RetryBudget(attempts=1, max_seconds=settings.nas_read_timeout)
    client = NasClient(http, settings.portal_url, build_credentials(settings), budget=budget)
    try:
        armed = await client.list_armed()
    except ListUnsupported:
        return warned(
            name,
            "token accepted; NAS has no list endpoint (orphans cannot be cancelled)",
            "none needed: reconcile provisions every wanted arm instead",
        )
    except (CredentialsRefused, CredentialsUnavailable) as exc:
        fix = "check CHRONOS_NAS_TOKEN (or _FILE / _COMMAND): NAS must know this agent's token"
        return failed(name, str(exc)[:300], fix)
    except NasError as exc:
        fix = "check CHRONOS_PORTAL_URL and that NAS is reachable from here"
        return failed(name, f"NAS did not answer list: {exc}"[:300], fix)
    return passed(name, f"NAS accepted the token ({len(armed)} arms listed)")


async def jwks(settings: Settings, http: httpx.AsyncClient) -> Check:
    """NAS's JWKS answers, holds usable public keys, and each allows an accepted algorithm."""
    name, url = "JWKS", settings.nas_jwks_url
    assert url
    fix = "check CHRONOS_NAS_JWKS_URL: NAS's JWKS, e.g. {portal}/.well-known/jwks.json"
    try:
        response = await http.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        return failed(name, f"unreachable ({type(exc).__name__})", fix)
    if response.status_code != 200:
        return failed(name, f"HTTP {response.status_code} from {url}", fix)
    try:
        keys = signing_keys(response.json())
    except ValueError:
        return failed(name, "the answer is not JSON", fix)
    except JwksUnavailable as exc:
        return failed(name, str(exc), fix)
    usable = {
        key.key_id or "(no kid)": sorted(
            set(getattr(key, "algorithms", ())) & set(ALLOWED_ALGORITHMS)
        )
        for key in keys
    }
    if not any(usable.values()):
        return failed(name, "no key allows an accepted algorithm (RS*, PS*, ES*, EdDSA)", fix)
    listed = ", ".join(f"{kid}: {'/'.join(algs) or 'none'}" for kid, algs in usable.items())
    return passed(name, f"{len(keys)} key(s) ({listed})")


def clock_skew(settings: Settings, clock: NasClock) -> Check:
    """This host's clock against NAS's `Date` (to the second): over 5 s warns, over the JWT
    leeway fails (fire tokens would be refused as not yet valid or expired)."""
    name = "clock skew"
    if not clock.samples:
        return warned(name, "NAS sent no Date header: skew unknown", "keep this host on NTP")
    ours, theirs = clock.samples[-1]
    skew = (ours - theirs).total_seconds()
    # `Date` is truncated to the second: up to 1 s of the difference is the header's.
    error = max(0.0, abs(skew - 0.5) - 0.5)
    text = f"{skew - 0.5:+.1f} s (±0.5 s) against NAS"
    fix = "sync this host's clock (NTP)"
    leeway = settings.jwt_leeway_seconds
    if error > leeway:
        return failed(name, f"{text}, over the JWT leeway ({leeway} s)", fix)
    if error > SKEW_WARN_SECONDS:
        return warned(name, f"{text}, over {SKEW_WARN_SECONDS:.0f} s", fix)
    return passed(name, text)
