"""Target validation and execution, against real parts: a loopback HTTP server, real child
processes and real imported functions."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from app.domain.states import RunStatus
from app.runner.targets import (
    TRUNCATION_MARKER,
    CommandTarget,
    HttpTarget,
    PythonTarget,
    RunContext,
    RunResult,
    TargetRunner,
    parse_target,
    truncate_text,
)

# Every test here is async, including the few validation tests, so that the module-wide
# mark applies to all of them.
pytestmark = pytest.mark.asyncio

FIRE_AT = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
CTX = RunContext(job_id="job-1", fire_at=FIRE_AT, dedup_key=f"job-1:{FIRE_AT.isoformat()}")
BUDGET = 1024
SAMPLES = "tests.runner.sample_callables"


# --- fixtures and helpers -----------------------------------------------------------------


@dataclass
class Recorder:
    release: asyncio.Event
    requests: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class LiveServer:
    base_url: str
    recorder: Recorder


def build_app(recorder: Recorder) -> Starlette:
    async def echo(request: Request) -> PlainTextResponse:
        recorder.requests.append(
            {
                "method": request.method,
                "headers": request.headers,
                "body": await request.body(),
            }
        )
        size = int(request.query_params.get("size", "0"))
        text = "x" * size if size else request.query_params.get("text", "ok")
        return PlainTextResponse(text, status_code=int(request.query_params.get("status", "200")))

    async def slow(request: Request) -> PlainTextResponse:
        await recorder.release.wait()  # released at teardown
        return PlainTextResponse("too late")

    methods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"]
    return Starlette(
        routes=[Route("/echo", echo, methods=methods), Route("/slow", slow, methods=methods)]
    )


@pytest_asyncio.fixture
async def server() -> AsyncIterator[LiveServer]:
    """A real uvicorn server on a loopback port the OS picks, in the test's event loop."""
    recorder = Recorder(release=asyncio.Event())
    config = uvicorn.Config(
        build_app(recorder), host="127.0.0.1", port=0, log_level="warning", lifespan="off"
    )
    uv = uvicorn.Server(config)
    task = asyncio.create_task(uv.serve())
    try:
        async with asyncio.timeout(10):
            while not uv.started:
                if task.done():
                    task.result()  # surface a startup failure
                await asyncio.sleep(0.01)
        port = uv.servers[0].sockets[0].getsockname()[1]
        yield LiveServer(base_url=f"http://127.0.0.1:{port}", recorder=recorder)
    finally:
        recorder.release.set()
        uv.should_exit = True
        await task


@pytest_asyncio.fixture
async def runner() -> AsyncIterator[TargetRunner]:
    async with httpx.AsyncClient(trust_env=False) as client:
        yield TargetRunner(client, max_output_bytes=BUDGET, kill_grace_seconds=1.0)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def is_running(pid: int) -> bool:
    """True while `pid` is a live process (a zombie nobody reaped counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


async def wait_until_gone(pids: list[int], within: float = 3.0) -> list[int]:
    """The pids still running after `within` seconds."""
    deadline = time.monotonic() + within
    while (alive := [pid for pid in pids if is_running(pid)]) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    return alive


async def wait_for_file(path: Path, within: float = 10.0) -> str:
    deadline = time.monotonic() + within
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        await asyncio.sleep(0.02)
    return path.read_text()


def py(script: str, *args: str, timeout: float = 10, **extra: Any) -> CommandTarget:
    return CommandTarget(
        type="command", argv=[sys.executable, "-c", script, *args], timeout_seconds=timeout, **extra
    )


# A child that starts a grandchild (sharing its pipes), records both pids, then hangs.
SPAWN_AND_HANG = """
import os, subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {grandchild.pid}")
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
print("started", flush=True)
time.sleep(60)
"""


# --- parse_target ---------------------------------------------------------------------------


async def test_parse_target_builds_each_kind_with_defaults() -> None:
    http = parse_target({"type": "http", "url": "https://example.com/hook", "method": "get"})
    command = parse_target({"type": "command", "argv": ["backup", "--all"]})
    python = parse_target({"type": "python", "callable": "pkg.mod:run"})

    assert isinstance(http, HttpTarget)
    assert (http.method, http.timeout_seconds, http.headers, http.body) == ("GET", 30, {}, None)
    assert isinstance(command, CommandTarget)
    assert (command.timeout_seconds, command.env, command.cwd) == (60, {}, None)
    assert isinstance(python, PythonTarget)
    assert (python.kwargs, python.timeout_seconds) == ({}, None)


@pytest.mark.parametrize(
    "data",
    [
        {"type": "http", "url": "https://a.example/x", "headers": {"A": "b"}, "body": {"k": [1]}},
        {"type": "command", "argv": ["ls", "-l"], "env": {"A": "1"}, "cwd": "/tmp"},
        {"type": "python", "callable": "a.b:c", "kwargs": {"x": 1}, "timeout_seconds": 3},
    ],
)
async def test_parse_target_round_trips_through_json_dump(data: dict[str, Any]) -> None:
    target = parse_target(data)

    assert parse_target(target.model_dump(mode="json")) == target


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            {"type": "ftp", "url": "ftp://x"},
            "target.type: must be one of 'http', 'command', 'python'",
        ),
        ({"argv": ["ls"]}, "target.type: must be one of"),
        ({"type": "command"}, "target.argv: Field required"),
        ({"type": "command", "argv": []}, "target.argv: List should have at least 1 item"),
        ({"type": "command", "argv": ["  "]}, "target.argv: the program (first element) must not"),
        ({"type": "command", "argv": ["ls", 3]}, "target.argv[1]: Input should be a valid string"),
        ({"type": "command", "argv": ["ls"], "shell": True}, "target.shell: Extra inputs are not"),
        ({"type": "command", "argv": ["ls"], "cwd": "relative"}, "target.cwd: must be an absolute"),
        ({"type": "python", "callable": "pkg.mod.run"}, "target.callable: must look like"),
        ({"type": "python", "callable": "pkg/mod:run"}, "target.callable: must look like"),
        ({"type": "python", "callable": "pkg.mod:run", "args": []}, "target.args: Extra inputs"),
        ({"type": "http", "url": "http:///path"}, "target.url: must name a host"),
        ({"type": "http", "url": "file:///etc/passwd"}, "target.url: must be an absolute http"),
        ({"type": "http", "url": "http://a:99999/"}, "target.url: is not a valid URL"),
        ({"type": "http", "url": "http://a/", "method": "TRACE"}, "target.method: Input should be"),
        ({"type": "http", "url": "http://a/", "timeout_seconds": 0}, "target.timeout_seconds:"),
        ({"type": "http", "url": "http://a/", "timeout_seconds": 3601}, "target.timeout_seconds:"),
    ],
)
async def test_parse_target_error_names_the_field(data: dict[str, Any], expected: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_target(data)
    assert str(raised.value).startswith(expected), str(raised.value)


async def test_parse_target_rejects_header_injection_without_echoing_the_value() -> None:
    data = {"type": "http", "url": "http://a/", "headers": {"Authorization": "s3cret\r\nX: y"}}

    with pytest.raises(ValueError) as raised:
        parse_target(data)

    assert str(raised.value).startswith("target.headers: header 'Authorization'")
    assert "s3cret" not in str(raised.value)


async def test_parse_target_refuses_an_idempotency_key_header() -> None:
    data = {"type": "http", "url": "http://a/", "headers": {"idempotency-key": "mine"}}

    with pytest.raises(ValueError, match=r"target\.headers: header 'idempotency-key' is set by"):
        parse_target(data)


# --- truncation ----------------------------------------------------------------------------


async def test_truncate_text_keeps_short_text_and_cuts_long_text_within_budget() -> None:
    assert truncate_text("short", 64) == "short"

    cut = truncate_text("é" * 100, 64)  # 2 bytes each: the cut may split a character

    assert cut.endswith(TRUNCATION_MARKER)
    assert len(cut.encode("utf-8")) <= 64
    assert set(cut.removesuffix(TRUNCATION_MARKER)) == {"é"}


# --- http ----------------------------------------------------------------------------------


async def test_http_2xx_succeeds_and_sends_idempotency_key_headers_and_json(
    server: LiveServer, runner: TargetRunner
) -> None:
    target = HttpTarget(
        type="http",
        url=f"{server.base_url}/echo",
        headers={"X-Job": "nightly"},
        body={"report": [1, 2]},
    )

    result = await runner.run(target, CTX)

    assert result == RunResult(RunStatus.SUCCEEDED, "http 200", "ok", None)
    [request] = server.recorder.requests
    assert request["method"] == "POST"
    assert request["headers"]["idempotency-key"] == CTX.dedup_key
    assert request["headers"]["x-job"] == "nightly"
    assert request["headers"]["content-type"] == "application/json"
    assert json.loads(request["body"]) == {"report": [1, 2]}


async def test_http_sends_the_attempt_with_the_same_idempotency_key(
    server: LiveServer, runner: TargetRunner
) -> None:
    target = HttpTarget(
        type="http", url=f"{server.base_url}/echo", headers={"Chronos-Attempt": "spoofed"}
    )

    for attempt in (1, 2):
        await runner.run(target, replace(CTX, attempt=attempt))

    sent = [
        (r["headers"]["idempotency-key"], r["headers"]["chronos-attempt"])
        for r in server.recorder.requests
    ]
    assert sent == [(CTX.dedup_key, "1"), (CTX.dedup_key, "2")]


async def test_http_sends_a_str_body_as_is(server: LiveServer, runner: TargetRunner) -> None:
    target = HttpTarget(type="http", url=f"{server.base_url}/echo", method="PUT", body='{"raw": ')

    result = await runner.run(target, CTX)

    assert result.status == "succeeded"
    [request] = server.recorder.requests
    assert (request["method"], request["body"]) == ("PUT", b'{"raw": ')


async def test_http_5xx_fails_with_status_and_body(
    server: LiveServer, runner: TargetRunner
) -> None:
    target = HttpTarget(type="http", url=f"{server.base_url}/echo?status=503&text=down")

    result = await runner.run(target, CTX)

    assert result.status == "failed"
    assert result.outcome == "http 503"
    assert result.output == "down"
    assert result.error is not None and "503" in result.error


async def test_http_4xx_fails(server: LiveServer, runner: TargetRunner) -> None:
    target = HttpTarget(type="http", url=f"{server.base_url}/echo?status=404&text=nope")

    result = await runner.run(target, CTX)

    assert (result.status, result.outcome, result.output) == ("failed", "http 404", "nope")


async def test_http_body_is_truncated_to_the_budget(
    server: LiveServer, runner: TargetRunner
) -> None:
    target = HttpTarget(type="http", url=f"{server.base_url}/echo?size=50000", method="GET")

    result = await runner.run(target, CTX)

    assert result.status == "succeeded"
    assert result.output is not None
    assert result.output.endswith(TRUNCATION_MARKER)
    assert len(result.output.encode("utf-8")) <= BUDGET
    assert result.output.removesuffix(TRUNCATION_MARKER) == "x" * (
        BUDGET - len(TRUNCATION_MARKER.encode())
    )


async def test_http_slow_answer_times_out(server: LiveServer, runner: TargetRunner) -> None:
    target = HttpTarget(type="http", url=f"{server.base_url}/slow", timeout_seconds=0.3)

    started = time.monotonic()
    result = await runner.run(target, CTX)

    assert result.status == "timed_out"
    assert time.monotonic() - started < 3
    assert result.error is not None and "0.3s" in result.error


async def test_http_connection_refused_fails_without_leaking_headers(
    runner: TargetRunner, caplog: pytest.LogCaptureFixture
) -> None:
    port = closed_port()
    target = HttpTarget(
        type="http",
        url=f"http://127.0.0.1:{port}/hook?token=q-s3cret",
        headers={"Authorization": "Bearer h-s3cret"},
    )

    with caplog.at_level(logging.DEBUG):
        result = await runner.run(target, CTX)

    assert result.status == "failed"
    assert result.outcome is None
    assert result.error is not None and result.error.startswith(
        f"cannot connect to 127.0.0.1:{port}"
    )
    assert "s3cret" not in result.error
    assert "s3cret" not in caplog.text
    assert all("s3cret" not in str(record.__dict__) for record in caplog.records)


async def test_http_unknown_host_fails(runner: TargetRunner) -> None:
    target = HttpTarget(type="http", url="http://no-such-host.invalid/hook", timeout_seconds=5)

    result = await runner.run(target, CTX)

    assert result.status == "failed"
    assert result.error is not None and "no-such-host.invalid" in result.error


# --- command -------------------------------------------------------------------------------


async def test_command_success_captures_stdout(runner: TargetRunner) -> None:
    result = await runner.run(py("print('hello from the job')"), CTX)

    assert result == RunResult(RunStatus.SUCCEEDED, "exit 0", "hello from the job\n", None)


async def test_command_nonzero_exit_fails_with_stderr(runner: TargetRunner) -> None:
    script = "import sys; print('partial'); sys.stderr.write('disk full'); sys.exit(3)"

    result = await runner.run(py(script), CTX)

    assert result == RunResult(RunStatus.FAILED, "exit 3", "partial\n", "disk full")


async def test_command_killed_by_a_signal_names_it(runner: TargetRunner) -> None:
    result = await runner.run(py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), CTX)

    assert (result.status, result.outcome) == ("failed", "signal SIGKILL")


async def test_command_timeout_kills_the_whole_process_group(
    runner: TargetRunner, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"

    started = time.monotonic()
    result = await runner.run(py(SPAWN_AND_HANG, str(pid_file), timeout=2), CTX)

    assert result.status == "timed_out"
    assert time.monotonic() - started < 8
    assert result.output == "started\n"  # what was written before the kill is kept
    assert result.error is not None and result.error.startswith("timed out after 2s")
    child, grandchild = map(int, pid_file.read_text().split())
    assert await wait_until_gone([child, grandchild]) == []


async def test_command_timeout_sends_sigterm_first(runner: TargetRunner, tmp_path: Path) -> None:
    marker = tmp_path / "terminated"
    script = """
import signal, sys, time
def on_term(signum, frame):
    open(sys.argv[1], "w").write("got SIGTERM")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
time.sleep(60)
"""

    result = await runner.run(py(script, str(marker), timeout=1), CTX)

    assert result.status == "timed_out"
    assert marker.read_text() == "got SIGTERM"


async def test_command_ignoring_sigterm_is_killed_after_the_grace(
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "pid"
    script = """
import os, signal, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
open(sys.argv[1], "w").write(str(os.getpid()))
time.sleep(60)
"""
    async with httpx.AsyncClient(trust_env=False) as client:
        runner = TargetRunner(client, kill_grace_seconds=0.3)
        started = time.monotonic()
        result = await runner.run(py(script, str(pid_file), timeout=1), CTX)

    assert result.status == "timed_out"
    assert time.monotonic() - started < 6
    assert await wait_until_gone([int(pid_file.read_text())]) == []


async def test_command_cancellation_kills_the_group_and_propagates(
    runner: TargetRunner, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pids"
    run = asyncio.create_task(runner.run(py(SPAWN_AND_HANG, str(pid_file), timeout=60), CTX))
    pids = [int(pid) for pid in (await wait_for_file(pid_file)).split()]

    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run

    assert await wait_until_gone(pids) == []


async def test_command_environment_is_clean(
    runner: TargetRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHRONOS_NAS_TOKEN", "s3cret")
    monkeypatch.setenv("DATABASE_PASSWORD", "hunter2")
    monkeypatch.setenv("LANG", "C.UTF-8")
    fire_at = datetime(2025, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    ctx = RunContext(job_id="job-7", fire_at=fire_at, dedup_key="manual:1234")
    target = py("import json, os; print(json.dumps(dict(os.environ)))", env={"GREETING": "hi"})

    result = await runner.run(target, ctx)

    assert result.status == "succeeded", result
    assert result.output is not None
    seen = json.loads(result.output)
    assert seen == {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME") or seen["HOME"],
        "LANG": "C.UTF-8",
        "GREETING": "hi",
        "CHRONOS_JOB_ID": "job-7",
        "CHRONOS_FIRE_AT": "2025-01-02T03:04:05+00:00",
        "CHRONOS_DEDUP_KEY": "manual:1234",
        "CHRONOS_ATTEMPT": "1",
    }
    assert "s3cret" not in result.output


async def test_command_target_env_cannot_spoof_run_variables(runner: TargetRunner) -> None:
    target = py(
        "import os; print(os.environ['CHRONOS_JOB_ID'])", env={"CHRONOS_JOB_ID": "someone-else"}
    )

    result = await runner.run(target, CTX)

    assert result.output == "job-1\n"


async def test_command_output_beyond_the_budget_is_truncated(runner: TargetRunner) -> None:
    # Far more than a pipe buffer on both streams: the child would block if either were not drained.
    script = "import sys; sys.stdout.write('o' * 300_000); sys.stderr.write('e' * 300_000)"

    result = await runner.run(py(script), CTX)

    assert result.status == "succeeded"
    for text, char in ((result.output, "o"), (result.error, "e")):
        assert text is not None
        assert text.endswith(TRUNCATION_MARKER)
        assert len(text.encode("utf-8")) <= BUDGET
        assert set(text.removesuffix(TRUNCATION_MARKER)) == {char}


async def test_command_undecodable_output_is_replaced_not_fatal(runner: TargetRunner) -> None:
    result = await runner.run(py("import sys; sys.stdout.buffer.write(b'ok\\xff')"), CTX)

    assert result.output == "ok\ufffd"


@pytest.mark.parametrize("program", ["/nonexistent/bin/tool", "chronos-no-such-program-xyz"])
async def test_command_missing_program_fails_clearly(runner: TargetRunner, program: str) -> None:
    result = await runner.run(CommandTarget(type="command", argv=[program, "--flag"]), CTX)

    assert result == RunResult(RunStatus.FAILED, None, None, f"program not found: {program!r}")


async def test_command_runs_in_cwd(runner: TargetRunner, tmp_path: Path) -> None:
    result = await runner.run(py("import os; print(os.getcwd())", cwd=str(tmp_path)), CTX)

    assert result.output == f"{tmp_path.resolve()}\n"


async def test_command_missing_cwd_fails_clearly(runner: TargetRunner, tmp_path: Path) -> None:
    missing = tmp_path / "gone"

    result = await runner.run(py("print('never')", cwd=str(missing)), CTX)

    assert result.status == "failed"
    assert result.error is not None and f"working directory {str(missing)!r}" in result.error


# --- python --------------------------------------------------------------------------------


def call(function: str, /, timeout: float | None = None, **kwargs: Any) -> PythonTarget:
    return PythonTarget(
        type="python", callable=f"{SAMPLES}:{function}", kwargs=kwargs, timeout_seconds=timeout
    )


async def test_python_sync_function_gets_kwargs(runner: TargetRunner) -> None:
    result = await runner.run(call("add", a=2, b=3), CTX)

    assert result == RunResult(RunStatus.SUCCEEDED, "returned", "5", None)


async def test_python_sync_function_runs_off_the_event_loop_thread(runner: TargetRunner) -> None:
    result = await runner.run(call("where_am_i"), CTX)

    assert result.output == '{"main_thread": false}'


async def test_python_async_function_is_awaited(runner: TargetRunner) -> None:
    result = await runner.run(call("greet", name="chronos"), CTX)

    # the return value is the function's own choice: shown as returned
    assert result == RunResult(RunStatus.SUCCEEDED, "returned", "hello, chronos", None)


async def test_python_dict_return_is_json_with_str_fallback(runner: TargetRunner) -> None:
    result = await runner.run(call("summary"), CTX)

    assert result.output is not None
    assert json.loads(result.output) == {"count": 2, "when": "2025-01-02 03:04:05+00:00"}


async def test_python_none_return_has_no_output(runner: TargetRunner) -> None:
    result = await runner.run(call("nothing"), CTX)

    assert result == RunResult(RunStatus.SUCCEEDED, "returned", None, None)


@pytest.mark.parametrize(
    ("name", "error"),
    [("explode", "ValueError: kaboom"), ("explode_async", "RuntimeError: async kaboom")],
)
async def test_python_exception_fails_with_type_and_message(
    runner: TargetRunner, name: str, error: str
) -> None:
    result = await runner.run(call(name), CTX)

    assert result == RunResult(RunStatus.FAILED, None, None, error)


async def test_python_exception_message_is_truncated(runner: TargetRunner) -> None:
    result = await runner.run(call("explode", message="boom " + "m" * 10_000), CTX)

    assert result.error is not None
    assert result.error.startswith("ValueError: ***")  # the kwarg itself: masked
    assert result.error.endswith(TRUNCATION_MARKER)
    assert len(result.error.encode("utf-8")) <= BUDGET


async def test_python_slow_coroutine_times_out(runner: TargetRunner) -> None:
    started = time.monotonic()
    result = await runner.run(call("sleepy", timeout=0.2, seconds=30), CTX)

    assert result.status == "timed_out"
    assert time.monotonic() - started < 3


async def test_python_own_timeout_error_is_a_failure_not_a_timeout(runner: TargetRunner) -> None:
    result = await runner.run(call("raise_timeout", timeout=30), CTX)

    assert result == RunResult(
        RunStatus.FAILED, None, None, "TimeoutError: upstream socket timed out"
    )


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("tests.runner.no_such_module:run", "ModuleNotFoundError"),
        (f"{SAMPLES}:no_such_function", "AttributeError"),
        (f"{SAMPLES}:NOT_A_FUNCTION", "not a function"),
    ],
)
async def test_python_unloadable_callable_fails_naming_it(
    runner: TargetRunner, spec: str, expected: str
) -> None:
    result = await runner.run(PythonTarget(type="python", callable=spec), CTX)

    assert result.status == "failed"
    assert result.error is not None
    assert result.error.startswith(f"cannot load callable {spec!r}")
    assert expected in result.error
