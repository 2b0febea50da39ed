"""Request-scoped dependencies: the services, the caller, its ids, the permission a route needs.

They are `async def` on purpose: FastAPI runs a plain `def` dependency on the thread pool, and
three thread hand-offs per request cost more than everything these functions do.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, Request

from tenantrag.errors import AuthenticationError, PermissionDenied
from tenantrag.models import AuditEvent, Permission, Principal, RequestIds, Tenant
from tenantrag.services import Services


async def get_services(request: Request) -> Services:
    """The backends built at start-up."""
    services: Services = request.app.state.services
    return services


async def get_principal(request: Request) -> Principal:
    """The authenticated caller (set by the auth middleware)."""
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:  # only reachable if a route is mounted outside /api
        raise AuthenticationError("Send 'Authorization: Bearer <token>'.")
    return principal


async def get_tenant(request: Request) -> Tenant:
    """The caller's tenant, as loaded for this request."""
    tenant: Tenant = request.state.tenant
    return tenant


async def get_request_ids(request: Request) -> RequestIds:
    """The request and trace ids the request-id middleware gave this request."""
    state = request.scope.get("state", {})
    return RequestIds(state.get("request_id"), state.get("trace_id"))


def require(permission: Permission) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency that admits only callers whose token carries `permission`."""

    async def check(request: Request) -> Principal:
        principal = await get_principal(request)
        if not principal.can(permission):
            services = await get_services(request)
            event = AuditEvent(
                "permission_denied",
                "denied",
                principal.tenant_id,
                principal.user_id,
                await get_request_ids(request),
                detail={"permission": permission.value},
            )
            await services.auditor.arecord(event)
            raise PermissionDenied(f"This needs the '{permission.value}' permission.")
        return principal

    return check


ServicesDep = Annotated[Services, Depends(get_services)]
TenantDep = Annotated[Tenant, Depends(get_tenant)]
IdsDep = Annotated[RequestIds, Depends(get_request_ids)]
CanQuery = Annotated[Principal, Depends(require(Permission.QUERY))]
CanReadDocuments = Annotated[Principal, Depends(require(Permission.DOCUMENTS_READ))]
CanWriteDocuments = Annotated[Principal, Depends(require(Permission.DOCUMENTS_WRITE))]
CanDeleteDocuments = Annotated[Principal, Depends(require(Permission.DOCUMENTS_DELETE))]
CanReadUsage = Annotated[Principal, Depends(require(Permission.USAGE_READ))]
