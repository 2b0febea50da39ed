"""create_app(settings, services): the middleware order, the routers, the error handlers.

`ServedApp` is what uvicorn serves: its lifespan opens the services (services.py), builds
the app over them, and closes them at shutdown.
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Receive, Scope, Send

from tenantrag.api.routes import (
    admin,
    api_docs,
    audit,
    console,
    documents,
    feedback,
    health,
    jobs,
    keys,
    me,
    openai,
    openai_embeddings,
    query,
    search,
    usage,
)
from tenantrag.errors import TenantRagError
from tenantrag.middleware.access_log import AccessLogMiddleware
from tenantrag.middleware.auth import AuthMiddleware
from tenantrag.middleware.body_limit import BodyLimitMiddleware
from tenantrag.middleware.errors import CatchAllMiddleware, disk_full
from tenantrag.middleware.floods import RefusalLimiter
from tenantrag.middleware.openai_errors import OpenAIErrorsMiddleware
from tenantrag.middleware.priority import QueryPriorityMiddleware
from tenantrag.middleware.rate_limit import RateLimitMiddleware
from tenantrag.middleware.request_id import RequestIdMiddleware
from tenantrag.middleware.security_headers import SecurityHeadersMiddleware
from tenantrag.services import Services, open_services
from tenantrag.settings import Settings, get_settings

log = structlog.get_logger("tenantrag.app")
STATUS_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request"}
EXPOSED_HEADERS = ["X-Request-ID", "X-Trace-ID", "Retry-After", "RateLimit", "RateLimit-Policy"]


def create_app(settings: Settings, services: Services) -> FastAPI:
    """The ASGI app over opened `services`; whoever opened them closes them."""
    app = FastAPI(
        title="tenantrag",
        version="0.1.0",
        summary="Multi-tenant answers from your own documents, with citations.",
        docs_url=None,  # FastAPI's pages load from a CDN; api_docs serves offline ones
        redoc_url=None,
        # The request-id middleware's span is the request's one server span. FastAPI's own
        # (native OpenTelemetry, on whenever a global provider is set) was a second server
        # span per request, and, with no traceparent, a second trace with nothing under it.
        # Its logs would also send rejected request bodies to any OTel log exporter.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.services = services
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]  # FastAPI's documented hook
    app.include_router(health.router)
    app.include_router(me.router)
    app.include_router(documents.router)
    app.include_router(jobs.router)
    app.include_router(search.router)
    app.include_router(query.router)
    app.include_router(feedback.router)
    app.include_router(usage.router)
    app.include_router(audit.router)
    app.include_router(keys.router)
    app.include_router(admin.router)
    app.include_router(openai.router)
    app.include_router(openai_embeddings.router)
    api_docs.install(app)
    console.install(app)
    _install_error_handlers(app)
    _install_middleware(app, settings, services)
    return app


def _install_middleware(app: FastAPI, settings: Settings, services: Services) -> None:
    # add_middleware wraps: the last added is the outermost. Read bottom-up for the request path.
    # Innermost: only an authenticated, admitted query makes this process's ingestion yield.
    app.add_middleware(QueryPriorityMiddleware, priority=services.priority)
    app.add_middleware(
        RateLimitMiddleware,
        limiter=services.rate_limiter,
        auditor=services.auditor,
    )
    app.add_middleware(
        AuthMiddleware,
        authenticate=services.authenticator,
        lookup_tenant=services.lookup_tenant,
        refusals=services.security_log,
        floods=RefusalLimiter(
            burst=settings.server.refusal_burst,
            per_minute=settings.server.refusals_per_minute,
            shared=services.rate_limiter,  # with Redis: one bucket per address for every pod
        ),
    )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(OpenAIErrorsMiddleware)  # outside every error source it rewrites
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "X-Tenant-ID", "Content-Type", "X-Request-ID"],
            # Readable by a page of an allowed origin: the request id names an answer in
            # POST /api/feedback; the rest say why and when to retry.
            expose_headers=EXPOSED_HEADERS,
        )
    app.add_middleware(RequestIdMiddleware, tracer=services.tracer)
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.hsts)


def _error(
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    param: str | None = None,
) -> Response:
    error = {"code": code, "message": message}
    if param is not None:  # the field at fault; only /v1 routes name one (OpenAI's `param`)
        error["param"] = param
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(TenantRagError)
    async def on_ours(request: Request, exc: TenantRagError) -> Response:
        return _error(exc.status_code, exc.code, exc.message, exc.headers(), exc.param)

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
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT (ours or the identity provider's) or an API key trk_...",
        }
    }
    error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    tenant_header = {
        "name": "X-Tenant-ID",
        "in": "header",
        "required": True,
        "schema": {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]{1,62}$"},
    }
    for path, operations in schema.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if path.startswith("/v1/"):  # its router declares OpenAI's error body itself
                operation["security"] = [{"bearer": []}]
                operation.setdefault("parameters", []).append({**tenant_header, "required": False})
                continue
            if path.startswith("/api"):
                operation["security"] = [{"bearer": []}]
                if not path.startswith("/api/admin/"):  # a platform credential has no tenant
                    operation.setdefault("parameters", []).append(tenant_header)
                for status, description in API_ERRORS.items():
                    responses[status] = {"description": description, "content": error_ref}
            if "422" in responses:
                responses["422"] = {"description": API_ERRORS["422"], "content": error_ref}
    schema["paths"].get("/ready", {}).get("get", {}).get("responses", {})["503"] = {
        "description": "A dependency is down",
        "content": error_ref,
    }
    app.openapi_schema = schema
    return schema


class ServedApp:
    """The ASGI app uvicorn serves: the lifespan opens the services, then the app serves.

    uvicorn's factory is synchronous and opening is not (nor cheap: it loads the model), so the
    app over the services is built at startup. uvicorn runs with `lifespan="on"`: a failure
    to open is reported as `lifespan.startup.failed` and stops the server.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.app: FastAPI | None = None  # built by the lifespan, before any request is served

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The lifespan here; every other scope to the app built at startup."""
        if scope["type"] == "lifespan":
            await self.lifespan(receive, send)
            return
        if self.app is None:  # only reachable if a server skipped the lifespan
            raise RuntimeError("the lifespan has not run: serve with lifespan='on'")
        await self.app(scope, receive, send)

    async def lifespan(self, receive: Receive, send: Send) -> None:
        """Open the services at startup and close them at shutdown."""
        await receive()  # lifespan.startup
        try:
            services = await open_services(self.settings)
        except Exception as exc:
            log.exception("startup_failed", error_type=type(exc).__name__)
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            return
        self.app = create_app(self.settings, services)
        if services.runs_jobs:  # embedded mode: `make run` needs no separate worker
            services.jobs.start()
        await send({"type": "lifespan.startup.complete"})
        await receive()  # lifespan.shutdown
        try:
            await services.close()
        finally:
            await send({"type": "lifespan.shutdown.complete"})


def app_factory() -> ServedApp:
    """Uvicorn's factory: settings from the environment, PII-scrubbed logs counted."""
    from tenantrag.observability import metrics
    from tenantrag.observability.logging import configure_logging

    settings = get_settings()
    configure_logging(settings.log_level, on_redaction=metrics.count_redaction)
    return ServedApp(settings)
