"""Reading a `/metrics` page the way Prometheus does (`prometheus_client.parser`)."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.support.agent import Agent


def samples(text: str) -> list[Sample]:
    return [sample for family in text_string_to_metric_families(text) for sample in family.samples]


def value(text: str, name: str, **labels: str) -> float | None:
    """The sample `name` whose labels include `labels`; None when there is none."""
    found = [
        s.value
        for s in samples(text)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) <= 1, f"{name} {labels} matches {len(found)} samples"
    return found[0] if found else None


async def scrape(agent: Agent) -> str:
    response = await agent.client.get("/metrics", headers=agent.admin_headers)
    assert response.status_code == 200, response.text
    return response.text
