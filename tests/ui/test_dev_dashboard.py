"""`chronos dev` (what `make run` starts) prints the dashboard's address, and the dashboard
there takes the dev admin token."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest

from tests.support.processes import chronos_process
from tests.support.servers import free_port

pytestmark = pytest.mark.e2e


def test_dev_prints_the_dashboard_url(tmp_path: Path) -> None:
    port, nas_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    data, log = tmp_path / "dev", tmp_path / "dev.log"
    args = ["dev", "--port", str(port), "--nas-port", str(nas_port), "--data", str(data)]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
    }
    with chronos_process(args, env=env, cwd=tmp_path, log=log, ready_url=f"{url}/readyz"):
        assert re.search(rf"^\s*dashboard: {re.escape(url)}/ui\b", log.read_text(), re.MULTILINE)
        token = (data / "admin-token").read_text().strip()
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/ui/login").status_code == 200
            login = client.post("/ui/login", data={"token": token})
            assert login.status_code == 303
            assert client.get("/ui").status_code == 200
