"""The agent-cron API of the emulator over real HTTP: auth, validation, upsert, cancel, list."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from tests.support.emulator import (
    INSTANCE_A,
    INSTANCE_B,
    TOKEN_A,
    TOKEN_B,
    RunningEmulator,
    iso_in,
    provision_body,
)

pytestmark = pytest.mark.asyncio

CALLBACK = "http://agent.invalid:8080"  # never reached: these fires are an hour away
PARIS_SUMMER = timezone(timedelta(hours=2))


async def provision(emulator: RunningEmulator, body: dict[str, Any], token: str = TOKEN_A) -> str:
    response = await emulator.client(token).post("/api/agent-cron/provision", json=body)
    assert response.status_code == 200, response.text
    schedule_id: str = response.json()["schedule_id"]
    return schedule_id


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/api/agent-cron/provision", provision_body("j", iso_in(3600), CALLBACK)),
        ("POST", "/api/agent-cron/cancel", {"job_id": "j"}),
        ("GET", "/api/agent-cron/list", None),
    ],
)
@pytest.mark.parametrize(
    "authorization", [None, "Bearer not-a-known-token", f"Basic {TOKEN_A}", "Bearer"]
)
async def test_agent_endpoints_require_a_known_bearer_token(
    emulator: RunningEmulator,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    authorization: str | None,
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}
    response = await emulator.client(None).request(method, path, json=body, headers=headers)

    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"
    assert await emulator.armed() == []


async def test_provision_then_list_shows_the_arm_in_utc(emulator: RunningEmulator) -> None:
    fire_at = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    local = fire_at.astimezone(PARIS_SUMMER).isoformat()

    schedule_id = await provision(emulator, provision_body("backup", local, CALLBACK))

    assert schedule_id
    assert await emulator.armed() == [
        {"job_id": "backup", "fire_at": fire_at.isoformat(), "schedule_id": schedule_id}
    ]
    assert fire_at.isoformat().endswith("+00:00")


async def test_dedup_key_is_compared_as_an_instant(emulator: RunningEmulator) -> None:
    fire_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    body = provision_body("report", fire_at.astimezone(PARIS_SUMMER).isoformat(), CALLBACK)
    body["dedup_key"] = "report:" + fire_at.isoformat().replace("+00:00", "Z")

    await provision(emulator, body)

    assert [arm["job_id"] for arm in await emulator.armed()] == ["report"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"fire_at": "2030-01-01T09:00:00", "dedup_key": "job-1:2030-01-01T09:00:00"}, "fire_at"),
        ({"fire_at": "tomorrow at nine"}, "fire_at"),
        ({"fire_at": None}, "fire_at"),
        ({"dedup_key": "job-1:2030-01-01T09:00:01+00:00"}, "dedup_key"),
        ({"dedup_key": "other-job:2030-01-01T09:00:00+00:00"}, "dedup_key"),
        ({"dedup_key": "job-1:2030-01-01T09:00:00"}, "dedup_key"),
        ({"dedup_key": None}, "dedup_key"),
        ({"agent_callback_url": "/relative/path"}, "agent_callback_url"),
        ({"agent_callback_url": "ftp://agent.example"}, "agent_callback_url"),
        ({"agent_callback_url": "http://"}, "agent_callback_url"),
        ({"agent_callback_url": "http://agent.example:99999"}, "agent_callback_url"),
        ({"agent_callback_url": "http://agent.example/?x=1"}, "agent_callback_url"),
        ({"agent_callback_url": 42}, "agent_callback_url"),
        ({"job_id": "", "dedup_key": ":2030-01-01T09:00:00+00:00"}, "job_id"),
        ({"job_id": 7}, "job_id"),
        (
            {"job_id": "x" * 201, "dedup_key": "x" * 201 + ":2030-01-01T09:00:00+00:00"},
            "job_id",
        ),
    ],
)
async def test_invalid_provision_is_400_naming_the_field_and_arms_nothing(
    emulator: RunningEmulator, change: dict[str, Any], field: str
) -> None:
    body: dict[str, Any] = {
        **provision_body("job-1", "2030-01-01T09:00:00+00:00", CALLBACK),
        **change,
    }

    response = await emulator.client().post("/api/agent-cron/provision", json=body)

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert response.json()["detail"].startswith(f"{field}:")
    assert await emulator.armed() == []


async def test_a_job_id_of_200_characters_is_accepted(emulator: RunningEmulator) -> None:
    await provision(emulator, provision_body("x" * 200, iso_in(3600), CALLBACK))

    assert len(await emulator.armed()) == 1


@pytest.mark.parametrize("raw", [b"not json", b"[1, 2]", b'"a string"'])
async def test_a_body_that_is_not_a_json_object_is_400(
    emulator: RunningEmulator, raw: bytes
) -> None:
    response = await emulator.client().post(
        "/api/agent-cron/provision", content=raw, headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json() == {"error": "invalid_request", "detail": "body: must be a JSON object"}


async def test_provisioning_the_same_fire_twice_is_a_no_op(emulator: RunningEmulator) -> None:
    body = provision_body("nightly", iso_in(3600), CALLBACK)

    first = await provision(emulator, body)
    second = await provision(emulator, body)

    assert first == second
    assert [arm["schedule_id"] for arm in await emulator.armed()] == [first]


async def test_the_same_instant_in_another_offset_is_the_same_fire(
    emulator: RunningEmulator,
) -> None:
    fire_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
    first = await provision(emulator, provision_body("nightly", fire_at.isoformat(), CALLBACK))
    local = fire_at.astimezone(PARIS_SUMMER).isoformat()

    second = await provision(emulator, provision_body("nightly", local, CALLBACK))

    assert first == second
    assert len(await emulator.armed()) == 1


async def test_a_new_fire_at_replaces_the_arm(emulator: RunningEmulator) -> None:
    first = await provision(emulator, provision_body("nightly", iso_in(3600), CALLBACK))
    later = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)

    second = await provision(emulator, provision_body("nightly", later.isoformat(), CALLBACK))

    assert second != first
    assert await emulator.armed() == [
        {"job_id": "nightly", "fire_at": later.isoformat(), "schedule_id": second}
    ]


async def test_cancel_removes_the_arm_and_unknown_cancel_is_a_no_op(
    emulator: RunningEmulator,
) -> None:
    await provision(emulator, provision_body("keep", iso_in(3600), CALLBACK))
    await provision(emulator, provision_body("drop", iso_in(3600), CALLBACK))
    client = emulator.client()

    cancelled = await client.post("/api/agent-cron/cancel", json={"job_id": "drop"})
    unknown = await client.post("/api/agent-cron/cancel", json={"job_id": "never-armed"})

    assert cancelled.status_code == 200
    assert cancelled.json() == {"ok": True}
    assert unknown.status_code == 200
    assert unknown.json() == {"ok": True}
    assert [arm["job_id"] for arm in await emulator.armed()] == ["keep"]


async def test_cancel_without_job_id_is_400(emulator: RunningEmulator) -> None:
    response = await emulator.client().post("/api/agent-cron/cancel", json={})

    assert response.status_code == 400
    assert response.json()["detail"].startswith("job_id:")


async def test_agents_only_see_and_cancel_their_own_arms(emulator: RunningEmulator) -> None:
    a_shared = await provision(emulator, provision_body("shared", iso_in(3600), CALLBACK), TOKEN_A)
    await provision(emulator, provision_body("only-a", iso_in(3600), CALLBACK), TOKEN_A)
    b_shared = await provision(emulator, provision_body("shared", iso_in(7200), CALLBACK), TOKEN_B)

    await emulator.client(TOKEN_B).post("/api/agent-cron/cancel", json={"job_id": "only-a"})

    assert a_shared != b_shared
    assert [arm["job_id"] for arm in await emulator.armed(TOKEN_A)] == ["only-a", "shared"]
    assert [arm["schedule_id"] for arm in await emulator.armed(TOKEN_B)] == [b_shared]
    everything = (await emulator.client(None).get("/_emulator/arms")).json()["arms"]
    assert sorted((arm["instance_id"], arm["job_id"]) for arm in everything) == [
        (INSTANCE_A, "only-a"),
        (INSTANCE_A, "shared"),
        (INSTANCE_B, "shared"),
    ]


async def test_list_paginates_with_next_cursor(emulator: RunningEmulator) -> None:
    job_ids = [f"job-{i:02d}" for i in range(7)]
    for job_id in reversed(job_ids):
        await provision(emulator, provision_body(job_id, iso_in(3600), CALLBACK))
    client = emulator.client()

    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/agent-cron/list", params=params)
        assert response.status_code == 200
        payload = response.json()
        pages.append([arm["job_id"] for arm in payload["armed"]])
        cursor = payload.get("next_cursor")
        if not cursor:
            break

    assert pages == [job_ids[0:3], job_ids[3:6], job_ids[6:7]]
    assert "next_cursor" not in (await client.get("/api/agent-cron/list")).json()


@pytest.mark.parametrize(
    ("params", "field"),
    [({"limit": 0}, "limit"), ({"limit": 1001}, "limit"), ({"cursor": "%%%"}, "cursor")],
)
async def test_list_rejects_bad_paging_parameters(
    emulator: RunningEmulator, params: dict[str, Any], field: str
) -> None:
    response = await emulator.client().get("/api/agent-cron/list", params=params)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"
    assert response.json()["detail"].startswith(f"{field}:")


async def test_list_accepts_the_maximum_limit(emulator: RunningEmulator) -> None:
    response = await emulator.client().get("/api/agent-cron/list", params={"limit": 1000})

    assert response.status_code == 200
    assert response.json() == {"armed": []}


async def test_jwks_publishes_the_rs256_public_key(emulator: RunningEmulator) -> None:
    response = await emulator.client(None).get("/.well-known/jwks.json")

    assert response.status_code == 200
    (key,) = response.json()["keys"]
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert key["use"] == "sig"
    assert key["e"] == "AQAB"
    assert len(key["n"]) > 300  # a 2048-bit modulus, base64url
    assert key["kid"]
    assert "d" not in key and "p" not in key  # never the private parts


async def test_healthz_and_unknown_routes(emulator: RunningEmulator) -> None:
    client = emulator.client(None)

    health = await client.get("/healthz")
    missing = await client.get("/api/agent-cron/nope")

    assert health.json() == {"status": "ok"}
    assert missing.status_code == 404
    assert missing.json()["error"] == "not_found"
