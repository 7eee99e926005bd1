"""Commands that run things: the agent (`serve`), `migrate`, the NAS emulator and `dev`.

Registered as top-level commands by `app.cli.main`. Heavy imports stay inside the commands,
so that `chronos --help` and the `jobs` commands do not load the service.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli.config import load_settings
from app.cli.console import fail, out
from app.settings import ConfigError, ensure_sqlite_folder

if TYPE_CHECKING:
    import uvicorn

    from app.emulator import EmulatorConfig
    from app.services import DrainState
    from app.settings import Settings


HTTP_SHUTDOWN_SECONDS = 5


def server_config(
    app: Any, settings: Settings, *, host: str | None = None, port: int | None = None
) -> uvicorn.Config:
    """How `chronos serve` runs `app` in uvicorn."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,
        # Forwarded headers are believed from CHRONOS_FORWARDED_ALLOW_IPS only (the proxy).
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
        # Requests still open once the drain finished (fires are refused by then) get this
        # long; the lifespan's shutdown follows.
        timeout_graceful_shutdown=HTTP_SHUTDOWN_SECONDS,
    )


def draining_server(config: uvicorn.Config, drain: DrainState) -> uvicorn.Server:
    """A uvicorn server that drains the app on SIGTERM or SIGINT.

    The first signal begins the drain (`/readyz` and fires answer 503 at once) and the server
    goes on serving until the app marks the drain finished (runs ended or stopped, the settle
    time passed); then uvicorn closes the listener, lets open requests end and runs the
    lifespan's shutdown. The process then exits 0. A second signal closes the listener at once
    (uvicorn's own exit: the lifespan's shutdown still gives runs what is left of the grace,
    then stops them and releases their leases; the process then ends by that signal)."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        async def serve(self, sockets: list[socket.socket] | None = None) -> None:
            self._loop = asyncio.get_running_loop()
            await super().serve(sockets)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if drain.draining or not self.started:
                super().handle_exit(sig, frame)
                return
            # A signal handler runs between two steps of the loop: hand the work to the loop.
            # The signal is not recorded for uvicorn to raise again once stopped: a drained
            # agent exits 0.
            self._loop.call_soon_threadsafe(drain.begin)

        async def on_tick(self, counter: int) -> bool:
            return drain.finished or await super().on_tick(counter)

    return DrainingServer(config)


def without_httpx_cli() -> None:
    """Keep httpx from loading its command line (`httpx.main`: click, rich and pygments, some
    50 ms and 3 MiB) into the agent. httpx imports it only if it can, else it installs a stub:
    a `None` in `sys.modules` makes that import fail. No-op once httpx is imported."""
    if "httpx" not in sys.modules:
        sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]


def serve(
    host: Annotated[str | None, typer.Option(help="bind address (CHRONOS_HOST)")] = None,
    port: Annotated[int | None, typer.Option(help="port (CHRONOS_PORT)")] = None,
) -> None:
    """Run the agent. Refuses to start when fires could not be verified or armed."""
    without_httpx_cli()

    from app.logs import configure_logging
    from app.main import create_app

    settings = load_settings()
    try:
        settings.require_fire_config()
        ensure_sqlite_folder(settings.database_url)
    except ConfigError as exc:
        raise fail(f"configuration error: {exc}") from None
    configure_logging(
        settings.log_level, secrets=(settings.nas_token_value(), settings.admin_token_value())
    )
    for warning in settings.weak_secret_warnings():
        logging.getLogger("app.settings").warning(warning)
    app = create_app(settings)
    config = server_config(app, settings, host=host, port=port)
    server = draining_server(config, app.state.drain)
    server.run()
    if not server.started:
        raise typer.Exit(3)  # uvicorn's own code for a failed start


def migrate() -> None:
    """Apply database migrations and exit (the service also applies them on start)."""
    from app.store import Store

    settings = load_settings()
    try:
        ensure_sqlite_folder(settings.database_url)
    except ConfigError as exc:
        raise fail(f"configuration error: {exc}") from None

    async def run() -> None:
        store = Store.from_url(settings.database_url)
        try:
            await store.migrate()
        finally:
            await store.close()

    asyncio.run(run())
    out().print("migrations applied")


# -- NAS emulator and dev mode ----------------------------------------------------------


def nas_emulator(
    host: Annotated[str, typer.Option(help="bind address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port")] = 9000,
) -> None:
    """Run the NAS emulator (configured by NAS_EMULATOR_* variables)."""
    from app.emulator import EmulatorConfig, EmulatorConfigError, serve_emulator
    from app.logs import configure_logging

    try:
        config = EmulatorConfig.from_env()
    except EmulatorConfigError as exc:
        raise fail(f"configuration error: {exc}") from None
    configure_logging("INFO")
    asyncio.run(serve_emulator(config, host, port))


def _dev_secret(path: Path) -> str:
    """A random secret kept in `path` (mode 0600), so restarts of `chronos dev` reuse it."""
    import secrets

    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(value + "\n")
    return value


def dev_emulator_config(
    data: Path, nas_url: str, nas_token: str, instance_id: str
) -> EmulatorConfig:
    """The emulator of `chronos dev`: its key in `data/nas-key.pem`, and agent tokens rotated
    through `POST /_emulator/agent-tokens` written to `data/nas-token`, the file the first
    token was read from."""
    from app.emulator import EmulatorConfig

    return EmulatorConfig(
        public_url=nas_url,
        agent_tokens={nas_token: instance_id},
        key_file=str(data / "nas-key.pem"),
        agent_token_file=str(data / "nas-token"),
    )


def dev(
    port: Annotated[int, typer.Option(help="agent port")] = 8080,
    nas_port: Annotated[int, typer.Option(help="NAS emulator port")] = 9000,
    data: Annotated[Path, typer.Option(help="folder for the database, tokens and NAS key")] = Path(
        "data/dev"
    ),
) -> None:
    """Run the agent and the NAS emulator together on loopback, with SQLite and matching keys."""
    import uvicorn

    from app.emulator import build_uvicorn_server
    from app.logs import configure_logging
    from app.main import create_app

    data.mkdir(parents=True, exist_ok=True)
    admin_token = _dev_secret(data / "admin-token")
    nas_token = _dev_secret(data / "nas-token")
    nas_url = f"http://127.0.0.1:{nas_port}"
    agent_url = f"http://127.0.0.1:{port}"
    instance_id = "dev"
    settings = load_settings(
        env="dev",
        host="127.0.0.1",
        port=port,
        database_url=f"sqlite+aiosqlite:///{(data / 'chronos.db').as_posix()}",
        portal_url=nas_url,
        callback_url=agent_url,
        expected_audience=f"agent:{instance_id}",
        nas_jwks_url=f"{nas_url}/.well-known/jwks.json",
        # Read from the file the emulator's `POST /_emulator/agent-tokens` rewrites: a rotated
        # token is picked up without a restart, as a mounted secret would be.
        nas_token=None,
        nas_token_command=None,
        nas_token_file=data / "nas-token",
        admin_token=admin_token,
    )
    emulator_config = dev_emulator_config(data, nas_url, nas_token, instance_id)
    configure_logging(settings.log_level, json_lines=False, secrets=(nas_token, admin_token))
    emulator = build_uvicorn_server(emulator_config, "127.0.0.1", nas_port, log_level="warning")
    agent = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
    )

    token_hint = (
        "" if data == Path("data/dev") else f"CHRONOS_ADMIN_TOKEN=$(cat {data}/admin-token) "
    )
    out().print(
        f"[bold]Chronos dev[/]: agent {agent_url}  ·  NAS emulator {nas_url}\n"
        f"  data: {data}/ (SQLite, admin token, NAS token, NAS signing key)\n"
        f"  dashboard: {agent_url}/ui  (log in with the admin token)\n"
        "Add a first job from another shell:\n"
        f"  {token_hint}.venv/bin/chronos jobs add 'every 10s' --name hello -- "
        "sh -c 'date >> /tmp/chronos-hello.txt'\n"
        f"  {token_hint}.venv/bin/chronos jobs list\n"
        f"  curl {nas_url}/_emulator/deliveries   # what NAS delivered\n",
        highlight=False,
    )

    async def run_both() -> None:
        tasks = [asyncio.create_task(emulator.serve()), asyncio.create_task(agent.serve())]
        _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        emulator.should_exit = agent.should_exit = True
        await asyncio.gather(*pending, return_exceptions=True)

    asyncio.run(run_both())
