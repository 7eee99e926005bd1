"""Bodies of `POST /api/jobs/batch`: many jobs created at once, all or none."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from app.jobs.schemas import JobOut

MAX_BATCH_JOBS = 1000

# Items are judged one by one (`app.jobs.batch`), so that every invalid one is named by its
# index; the document still shows each item as the body of `POST /api/jobs`.
_ITEMS_SCHEMA = {
    "type": "array",
    "items": {"$ref": "#/components/schemas/JobCreate"},
    "minItems": 1,
    "maxItems": MAX_BATCH_JOBS,
    "description": f"1 to {MAX_BATCH_JOBS} jobs, each what `POST /api/jobs` takes",
}


class JobBatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: Annotated[
        list[Any], Field(min_length=1, max_length=MAX_BATCH_JOBS), WithJsonSchema(_ITEMS_SCHEMA)
    ]


class JobBatchOut(BaseModel):
    jobs: list[JobOut] = Field(description="the jobs created, in the order of the request")


class BatchItemError(BaseModel):
    index: int = Field(description="the item's position in `jobs`, from 0")
    field: str | None = Field(
        description="the item's field, as `target.url`; null when the item is not an object"
    )
    detail: str = Field(description="what is wrong with it (the value is never echoed)")


class BatchErrorOut(BaseModel):
    """A refused batch: nothing was created. `items` names every invalid item (up to five
    problems each) when the batch was refused for its items."""

    error: str = Field(examples=["invalid_request"])
    detail: str = Field(examples=["jobs[3].schedule: cannot parse schedule 'every whenever'"])
    items: list[BatchItemError] = Field(default_factory=list)
