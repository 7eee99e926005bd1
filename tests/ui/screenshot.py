"""Screenshots of the dashboard for the README: `python -m tests.ui.screenshot [OUT]` starts
`chronos nas-emulator` and `chronos serve` (SQLite in a temporary folder), adds a few
realistic jobs, runs some of them, and saves the jobs page to OUT (`docs/dashboard.png`)
and a job's page next to it (`…-job.png`). Needs Debian's Chromium."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import ViewportSize

from tests.support.deployment import ADMIN_TOKEN, deployment, eventually
from tests.ui.browser import chromium, chromium_path, create_jobs, log_in, realistic_jobs

VIEWPORT = ViewportSize(width=1440, height=760)


def main(out: Path) -> None:
    if chromium_path() is None:
        sys.exit("Chromium is not installed: apt-get install -y chromium")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        with (
            deployment(tmp, f"sqlite+aiosqlite:///{tmp / 'chronos.db'}") as running,
            running.start_agent(),
            running.admin() as admin,
        ):
            jobs = {j["name"]: j for j in create_jobs(admin, realistic_jobs(running.nas_url))}
            for name in ("nightly-backup", "nightly-backup", "cache-warmup", "crm-sync"):
                admin.post(f"/api/jobs/{jobs[name]['id']}/trigger")
                time.sleep(0.4)
            admin.post(f"/api/jobs/{jobs['invoice-reminders']['id']}/trigger")
            admin.post(f"/api/jobs/{jobs['weekly-report']['id']}/pause")
            eventually(
                lambda: all(
                    r["status"] not in ("running", "queued")
                    for r in admin.get("/api/runs", params={"limit": 50}).json()
                ),
                timeout=30,
                what="the runs to finish",
            )
            heartbeat = jobs["heartbeat"]["id"]
            eventually(
                lambda: len(admin.get(f"/api/jobs/{heartbeat}/runs").json()) >= 4,
                timeout=60,
                what="four heartbeats",
            )
            with chromium() as browser:
                page = browser.new_page(viewport=VIEWPORT)
                log_in(page, running.agent_url, ADMIN_TOKEN)
                page.screenshot(path=str(out), full_page=True)
                page.goto(f"{running.agent_url}/ui/jobs/{heartbeat}")
                page.screenshot(path=str(out.with_name(out.stem + "-job.png")), full_page=True)
    print(f"wrote {out} and {out.with_name(out.stem + '-job.png')}")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/dashboard.png"))
