"""Driving the dashboard in a real browser: Debian's Chromium through Playwright (no browser
download), and a few realistic jobs to look at."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, sync_playwright


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def chromium() -> Iterator[Browser]:
    """Headless Chromium from the system; the caller skips when `chromium_path()` is None."""
    path = chromium_path()
    assert path is not None
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path, headless=True, args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            yield browser
        finally:
            browser.close()


def log_in(page: Page, agent_url: str, admin_token: str) -> None:
    page.goto(f"{agent_url}/ui")
    page.wait_for_url(f"{agent_url}/ui/login")
    page.fill("input[name=token]", admin_token)
    page.click("button[type=submit]")
    page.wait_for_url(f"{agent_url}/ui")


def _python(code: str) -> dict[str, Any]:
    return {"type": "command", "argv": [sys.executable, "-c", code], "timeout_seconds": 20}


def realistic_jobs(nas_url: str) -> list[dict[str, Any]]:
    """Jobs as a small service would have them: cron in a few zones, intervals, a webhook."""
    return [
        {
            "name": "nightly-backup",
            "schedule": "30 2 * * *",
            "timezone": "Europe/Berlin",
            "target": _python("print('backup: 1,204 files, 38.2 MB')"),
        },
        {
            "name": "invoice-reminders",
            "schedule": "0 9 * * 1-5",
            "timezone": "America/New_York",
            "target": {"type": "http", "url": f"{nas_url}/healthz", "method": "GET"},
        },
        {
            "name": "cache-warmup",
            "schedule": "*/15 * * * *",
            "target": _python("print('warmed 42 keys')"),
        },
        {
            "name": "heartbeat",
            "schedule": "every 5s",
            "target": _python("print('ok')"),
        },
        {
            "name": "crm-sync",
            "schedule": "every 5m",
            "target": _python("import sys; sys.exit('crm: 502 Bad Gateway')"),
        },
        {
            "name": "weekly-report",
            "schedule": "0 8 * * MON",
            "timezone": "Asia/Tokyo",
            "target": _python("print('report sent')"),
        },
    ]


def create_jobs(admin: httpx.Client, jobs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    created = []
    for job in jobs:
        response = admin.post("/api/jobs", json=job)
        assert response.status_code == 201, response.text
        created.append(response.json())
    return created
