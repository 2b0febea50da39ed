"""Isolation layers 1 and 2: a valid JWT, and an X-Tenant-ID naming its own, active tenant.

A client address whose refusals have emptied its bucket (middleware/floods.py) is answered 429
before its credential is read.

On /v1 (OpenAI's API, whose clients send no custom headers) X-Tenant-ID is optional: the
credential names the tenant, and a header, when sent, must match it.

A refusal here is counted in the security log by client address, never written into the
chain of the tenant its X-Tenant-ID claims (observability/security_log.py says why).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from tenantrag.auth import TokenVerifier
from tenantrag.errors import (
    AuthenticationError,
    InvalidTenantHeader,
    RateLimited,
    TenantMismatch,
    TenantRagError,
    TenantUnavailable,
)
from tenantrag.middleware.floods import RefusalLimiter, address_key
from tenantrag.middleware.openai_errors import is_openai_path
from tenantrag.middleware.respond import send_error
from tenantrag.models import Principal, Tenant, is_valid_tenant_id

log = structlog.get_logger("tenantrag.auth")


class Refusals(Protocol):
    """Where refusals are counted: the security log."""

    def failure(self, host: str | None, code: str, claimed_tenant: str | None) -> None:
        """Count one refused request from the client at `host`."""
        ...


class AuthMiddleware:
    """Authenticates every /api and /v1 request; puts the principal and tenant in scope['state']."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        secret: str,
        lookup_tenant: Callable[[str], Tenant | None],
        refusals: Refusals,
        floods: RefusalLimiter,
    ) -> None:
        self.app = app
        self.secret = secret
        self.verify_token = TokenVerifier(secret)  # remembers verified tokens until they expire
        self.lookup_tenant = lookup_tenant
        self.refusals = refusals
        self.floods = floods

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _guarded(scope["path"]):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        host = client[0] if client else None
        key = address_key(host)
        wait = self.floods.retry_after(key)
        if wait is not None and not self._known_token(scope):
            # No token is checked and nothing is charged: the bucket refills on its own clock.
            self.refusals.failure(host, "refusals_rate_limited", _header(scope, b"x-tenant-id"))
            await send_error(
                send,
                RateLimited(
                    f"Too many refused requests from your address; retry in {wait}s.",
                    retry_after=wait,
                    code="too_many_refusals",
                ),
            )
            return
        try:
            principal, tenant = self.authenticate(scope)
        except TenantRagError as exc:
            self.floods.charge(key)
            self.refusals.failure(host, exc.code, _header(scope, b"x-tenant-id"))
            log.warning("auth_failed", code=exc.code, path=scope["path"])
            await send_error(send, exc)
            return
        state = scope.setdefault("state", {})
        state["principal"], state["tenant"] = principal, tenant
        with structlog.contextvars.bound_contextvars(
            tenant_id=principal.tenant_id, user_id=principal.user_id
        ):
            await self.app(scope, receive, send)

    def _known_token(self, scope: Scope) -> bool:
        """Whether the request's bearer token is one already verified here (no HMAC)."""
        authorization = _header(scope, b"authorization")
        if authorization is None:
            return False
        scheme, _, token = authorization.partition(" ")
        return scheme.lower() == "bearer" and self.verify_token.known(token.strip())

    def authenticate(self, scope: Scope) -> tuple[Principal, Tenant]:
        """The caller's principal and tenant, or the error that refuses the request."""
        authorization = _header(scope, b"authorization")
        if authorization is None:
            raise AuthenticationError("Send 'Authorization: Bearer <token>'.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("The Authorization header must be 'Bearer <token>'.")
        principal = self.verify_token(token.strip())
        header = _header(scope, b"x-tenant-id")
        if header is None and is_openai_path(scope["path"]):
            header = principal.tenant_id  # the credential names the tenant
        if header is None:
            raise InvalidTenantHeader("Send the X-Tenant-ID header naming your tenant.")
        if not is_valid_tenant_id(header):
            raise InvalidTenantHeader(
                "X-Tenant-ID must match ^[a-z0-9][a-z0-9-]{1,62}$ (lowercase letters, digits, '-')."
            )
        if header != principal.tenant_id:
            raise TenantMismatch("X-Tenant-ID does not match the token's tenant.")
        tenant = self.lookup_tenant(header)
        if tenant is None or not tenant.active:
            raise TenantUnavailable(
                "The tenant is unknown or suspended; contact your administrator."
            )
        return principal, tenant


def _guarded(path: str) -> bool:
    return path.startswith("/api") or is_openai_path(path)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
