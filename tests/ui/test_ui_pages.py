"""The dashboard over HTTP: the real app (ASGI) against the real NAS emulator. Login, the
session cookie, CSRF on every change, the actions, escaping, and the disabled dashboard."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.agent import ADMIN_TOKEN, Agent, RunningNas, run_agent

pytestmark = pytest.mark.asyncio

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def _command(text: str = "hello") -> dict[str, Any]:
    return {"type": "command", "argv": [sys.executable, "-c", f"print({text!r})"]}


async def _login(client: httpx.AsyncClient) -> str:
    """Log in; the CSRF token of the session."""
    response = await client.post("/ui/login", data={"token": ADMIN_TOKEN})
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/ui"
    page = await client.get("/ui")
    assert page.status_code == 200, page.text
    match = CSRF.search(page.text)
    assert match is not None
    return match.group(1)


async def _new_job(agent: Agent, **body: Any) -> dict[str, Any]:
    return await agent.create_job(**{"schedule": "every 1h", "target": _command(), **body})


async def test_pages_need_a_login(agent: Agent) -> None:
    job = await _new_job(agent, name="nightly")
    for path in ("/ui", f"/ui/jobs/{job['id']}", f"/ui/jobs/{job['id']}/delete"):
        response = await agent.client.get(path)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/ui/login"
    refused = await agent.client.post(f"/ui/jobs/{job['id']}/pause", data={"csrf": "x"})
    assert refused.status_code == 303
    assert (await agent.job(job["id"]))["state"] == "scheduled"
    form = await agent.client.get("/ui/login")
    assert form.status_code == 200
    assert 'type="password"' in form.text
    assert "default-src 'none'" in form.headers["content-security-policy"]


async def test_a_wrong_token_is_refused(agent: Agent) -> None:
    for token in ("wrong-token-0123456789", "", ADMIN_TOKEN + "x"):
        response = await agent.client.post("/ui/login", data={"token": token})
        assert response.status_code == 401
        assert "set-cookie" not in response.headers
        assert "not the admin token" in response.text
    assert (await agent.client.get("/ui")).status_code == 303


async def test_the_session_cookie_is_httponly_strict_and_holds_no_token(agent: Agent) -> None:
    response = await agent.client.post("/ui/login", data={"token": ADMIN_TOKEN})
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("chronos_session=")
    flags = [part.strip().lower() for part in cookie.split(";")]
    assert "httponly" in flags
    assert "samesite=strict" in flags
    assert "path=/ui" in flags
    assert "secure" not in flags  # plain http here
    assert ADMIN_TOKEN not in cookie
    value = cookie.split(";")[0].split("=", 1)[1]
    assert len(value.split(".")) == 3  # expiry, nonce, signature

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=agent.app), base_url="https://agent.test"
    ) as https:
        secure = await https.post("/ui/login", data={"token": ADMIN_TOKEN})
    assert "secure" in [p.strip().lower() for p in secure.headers["set-cookie"].split(";")]


async def test_a_forged_or_tampered_cookie_is_no_session(agent: Agent) -> None:
    await _login(agent.client)
    value = agent.client.cookies["chronos_session"]
    expires, nonce, signature = value.split(".")
    for forged in (f"{int(expires) + 3600}.{nonce}.{signature}", f"{expires}.{nonce}.x", "a.b"):
        agent.client.cookies.set("chronos_session", forged, domain="agent.test", path="/ui")
        assert (await agent.client.get("/ui")).status_code == 303


async def test_changes_need_the_sessions_csrf_token(agent: Agent) -> None:
    job = await _new_job(agent, name="guarded")
    armed_before = await agent.nas.armed()
    csrf = await _login(agent.client)
    for action in ("pause", "trigger", "delete"):
        for form in ({}, {"csrf": "not-the-token"}, {"csrf": csrf + "x"}):
            response = await agent.client.post(f"/ui/jobs/{job['id']}/{action}", data=form)
            assert response.status_code == 403, (action, form)
            assert "CSRF" in response.text
    after = await agent.job(job["id"])
    assert after["state"] == "scheduled"
    assert await agent.runs(job["id"]) == []
    assert await agent.nas.armed() == armed_before
    logout = await agent.client.post("/ui/logout", data={})
    assert logout.status_code == 403


async def test_pause_resume_trigger_and_delete(agent: Agent) -> None:
    job = await _new_job(agent, name="worker")
    job_id = job["id"]
    csrf = await _login(agent.client)

    paused = await agent.client.post(f"/ui/jobs/{job_id}/pause", data={"csrf": csrf})
    assert paused.status_code == 303
    assert paused.headers["location"] == f"/ui/jobs/{job_id}?done=paused"
    assert (await agent.job(job_id))["state"] == "paused"
    assert job_id not in await agent.nas.armed()
    shown = await agent.client.get(paused.headers["location"])
    assert "Paused: its arm at NAS is cancelled." in shown.text
    assert f'action="/ui/jobs/{job_id}/resume"' in shown.text

    resumed = await agent.client.post(f"/ui/jobs/{job_id}/resume", data={"csrf": csrf})
    assert resumed.status_code == 303
    current = await agent.job(job_id)
    assert current["state"] == "scheduled"
    assert (await agent.nas.armed())[job_id] == current["next_run_at"]

    triggered = await agent.client.post(f"/ui/jobs/{job_id}/trigger", data={"csrf": csrf})
    assert triggered.headers["location"] == f"/ui/jobs/{job_id}?done=triggered"
    await agent.idle()
    runs = await agent.runs(job_id)
    assert [(r["kind"], r["status"]) for r in runs] == [("manual", "succeeded")]
    page = await agent.client.get(f"/ui/jobs/{job_id}")
    assert "<svg" in page.text
    assert "succeeded" in page.text
    assert "hello" in page.text  # the run's output

    confirm = await agent.client.get(f"/ui/jobs/{job_id}/delete")
    assert confirm.status_code == 200
    assert "Delete the job" in confirm.text
    assert (await agent.job(job_id))["state"] == "scheduled"  # asking changes nothing
    deleted = await agent.client.post(f"/ui/jobs/{job_id}/delete", data={"csrf": csrf})
    assert deleted.headers["location"] == "/ui?done=deleted"
    gone = await agent.client.get(f"/api/jobs/{job_id}", headers=agent.admin_headers)
    assert gone.status_code == 404
    assert job_id not in await agent.nas.armed()
    missing = await agent.client.get(f"/ui/jobs/{job_id}")
    assert missing.status_code == 404
    assert "no job with id" in missing.text


async def test_the_jobs_page_shows_each_job(agent: Agent) -> None:
    await _new_job(agent, name="reports", schedule="0 9 * * 1-5", timezone="Europe/Paris")
    await _new_job(agent, name="heartbeat", schedule="every 30s")
    await _login(agent.client)
    page = (await agent.client.get("/ui")).text
    assert "at 09:00 on Monday to Friday" in page
    assert "Europe/Paris" in page
    assert "CET" in page or "CEST" in page  # the next fire in the job's zone
    assert "every 30 seconds" in page
    assert page.count('class="badge s-armed"') >= 2
    assert "NAS operations pending" in page
    assert "last reconcile" in page


async def test_the_job_page_lists_the_next_ten_fires(agent: Agent) -> None:
    job = await _new_job(agent, name="often", schedule="*/5 * * * *", timezone="Asia/Tokyo")
    await _login(agent.client)
    page = (await agent.client.get(f"/ui/jobs/{job['id']}")).text
    assert page.count(" JST</td>") == 10
    assert "every 5 minutes" in page
    assert "No run has started yet." in page


async def test_html_is_escaped(agent: Agent) -> None:
    name = "<script>alert('x')</script>"
    job = await _new_job(agent, name=name)
    await _login(agent.client)
    for path in ("/ui", f"/ui/jobs/{job['id']}", f"/ui/jobs/{job['id']}/delete"):
        page = (await agent.client.get(path)).text
        assert "<script>" not in page, path
        assert "&lt;script&gt;" in page, path


async def test_unknown_done_codes_show_nothing(agent: Agent) -> None:
    await _login(agent.client)
    page = await agent.client.get("/ui", params={"done": "<b>owned</b>"})
    assert "owned" not in page.text


async def test_logout_clears_the_cookie(agent: Agent) -> None:
    csrf = await _login(agent.client)
    response = await agent.client.post("/ui/logout", data={"csrf": csrf})
    assert response.status_code == 303
    assert response.headers["location"] == "/ui/login"
    assert 'chronos_session=""' in response.headers["set-cookie"]
    assert "max-age=0" in response.headers["set-cookie"].lower()
    assert (await agent.client.get("/ui")).status_code == 303


async def test_the_dashboard_is_not_in_the_openapi_document(agent: Agent) -> None:
    paths = agent.app.openapi()["paths"]
    assert not [path for path in paths if path.startswith("/ui")]


async def test_without_an_admin_token_the_dashboard_is_disabled(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    async with run_agent(database_url, nas, admin_token=None) as agent:
        for response in (
            await agent.client.get("/ui/login"),
            await agent.client.get("/ui"),
            await agent.client.post("/ui/login", data={"token": ADMIN_TOKEN}),
        ):
            assert response.status_code == 403
            assert "dashboard is disabled" in response.text
            assert "set-cookie" not in response.headers


async def test_a_large_form_is_refused_before_it_is_parsed(agent: Agent) -> None:
    response = await agent.client.post("/ui/login", data={"token": "x" * 100_000})
    assert response.status_code == 413
    assert "set-cookie" not in response.headers


async def test_an_arm_nas_did_not_acknowledge_shows_as_pending(agent: Agent) -> None:
    agent.faults.mode = "503"
    job = await _new_job(agent, name="unlucky")
    await _login(agent.client)
    page = (await agent.client.get("/ui")).text
    row = page[page.index("unlucky") :]
    assert 'class="badge s-pending"' in row
    assert "NAS operations failing" in page
    assert job["id"] in page[page.index("NAS operations failing") :]
    detail = (await agent.client.get(f"/ui/jobs/{job['id']}")).text
    assert "provision" in detail
