"""GET /api/usage: the caller's tenant's costs and tokens, and its quotas with their consumption."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from tenantrag.api.deps import CanReadUsage, ServicesDep, TenantDep
from tenantrag.errors import ValidationFailed

router = APIRouter(prefix="/api", tags=["usage"])
MAX_DAYS = 366


@router.get("/usage", summary="Costs and tokens by type, model and day; quota limits and use")
async def usage(
    principal: CanReadUsage,
    tenant: TenantDep,
    services: ServicesDep,
    start: date | None = Query(default=None, alias="from"),
    end: date | None = Query(default=None, alias="to"),
) -> dict[str, Any]:
    """Totals between `from` and `to` (UTC dates, inclusive; default: this month so far)."""
    today = datetime.now(UTC).date()
    end = end or today
    start = start or end.replace(day=1)
    if start > end:
        raise ValidationFailed("`from` must not be after `to`.")
    if end - start > timedelta(days=MAX_DAYS):
        raise ValidationFailed(f"Ask for at most {MAX_DAYS} days at a time.")
    costs = services.c
    await run_in_threadpool(services.accrue_storage, tenant.id)
    await run_in_threadpool(costs.flush)
    report = await run_in_threadpool(costs.ledger.totals, tenant.id, start=start, end=end)
    month = await run_in_threadpool(costs.month_to_date, tenant.id)
    stored = await run_in_threadpool(services.store.usage, tenant.id)
    body = report.as_dict()
    body["quotas"] = {
        "monthly_tokens": {"limit": tenant.monthly_token_budget, "used": month.tokens},
        "monthly_cost_usd": {
            "limit": tenant.monthly_cost_budget_usd,
            "used": round(month.cost_usd, 8),
        },
        "storage_bytes": {"limit": tenant.storage_quota_bytes, "used": stored.bytes},
        "documents": {"limit": tenant.document_quota, "used": stored.documents},
        "resets_at": month.resets_at.isoformat(),
    }
    return body
