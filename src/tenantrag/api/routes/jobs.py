"""Background ingestion jobs: read one, list them, cancel one (docs/jobs.md).

Jobs are queued by `POST /api/documents?async=true` and `POST /api/documents/upload?async=true`
(routes/documents.py). Another tenant's job is 404, exactly as one that does not exist: the
store looks a job up by (tenant, id) only.
"""

from __future__ import annotations

import re
from functools import partial

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from tenantrag.api.deps import (
    CanReadDocuments,
    CanWriteDocuments,
    IdsDep,
    ServicesDep,
    TenantDep,
)
from tenantrag.api.job_schemas import JOB_STATUS, JobList, JobOut, job_out
from tenantrag.api.redaction import count_redactions, reply_tally
from tenantrag.backends.store import ChangeRecords
from tenantrag.backends.store.jobs import NO_JOB
from tenantrag.errors import NotFound, ValidationFailed
from tenantrag.models import AuditEvent

router = APIRouter(prefix="/api/jobs", tags=["jobs"])
JOB_ID = re.compile(r"[0-9a-f]{24}")  # jobs.new_job_id: 12 hex digits of time, 12 random


@router.get("/{job_id}", summary="A job's status, progress and failed documents")
async def get_job(
    job_id: str, principal: CanReadDocuments, tenant: TenantDep, services: ServicesDep
) -> JobOut:
    """The job, or 404 when it is not the caller's tenant's (or does not exist)."""
    if not JOB_ID.fullmatch(job_id):
        raise NotFound(NO_JOB)
    job = await run_in_threadpool(services.store.get_job, principal.tenant_id, job_id)
    tally = reply_tally(tenant)
    out = job_out(job, tally)
    count_redactions(tally)
    return out


@router.get("", summary="The tenant's jobs, newest first, a page at a time")
async def list_jobs(
    principal: CanReadDocuments,
    tenant: TenantDep,
    services: ServicesDep,
    limit: int = Query(default=20, ge=1, le=100),
    cursor: str | None = Query(default=None, max_length=64),
    status: JOB_STATUS | None = Query(default=None),
) -> JobList:
    """Pass `next_cursor` back as `cursor` for the next page; `status` keeps one status."""
    if cursor is not None and not JOB_ID.fullmatch(cursor):
        raise ValidationFailed("The cursor is not one this API returned.")
    jobs = await run_in_threadpool(
        partial(services.store.list_jobs, limit=limit + 1, before=cursor, status=status),
        principal.tenant_id,
    )
    page = jobs[:limit]
    next_cursor = page[-1].id if len(jobs) > limit and page else None
    tally = reply_tally(tenant)
    shown = [job_out(j, tally) for j in page]
    count_redactions(tally)
    return JobList(jobs=shown, next_cursor=next_cursor)


@router.delete("/{job_id}", status_code=202, summary="Cancel a queued or running job")
async def cancel_job(
    job_id: str,
    principal: CanWriteDocuments,
    tenant: TenantDep,
    services: ServicesDep,
    ids: IdsDep,
) -> JobOut:
    """Stop the job: documents already done stay, no further one is stored; 404 as GET.

    The cancellation commits with its `job_cancel` audit record. A job already over is
    answered as it stands.
    """
    if not JOB_ID.fullmatch(job_id):
        raise NotFound(NO_JOB)
    tenant_id = principal.tenant_id
    audit = AuditEvent("job_cancel", "success", tenant_id, principal.user_id, ids, (job_id,))
    job = await run_in_threadpool(
        services.store.cancel_job, tenant_id, job_id, ChangeRecords(audit)
    )
    tally = reply_tally(tenant)
    out = job_out(job, tally)
    count_redactions(tally)
    return out
