"""`app.logs`: context bound with `log_context` reaches every line of the block and of the
tasks started in it; the formatters render it as JSON lines or `key=value`."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from app.logs import ContextFilter, JsonFormatter, KeyValueFormatter, log_context


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
