"""All of `chronos doctor`'s checks in order; a check whose prerequisite failed is skipped."""

from __future__ import annotations

from typing import Any

from app.doctor import config, remote
from app.doctor.checks import Check, skipped

REMOTE_CHECKS = ("database", "migrations", "NAS token", "JWKS", "clock skew")


async def run_checks(**overrides: Any) -> list[Check]:
    """The settings (`CHRONOS_*` and `.env`, as `chronos serve` reads them, `overrides`
    first), then the database, NAS and its keys. Never raises for what it checks."""
    settings, checks = config.load(**overrides)
    if settings is None:
        return checks + [skipped(name, "the settings are invalid") for name in REMOTE_CHECKS]
    checks += config.fire_config(settings)
    checks.append(config.callback_url(settings))

    store, reached = await remote.database(settings)
    checks.append(reached)
    if store is None:
        checks.append(skipped("migrations", "the database cannot be reached"))
    else:
        try:
            checks.append(await remote.migrations(store))
        finally:
            await store.close()

    clock = remote.NasClock()
    async with remote.nas_http(settings, clock) as http:
        token_set = not any("NAS_TOKEN" in p for p in settings.fire_config_problems())
        if settings.portal_url and token_set:
            checks.append(await remote.nas_token(settings, http))
        else:
            checks.append(skipped("NAS token", "CHRONOS_PORTAL_URL or the NAS token is not set"))
        if settings.nas_jwks_url:
            checks.append(await remote.jwks(settings, http))
        else:
            checks.append(skipped("JWKS", "CHRONOS_NAS_JWKS_URL is not set"))
    nas_answered = any(c.name == "NAS token" and c.ok for c in checks)
    if clock.samples or nas_answered:
        checks.append(remote.clock_skew(settings, clock))
    else:
        checks.append(skipped("clock skew", "NAS did not answer"))
    return checks
