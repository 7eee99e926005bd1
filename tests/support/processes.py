"""Real processes for end-to-end tests: started on loopback ports, awaited, always stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

CHRONOS = str(Path(sys.executable).parent / "chronos")


def base_env(**extra: str) -> dict[str, str]:
    """A minimal environment: no CHRONOS_* or NAS_EMULATOR_* leaks in from the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHRONOS_", "NAS_EMULATOR_"))}
    env.update(extra)
    return env


@contextmanager
def chronos_process(
    args: list[str],
    *,
    env: dict[str, str],
    cwd: Path,
    log: Path,
    ready_url: str,
    timeout: float = 30,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `chronos <args>` until the block ends; wait until `ready_url` answers 200."""
    with log.open("ab") as log_file:
        proc = subprocess.Popen(
            [CHRONOS, *args], env=env, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"chronos {args[0]} exited with {proc.returncode}:\n{log.read_text()}"
                )
            try:
                if httpx.get(ready_url, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{ready_url} not ready after {timeout}s:\n{log.read_text()}")
            time.sleep(0.1)
        yield proc
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[bytes], grace: float = 15) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
