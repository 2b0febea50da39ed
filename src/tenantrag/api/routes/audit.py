"""GET /api/audit: the caller's tenant's own audit records, newest first (audit:read)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from tenantrag.api.deps import ServicesDep, require
from tenantrag.api.schemas import AuditOut, AuditRecord
from tenantrag.models import Permission, Principal

router = APIRouter(prefix="/api", tags=["audit"])
CanReadAudit = Annotated[Principal, Depends(require(Permission.AUDIT_READ))]


@router.get("/audit", summary="Your tenant's audit records, newest first")
async def audit_records(
    services: ServicesDep,
    principal: CanReadAudit,
    limit: int = Query(default=100, ge=1, le=1000),
    before: int | None = Query(default=None, ge=1, description="only records with a lower seq"),
) -> AuditOut:
    """Records of the caller's tenant only: action, outcome, user, ids, request and trace ids."""
    # The store filters by tenant in SQL, and drops a record whose JSON names another tenant.
    records = await run_in_threadpool(
        services.store.audit_records, principal.tenant_id, limit=limit, before=before
    )
    next_before = records[-1]["seq"] if len(records) == limit else None
    return AuditOut(
        records=[AuditRecord.model_validate(r) for r in records], next_before=next_before
    )
