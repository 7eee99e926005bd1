"""The documents in `contract/` hold: they match the app, the NAS client and the emulator.

- `contract/agent.openapi.json` is exactly the app's OpenAPI plus the hand-written examples,
  so any change of the agent's HTTP surface without a contract change fails here.
- `contract/nas.openapi.yaml` describes what the agent's NAS client really sends, how it
  really classifies NAS failures, and what the emulator really answers.
- `contract/nas-emulator.openapi.yaml` lists exactly the emulator's own routes.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
import yaml

from app.emulator import EmulatorConfig, create_emulator_app
from app.nas import NasClient, NasError, RetryBudget
from tests.contract.schema_check import resolve, validate

REPO = Path(__file__).resolve().parents[2]
CONTRACT = REPO / "contract"
NAS_PATHS = {
    "/api/agent-cron/provision": "post",
    "/api/agent-cron/cancel": "post",
    "/api/agent-cron/list": "get",
}
HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
PORTAL = "https://portal.example.com"
NAS_TOKEN = "portal-access-token-of-the-agent"
NO_WAIT = RetryBudget(attempts=3, max_seconds=10, initial_wait=0, max_wait=0)


def _load_generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "chronos_contract_generate", CONTRACT / "generate.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


generate = _load_generator()


def _yaml(name: str) -> dict[str, Any]:
    document = yaml.safe_load((CONTRACT / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict), f"{name} is not a YAML mapping"
    return document


@pytest.fixture(scope="module")
def nas_doc() -> dict[str, Any]:
    return _yaml("nas.openapi.yaml")


@pytest.fixture(scope="module")
def emulator_doc() -> dict[str, Any]:
    return _yaml("nas-emulator.openapi.yaml")


def _deref(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = resolve(document, node["$ref"])
    return node


def _request_schema(document: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    operation = document["paths"][path][method]
    schema: dict[str, Any] = operation["requestBody"]["content"]["application/json"]["schema"]
    return schema


def _operations(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (path, method)
        for path, item in document.get("paths", {}).items()
        for method in item
        if method in HTTP_METHODS
    }


def _media_examples(
    document: dict[str, Any], section: str = "paths"
) -> Iterator[tuple[str, Any, Any]]:
    """(where, schema, example value) for every example of every request and response body."""
    for path, item in document.get(section, {}).items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            bodies = [("request", operation.get("requestBody"))]
            bodies += list(operation.get("responses", {}).items())
            for status, body in bodies:
                if body is None:
                    continue
                body = _deref(document, body)
                for media in body.get("content", {}).values():
                    for name, example in media.get("examples", {}).items():
                        where = f"{method.upper()} {path} {status} example {name!r}"
                        yield where, media.get("schema"), example["value"]


# -- (a) the agent's own surface ---------------------------------------------------------------


def test_agent_contract_is_the_apps_openapi_with_the_examples() -> None:
    expected = generate.render(generate.build_document())
    stale = generate.check(expected)
    assert not stale, "\n".join(
        [*stale, "run: .venv/bin/python contract/generate.py (and review the diff)"]
    )


def test_agent_contract_is_openapi_31_with_the_fire_health_and_admin_routes() -> None:
    document = json.loads((CONTRACT / "agent.openapi.json").read_text(encoding="utf-8"))
    assert document["openapi"].startswith("3.1.")
    operations = _operations(document)
    assert ("/api/cron/fire", "post") in operations
    assert {("/healthz", "get"), ("/readyz", "get")} <= operations
    assert {
        ("/api/jobs", "post"),
        ("/api/jobs/{job_id}", "patch"),
        ("/api/reconcile", "post"),
    } <= operations
    fire = document["paths"]["/api/cron/fire"]["post"]["responses"]
    assert {"200", "202", "400", "401", "413", "503"} <= set(fire)


def test_every_agent_example_validates_against_its_schema() -> None:
    document = json.loads((CONTRACT / "agent.openapi.json").read_text(encoding="utf-8"))
    checked = 0
    for where, schema, value in _media_examples(document):
        if schema:
            assert validate(value, schema, document) == [], where
            checked += 1
    assert checked >= 20  # most examples have a schema to meet


def test_fire_examples_of_the_agent_meet_the_nas_webhook(nas_doc: dict[str, Any]) -> None:
    """The agent's answers to a fire are what NAS's side of the contract documents."""
    examples = generate.load_examples()
    webhook = nas_doc["webhooks"]["cronFire"]["post"]
    request_schema = webhook["requestBody"]["content"]["application/json"]["schema"]
    for name, example in examples["POST /api/cron/fire request"].items():
        assert validate(example["value"], request_schema, nas_doc) == [], name
    for status in ("200", "202", "400", "401", "413", "503"):
        schema = webhook["responses"][status]["content"]["application/json"]["schema"]
        for name, example in examples[f"POST /api/cron/fire {status}"].items():
            assert validate(example["value"], schema, nas_doc) == [], f"{status} {name}"


def test_merging_an_example_for_an_undeclared_operation_or_status_fails() -> None:
    document = generate.app_openapi()
    example = {"x": {"summary": "x", "value": {}}}
    with pytest.raises(generate.ExampleError, match="no operation"):
        generate.merge_examples(document, {"GET /api/nowhere 200": example})
    with pytest.raises(generate.ExampleError, match="declares no 418"):
        generate.merge_examples(document, {"GET /healthz 418": example})
    with pytest.raises(generate.ExampleError, match="needs a 'value'"):
        generate.merge_examples(document, {"GET /healthz 200": {"x": {"summary": "no value"}}})
    merged = generate.merge_examples(document, {"GET /healthz 200": example})
    media = merged["paths"]["/healthz"]["get"]["responses"]["200"]["content"]["application/json"]
    assert media["examples"] == example
    assert (
        "examples"
        not in document["paths"]["/healthz"]["get"]["responses"]["200"]["content"][
            "application/json"
        ]
    ), "merge_examples must not change its input"


# -- (b) the NAS document ------------------------------------------------------------------------


def test_nas_contract_is_openapi_31_with_the_three_paths(nas_doc: dict[str, Any]) -> None:
    assert str(nas_doc["openapi"]).startswith("3.1.")
    assert _operations(nas_doc) == set(NAS_PATHS.items())
    for path, method in NAS_PATHS.items():
        operation = nas_doc["paths"][path][method]
        assert "200" in operation["responses"], path
        for status in ("400", "401", "429", "5XX"):
            assert status in operation["responses"], f"{path} documents no {status}"
    schemes = nas_doc["components"]["securitySchemes"]
    assert schemes["agentToken"] == {**schemes["agentToken"], "type": "http", "scheme": "bearer"}
    assert nas_doc["security"] == [{"agentToken": []}]
    assert "cronFire" in nas_doc["webhooks"]


def test_nas_contract_documents_the_fire_token(nas_doc: dict[str, Any]) -> None:
    claims = nas_doc["components"]["schemas"]["FireTokenClaims"]
    assert {"iss", "aud", "purpose", "iat", "exp"} <= set(claims["required"])
    assert claims["properties"]["purpose"] == {"const": "cron_fire"}
    algorithms = set(
        nas_doc["components"]["schemas"]["FireTokenHeader"]["properties"]["alg"]["enum"]
    )
    assert {"RS256", "ES256"} <= algorithms
    assert not {a for a in algorithms if a.startswith("HS") or a == "none"}
    from app.auth import ALLOWED_ALGORITHMS, FIRE_PURPOSE

    assert algorithms == set(ALLOWED_ALGORITHMS)
    assert FIRE_PURPOSE == "cron_fire"


@pytest.mark.parametrize("name", ["nas.openapi.yaml", "nas-emulator.openapi.yaml"])
def test_every_operation_has_examples_that_validate(name: str) -> None:
    document = _yaml(name)
    seen: dict[str, int] = {}
    for section in ("paths", "webhooks"):
        for where, schema, value in _media_examples(document, section):
            assert schema is not None, f"{name}: {where} has no schema"
            assert validate(value, schema, document) == [], f"{name}: {where}"
            operation = where.rsplit(" ", 3)[0]
            seen[operation] = seen.get(operation, 0) + 1
    for path, method in _operations(document):
        assert seen.get(f"{method.upper()} {path}"), (
            f"{name}: {method.upper()} {path} has no example"
        )


# -- (c) the agent's NAS client sends what the contract says -------------------------------------


class Recorder:
    """A NAS stand-in for `httpx.MockTransport`: records requests, answers from a script."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.requests: list[httpx.Request] = []
        self.answer = answer
        self.http = httpx.AsyncClient(transport=httpx.MockTransport(self))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def client(self) -> NasClient:
        return NasClient(self.http, PORTAL + "/", NAS_TOKEN, budget=NO_WAIT)


def _ok(request: httpx.Request) -> httpx.Response:
    if request.url.path.endswith("/provision"):
        return httpx.Response(200, json={"schedule_id": "sch_1"})
    if request.url.path.endswith("/cancel"):
        return httpx.Response(200, json={"ok": True})
    return httpx.Response(200, json={"armed": []})


def _assert_nas_request(request: httpx.Request, path: str, method: str) -> None:
    assert request.method == method.upper()
    assert str(request.url).startswith(PORTAL + path)
    assert request.headers["authorization"] == f"Bearer {NAS_TOKEN}"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "fire_at",
    [
        datetime(2026, 11, 27, 9, 15, tzinfo=UTC),
        datetime(2026, 11, 27, 10, 15, tzinfo=timezone(timedelta(hours=1))),  # same instant
    ],
)
async def test_provision_body_meets_the_contract(
    nas_doc: dict[str, Any], fire_at: datetime
) -> None:
    nas = Recorder(_ok)
    client = nas.client()
    schedule_id = await client.provision(
        "a4b42c0531f84d5dbd3fa603a14c29d6", fire_at, "https://agent.example.net/"
    )
    await nas.http.aclose()

    assert schedule_id == "sch_1"
    [request] = nas.requests
    _assert_nas_request(request, "/api/agent-cron/provision", "post")
    body = json.loads(request.content)
    schema = _request_schema(nas_doc, "/api/agent-cron/provision", "post")
    assert validate(body, schema, nas_doc) == []
    # What a schema cannot say: the key is built from the fire_at actually sent, in UTC.
    assert body["dedup_key"] == f"{body['job_id']}:{body['fire_at']}"
    assert body["fire_at"] == "2026-11-27T09:15:00+00:00"
    assert body["agent_callback_url"] == "https://agent.example.net"


@pytest.mark.asyncio
async def test_cancel_body_meets_the_contract(nas_doc: dict[str, Any]) -> None:
    nas = Recorder(_ok)
    client = nas.client()
    await client.cancel("81c8f0ae763c4351b7af28a1cd53bbc3")
    await nas.http.aclose()

    [request] = nas.requests
    _assert_nas_request(request, "/api/agent-cron/cancel", "post")
    schema = _request_schema(nas_doc, "/api/agent-cron/cancel", "post")
    assert validate(json.loads(request.content), schema, nas_doc) == []


@pytest.mark.asyncio
async def test_list_uses_only_documented_parameters_and_follows_next_cursor(
    nas_doc: dict[str, Any],
) -> None:
    pages = {
        None: {
            "armed": [{"job_id": "a", "fire_at": "2026-11-27T09:15:00+00:00", "schedule_id": "s1"}],
            "next_cursor": "c2",
        },
        "c2": {
            "armed": [{"job_id": "b", "fire_at": "2026-11-27T09:30:00Z", "schedule_id": "s2"}],
            "next_cursor": None,
        },
    }
    schema = nas_doc["paths"]["/api/agent-cron/list"]["get"]["responses"]["200"]["content"][
        "application/json"
    ]["schema"]
    for page in pages.values():
        assert validate(page, schema, nas_doc) == []  # the script itself is a valid NAS answer

    nas = Recorder(
        lambda request: httpx.Response(200, json=pages[request.url.params.get("cursor")])
    )
    client = nas.client()
    armed = await client.list_armed()
    await nas.http.aclose()

    assert [(a.job_id, a.schedule_id) for a in armed] == [("a", "s1"), ("b", "s2")]
    assert armed[1].fire_at == datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    documented = {p["name"] for p in nas_doc["paths"]["/api/agent-cron/list"]["get"]["parameters"]}
    for request in nas.requests:
        _assert_nas_request(request, "/api/agent-cron/list", "get")
        assert set(request.url.params) <= documented
    assert [r.url.params.get("cursor") for r in nas.requests] == [None, "c2"]


def _documented_handling(nas_doc: dict[str, Any]) -> dict[str, str]:
    responses = nas_doc["paths"]["/api/agent-cron/provision"]["post"]["responses"]
    return {status: _deref(nas_doc, r)["x-agent-handling"] for status, r in responses.items()}


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [400, 401, 403, 404, 429, 500, 502, 503, 504])
async def test_nas_failures_are_retried_exactly_as_documented(
    nas_doc: dict[str, Any], status: int
) -> None:
    handling = _documented_handling(nas_doc)
    documented = handling.get(str(status)) or handling.get(f"{str(status)[0]}XX")
    # A 4xx the document does not list is permanent, as the overview table says.
    expected = documented or "permanent"
    headers = {"Retry-After": "0"} if status == 429 else None
    nas = Recorder(
        lambda _request: httpx.Response(status, json={"error": "e", "detail": "d"}, headers=headers)
    )
    client = nas.client()
    with pytest.raises(NasError) as failure:
        await client.provision(
            "81c8f0ae763c4351b7af28a1cd53bbc3",
            datetime(2030, 1, 1, tzinfo=UTC),
            "https://agent.example",
        )
    await nas.http.aclose()

    assert failure.value.status_code == status
    assert failure.value.transient is (expected == "transient")
    # A refused credential is refreshed and the call sent once more, then it is permanent.
    sent = {"transient": NO_WAIT.attempts, "refresh-then-permanent": 2}.get(expected, 1)
    assert len(nas.requests) == sent


@pytest.mark.asyncio
async def test_transport_errors_are_retried(nas_doc: dict[str, Any]) -> None:
    assert "transport error" in nas_doc["info"]["description"]

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    nas = Recorder(refuse)
    client = nas.client()
    with pytest.raises(NasError) as failure:
        await client.cancel("81c8f0ae763c4351b7af28a1cd53bbc3")
    await nas.http.aclose()
    assert failure.value.transient
    assert len(nas.requests) == NO_WAIT.attempts


# -- (d) the emulator serves the NAS surface and nothing undocumented ------------------------------


@pytest.fixture(scope="module")
def emulator_app() -> Any:
    config = EmulatorConfig(public_url="http://nas.test", agent_tokens={NAS_TOKEN: "contract"})
    return create_emulator_app(config)


def test_emulator_exposes_the_three_nas_paths(emulator_app: Any) -> None:
    operations = _operations(emulator_app.openapi())
    assert set(NAS_PATHS.items()) <= operations
    for path, method in NAS_PATHS.items():
        assert {m for p, m in operations if p == path} == {method}, path


def test_emulator_routes_are_the_nas_ones_plus_the_documented_emulator_ones(
    emulator_app: Any, emulator_doc: dict[str, Any]
) -> None:
    operations = _operations(emulator_app.openapi())
    assert operations - set(NAS_PATHS.items()) == _operations(emulator_doc)


@pytest.mark.asyncio
async def test_emulator_answers_meet_the_nas_contract(
    emulator_app: Any, nas_doc: dict[str, Any]
) -> None:
    """The agent's real client against the real emulator app (over ASGI, no lifespan)."""

    def schema(path: str, status: str) -> dict[str, Any]:
        method = NAS_PATHS[path]
        response = _deref(nas_doc, nas_doc["paths"][path][method]["responses"][status])
        found: dict[str, Any] = response["content"]["application/json"]["schema"]
        return found

    transport = httpx.ASGITransport(app=emulator_app)
    async with httpx.AsyncClient(transport=transport, base_url="http://nas.test") as raw:
        client = NasClient(raw, "http://nas.test", NAS_TOKEN, budget=NO_WAIT)
        fire_at = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
        first = await client.provision("job-a", fire_at, "http://agent.test")
        assert await client.provision("job-a", fire_at, "http://agent.test") == first
        await client.provision("job-b", fire_at + timedelta(seconds=30), "http://agent.test")
        armed = {a.job_id: a for a in await client.list_armed()}
        assert armed["job-a"].fire_at == fire_at and armed["job-a"].schedule_id == first
        await client.cancel("job-b")
        await client.cancel("never-armed")  # unknown job: a 200 no-op
        assert [a.job_id for a in await client.list_armed()] == ["job-a"]

        auth = {"Authorization": f"Bearer {NAS_TOKEN}"}
        answers = {
            ("/api/agent-cron/provision", "200"): await raw.post(
                "/api/agent-cron/provision",
                headers=auth,
                json={
                    "job_id": "job-c",
                    "fire_at": fire_at.isoformat(),
                    "agent_callback_url": "http://agent.test",
                    "dedup_key": f"job-c:{fire_at.isoformat()}",
                },
            ),
            ("/api/agent-cron/cancel", "200"): await raw.post(
                "/api/agent-cron/cancel", headers=auth, json={"job_id": "unknown"}
            ),
            ("/api/agent-cron/list", "200"): await raw.get(
                "/api/agent-cron/list", headers=auth, params={"limit": 1}
            ),
            ("/api/agent-cron/provision", "400"): await raw.post(
                "/api/agent-cron/provision",
                headers=auth,
                json={"job_id": "x", "fire_at": "2026-11-27T09:15:00"},
            ),
            ("/api/agent-cron/cancel", "401"): await raw.post(
                "/api/agent-cron/cancel", json={"job_id": "x"}
            ),
            ("/api/agent-cron/list", "400"): await raw.get(
                "/api/agent-cron/list", headers=auth, params={"cursor": "not-a-cursor"}
            ),
        }
    for (path, status), response in answers.items():
        assert response.status_code == int(status), (path, response.text)
        assert validate(response.json(), schema(path, status), nas_doc) == [], (path, status)
    page = answers[("/api/agent-cron/list", "200")].json()
    assert len(page["armed"]) == 1 and page["next_cursor"]  # 2 arms, limit 1: a next page
