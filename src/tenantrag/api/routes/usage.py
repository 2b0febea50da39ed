"""GET /api/usage: the caller's tenant's costs and tokens, and its quotas with their consumption."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from tenantrag.api.deps import CanReadUsage, ServicesDep, TenantDep
from tenantrag.api.schemas import FeedbackTotals, Quota, Quotas, UsageOut
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
) -> UsageOut:
    """Totals between `from` and `to` (UTC dates, inclusive; default: this month so far).

    `feedback` counts the ratings of the tenant's answers given or changed in that period.
    """
    today = datetime.now(UTC).date()
    end = end or today
    start = start or end.replace(day=1)
    if start > end:
        raise ValidationFailed("`from` must not be after `to`.")
    if end - start > timedelta(days=MAX_DAYS):
        raise ValidationFailed(f"Ask for at most {MAX_DAYS} days at a time.")
    costs = services.costs
    stored = await run_in_threadpool(services.store.usage, tenant.id)
    await run_in_threadpool(costs.accrue_storage, tenant.id, stored.bytes)
    await run_in_threadpool(costs.flush)
    report = await run_in_threadpool(costs.ledger.totals, tenant.id, start=start, end=end)
    month = await run_in_threadpool(costs.month_to_date, tenant.id)
    first = datetime.combine(start, time.min, UTC).timestamp()
    after_last = datetime.combine(end + timedelta(days=1), time.min, UTC).timestamp()
    rated = await run_in_threadpool(
        services.store.feedback_counts, tenant.id, start=first, end=after_last
    )
    quotas = Quotas(
        monthly_tokens=Quota(limit=tenant.monthly_token_budget, used=month.tokens),
        monthly_cost_usd=Quota(limit=tenant.monthly_cost_budget_usd, used=round(month.cost_usd, 8)),
        storage_bytes=Quota(limit=tenant.storage_quota_bytes, used=stored.bytes),
        documents=Quota(limit=tenant.document_quota, used=stored.documents),
        resets_at=month.resets_at.isoformat(),
    )
    feedback = FeedbackTotals(up=rated.up, down=rated.down, with_comment=rated.with_comment)
    return UsageOut.model_validate({**report.as_dict(), "quotas": quotas, "feedback": feedback})
