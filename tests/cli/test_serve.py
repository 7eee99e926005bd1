"""`chronos serve`, in-process: it refuses to start, in one line naming the setting,
when fires could not be verified or armed, and touches nothing (no database) before that.
Also `chronos dev`'s emulator: rotated NAS tokens land where dev keeps the agent's token."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

import app.logs
from app.cli.serve import dev_emulator_config
from app.emulator import create_emulator_app
from tests.cli.invoke import Ran, run_chronos

COMPLETE = {
    "CHRONOS_PORTAL_URL": "https://nas.example",
    "CHRONOS_CALLBACK_URL": "https://agent.example",
    "CHRONOS_EXPECTED_AUDIENCE": "agent:abc",
    "CHRONOS_NAS_JWKS_URL": "https://nas.example/.well-known/jwks.json",
    "CHRONOS_NAS_TOKEN": "nas-token",
}


@pytest.fixture(autouse=True)
def never_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """In this process, a `serve` that got past its checks must fail the test, not set up
    logging for the whole process nor listen on a port."""

    def started(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("chronos serve went on to start instead of refusing")

    monkeypatch.setattr(app.logs, "configure_logging", started)
    monkeypatch.setattr(uvicorn, "run", started)


def serve(tmp_path: Path, **env: str | None) -> tuple[Ran, float]:
    """Run `chronos serve` in `tmp_path` (no `.env` there) with a clean environment."""
    values = {**COMPLETE, **env}
    clean = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "CHRONOS_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/db/chronos.db",
        **{k: v for k, v in values.items() if v is not None},
    }
    started = time.monotonic()
    result = run_chronos(["serve", "--port", "1"], env=clean, cwd=tmp_path)
    return result, time.monotonic() - started


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def assert_refused_before_touching_anything(result: Ran, elapsed: float, tmp_path: Path) -> str:
    assert result.returncode != 0
    assert elapsed < 20
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert not (tmp_path / "db").exists()  # no database created, no migration run
    assert not (tmp_path / "data").exists()
    return " ".join(line.strip() for line in lines(result.stderr))


def test_missing_audience_is_refused_in_one_line(tmp_path: Path) -> None:
    result, elapsed = serve(tmp_path, CHRONOS_EXPECTED_AUDIENCE=None)
    message = assert_refused_before_touching_anything(result, elapsed, tmp_path)
    [line] = lines(result.stderr)
    assert "CHRONOS_EXPECTED_AUDIENCE" in line
    assert "CHRONOS_PORTAL_URL" not in message  # only what is wrong


def test_every_missing_setting_is_named(tmp_path: Path) -> None:
    names = [
        "CHRONOS_PORTAL_URL",
        "CHRONOS_CALLBACK_URL",
        "CHRONOS_NAS_JWKS_URL",
        "CHRONOS_NAS_TOKEN",
    ]
    result, elapsed = serve(tmp_path, **dict.fromkeys(names))
    message = assert_refused_before_touching_anything(result, elapsed, tmp_path)
    for name in names:
        assert name in message


def test_http_portal_outside_dev_is_refused(tmp_path: Path) -> None:
    result, elapsed = serve(tmp_path, CHRONOS_PORTAL_URL="http://127.0.0.1:9000")
    message = assert_refused_before_touching_anything(result, elapsed, tmp_path)
    assert "CHRONOS_PORTAL_URL" in message
    assert "https" in message


def test_http_on_another_host_is_refused_in_dev(tmp_path: Path) -> None:
    result, elapsed = serve(
        tmp_path, CHRONOS_ENV="dev", CHRONOS_CALLBACK_URL="http://agent.example"
    )
    message = assert_refused_before_touching_anything(result, elapsed, tmp_path)
    assert "CHRONOS_CALLBACK_URL" in message


def test_a_weak_admin_token_is_refused(tmp_path: Path) -> None:
    result, elapsed = serve(tmp_path, CHRONOS_ADMIN_TOKEN="changeme")
    message = assert_refused_before_touching_anything(result, elapsed, tmp_path)
    assert "CHRONOS_ADMIN_TOKEN" in message
    assert "changeme" not in message


def test_a_malformed_setting_is_named(tmp_path: Path) -> None:
    result, elapsed = serve(tmp_path, CHRONOS_PORT="eighty")
    message = assert_refused_before_touching_anything(result, elapsed, tmp_path)
    assert "CHRONOS_PORT" in message


def test_an_unreadable_token_file_is_named(tmp_path: Path) -> None:
    result, elapsed = serve(
        tmp_path, CHRONOS_NAS_TOKEN=None, CHRONOS_NAS_TOKEN_FILE=str(tmp_path / "nope")
    )
    message = assert_refused_before_touching_anything(result, elapsed, tmp_path)
    assert "CHRONOS_NAS_TOKEN_FILE" in message


def test_a_long_refusal_is_still_one_line(tmp_path: Path) -> None:
    result, _ = serve(tmp_path, CHRONOS_PORTAL_URL="http://nas.example")
    [line] = lines(result.stderr)
    assert "CHRONOS_PORTAL_URL" in line and "https" in line


@pytest.mark.asyncio
async def test_dev_writes_rotated_nas_tokens_to_its_token_file(tmp_path: Path) -> None:
    """`chronos dev`'s emulator: a token rotated through `/_emulator/agent-tokens` lands in
    `data/nas-token`, where dev keeps the agent's NAS token."""
    (tmp_path / "nas-token").write_text("first-token\n")
    config = dev_emulator_config(tmp_path, "http://127.0.0.1:9000", "first-token", "dev")
    transport = httpx.ASGITransport(app=create_emulator_app(config))

    async with httpx.AsyncClient(transport=transport, base_url=config.public_url) as client:
        response = await client.post("/_emulator/agent-tokens", json={"revoke_others": True})

    assert response.status_code == 200
    assert response.json()["instance_id"] == "dev"
    assert config.agent_token_file == str(tmp_path / "nas-token")
    assert (tmp_path / "nas-token").read_text() == response.json()["token"] + "\n"
