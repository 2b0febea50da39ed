"""Errors we raise on purpose. The app renders each as {"error": {"code", "message"}}.

An error may name the request field at fault (`param`): the /v1 routes speak OpenAI's error
shape, which carries it (docs/api-openai.md); /api bodies never hold one.

TenantRagError                      500 internal
├── BadRequest                      400 bad_request
│   ├── InvalidTenantHeader         400 invalid_tenant_header
│   └── PromptInjection             400 prompt_injection
├── AuthenticationError             401 invalid_token       (WWW-Authenticate: Bearer)
├── Forbidden                       403 forbidden
│   ├── TenantMismatch              403 tenant_mismatch
│   ├── PermissionDenied            403 permission_denied
│   └── TenantUnavailable           403 tenant_unavailable  (unknown or suspended)
├── NotFound                        404 not_found           (also another tenant's object)
│   └── ModelNotFound               404 model_not_found     (/v1: no such model)
├── Conflict                        409 conflict            (an id held by a hidden document)
├── PayloadTooLarge                 413 payload_too_large
├── UnsupportedMediaType            415 unsupported_media_type
├── ValidationFailed                422 validation_error
├── RateLimited                     429 rate_limited        carries retry_after
│   └── QuotaExceeded               429 quota_exceeded
├── Overloaded                      503 overloaded          carries retry_after
├── InsufficientStorage             507 insufficient_storage
└── UpstreamError                   502 upstream_error      raised only inside backends/
    ├── DependencyUnavailable       503 dependency_unavailable
    └── UpstreamTimeout             504 upstream_timeout
"""

from __future__ import annotations

from typing import ClassVar


class TenantRagError(Exception):
    """Base of every error we raise on purpose; carries its HTTP status and wire code."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "internal"
    param: str | None = None  # the request field at fault, when one is

    def __init__(self, message: str, *, code: str | None = None, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]  # a narrower code for one instance
        if param is not None:
            self.param = param

    def headers(self) -> dict[str, str]:
        """Extra response headers this error needs."""
        return {}


class BadRequest(TenantRagError):
    """The request is malformed in a way the client must fix."""

    status_code = 400
    code = "bad_request"


class InvalidTenantHeader(BadRequest):
    """X-Tenant-ID is missing or not a well-formed tenant id."""

    code = "invalid_tenant_header"


class PromptInjection(BadRequest):
    """The question tries to override the system's instructions."""

    code = "prompt_injection"


class AuthenticationError(TenantRagError):
    """No valid bearer token."""

    status_code = 401
    code = "invalid_token"

    def headers(self) -> dict[str, str]:
        """RFC 6750: tell the client which scheme to use."""
        return {"WWW-Authenticate": 'Bearer realm="tenantrag", error="invalid_token"'}


class Forbidden(TenantRagError):
    """Authenticated, but not allowed."""

    status_code = 403
    code = "forbidden"


class TenantMismatch(Forbidden):
    """X-Tenant-ID names a tenant other than the token's."""

    code = "tenant_mismatch"


class PermissionDenied(Forbidden):
    """The token lacks the permission the route needs."""

    code = "permission_denied"


class TenantUnavailable(Forbidden):
    """The tenant is unknown or suspended."""

    code = "tenant_unavailable"


class NotFound(TenantRagError):
    """No such object in the caller's tenant (another tenant's object is not found either)."""

    status_code = 404
    code = "not_found"


class ModelNotFound(NotFound):
    """A /v1 request names a model this service does not serve."""

    code = "model_not_found"
    param = "model"


class Conflict(TenantRagError):
    """The request cannot be carried out on the object as it stands; nothing was written."""

    status_code = 409
    code = "conflict"


class PayloadTooLarge(TenantRagError):
    """The request body is over the configured limit."""

    status_code = 413
    code = "payload_too_large"


class UnsupportedMediaType(TenantRagError):
    """The uploaded file's type is not one we convert."""

    status_code = 415
    code = "unsupported_media_type"


class ValidationFailed(TenantRagError):
    """The body is well-formed but its values are not acceptable."""

    status_code = 422
    code = "validation_error"


class RateLimited(TenantRagError):
    """Too many requests for the tenant in the current window."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, code: str | None = None) -> None:
        super().__init__(message, code=code)
        self.retry_after = max(1, int(retry_after + 0.999))

    def headers(self) -> dict[str, str]:
        """Retry-After in whole seconds, at least 1."""
        return {"Retry-After": str(self.retry_after)}


class QuotaExceeded(RateLimited):
    """A tenant quota (tokens, cost, storage or documents) is used up."""

    code = "quota_exceeded"


class Overloaded(TenantRagError):
    """This process is at its cap for an expensive kind of work; nothing was done."""

    status_code = 503
    code = "overloaded"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after + 0.999))

    def headers(self) -> dict[str, str]:
        """Retry-After in whole seconds, at least 1."""
        return {"Retry-After": str(self.retry_after)}


class InsufficientStorage(TenantRagError):
    """The data folder's disk is full; nothing was written."""

    status_code = 507
    code = "insufficient_storage"


class UpstreamError(TenantRagError):
    """A dependency failed; raised only inside backends/."""

    status_code = 502
    code = "upstream_error"


class DependencyUnavailable(UpstreamError):
    """A dependency is down or its circuit breaker is open."""

    status_code = 503
    code = "dependency_unavailable"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        """Retry-After when we know when to try again."""
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(max(1, int(self.retry_after + 0.999)))}


class UpstreamTimeout(UpstreamError):
    """A dependency did not answer in time."""

    status_code = 504
    code = "upstream_timeout"
