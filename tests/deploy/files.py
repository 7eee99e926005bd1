"""The deploy kit's files, parsed, and the optional tools that check them further."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import yaml

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
CADDYFILE = ROOT / "deploy" / "caddy" / "Caddyfile"
KUBERNETES = ROOT / "deploy" / "kubernetes"
DOCKERFILE = ROOT / "Dockerfile"

# What a drain takes beyond CHRONOS_SHUTDOWN_GRACE_SECONDS: open requests (5 s), stopping
# commands and releasing leases; the README's "plus at most about 15 s".
DRAIN_OVERHEAD_SECONDS = 15.0

REQUIRED_VARIABLE = re.compile(r"\$\{(\w+):\?[^}]*\}")
ANY_VARIABLE = re.compile(r"\$\{(\w+)[^}]*\}")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def required_variables(text: str) -> set[str]:
    """The `${NAME:?...}` variables of a compose file's text, comments left out."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return set(REQUIRED_VARIABLE.findall("\n".join(lines)))


def used_variables(text: str) -> set[str]:
    """Every `${NAME...}` variable of a compose file's text, comments left out."""
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    return set(ANY_VARIABLE.findall("\n".join(lines)))


def env_example_variables() -> dict[str, str]:
    """`NAME=value` lines of .env.example (comments and blank lines left out)."""
    lines = ENV_EXAMPLE.read_text(encoding="utf-8").splitlines()
    pairs = [line.split("=", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name.strip(): value.strip() for name, value in pairs}


def fill_variables(text: str, values: dict[str, str]) -> str:
    """`text` with each `${NAME...}` replaced by `values[NAME]` (as Compose would)."""
    return ANY_VARIABLE.sub(lambda match: values[match.group(1)], text)


def default_setting(name: str) -> float:
    """The default of a numeric `Settings` field, e.g. `shutdown_grace_seconds`."""
    default = Settings.model_fields[name].default
    assert isinstance(default, int | float)
    return float(default)


def duration_seconds(value: str) -> float:
    """A Compose duration (`45s`, `1m30s`, `2m`) in seconds."""
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", value)
    assert parts and "".join(n + u for n, u in parts) == value, f"not a duration: {value!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def tool(name: str, variable: str) -> str | None:
    """The path of an optional tool: `$variable` when set, else `name` on PATH."""
    return shutil.which(os.environ.get(variable) or name)
