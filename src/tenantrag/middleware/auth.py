"""Isolation layers 1 and 2: a valid credential, and an X-Tenant-ID naming its own, active tenant.

The credential is a token of ours, an identity provider's token or an API key
(auth/credentials.py). It must have been issued after the tenant's `tokens_valid_after` (its
creation, or its last suspension), so a token minted before the tenant existed, or before it
was suspended, is refused.

A client address whose refusals have emptied its bucket (middleware/floods.py) is answered 429
before its credential is read.

On /v1 (OpenAI's API, whose clients send no custom headers) X-Tenant-ID is optional: the
credential names the tenant, and a header, when sent, must match it. On /api/admin only a
platform operator's credential is accepted, and it names no tenant; anywhere else a platform
credential is refused.

A refusal here is counted in the security log by client address, never written into the
chain of the tenant its X-Tenant-ID claims (observability/security_log.py says why).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Protocol

import structlog
from starlette.types import ASGIApp, Receive, Scope, Send

from tenantrag.errors import (
    AuthenticationError,
    InvalidTenantHeader,
    PermissionDenied,
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
ADMIN_PREFIX = "/api/admin"


class Authenticate(Protocol):
    """Turns a bearer credential into a principal (auth/credentials.py's Authenticator)."""

    def __call__(self, credential: str) -> Awaitable[Principal]:
        """The principal the credential names, or the error that refuses it."""
        ...

    def known(self, credential: str) -> bool:
        """Whether the credential was verified here before and is still within its time."""
        ...


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
        authenticate: Authenticate,
        lookup_tenant: Callable[[str], Tenant | None],
        refusals: Refusals,
        floods: RefusalLimiter,
    ) -> None:
        self.app = app
        self.verify_credential = authenticate
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
            principal, tenant = await self.authenticate(scope)
        except TenantRagError as exc:
            await self.floods.acharge(key)
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
        return scheme.lower() == "bearer" and self.verify_credential.known(token.strip())

    async def authenticate(self, scope: Scope) -> tuple[Principal, Tenant | None]:
        """The caller's principal and tenant (None on /api/admin), or the refusing error."""
        authorization = _header(scope, b"authorization")
        if authorization is None:
            raise AuthenticationError("Send 'Authorization: Bearer <token>'.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthenticationError("The Authorization header must be 'Bearer <token>'.")
        principal = await self.verify_credential(token.strip())
        admin_path = scope["path"] == ADMIN_PREFIX or scope["path"].startswith(ADMIN_PREFIX + "/")
        if admin_path or principal.platform:
            if admin_path and principal.platform:
                return principal, None
            if admin_path:
                raise PermissionDenied(
                    "This needs the 'platform:admin' permission: a platform operator's"
                    " credential (`tenantrag token --platform-admin`), not a tenant's."
                )
            raise PermissionDenied("A platform credential is accepted on /api/admin only.")
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
        if _issued_before(principal, tenant.tokens_valid_after):
            raise AuthenticationError(
                "The credential was issued before the tenant was created or last suspended;"
                " ask for a new one."
            )
        return principal, tenant


def _issued_before(principal: Principal, valid_after: float) -> bool:
    """Whether the credential predates `valid_after`.

    A token's iat is in whole seconds, so it is compared with the whole second of
    `valid_after`: a token minted in the same second as the creation is accepted. A key's
    creation time is exact.
    """
    if principal.key_id is not None:
        return principal.issued_at < valid_after
    return principal.issued_at < math.floor(valid_after)


def _guarded(path: str) -> bool:
    return path.startswith("/api") or is_openai_path(path)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
