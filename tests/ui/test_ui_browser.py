"""The dashboard in a real browser: `chronos serve` and `chronos nas-emulator` as processes
on loopback ports, Debian's Chromium driven by Playwright. Log in, read the jobs table, open
a job, pause it with its button, delete another after the confirmation step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.deployment import ADMIN_TOKEN, Deployment, deployment, eventually
from tests.ui.browser import chromium, chromium_path, create_jobs, log_in, realistic_jobs

pytestmark = [pytest.mark.browser, pytest.mark.e2e]


@pytest.fixture(name="deployment")
def running_deployment(tmp_path: Path, database_url: str) -> Iterator[Deployment]:
    if chromium_path() is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    with deployment(tmp_path, database_url) as running:
        yield running


def test_log_in_pause_and_delete_in_the_browser(deployment: Deployment) -> None:
    url = deployment.agent_url
    with deployment.start_agent(), deployment.admin() as admin, chromium() as browser:
        jobs = {job["name"]: job for job in create_jobs(admin, realistic_jobs(deployment.nas_url))}
        page = browser.new_page()
        log_in(page, url, ADMIN_TOKEN)

        rows = page.locator("tbody tr")
        assert rows.count() == len(jobs)
        backup = page.locator("tr", has_text="nightly-backup")
        assert "every day at 02:30" in backup.inner_text()
        assert "Europe/Berlin" in backup.inner_text()
        assert "armed" in backup.inner_text()

        page.click("text=nightly-backup")
        page.wait_for_url(f"{url}/ui/jobs/{jobs['nightly-backup']['id']}")
        assert page.locator("h2", has_text="Next fires").is_visible()
        assert page.locator("td", has_text="UTC").count() >= 10
        page.click("button:has-text('Pause')")
        page.wait_for_url("**?done=paused")
        assert page.locator(".flash").inner_text().startswith("Paused")
        assert admin.get(f"/api/jobs/{jobs['nightly-backup']['id']}").json()["state"] == "paused"
        assert jobs["nightly-backup"]["id"] not in deployment.armed()
        assert page.locator("button:has-text('Resume')").is_visible()

        heartbeat = jobs["heartbeat"]["id"]
        page.goto(f"{url}/ui/jobs/{heartbeat}")
        page.click("text=Delete…")
        page.wait_for_url(f"{url}/ui/jobs/{heartbeat}/delete")
        assert admin.get(f"/api/jobs/{heartbeat}").status_code == 200  # not before confirming
        page.click("button:has-text('Delete the job')")
        page.wait_for_url(f"{url}/ui?done=deleted")
        assert page.locator("tbody tr").count() == len(jobs) - 1
        assert admin.get(f"/api/jobs/{heartbeat}").status_code == 404
        eventually(
            lambda: heartbeat not in deployment.armed(), timeout=10, what="the arm cancelled"
        )

        page.click("button:has-text('Log out')")
        page.wait_for_url(f"{url}/ui/login")
        page.goto(f"{url}/ui")
        page.wait_for_url(f"{url}/ui/login")
