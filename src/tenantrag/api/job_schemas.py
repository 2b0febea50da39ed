"""The background ingestion wire shapes (docs/api.md, "Background ingestion")."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from tenantrag.backends.store.jobs import Job

JOB_STATUS = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobAccepted(BaseModel):
    """A job queued: follow it at `Location` (GET /api/jobs/{job_id})."""

    job_id: str
    status: Literal["queued"] = "queued"


class JobErrorOut(BaseModel):
    """A document of the job that could not be stored: its id, an error code and message."""

    id: str
    code: str
    message: str


class JobOut(BaseModel):
    """A job's progress: documents done and failed of `total`, and why each failure failed.

    `errors` lists the first 100 failed documents (all of them are counted in `failed`).
    Times are seconds since the epoch.
    """

    job_id: str
    status: JOB_STATUS
    total: int
    done: int
    failed: int
    errors: list[JobErrorOut]
    created_at: float
    started_at: float | None
    finished_at: float | None


class JobList(BaseModel):
    """One page of the tenant's jobs, newest first, and the cursor of the next."""

    jobs: list[JobOut]
    next_cursor: str | None


def job_out(job: Job) -> JobOut:
    """The wire form of a job."""
    return JobOut(
        job_id=job.id,
        status=job.status,
        total=job.total,
        done=job.done,
        failed=job.failed,
        errors=[JobErrorOut(id=e.id, code=e.code, message=e.message) for e in job.errors],
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
    )
