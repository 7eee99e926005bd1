"""Settings for CLI commands: a configuration error is one line naming the variable."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from app.cli.console import fail
from app.settings import Settings


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "CHRONOS_" + "_".join(str(p) for p in first["loc"]).upper() if first["loc"] else ""
        message = first["msg"].removeprefix("Value error, ")
        raise fail(f"configuration error: {name + ': ' if name else ''}{message}") from None
