"""create_app(settings): the middleware order, the routers, the lifespan that builds backends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from tenantrag.api.routes import (
    api_docs,
    audit,
    console,
    documents,
    health,
    me,
    query,
    search,
    usage,
)
from tenantrag.errors import TenantRagError
from tenantrag.middleware.access_log import AccessLogMiddleware
from tenantrag.middleware.auth import AuthMiddleware
from tenantrag.middleware.body_limit import BodyLimitMiddleware
from tenantrag.middleware.errors import CatchAllMiddleware, disk_full
from tenantrag.middleware.rate_limit import RateLimitMiddleware
from tenantrag.middleware.request_id import RequestIdMiddleware
from tenantrag.middleware.security_headers import SecurityHeadersMiddleware
from tenantrag.services import Services
from tenantrag.settings import Settings, get_settings

log = structlog.get_logger("tenantrag.app")
STATUS_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    """The ASGI app for `settings`; pass `services` to reuse backends (tests, CLI)."""
    services = services or Services.build(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await services.start()
        try:
            yield
        finally:
            await services.stop()

    app = FastAPI(
        title="tenantrag",
        version="0.1.0",
        summary="Multi-tenant answers from your own documents, with citations.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's pages load from a CDN; api_docs serves offline ones
        redoc_url=None,
    )
    app.state.services = services
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]  # FastAPI's documented hook
    app.include_router(health.router)
    app.include_router(me.router)
    app.include_router(documents.router)
    app.include_router(search.router)
    app.include_router(query.router)
    app.include_router(usage.router)
    app.include_router(audit.router)
    api_docs.install(app)
    console.install(app)
    _install_error_handlers(app)
    _install_middleware(app, settings, services)
    return app


def _install_middleware(app: FastAPI, settings: Settings, services: Services) -> None:
    # add_middleware wraps: the last added is the outermost. Read bottom-up for the request path.
    app.add_middleware(
        RateLimitMiddleware,
        limiter=services.limiter,
        fail_open=settings.rate_limit_fail_open,
        audit=services.audit_scope,
    )
    app.add_middleware(
        AuthMiddleware,
        secret=services.secret,
        lookup_tenant=services.lookup_tenant,
        audit=services.audit_scope,
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(CatchAllMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-Tenant-ID", "Content-Type", "X-Request-ID"],
        )
    app.add_middleware(RequestIdMiddleware, tracer=services.tracer)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.hsts)


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(
        {"error": {"code": code, "message": message}}, status_code=status, headers=headers
    )


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TenantRagError)
    async def on_ours(request: Request, exc: TenantRagError) -> Response:
        return _error(exc.status_code, exc.code, exc.message, exc.headers())

    @app.exception_handler(RequestValidationError)
    async def on_invalid(request: Request, exc: RequestValidationError) -> Response:
        parts = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
            parts.append(f"{where or 'body'}: {err.get('msg', 'invalid')}")
        return _error(422, "validation_error", "; ".join(parts) or "The request is invalid.")

    @app.exception_handler(StarletteHTTPException)
    async def on_http(request: Request, exc: StarletteHTTPException) -> Response:
        cause = exc.__cause__ or exc.__context__
        if isinstance(cause, TenantRagError):  # e.g. the body limit hit while FastAPI parsed
            return _error(cause.status_code, cause.code, cause.message, cause.headers())
        code = STATUS_CODES.get(exc.status_code, "http_error")
        message = "No such route." if exc.status_code == 404 else str(exc.detail)
        return _error(exc.status_code, code, message, dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled_error", error_type=type(exc).__name__)
        return _error(500, "internal", "Something went wrong on our side; it has been logged.")

    @app.exception_handler(OSError)
    async def on_os_error(request: Request, exc: OSError) -> Response:
        full = disk_full(exc)  # the audit log or an index could not be written: 507, not 500
        if full is None:
            return await on_crash(request, exc)
        log.error("disk_full", error=str(exc))
        return _error(full.status_code, full.code, full.message)


ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
        }
    },
}
API_ERRORS = {
    "400": "Malformed request or X-Tenant-ID",
    "401": "Missing or invalid bearer token",
    "403": "Wrong tenant, permission missing, or tenant suspended",
    "413": "Body over the size limit",
    "422": "Invalid body or parameters",
    "429": "Rate limit or quota exceeded (see Retry-After)",
}


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's schema plus what it cannot see: bearer auth, X-Tenant-ID and our error body."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    }
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    tenant_header = {
        "name": "X-Tenant-ID", "in": "header", "required": True,
        "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{1,62}$"},
    }  # fmt: skip
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if path.startswith("/api"):
                operation["security"] = [{"bearer": []}]
                operation.setdefault("parameters", []).append(tenant_header)
                for status, description in API_ERRORS.items():
                    responses[status] = {"description": description, "content": error_ref}
            if "422" in responses:
                responses["422"] = {"description": API_ERRORS["422"], "content": error_ref}
    schema["paths"].get("/ready", {}).get("get", {}).get("responses", {})["503"] = {
        "description": "A dependency is down", "content": error_ref,
    }  # fmt: skip
    app.openapi_schema = schema
    return schema


def app_factory() -> FastAPI:
    """Uvicorn's factory: settings from the environment."""
    from tenantrag.observability.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level)
    return create_app(settings)
