"""The admin API client of the `jobs` and `reconcile` commands, and their connection options."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import httpx
import typer

from app.cli.config import load_settings
from app.cli.console import fail

DEV_ADMIN_TOKEN_FILE = Path("data/dev/admin-token")
DEFAULT_API_TIMEOUT = 30.0

UrlOpt = Annotated[
    str | None, typer.Option("--url", help="agent base URL (CHRONOS_API_URL)", show_default=False)
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", help="admin token (CHRONOS_ADMIN_TOKEN)", show_default=False),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="print raw JSON")]


def admin_client(url: str | None, token: str | None) -> httpx.Client:
    settings = load_settings()
    base = url or os.environ.get("CHRONOS_API_URL") or f"http://127.0.0.1:{settings.port}"
    secret = token or settings.admin_token_value()
    if not secret and DEV_ADMIN_TOKEN_FILE.exists():
        secret = DEV_ADMIN_TOKEN_FILE.read_text(encoding="utf-8").strip()
    if not secret:
        raise fail("no admin token: set CHRONOS_ADMIN_TOKEN (or CHRONOS_ADMIN_TOKEN_FILE)")
    return httpx.Client(
        base_url=base.rstrip("/"),
        headers={"Authorization": f"Bearer {secret}"},
        timeout=httpx.Timeout(api_timeout(), connect=5.0),
    )


def api_timeout() -> float:
    """Seconds an admin call waits for its answer: `CHRONOS_API_TIMEOUT_SECONDS`, default 30
    (`chronos reconcile` waits as long as the reconcile takes)."""
    raw = os.environ.get("CHRONOS_API_TIMEOUT_SECONDS", "").strip()
    try:
        seconds = float(raw) if raw else DEFAULT_API_TIMEOUT
    except ValueError:
        raise fail(f"CHRONOS_API_TIMEOUT_SECONDS: not a number: {raw!r}") from None
    if not seconds > 0:
        raise fail("CHRONOS_API_TIMEOUT_SECONDS: must be more than 0")
    return seconds


def request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """One admin API request; an unreachable agent is a one-line failure."""
    try:
        return client.request(method, path, **kwargs)
    except httpx.TransportError as exc:
        raise fail(f"cannot reach the agent at {client.base_url}: {exc}") from None


def refused(response: httpx.Response) -> typer.Exit:
    """The one-line failure for an error answer, with the agent's `detail`."""
    try:
        detail = response.json().get("detail", response.text)
    except (ValueError, AttributeError):
        detail = response.text
    return fail(f"HTTP {response.status_code}: {detail}", code=1)


def answer(client: httpx.Client, method: str, path: str, **kwargs: Any) -> Any:
    """The JSON answer of an admin API request, or the one-line failure."""
    response = request(client, method, path, **kwargs)
    if response.status_code >= 400:
        raise refused(response)
    return response.json() if response.content else None


def call(method: str, path: str, url: str | None, token: str | None, **kwargs: Any) -> Any:
    """One admin API request; an error answer or an unreachable agent is a one-line failure."""
    with admin_client(url, token) as client:
        return answer(client, method, path, **kwargs)
