"""Who am I: the verified identity behind the token, for clients and smoke tests."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from tenantrag.api.deps import TenantDep, get_principal
from tenantrag.api.schemas import MeOut, classification_label
from tenantrag.models import Principal

router = APIRouter(prefix="/api", tags=["identity"])


@router.get("/me", summary="The authenticated caller")
async def me(tenant: TenantDep, principal: Annotated[Principal, Depends(get_principal)]) -> MeOut:
    """The token's tenant, user, permissions and clearance."""
    return MeOut(
        tenant_id=principal.tenant_id,
        user_id=principal.user_id,
        permissions=sorted(principal.permissions),
        clearance=classification_label(principal.clearance),
        rate_limit_per_minute=tenant.rate_limit,
    )
