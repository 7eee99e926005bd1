"""Bodies of `POST /api/jobs/apply`: the jobs a deployment should have, keyed by name."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from app.jobs.batch_schemas import MAX_BATCH_JOBS
from app.jobs.schemas import MAX_NAME_LENGTH, JobCreate, JobOut
from app.validation import SafeText

# Items are judged one by one (`app.jobs.apply`), so that every invalid one is named by its
# index; the document still shows each item: a `JobCreate` whose `name` is required.
_ITEMS_SCHEMA = {
    "type": "array",
    "items": {"allOf": [{"$ref": "#/components/schemas/JobCreate"}, {"required": ["name"]}]},
    "minItems": 1,
    "maxItems": MAX_BATCH_JOBS,
    "description": f"1 to {MAX_BATCH_JOBS} jobs, each what `POST /api/jobs` takes with a"
    " `name`, unique in the list",
}


class JobDeclared(JobCreate):
    """A job as a file declares it: what `POST /api/jobs` takes, its `name` required (the
    key apply matches stored jobs by)."""

    name: SafeText = Field(min_length=1, max_length=MAX_NAME_LENGTH)


class JobApply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: Annotated[
        list[Any], Field(min_length=1, max_length=MAX_BATCH_JOBS), WithJsonSchema(_ITEMS_SCHEMA)
    ]
    prune: bool = Field(
        default=False, description="also delete (and cancel at NAS) every job not in `jobs`"
    )
    dry_run: bool = Field(
        default=False, description="only answer what the apply would do; change nothing"
    )


class JobApplyOut(BaseModel):
    """What the apply did (or, on a dry run, would do), by job name: `created`, `updated` and
    `unchanged` in the order of `jobs`, `deleted` oldest first."""

    dry_run: bool
    created: list[str]
    updated: list[str]
    unchanged: list[str]
    deleted: list[str] = Field(description="with `prune`: the jobs not in `jobs`")
    changes: dict[str, list[str]] = Field(
        description="for each updated job, the fields that differ (`schedule`, `target`, …)"
    )
    jobs: list[JobOut] = Field(
        description="the jobs of the request as stored after the apply, in its order; empty on"
        " a dry run"
    )
