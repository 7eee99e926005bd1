"""`app.logs`: context bound with `log_context` reaches every line of the block and of the
tasks started in it; the structlog formatters render it as JSON lines (`serve`) or `key=value`
(`dev`, coloured on a terminal only), with secrets masked and no colour codes in JSON."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog

from app.logs import ContextFilter, JsonFormatter, KeyValueFormatter, log_context
from tests.support.logs import configured_logging, json_lines


@dataclass
class Captured:
    """A logger of its own, writing through a real formatter into a buffer."""

    logger: logging.Logger
    stream: io.StringIO

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def entries(self) -> list[dict[str, Any]]:
        entries: list[dict[str, Any]] = []
        for line in self.lines():
            entry = json.loads(line)
            assert isinstance(entry, dict), line
            entries.append(entry)
        return entries


def capture(formatter: logging.Formatter) -> Iterator[Captured]:
    logger = logging.getLogger(f"tests.logs.{uuid.uuid4().hex}")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    try:
        yield Captured(logger, stream)
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def json_log() -> Iterator[Captured]:
    yield from capture(JsonFormatter())


@pytest.fixture
def kv_log() -> Iterator[Captured]:
    yield from capture(KeyValueFormatter())


CONTEXT_FIELDS = ("job_id", "fire_at", "attempt", "run_key")


def context_of(entry: dict[str, Any]) -> dict[str, Any]:
    return {key: entry[key] for key in CONTEXT_FIELDS if key in entry}


# -- log_context -----------------------------------------------------------------------------


def test_fields_are_bound_to_every_line_inside_the_block_and_unbound_after(
    json_log: Captured,
) -> None:
    log = json_log.logger
    log.info("before")
    with log_context(job_id="j1", fire_at="2030-01-01T00:00:00+00:00"):
        log.info("first")
        log.warning("second")
    log.info("after")

    assert [(e["msg"], context_of(e)) for e in json_log.entries()] == [
        ("before", {}),
        ("first", {"job_id": "j1", "fire_at": "2030-01-01T00:00:00+00:00"}),
        ("second", {"job_id": "j1", "fire_at": "2030-01-01T00:00:00+00:00"}),
        ("after", {}),
    ]


def test_nested_blocks_add_and_override_then_restore(json_log: Captured) -> None:
    log = json_log.logger
    with log_context(job_id="outer", attempt=1):
        with log_context(attempt=2, run_key="k"):
            log.info("inner")
        log.info("outer again")

    assert [context_of(e) for e in json_log.entries()] == [
        {"job_id": "outer", "attempt": 2, "run_key": "k"},
        {"job_id": "outer", "attempt": 1},
    ]


def test_fields_are_unbound_when_the_block_raises(json_log: Captured) -> None:
    with pytest.raises(RuntimeError), log_context(job_id="j1"):
        raise RuntimeError("boom")
    json_log.logger.info("after")

    assert context_of(json_log.entries()[0]) == {}


@pytest.mark.asyncio
async def test_a_task_started_inside_the_block_keeps_its_fields(json_log: Captured) -> None:
    log = json_log.logger
    go = asyncio.Event()

    async def later(name: str) -> None:
        await go.wait()
        log.info(name)

    with log_context(job_id="j1", run_key="j1:slot"):
        inside = asyncio.create_task(later("started inside"))
    outside = asyncio.create_task(later("started after"))
    go.set()  # both log only now, after the block has ended
    await asyncio.gather(inside, outside)

    by_msg = {e["msg"]: context_of(e) for e in json_log.entries()}
    assert by_msg == {
        "started inside": {"job_id": "j1", "run_key": "j1:slot"},
        "started after": {},
    }


@pytest.mark.asyncio
async def test_tasks_do_not_see_each_others_fields(json_log: Captured) -> None:
    log = json_log.logger
    both_bound = asyncio.Barrier(2)

    async def work(job_id: str) -> None:
        with log_context(job_id=job_id):
            await both_bound.wait()  # the other task has bound its own job_id by now
            log.info(job_id)

    await asyncio.gather(work("a"), work("b"))

    assert sorted((e["msg"], e["job_id"]) for e in json_log.entries()) == [("a", "a"), ("b", "b")]


def test_extra_wins_over_the_context_on_a_clash(json_log: Captured) -> None:
    with log_context(job_id="from-context", attempt=1):
        json_log.logger.info("event", extra={"job_id": "from-extra", "status": "running"})

    (entry,) = json_log.entries()
    assert context_of(entry) == {"job_id": "from-extra", "attempt": 1}
    assert entry["status"] == "running"


# -- JsonFormatter ---------------------------------------------------------------------------


def test_json_lines_carry_the_event_and_its_fields(json_log: Captured) -> None:
    with log_context(job_id="j1"):
        json_log.logger.warning(
            "fire %s of %d", "admitted", 3, extra={"at": datetime(2030, 1, 1, tzinfo=UTC)}
        )
    json_log.logger.debug("plain")

    first, second = json_log.lines()
    entry = json.loads(first)
    assert set(entry) == {"ts", "level", "logger", "msg", "job_id", "at"}
    assert entry["level"] == "warning"
    assert entry["logger"] == json_log.logger.name
    assert entry["msg"] == "fire admitted of 3"
    assert entry["job_id"] == "j1"
    assert entry["at"] == "2030-01-01 00:00:00+00:00"  # not JSON: rendered with str()
    assert datetime.fromisoformat(entry["ts"]).utcoffset() == timedelta(0)
    assert json.loads(second)["level"] == "debug"


def test_an_exception_stays_on_its_json_line(json_log: Captured) -> None:
    try:
        raise ValueError("bad value")
    except ValueError:
        json_log.logger.exception("failed", extra={"step": "push"})

    (line,) = json_log.lines()  # the traceback is inside the JSON string, not extra lines
    entry = json.loads(line)
    assert entry["level"] == "error"
    assert entry["step"] == "push"
    assert entry["exc"].startswith("Traceback (most recent call last)")
    assert entry["exc"].endswith("ValueError: bad value")


# -- KeyValueFormatter -----------------------------------------------------------------------


def test_key_value_lines_render_fields_as_key_equals_value(kv_log: Captured) -> None:
    with log_context(job_id="j1", attempt=2):
        kv_log.logger.info("run finished", extra={"status": "succeeded", "error": None})

    (line,) = kv_log.lines()
    head, _, fields = line.partition(f"INFO {kv_log.logger.name}: run finished")
    assert head  # the time comes first
    assert fields == " job_id=j1 attempt=2 status=succeeded"  # None is left out


def test_a_key_value_line_without_fields_is_the_event_alone(kv_log: Captured) -> None:
    kv_log.logger.warning("quiet")

    (line,) = kv_log.lines()
    assert line.endswith(f"WARNING {kv_log.logger.name}: quiet")


def test_key_value_fields_stay_on_the_first_line_above_a_traceback(kv_log: Captured) -> None:
    try:
        raise KeyError("missing")
    except KeyError:
        with log_context(job_id="j1"):
            kv_log.logger.exception("boom")

    first, *trace = kv_log.lines()
    assert first.endswith(": boom job_id=j1")
    assert trace[0] == "Traceback (most recent call last):"
    assert trace[-1] == "KeyError: 'missing'"


def test_the_context_is_taken_when_the_line_is_logged_not_when_it_is_written() -> None:
    record = logging.makeLogRecord({"msg": "run finished", "levelno": logging.INFO})
    with log_context(job_id="j1"):
        assert ContextFilter().filter(record)
    with log_context(job_id="other"):
        line = json.loads(JsonFormatter().format(record))
    assert line["job_id"] == "j1"


# -- configure_logging: the modes of `chronos serve` and `chronos dev` -------------------------

ANSI = re.compile(r"\x1b\[")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def uvicorn_style_line() -> None:
    """What uvicorn logs when it starts: the message, and a coloured copy of it as a field."""
    logging.getLogger("uvicorn.error").warning(
        "Started server process [%d]",
        42,
        extra={"color_message": "Started server process [\x1b[36m%d\x1b[0m]"},
    )


def test_serve_writes_json_lines_without_colour_codes() -> None:
    with configured_logging("INFO") as buffer, log_context(job_id="j1", fire_at="f"):
        uvicorn_style_line()
        logging.getLogger("app.x").info("\x1b[31mred\x1b[0m event", extra={"n": 1})

    first, second = json_lines(buffer)
    assert first["msg"] == "Started server process [42]"
    assert "color_message" not in first
    assert second["msg"] == "red event"
    assert (first["job_id"], second["job_id"], second["n"]) == ("j1", "j1", 1)
    assert not ANSI.search(buffer.getvalue()) and "\\u001b" not in buffer.getvalue()


def test_dev_writes_key_value_lines_without_colour_codes_when_not_a_terminal() -> None:
    context = log_context(job_id="j1", attempt=2, run_key="j1:k")
    with configured_logging("INFO", json_lines=False) as buffer, context:
        uvicorn_style_line()
        logging.getLogger("app.runner.executor").warning(
            "run failed", extra={"job": "nightly", "reason": "ValueError: kaboom"}
        )

    started, failed = buffer.getvalue().splitlines()
    assert not ANSI.search(buffer.getvalue())
    assert started.endswith(
        " WARNING uvicorn.error: Started server process [42] job_id=j1 attempt=2 run_key=j1:k"
    )
    assert failed.endswith(
        " WARNING app.runner.executor: run failed job_id=j1 attempt=2 run_key=j1:k job=nightly "
        'reason="ValueError: kaboom"'
    )
    assert datetime.fromisoformat(failed.split(" ", 1)[0]).utcoffset() == timedelta(0)


def test_dev_colours_the_level_on_a_terminal_only() -> None:
    with configured_logging("INFO", json_lines=False, stream=Terminal()) as terminal:
        logging.getLogger("app.x").warning("careful", extra={"n": 1})
    assert "\x1b[33mWARNING\x1b[0m app.x: careful n=1" in terminal.getvalue()


def test_dev_lines_are_masked_too() -> None:
    dev = configured_logging("INFO", json_lines=False, secrets=["s3cret-admin-token"])
    with dev as buffer, log_context(url="https://user:pw@h/"):
        logging.getLogger("app.x").info("token s3cret-admin-token", extra={"h": "Bearer abcdefgh"})

    (line,) = buffer.getvalue().splitlines()
    assert line.endswith('app.x: token *** url=https://***@h/ h="Bearer ***"')


def test_structlog_loggers_write_through_the_same_chain() -> None:
    serve = configured_logging("INFO", secrets=["s3cret-admin-token"])
    with serve as buffer, log_context(job_id="j1"):
        structlog.get_logger("app.native").warning("native", token="s3cret-admin-token")

    (entry,) = json_lines(buffer)
    assert entry["logger"] == "app.native" and entry["level"] == "warning"
    assert (entry["msg"], entry["job_id"], entry["token"]) == ("native", "j1", "***")


def test_the_context_is_bound_across_an_asyncio_task_through_configure_logging() -> None:
    async def fire(job_id: str) -> None:
        with log_context(job_id=job_id, fire_at="2030-01-01T00:00:00+00:00"):
            await asyncio.create_task(run(job_id))

    async def run(job_id: str) -> None:
        with log_context(attempt=1, run_key=f"{job_id}:slot"):
            await asyncio.sleep(0)
            logging.getLogger("app.runner").info("run finished")

    async def both() -> None:
        await asyncio.gather(fire("a"), fire("b"))

    with configured_logging("INFO") as buffer:
        asyncio.run(both())

    assert sorted(tuple(e[k] for k in CONTEXT_FIELDS) for e in json_lines(buffer)) == [
        ("a", "2030-01-01T00:00:00+00:00", 1, "a:slot"),
        ("b", "2030-01-01T00:00:00+00:00", 1, "b:slot"),
    ]


JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZ2VudCJ9.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("Bearer abcdef123456", "Bearer ***"),
        ("BASIC dXNlcjpwYXNz", "BASIC ***"),
        ("https://user:pw@nas.example/x", "https://***@nas.example/x"),
        (f"token {JWT}", "token ***"),
        ("GET /hook?api_key=abc123&x=1", "GET /hook?api_key=***&x=1"),
        ("plain 2030-01-01T00:00:00+00:00", "plain 2030-01-01T00:00:00+00:00"),
    ],
)
def test_every_credential_shape_is_masked_in_every_field(value: str, masked: str) -> None:
    with configured_logging("INFO") as buffer, log_context(bound=value):
        logging.getLogger("app.x").info(value, extra={"field": value, "nested": [value]})

    (entry,) = json_lines(buffer)
    assert (entry["msg"], entry["bound"], entry["field"], entry["nested"]) == (
        masked,
        masked,
        masked,
        [masked],
    )


def test_a_dev_line_is_one_line_whatever_its_message_and_a_traceback_follows_below() -> None:
    with configured_logging("INFO", json_lines=False) as buffer:
        try:
            raise KeyError("missing")
        except KeyError:
            logging.getLogger("app.x").exception("first\nsecond", extra={"n": 1})

    head, *trace = buffer.getvalue().splitlines()
    assert head.endswith("ERROR app.x: first\\nsecond n=1")
    assert trace[0] == "Traceback (most recent call last):"
    assert trace[-1] == "KeyError: 'missing'"
