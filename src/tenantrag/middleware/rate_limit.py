"""Per-tenant rate limit on /api, shared by every worker through the limiter's storage.

A request with an API key that has its own limit is counted against the key first, then the
tenant: the key's limit narrows the tenant's, never widens it. The key's window is
`<tenant>/key/<id>` (a tenant id cannot contain `/`, so it never names another tenant's).
"""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantrag.backends.ratelimit import WINDOW_S, StorageUnavailable, TenantRateLimiter
from tenantrag.errors import DependencyUnavailable, RateLimited
from tenantrag.middleware.request_id import ids_of
from tenantrag.middleware.respond import send_error
from tenantrag.models import AuditEvent, Tenant
from tenantrag.observability import metrics
from tenantrag.observability.audit import Auditor

log = structlog.get_logger("tenantrag.rate_limit")


class RateLimitMiddleware:
    """Counts each authenticated request against its tenant's per-minute limit.

    When the storage (Redis) is away the limiter enforces this process's share of the limit
    (fail open, the default: `decision.local`) or raises and the request is refused with 503
    (fail closed); either way the check is counted and logged.
    """

    def __init__(self, app: ASGIApp, *, limiter: TenantRateLimiter, auditor: Auditor) -> None:
        self.app = app
        self.limiter = limiter
        self.auditor = auditor

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        tenant: Tenant | None = scope.get("state", {}).get("tenant")
        if scope["type"] != "http" or tenant is None:
            await self.app(scope, receive, send)
            return
        principal = scope["state"].get("principal")
        key_id, key_limit = (
            getattr(principal, "key_id", None),
            getattr(principal, "rate_limit", None),
        )
        try:
            decision = None
            if key_id is not None and key_limit is not None:
                decision = await self.limiter.hit(f"{tenant.id}/key/{key_id}", key_limit)
            if decision is None or decision.allowed:
                tenant_decision = await self.limiter.hit(tenant.id, tenant.rate_limit)
                # The headers describe whichever window is closer to refusing.
                if (
                    decision is None
                    or not tenant_decision.allowed
                    or (tenant_decision.remaining < decision.remaining)
                ):
                    decision = tenant_decision
        except StorageUnavailable as exc:
            metrics.RATE_LIMITER_ERRORS.inc()
            metrics.DEPENDENCY_UP.labels(dependency="redis").set(0)
            log.error("rate_limit_storage_down", error=str(exc), fail_open=False)
            await send_error(
                send,
                DependencyUnavailable(
                    "Rate limiting is unavailable; retry shortly.", retry_after=5
                ),
            )
            return
        if decision.local:
            metrics.RATE_LIMITER_ERRORS.inc()
        policy = f"{decision.limit};w={WINDOW_S}"
        current = (
            f"limit={decision.limit}, remaining={decision.remaining}, reset={decision.reset_s}"
        )
        headers = [(b"ratelimit-policy", policy.encode()), (b"ratelimit", current.encode())]
        if not decision.allowed:
            metrics.RATE_LIMITED.labels(tenant=tenant.id).inc()
            user_id = getattr(principal, "user_id", None)
            await self.auditor.arecord(
                AuditEvent("rate_limited", "denied", tenant.id, user_id, ids_of(scope))
            )
            await send_error(
                send,
                RateLimited(
                    f"Rate limit of {decision.limit} requests per minute exceeded;"
                    f" retry in {decision.reset_s}s.",
                    retry_after=decision.reset_s,
                ),
                {"RateLimit-Policy": policy, "RateLimit": current},
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
