"""/api/admin/tenants: tenant administration with a platform operator's credential.

Only a platform credential (`tenantrag token --platform-admin`: tenant `_platform`, permission
`platform:admin`) reaches these routes; the auth middleware refuses any tenant's credential
here with 403, whatever it claims. Every change is audited in the chain of the tenant it
changes, with the operator as its user.

Suspending a tenant moves its `tokens_valid_after` to now, so activating it again does not
revive the tokens and keys issued before. Deleting a tenant erases it (docs/identity.md,
"Erasure"): synchronously, in one store transaction plus this node's index files and the
cache; the other nodes delete their copies when they read the erase entry of the change log.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.concurrency import run_in_threadpool

from tenantrag.api.deps import IdsDep, ServicesDep, get_principal
from tenantrag.api.identity_schemas import (
    ErasureOut,
    TenantIn,
    TenantLimits,
    TenantList,
    TenantOut,
    TenantPatch,
)
from tenantrag.backends.store import ChangeRecords
from tenantrag.errors import Conflict, NotFound, PermissionDenied
from tenantrag.models import (
    TENANT_ID_PATTERN,
    AuditEvent,
    AutoClassify,
    Principal,
    RequestIds,
    Tenant,
    TenantStatus,
)

router = APIRouter(prefix="/api/admin", tags=["admin"])
TENANT_ID = Path(pattern=f"^{TENANT_ID_PATTERN.pattern}$")
# API field -> the tenants table's column
FIELDS = {
    "rate_limit_per_minute": "rate_limit",
    "storage_quota_bytes": "storage_quota_bytes",
    "document_quota": "document_quota",
    "monthly_token_budget": "monthly_token_budget",
    "monthly_cost_budget_usd": "monthly_cost_budget_usd",
    "auto_classify": "auto_classify",
}


async def platform_admin(request: Request) -> Principal:
    """The caller, who must hold a platform credential (the middleware checked it too)."""
    principal = await get_principal(request)
    if not principal.platform:
        raise PermissionDenied("This needs the 'platform:admin' permission.")
    return principal


PlatformAdmin = Annotated[Principal, Depends(platform_admin)]
TenantIdPath = Annotated[str, TENANT_ID]


def tenant_out(tenant: Tenant) -> TenantOut:
    """A tenant as the admin API shows it."""
    return TenantOut(
        id=tenant.id,
        status=tenant.status.value,
        rate_limit_per_minute=tenant.rate_limit,
        storage_quota_bytes=tenant.storage_quota_bytes,
        document_quota=tenant.document_quota,
        monthly_token_budget=tenant.monthly_token_budget,
        monthly_cost_budget_usd=tenant.monthly_cost_budget_usd,
        auto_classify=tenant.auto_classify.value,
        created_at=tenant.created_at,
        tokens_valid_after=tenant.tokens_valid_after,
    )


def _fields(body: TenantLimits) -> dict[str, Any]:
    given = body.model_dump(exclude_none=True, include=set(FIELDS))
    return {FIELDS[name]: value for name, value in given.items()}


def _records(
    action: str, tenant_id: str, principal: Principal, ids: RequestIds, detail: dict[str, Any]
) -> ChangeRecords:
    scalars = {
        k: v if isinstance(v, str | int | float | bool) else str(v) for k, v in detail.items()
    }
    return ChangeRecords(
        AuditEvent(action, "success", tenant_id, principal.user_id, ids, (tenant_id,), scalars)
    )


async def _tenant(services: Any, tenant_id: str) -> Tenant:
    tenant: Tenant | None = await run_in_threadpool(services.store.get_tenant, tenant_id)
    if tenant is None:
        raise NotFound(f"No tenant {tenant_id!r}.")
    return tenant


@router.post("/tenants", status_code=201, summary="Create a tenant")
async def create_tenant(
    body: TenantIn, principal: PlatformAdmin, services: ServicesDep, ids: IdsDep
) -> TenantOut:
    """201 with the tenant; 409 if the id is taken (an erased tenant's id stays taken)."""
    settings = services.settings
    fields: dict[str, Any] = {
        "rate_limit": settings.rate_limit_per_minute,
        "bm25_weight": settings.retrieval.bm25_weight,
        "vector_weight": settings.retrieval.vector_weight,
        "fusion": settings.retrieval.fusion,
        **_fields(body),
    }
    if "auto_classify" in fields:
        fields["auto_classify"] = AutoClassify(fields["auto_classify"])
    records = _records("tenant_created", body.id, principal, ids, _fields(body))
    try:
        created = await run_in_threadpool(
            services.store.create_tenant, Tenant(id=body.id, **fields), records
        )
    except ValueError:
        raise Conflict(f"The tenant id {body.id!r} is taken; choose another.") from None
    return tenant_out(created)


@router.get("/tenants", summary="Every tenant, erased ones included")
async def list_tenants(principal: PlatformAdmin, services: ServicesDep) -> TenantList:
    """Tenants by id, with their status, limits and quotas."""
    tenants = await run_in_threadpool(services.store.list_tenants)
    return TenantList(tenants=[tenant_out(t) for t in tenants])


@router.get("/tenants/{tenant_id}", summary="One tenant")
async def get_tenant(
    tenant_id: TenantIdPath, principal: PlatformAdmin, services: ServicesDep
) -> TenantOut:
    """The tenant; 404 when unknown."""
    return tenant_out(await _tenant(services, tenant_id))


@router.patch("/tenants/{tenant_id}", summary="Change a tenant's limits, quotas or status")
async def update_tenant(
    tenant_id: TenantIdPath,
    body: TenantPatch,
    principal: PlatformAdmin,
    services: ServicesDep,
    ids: IdsDep,
) -> TenantOut:
    """The tenant after the change. Suspending refuses every credential issued before it."""
    tenant = await _tenant(services, tenant_id)
    if tenant.status is TenantStatus.DELETED:
        raise Conflict(f"The tenant {tenant_id!r} was erased; it cannot change.")
    fields = _fields(body)
    try:
        if fields:
            records = _records("tenant_updated", tenant_id, principal, ids, fields)
            await run_in_threadpool(services.store.update_tenant, tenant_id, records, **fields)
        if body.status is not None and body.status != tenant.status.value:
            status = TenantStatus(body.status)
            action = "tenant_suspended" if status is TenantStatus.SUSPENDED else "tenant_activated"
            records = _records(action, tenant_id, principal, ids, {})
            await run_in_threadpool(services.store.set_tenant_status, tenant_id, status, records)
    except NotFound:
        raise Conflict(f"The tenant {tenant_id!r} was erased meanwhile.") from None
    return tenant_out(await _tenant(services, tenant_id))


@router.delete(
    "/tenants/{tenant_id}",
    status_code=202,
    summary="Erase a tenant: documents, chunks, vectors, index files, cache entries, keys",
)
async def delete_tenant(
    tenant_id: TenantIdPath, principal: PlatformAdmin, services: ServicesDep, ids: IdsDep
) -> ErasureOut:
    """202 with what was removed. Cost and audit records are kept; the id is never reused."""
    await _tenant(services, tenant_id)  # 404 when unknown
    records = _records("tenant_erased", tenant_id, principal, ids, {})
    removed = await services.erase_tenant(tenant_id, records)
    return ErasureOut(id=tenant_id, status="erased", removed=removed)
