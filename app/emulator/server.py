"""Running the emulator with uvicorn, on its own or next to another server in one event loop."""

from __future__ import annotations

import uvicorn

from app.emulator.app import create_emulator_app
from app.emulator.config import EmulatorConfig

GRACEFUL_SHUTDOWN_SECONDS = 10


def build_uvicorn_server(
    config: EmulatorConfig, host: str, port: int, *, log_level: str = "info"
) -> uvicorn.Server:
    """A uvicorn server for the emulator, not started yet.

    Run it with `await server.serve()` (or `serve(sockets=[...])` on a pre-bound socket), and
    stop it by setting `server.should_exit = True`; several servers can share one event loop.
    """
    app = create_emulator_app(config)
    return uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            # Logging is the process's (`configure_logging`): uvicorn's own config would give
            # its loggers (the agent's server's too, in `chronos dev`) handlers of their own.
            log_config=None,
            lifespan="on",  # a failing lifespan startup stops the server instead of being ignored
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        )
    )


async def serve_emulator(config: EmulatorConfig, host: str, port: int) -> None:
    """Serve the emulator until the process is told to stop (SIGINT/SIGTERM)."""
    await build_uvicorn_server(config, host, port).serve()
