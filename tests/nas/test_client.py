"""The NAS client: retry classification against `httpx.MockTransport`, then the real emulator."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from app.nas import ArmedFire, ListUnsupported, NasClient, NasError, RetryBudget
from tests.support.agent import NAS_TOKEN, run_nas

pytestmark = pytest.mark.asyncio

PORTAL = "https://nas.example/"
FAST = RetryBudget(attempts=4, max_seconds=5.0, initial_wait=0.001, max_wait=0.01)
FIRE_AT = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A scripted NAS: answers from `script` in order, records every request."""

    def __init__(self, *script: httpx.Response | Exception | Handler) -> None:
        self.script: Iterator[httpx.Response | Exception | Handler] = iter(script)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = next(self.script)
        if isinstance(step, Exception):
            raise step
        if callable(step):
            return step(request)
        return step


def ok_provision() -> httpx.Response:
    return httpx.Response(200, json={"schedule_id": "sch-1"})


def client_for(
    recorder: Recorder, budget: RetryBudget = FAST, token: str = "nas-token"
) -> NasClient:
    http = httpx.AsyncClient(transport=httpx.MockTransport(recorder))
    return NasClient(http, PORTAL, token, budget=budget)


async def test_5xx_then_200_is_retried_and_succeeds() -> None:
    nas = Recorder(httpx.Response(500), httpx.Response(502, text="bad gateway"), ok_provision())
    schedule_id = await client_for(nas).provision("job", FIRE_AT, "https://agent.example")
    assert schedule_id == "sch-1"
    assert len(nas.requests) == 3
    assert {r.url.path for r in nas.requests} == {"/api/agent-cron/provision"}


async def test_429_with_retry_after_zero_is_retried() -> None:
    nas = Recorder(httpx.Response(429, headers={"Retry-After": "0"}), ok_provision())
    assert await client_for(nas).provision("job", FIRE_AT, "https://agent.example") == "sch-1"
    assert len(nas.requests) == 2


async def test_retry_after_past_the_budget_gives_up_at_once() -> None:
    nas = Recorder(httpx.Response(503, headers={"Retry-After": "3600"}), ok_provision())
    started = time.monotonic()
    with pytest.raises(NasError) as caught:
        await client_for(nas).provision("job", FIRE_AT, "https://agent.example")
    assert caught.value.transient and caught.value.retry_after == 3600
    assert time.monotonic() - started < 1.0
    assert len(nas.requests) == 1


async def test_retry_after_within_the_budget_is_honoured() -> None:
    nas = Recorder(httpx.Response(429, headers={"Retry-After": "1"}), ok_provision())
    started = time.monotonic()
    assert await client_for(nas).provision("job", FIRE_AT, "https://agent.example") == "sch-1"
    assert time.monotonic() - started >= 1.0
    assert len(nas.requests) == 2


@pytest.mark.parametrize("status", [400, 404, 409, 422])
async def test_other_4xx_is_permanent_and_not_retried(status: int) -> None:
    nas = Recorder(httpx.Response(status, json={"error": "nope", "detail": "job_id: bad"}))
    with pytest.raises(NasError) as caught:
        await client_for(nas).provision("job", FIRE_AT, "https://agent.example")
    assert caught.value.transient is False
    assert caught.value.status_code == status
    assert str(status) in str(caught.value)
    assert "job_id: bad" in str(caught.value)
    assert len(nas.requests) == 1


async def test_a_4xx_after_a_5xx_stops_the_retries() -> None:
    nas = Recorder(httpx.Response(503), httpx.Response(409), ok_provision())
    with pytest.raises(NasError) as caught:
        await client_for(nas).cancel("job")
    assert caught.value.status_code == 409
    assert len(nas.requests) == 2


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("refused"),
        httpx.ReadTimeout("slow"),
        httpx.RemoteProtocolError("closed"),
    ],
)
async def test_transport_errors_are_retried(error: Exception) -> None:
    nas = Recorder(error, httpx.Response(200, json={"ok": True}))
    await client_for(nas).cancel("job")
    assert len(nas.requests) == 2


async def test_an_exhausted_budget_raises_the_last_error() -> None:
    nas = Recorder(httpx.Response(500), httpx.ConnectError("refused"), httpx.Response(504))
    budget = RetryBudget(attempts=3, max_seconds=5.0, initial_wait=0.001, max_wait=0.01)
    with pytest.raises(NasError) as caught:
        await client_for(nas, budget).cancel("job")
    assert caught.value.transient is True
    assert caught.value.status_code == 504
    assert len(nas.requests) == 3


async def test_a_per_call_budget_overrides_the_default() -> None:
    nas = Recorder(*(httpx.Response(503) for _ in range(10)))
    one = RetryBudget(attempts=1, max_seconds=5.0, initial_wait=0.001)
    with pytest.raises(NasError):
        await client_for(nas).cancel("job", budget=one)
    assert len(nas.requests) == 1


async def test_the_time_budget_stops_retries() -> None:
    nas = Recorder(*(httpx.Response(503) for _ in range(1000)))
    budget = RetryBudget(attempts=1000, max_seconds=0.3, initial_wait=0.05, max_wait=0.05)
    started = time.monotonic()
    with pytest.raises(NasError):
        await client_for(nas, budget).cancel("job")
    assert time.monotonic() - started < 1.5
    assert 2 <= len(nas.requests) < 50


async def test_provision_sends_the_contract_body_and_bearer() -> None:
    nas = Recorder(ok_provision())
    paris = FIRE_AT.astimezone(ZoneInfo("Europe/Paris"))
    await client_for(nas, token="the-nas-token").provision("job-7", paris, "https://agent.example/")
    [request] = nas.requests
    assert request.method == "POST"
    assert str(request.url) == "https://nas.example/api/agent-cron/provision"
    assert request.headers["Authorization"] == "Bearer the-nas-token"
    body = json.loads(request.content)
    assert body == {
        "job_id": "job-7",
        "fire_at": "2026-11-26T12:00:00+00:00",
        "agent_callback_url": "https://agent.example",
        "dedup_key": "job-7:2026-11-26T12:00:00+00:00",
    }
    assert body["dedup_key"] == f"{body['job_id']}:{body['fire_at']}"


@pytest.mark.parametrize(
    ("answer", "schedule_id"),
    [
        (httpx.Response(200, json={"ok": True}), None),
        (httpx.Response(200, json={}), None),
        (httpx.Response(200, content=b""), None),
        (httpx.Response(204), None),
        (httpx.Response(201, text="armed"), None),
        (httpx.Response(200, json=["not", "an", "object"]), None),
        (httpx.Response(200, json={"schedule_id": 42}), "42"),
        (httpx.Response(200, json={"schedule_id": True}), None),
        (httpx.Response(200, json={"schedule_id": "sch-9", "extra": 1}), "sch-9"),
    ],
)
async def test_any_2xx_to_provision_means_armed(
    answer: httpx.Response, schedule_id: str | None
) -> None:
    nas = Recorder(answer)
    assert await client_for(nas).provision("job", FIRE_AT, "https://agent.example") == schedule_id
    assert len(nas.requests) == 1


async def test_cancel_sends_the_job_id() -> None:
    nas = Recorder(httpx.Response(200, json={"ok": True}))
    await client_for(nas).cancel("job-9")
    [request] = nas.requests
    assert str(request.url) == "https://nas.example/api/agent-cron/cancel"
    assert json.loads(request.content) == {"job_id": "job-9"}
    assert request.headers["Authorization"] == "Bearer nas-token"


@pytest.mark.parametrize("status", [200, 202, 204, 404, 410])
async def test_cancel_is_done_on_any_2xx_404_or_410(status: int) -> None:
    nas = Recorder(httpx.Response(status))
    await client_for(nas).cancel("job-9")
    assert len(nas.requests) == 1


async def test_cancel_refused_otherwise_is_an_error() -> None:
    nas = Recorder(httpx.Response(400, json={"error": "invalid_request", "detail": "job_id"}))
    with pytest.raises(NasError) as caught:
        await client_for(nas).cancel("job-9")
    assert caught.value.status_code == 400 and caught.value.transient is False


def page(*job_ids: str, cursor: str | None = None) -> httpx.Response:
    body: dict[str, object] = {
        "armed": [
            {"job_id": j, "fire_at": "2026-11-26T13:00:00+01:00", "schedule_id": f"s-{j}"}
            for j in job_ids
        ]
    }
    if cursor is not None:
        body["next_cursor"] = cursor
    return httpx.Response(200, json=body)


async def test_list_follows_next_cursor_across_pages() -> None:
    nas = Recorder(page("a", "b", cursor="c1"), page("c", cursor="c2"), page("d"))
    armed = await client_for(nas).list_armed()
    assert [a.job_id for a in armed] == ["a", "b", "c", "d"]
    assert armed[0] == ArmedFire(job_id="a", fire_at=FIRE_AT, schedule_id="s-a")
    assert armed[0].fire_at is not None and armed[0].fire_at.utcoffset() == timedelta(0)
    assert [r.url.params.get("cursor") for r in nas.requests] == [None, "c1", "c2"]
    assert all(r.headers["Authorization"] == "Bearer nas-token" for r in nas.requests)


async def test_list_retries_a_page_without_restarting() -> None:
    nas = Recorder(page("a", cursor="c1"), httpx.Response(503), page("b"))
    armed = await client_for(nas).list_armed()
    assert [a.job_id for a in armed] == ["a", "b"]
    assert [r.url.params.get("cursor") for r in nas.requests] == [None, "c1", "c1"]


async def test_list_stops_on_a_repeated_cursor() -> None:
    nas = Recorder(page("a", cursor="c1"), page("b", cursor="c1"), page("c", cursor="c1"))
    with pytest.raises(NasError) as caught:
        await client_for(nas).list_armed()
    assert "cursor" in str(caught.value)
    assert caught.value.transient is False
    assert len(nas.requests) == 2


async def test_an_armed_that_is_not_a_list_is_a_permanent_error() -> None:
    nas = Recorder(httpx.Response(200, json={"armed": "nope"}))
    with pytest.raises(NasError) as caught:
        await client_for(nas).list_armed()
    assert caught.value.transient is False
    assert len(nas.requests) == 1


@pytest.mark.parametrize(
    ("body", "armed"),
    [
        ({}, []),  # no `armed`: nothing armed
        ({"armed": None}, []),
        ({"armed": []}, []),
        ({"armed": [{"fire_at": "2026-11-26T12:00:00+00:00"}]}, []),  # no job: skipped
        # no usable fire_at: armed at an unknown time (reconcile re-arms it)
        ({"armed": [{"job_id": "a"}]}, [ArmedFire("a", None, "")]),
        ({"armed": [{"job_id": "a", "fire_at": "yesterday"}]}, [ArmedFire("a", None, "")]),
        ({"armed": [{"job_id": "a", "fire_at": 17}]}, [ArmedFire("a", None, "")]),
        # no offset: UTC, never local time; unknown fields ignored; numbers read as text
        (
            {"armed": [{"job_id": 7, "fire_at": "2026-11-26T12:00:00", "schedule_id": 3, "x": 1}]},
            [ArmedFire("7", FIRE_AT, "3")],
        ),
        (
            {"armed": [{"job_id": "a", "fire_at": "2026-11-26T12:00:00.000Z"}]},
            [ArmedFire("a", FIRE_AT, "")],
        ),
    ],
)
async def test_a_list_is_read_tolerantly(body: dict[str, object], armed: list[ArmedFire]) -> None:
    nas = Recorder(httpx.Response(200, json=body))
    assert await client_for(nas).list_armed() == armed


@pytest.mark.parametrize("status", [404, 405, 501])
async def test_a_nas_without_list_says_so(status: int) -> None:
    nas = Recorder(httpx.Response(status))
    with pytest.raises(ListUnsupported):
        await client_for(nas).list_armed()
    assert len(nas.requests) == 1


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_never_success_nor_followed(status: int) -> None:
    """A firewall or SSO page answering 302 armed nothing; the token must not follow it."""
    redirect = httpx.Response(status, headers={"Location": "https://login.example/sso"})
    for call in ("provision", "cancel", "list"):
        nas = Recorder(redirect)
        client = client_for(nas)
        with pytest.raises(NasError) as caught:
            if call == "provision":
                await client.provision("job", FIRE_AT, "https://agent.example")
            elif call == "cancel":
                await client.cancel("job")
            else:
                await client.list_armed()
        assert caught.value.status_code == status
        assert caught.value.transient is False
        assert "redirect" in str(caught.value)
        assert [r.url.host for r in nas.requests] == ["nas.example"]


async def test_a_token_echoed_across_the_cut_leaves_no_fragment() -> None:
    token = "tok-" + "s" * 60
    detail = "x" * 180 + token  # the token straddles the 200-character cut
    nas = Recorder(httpx.Response(422, json={"detail": detail}))
    with pytest.raises(NasError) as caught:
        await client_for(nas, token=token).provision("job", FIRE_AT, "https://agent.example")
    assert "tok-" not in str(caught.value)
    assert "s" * 16 not in str(caught.value)


# -- against the real emulator ---------------------------------------------------------------


async def test_provision_list_cancel_against_the_emulator(tmp_path: Path) -> None:
    async with run_nas(tmp_path) as emulator, httpx.AsyncClient(timeout=10) as http:
        client = NasClient(http, emulator.url + "/", NAS_TOKEN, budget=FAST)
        fire_at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
        assert await client.list_armed() == []

        first = await client.provision("job-1", fire_at, "http://127.0.0.1:9/")
        assert first
        again = await client.provision("job-1", fire_at, "http://127.0.0.1:9")
        assert again == first  # re-arming the same fire is a no-op
        await client.provision("job-2", fire_at + timedelta(minutes=5), "http://127.0.0.1:9")
        later = fire_at + timedelta(hours=1)
        await client.provision("job-1", later, "http://127.0.0.1:9")  # replaces the arm

        armed = {a.job_id: a.fire_at for a in await client.list_armed()}
        assert armed == {"job-1": later, "job-2": fire_at + timedelta(minutes=5)}

        await client.cancel("job-1")
        await client.cancel("never-armed")  # a 200 no-op
        assert [a.job_id for a in await client.list_armed()] == ["job-2"]

        stranger = NasClient(http, emulator.url, "not-a-known-token", budget=FAST)
        with pytest.raises(NasError) as caught:
            await stranger.list_armed()
        assert caught.value.status_code == 401 and caught.value.transient is False
