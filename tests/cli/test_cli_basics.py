"""What a user expects of any CLI: `--version`, shell completion, and a `serve` that believes
forwarded headers from its proxy only (`CHRONOS_FORWARDED_ALLOW_IPS`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app.cli.serve import server_config
from app.settings import Settings
from app.version import VERSION
from tests.cli.invoke import run_chronos


def test_version(tmp_path: Path) -> None:
    ran = run_chronos(["--version"], env={}, cwd=tmp_path)
    assert ran.returncode == 0
    assert ran.stdout.strip() == f"chronos {VERSION}"


def test_shell_completion_is_offered_and_completes(tmp_path: Path) -> None:
    shown = run_chronos(["--help"], env={}, cwd=tmp_path)
    assert "--install-completion" in shown.stdout and "--show-completion" in shown.stdout
    # What an installed bash completion asks the command (the shell itself is detected from
    # the process tree, so it is not asked here).
    env = {"_CHRONOS_COMPLETE": "complete_bash", "COMP_WORDS": "chronos jo", "COMP_CWORD": "1"}
    completed = run_chronos([], env=env, cwd=tmp_path)
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["jobs"]


def _echo_app(seen: dict[str, Any]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen["client"] = scope["client"][0]
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return app


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("allow", "peer", "seen_as"),
    [
        (None, "127.0.0.1", "203.0.113.9"),  # the default: a proxy on this host is believed
        (None, "198.51.100.7", "198.51.100.7"),  # anyone else's forwarded header is not
        ("10.0.0.2", "10.0.0.2", "203.0.113.9"),
        ("10.0.0.2", "127.0.0.1", "127.0.0.1"),
    ],
)
async def test_forwarded_headers_are_believed_from_the_allowed_proxies_only(
    allow: str | None, peer: str, seen_as: str
) -> None:
    values: dict[str, Any] = {"env": "dev"}
    if allow is not None:
        values["forwarded_allow_ips"] = allow
    settings = Settings(_env_file=None, **values)
    seen: dict[str, Any] = {}
    config = server_config(_echo_app(seen), settings)
    config.load()
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"agent"), (b"x-forwarded-for", b"203.0.113.9")],
        "client": (peer, 40000),
        "server": ("127.0.0.1", 8080),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: dict[str, Any]) -> None:
        return None

    await config.loaded_app(scope, receive, send)
    assert seen["client"] == seen_as


@pytest.mark.parametrize(
    "url",
    ["mysql://root@localhost/chronos", "postgresql://postgres@localhost/test", "chronos.db"],
)
def test_an_unsupported_database_url_is_refused_in_one_line(tmp_path: Path, url: str) -> None:
    ran = run_chronos(["migrate"], env={"CHRONOS_DATABASE_URL": url}, cwd=tmp_path)
    assert ran.returncode == 2
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    assert "CHRONOS_DATABASE_URL: unsupported scheme" in lines[0]
    assert "sqlite+aiosqlite:///" in lines[0] and "postgresql+asyncpg://" in lines[0]


def test_an_explicit_sqlite_path_in_a_missing_folder_is_refused_not_created(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "no-such-folder" / "chronos.db"
    env = {"CHRONOS_DATABASE_URL": f"sqlite+aiosqlite:///{missing}"}
    ran = run_chronos(["migrate"], env=env, cwd=tmp_path)
    assert ran.returncode == 2
    assert f"the folder {missing.parent} does not exist" in ran.stderr
    assert not missing.parent.exists()


def test_the_default_database_folder_is_created(tmp_path: Path) -> None:
    ran = run_chronos(["migrate"], env={}, cwd=tmp_path)
    assert ran.returncode == 0, ran.stderr
    assert (tmp_path / "data" / "chronos.db").is_file()
