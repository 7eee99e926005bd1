"""Checks of the settings themselves: each `CHRONOS_*` value parses, fires could be verified
and armed with them (`Settings.fire_config_problems`), and the callback URL is one NAS can
call."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import ValidationError

from app.doctor.checks import Check, failed, passed
from app.settings import LOOPBACK_HOSTS, Settings

FIRE_PATH = "/api/cron/fire"
_UNSPECIFIED_HOSTS = {"0.0.0.0", "::", "[::]"}  # noqa: S104 - named to refuse them


def load(**overrides: Any) -> tuple[Settings | None, list[Check]]:
    """The settings as `chronos serve` reads them (`CHRONOS_*` and `.env`), or None and one
    failed check per invalid value, each naming its variable."""
    try:
        return Settings(**overrides), [passed("settings", "every CHRONOS_* setting is valid")]
    except ValidationError as exc:
        return None, [_invalid(error) for error in exc.errors()]


def _invalid(error: object) -> Check:
    assert isinstance(error, dict)
    location = "_".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    name = f"CHRONOS_{location.upper()}" if location else "settings"
    return failed(name, message, f"correct {name} (environment or .env)")


def fire_config(settings: Settings) -> list[Check]:
    """One failed check per problem `chronos serve` would refuse to start with."""
    problems = settings.fire_config_problems()
    if not problems:
        return [passed("fire configuration", "NAS, callback, audience and JWKS are set")]
    return [
        failed("fire configuration", problem, "set it as the README's Configuration says")
        for problem in problems
    ]


def callback_url(settings: Settings) -> Check:
    """The public base URL NAS calls back: https (plain http only on loopback in dev), a
    routable host, no query or fragment, and not ending in the fire path NAS appends."""
    name, url = "callback URL", settings.callback_url
    if not url:
        return failed(name, "CHRONOS_CALLBACK_URL is not set", "set the agent's public base URL")
    parts = urlsplit(url)
    host = parts.hostname or ""
    fix = "set CHRONOS_CALLBACK_URL to the agent's public base URL, e.g. https://agent.example.com"
    if parts.scheme not in ("http", "https") or not host:
        return failed(name, f"{url!r} is not an absolute http(s) URL", fix)
    if host in _UNSPECIFIED_HOSTS or f"[{host}]" in _UNSPECIFIED_HOSTS:
        return failed(name, f"{host} is a listen address, not one NAS can call", fix)
    if parts.scheme == "http" and not (settings.is_dev and host in LOOPBACK_HOSTS):
        where = "in prod" if not settings.is_dev else f"on {host} (not loopback)"
        return failed(name, f"plain http {where}: NAS sends fire tokens only over https", fix)
    if parts.query or parts.fragment:
        return failed(name, "carries a query or fragment; NAS appends a path to it", fix)
    if parts.path.rstrip("/").endswith(FIRE_PATH):
        return failed(
            name,
            f"ends in {FIRE_PATH}, which NAS appends itself",
            f"drop {FIRE_PATH} from CHRONOS_CALLBACK_URL",
        )
    return passed(name, f"NAS will call {url.rstrip('/')}{FIRE_PATH}")
