"""Who am I: the verified identity behind the token, for clients and smoke tests."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from tenantrag.api.deps import TenantDep, get_principal
from tenantrag.models import Principal

router = APIRouter(prefix="/api", tags=["identity"])


class MeResponse(BaseModel):
    """The caller as the server sees it."""

    tenant_id: str
    user_id: str
    permissions: list[str]
    clearance: str
    rate_limit_per_minute: int


@router.get("/me", summary="The authenticated caller")
async def me(tenant: TenantDep, principal: Principal = Depends(get_principal)) -> MeResponse:
    """The token's tenant, user, permissions and clearance."""
    return MeResponse(
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        permissions=sorted(principal.permissions),
        clearance=principal.clearance.label,
        rate_limit_per_minute=tenant.rate_limit,
    )
