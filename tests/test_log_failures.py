"""A database or NAS that cannot be reached is one log line naming the cause and the host,
never a traceback; an unexpected exception keeps its traceback. Driven with real refused
connections: a PostgreSQL URL and a NAS URL on loopback ports nobody listens on."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from app.cli.serve import server_config
from app.log_failures import connection_failure, failure_fields
from app.main import create_app
from app.store import Store, StoreUnavailable
from tests.support.agent import RunningNas, agent_settings, run_agent
from tests.support.logs import configured_logging, json_lines
from tests.support.servers import free_port

log = logging.getLogger("app.tests.failures")


@pytest.fixture
def serve_log() -> Iterator[io.StringIO]:
    with configured_logging("DEBUG") as buffer:
        yield buffer


def closed_postgres() -> tuple[str, str]:
    """A PostgreSQL URL on a loopback port nobody listens on, and its `host:port`."""
    port = free_port()
    return f"postgresql+asyncpg://postgres:pw@127.0.0.1:{port}/chronos", f"127.0.0.1:{port}"


def mentioning(entries: list[dict[str, Any]], text: str) -> list[dict[str, Any]]:
    return [e for e in entries if text in str(e)]


@pytest.mark.asyncio
async def test_an_agent_whose_database_refuses_logs_one_line_and_no_traceback(
    serve_log: io.StringIO, nas: RunningNas
) -> None:
    """As `chronos serve` fails to start: uvicorn runs the lifespan, which cannot migrate."""
    url, host = closed_postgres()
    settings = agent_settings(url, nas)
    server = server_config(create_app(settings), settings, port=free_port())
    import uvicorn

    with pytest.raises(SystemExit):  # uvicorn's exit on a failed startup
        await uvicorn.Server(server).serve()

    output = serve_log.getvalue()
    entries = json_lines(serve_log)
    assert "Traceback" not in output and 'File "' not in output
    (failed,) = [e for e in entries if e.get("error")]
    assert (failed["level"], failed["error"], failed["host"]) == (
        "error",
        "connection refused",
        host,
    )
    assert "exc" not in failed
    assert any(e["msg"] == "Application startup failed. Exiting." for e in entries)
    assert len(output) < 2000  # was some 8 kB of driver frames


@pytest.mark.asyncio
async def test_a_refused_database_logged_with_its_exception_is_one_line() -> None:
    url, host = closed_postgres()
    store = Store.from_url(url)
    try:
        with pytest.raises(StoreUnavailable) as caught:
            await store.ping()
    finally:
        await store.close()

    with configured_logging("INFO") as buffer:
        try:
            raise caught.value
        except StoreUnavailable:
            log.exception("maintenance step failed", extra={"step": "reconcile"})

    (line,) = buffer.getvalue().splitlines()
    (entry,) = json_lines(buffer)
    assert entry["msg"] == "maintenance step failed"
    assert (entry["error"], entry["host"], entry["step"]) == (
        "connection refused",
        host,
        "reconcile",
    )
    assert "exc" not in entry and "Traceback" not in line
    assert failure_fields(caught.value) == {"error": "connection refused", "host": host}


@pytest.mark.asyncio
async def test_an_unreachable_nas_is_logged_as_cause_and_host_without_traceback(
    serve_log: io.StringIO, database_url: str, nas: RunningNas
) -> None:
    port = free_port()
    async with run_agent(database_url, nas, portal_url=f"http://127.0.0.1:{port}") as agent:
        job = await agent.create_job(
            name="hourly",
            schedule="every 1h",
            target={"type": "python", "callable": "tests.runner.sample_callables:nothing"},
        )
        assert job["id"]  # created; its arm waits in the outbox

    entries = json_lines(serve_log)
    failures = [e for e in entries if e["logger"].startswith("app.") and e.get("host")]
    assert failures, entries
    for entry in failures:
        assert entry["host"] == f"127.0.0.1:{port}", entry
        assert entry["error"] == "connection refused", entry
        assert entry["level"] == "warning", entry
    assert {"NAS call failed, retrying"} <= {e["msg"] for e in failures}
    assert "Traceback" not in serve_log.getvalue()


def test_an_unexpected_exception_keeps_its_traceback() -> None:
    with configured_logging("INFO") as buffer:
        try:
            values: dict[str, int] = {}
            values["missing"] += 1
        except KeyError:
            log.exception("reconcile failed for a job")

    (entry,) = json_lines(buffer)
    assert entry["exc"].startswith("Traceback (most recent call last)")
    assert "error" not in entry and "host" not in entry


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (
            ConnectionRefusedError(111, "Connect call failed ('10.0.0.5', 5432)"),
            {"error": "connection refused", "host": "10.0.0.5:5432"},
        ),
        (
            OSError(
                "Multiple exceptions: [Errno 111] Connect call failed ('::1', 5432, 0, 0), "
                "[Errno 111] Connect call failed ('127.0.0.1', 5432)"
            ),
            {"error": "connection refused", "host": "::1:5432"},
        ),
        (TimeoutError("the target took too long"), None),  # not a connection: keeps its traceback
        (ValueError("bad value"), None),
    ],
)
def test_what_counts_as_a_connection_failure(
    exc: BaseException, expected: dict[str, str] | None
) -> None:
    assert connection_failure(exc) == expected


def test_a_connection_failure_is_found_under_the_error_that_wraps_it() -> None:
    try:
        try:
            raise ConnectionRefusedError(111, "Connection refused")
        except ConnectionRefusedError as inner:
            raise StoreUnavailable("OSError") from inner
    except StoreUnavailable as outer:
        assert failure_fields(outer) == {"error": "connection refused"}  # no host to tell
    assert failure_fields(RuntimeError("boom")) == {"error": "boom"}
    assert failure_fields(RuntimeError()) == {"error": "RuntimeError"}
