"""NAS emulator: a faithful stand-in for the NAS managed-cron API, for development and tests.

`create_emulator_app(config)` builds the FastAPI app; `serve_emulator` / `build_uvicorn_server`
run it with uvicorn. Routes under `/_emulator` exist only in the emulator.
"""

from app.domain.fires import FIRE_PURPOSE
from app.emulator.app import create_emulator_app
from app.emulator.config import EmulatorConfig, EmulatorConfigError
from app.emulator.delivery import FIRE_PATH
from app.emulator.keys import SigningKey, load_signing_key
from app.emulator.server import build_uvicorn_server, serve_emulator

__all__ = [
    "FIRE_PATH",
    "FIRE_PURPOSE",
    "EmulatorConfig",
    "EmulatorConfigError",
    "SigningKey",
    "build_uvicorn_server",
    "create_emulator_app",
    "load_signing_key",
    "serve_emulator",
]
