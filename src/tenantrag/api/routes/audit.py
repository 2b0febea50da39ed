"""GET /api/audit: the caller's tenant's own audit records, newest first (audit:read)."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.concurrency import run_in_threadpool

from tenantrag.api.deps import ServicesDep, require
from tenantrag.api.schemas import AuditOut, AuditRecord
from tenantrag.models import Permission, Principal

router = APIRouter(prefix="/api", tags=["audit"])
CanReadAudit = Annotated[Principal, Depends(require(Permission.AUDIT_READ))]


def tenant_records(
    path: Path, tenant_id: str, *, limit: int, before: int | None
) -> list[dict[str, Any]]:
    """The newest `limit` records of `tenant_id` (with seq below `before`), newest first.

    The log is shared by all tenants; every record is filtered by its tenant_id field, so a
    record of another tenant (or one without a tenant, such as a refused token) never leaves.
    """
    if not path.exists():
        return []
    kept: deque[dict[str, Any]] = deque(maxlen=limit)
    with path.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a torn last line; `tenantrag audit verify` reports it
            if record.get("tenant_id") != tenant_id:
                continue
            if before is not None and int(record.get("seq", 0)) >= before:
                continue
            kept.append(record)
    return list(reversed(kept))


@router.get("/audit", summary="Your tenant's audit records, newest first")
async def audit_records(
    services: ServicesDep,
    principal: CanReadAudit,
    limit: int = Query(default=100, ge=1, le=1000),
    before: int | None = Query(default=None, ge=1, description="only records with a lower seq"),
) -> AuditOut:
    """Records of the caller's tenant only: action, outcome, user, ids, request and trace ids."""
    records = await run_in_threadpool(
        tenant_records,
        services.settings.audit_path,
        principal.tenant_id,
        limit=limit,
        before=before,
    )
    next_before = records[-1]["seq"] if len(records) == limit else None
    return AuditOut(
        records=[AuditRecord.model_validate(r) for r in records], next_before=next_before
    )
