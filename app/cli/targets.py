"""A job's target from the CLI's options: `--http URL`, `--python module:function`, or a
command after `--` (shared by `jobs add` and `jobs edit`)."""

from __future__ import annotations

from typing import Any

from app.cli.console import fail


def parse_target(
    http: str | None,
    method: str,
    command: list[str] | None,
    python: str | None,
    timeout: float | None,
) -> dict[str, Any]:
    chosen = [x for x in (http, command, python) if x]
    if len(chosen) != 1:
        raise fail(
            "give exactly one target: --http URL, --python module:function, or a command"
            " after --: chronos jobs add SCHEDULE -- ARGV..."
        )
    target: dict[str, Any]
    if http:
        target = {"type": "http", "url": http, "method": method.upper()}
    elif command:
        target = {"type": "command", "argv": command}
    else:
        target = {"type": "python", "callable": python}
    if timeout is not None:
        target["timeout_seconds"] = timeout
    return target
