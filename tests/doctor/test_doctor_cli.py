"""`chronos doctor` against a real NAS emulator on loopback and a real database, with the
settings given as a deployment gives them (CHRONOS_* variables)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from app.store import Store
from tests.cli.invoke import Ran, run_chronos
from tests.support.agent import AUDIENCE, NAS_TOKEN, RunningNas

pytestmark = pytest.mark.asyncio

ALL_CHECKS = [
    "settings",
    "fire configuration",
    "callback URL",
    "database",
    "migrations",
    "NAS token",
    "JWKS",
    "clock skew",
]


def deployment(database_url: str, nas: RunningNas, **changes: str) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "COLUMNS": "250",
        "CHRONOS_ENV": "dev",
        "CHRONOS_DATABASE_URL": database_url,
        "CHRONOS_PORTAL_URL": nas.url,
        "CHRONOS_CALLBACK_URL": "http://127.0.0.1:8080",
        "CHRONOS_EXPECTED_AUDIENCE": AUDIENCE,
        "CHRONOS_NAS_JWKS_URL": f"{nas.url}/.well-known/jwks.json",
        "CHRONOS_NAS_TOKEN": NAS_TOKEN,
        "CHRONOS_NAS_RETRY_ATTEMPTS": "1",
    }
    env.update(changes)
    return env


async def doctor(env: dict[str, str], cwd: Path, *args: str) -> Ran:
    """`chronos doctor` in a worker thread, so the emulator in this loop keeps answering."""
    return await asyncio.to_thread(run_chronos, ["doctor", *args], env=env, cwd=cwd)


async def doctor_json(env: dict[str, str], cwd: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    result = await doctor(env, cwd, "--json")
    checks = json.loads(result.stdout)
    assert all(set(check) >= {"name", "ok", "reason", "fix"} for check in checks)
    return result.returncode, {check["name"]: check for check in checks}


async def test_a_sound_deployment_passes(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    env = deployment(database_url, nas)
    table = await doctor(env, tmp_path)
    assert table.returncode == 0, table.stdout + table.stderr
    assert "✗" not in table.stdout
    assert table.stdout.count("✓") == len(ALL_CHECKS)

    code, checks = await doctor_json(env, tmp_path)
    assert code == 0
    assert list(checks) == ALL_CHECKS
    assert all(check["ok"] and check["status"] == "ok" for check in checks.values())
    assert "NAS accepted the token" in checks["NAS token"]["reason"]
    assert "RS256" in checks["JWKS"]["reason"]


async def test_a_wrong_nas_token(database_url: str, nas: RunningNas, tmp_path: Path) -> None:
    env = deployment(database_url, nas, CHRONOS_NAS_TOKEN="a-token-nas-never-issued")
    table = await doctor(env, tmp_path)
    assert table.returncode == 1
    assert "✗" in table.stdout and "NAS token" in table.stdout
    code, checks = await doctor_json(env, tmp_path)
    assert code == 1
    token = checks["NAS token"]
    assert token["ok"] is False and "401" in token["reason"]
    assert "CHRONOS_NAS_TOKEN" in token["fix"]
    assert "a-token-nas-never-issued" not in json.dumps(checks)
    assert checks["JWKS"]["ok"] and checks["database"]["ok"]


async def test_an_unreachable_database(nas: RunningNas, tmp_path: Path) -> None:
    from tests.support.servers import free_port

    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/chronos"
    code, checks = await doctor_json(deployment(url, nas), tmp_path)
    assert code == 1
    assert checks["database"]["ok"] is False
    assert "unreachable" in checks["database"]["reason"]
    assert "CHRONOS_DATABASE_URL" in checks["database"]["fix"]
    assert checks["migrations"]["status"] == "skipped"
    assert checks["NAS token"]["ok"]  # the other checks still ran


async def test_a_database_not_migrated(
    empty_database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    if empty_database_url.startswith("sqlite"):
        Path(empty_database_url.split(":///", 1)[1]).touch()  # exists, with no tables
    code, checks = await doctor_json(deployment(empty_database_url, nas), tmp_path)
    assert code == 1
    assert checks["database"]["ok"]
    migrations = checks["migrations"]
    assert migrations["ok"] is False
    assert "not migrated" in migrations["reason"]
    assert "chronos migrate" in migrations["fix"]


async def test_migrations_behind(empty_database_url: str, nas: RunningNas, tmp_path: Path) -> None:
    store = Store.from_url(empty_database_url)
    try:
        await store.migrate("0006")
        status = await store.migration_status()
    finally:
        await store.close()
    assert status.current == "0006" and status.behind is not None and status.behind >= 2
    code, checks = await doctor_json(deployment(empty_database_url, nas), tmp_path)
    assert code == 1
    assert f"{status.behind} behind head {status.head}" in checks["migrations"]["reason"]


async def test_a_wrong_jwks_url(database_url: str, nas: RunningNas, tmp_path: Path) -> None:
    env = deployment(database_url, nas, CHRONOS_NAS_JWKS_URL=f"{nas.url}/no-such-jwks.json")
    code, checks = await doctor_json(env, tmp_path)
    assert code == 1
    assert checks["JWKS"]["ok"] is False
    assert "HTTP 404" in checks["JWKS"]["reason"]
    assert "CHRONOS_NAS_JWKS_URL" in checks["JWKS"]["fix"]


async def test_an_http_callback_in_prod(database_url: str, nas: RunningNas, tmp_path: Path) -> None:
    env = deployment(
        database_url, nas, CHRONOS_ENV="prod", CHRONOS_CALLBACK_URL="http://agent.example.com"
    )
    code, checks = await doctor_json(env, tmp_path)
    assert code == 1
    callback = checks["callback URL"]
    assert callback["ok"] is False
    assert "plain http in prod" in callback["reason"]
    assert "https://" in callback["fix"]


async def test_invalid_settings_name_the_variable_and_skip_the_rest(
    database_url: str, nas: RunningNas, tmp_path: Path
) -> None:
    env = deployment(database_url, nas, CHRONOS_PORT="eighty", CHRONOS_LEASE_SECONDS="1")
    code, checks = await doctor_json(env, tmp_path)
    assert code == 1
    assert checks["CHRONOS_PORT"]["ok"] is False
    assert checks["CHRONOS_LEASE_SECONDS"]["ok"] is False
    assert "CHRONOS_PORT" in checks["CHRONOS_PORT"]["fix"]
    skipped = [name for name, check in checks.items() if check["status"] == "skipped"]
    assert skipped == ["database", "migrations", "NAS token", "JWKS", "clock skew"]
