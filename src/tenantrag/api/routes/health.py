"""Liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

import asyncio
import hmac
from typing import Protocol, runtime_checkable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from tenantrag.api.deps import ServicesDep
from tenantrag.errors import AuthenticationError
from tenantrag.observability import metrics
from tenantrag.services import Services

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness: 200 while the process lives")
async def health() -> dict[str, str]:
    """Always ok while the process can answer."""
    return {"status": "ok"}


@router.get("/ready", summary="Readiness: 503 naming the dependency that is down")
async def ready(services: ServicesDep) -> JSONResponse:
    """200 when the data folder, the store and (if configured) Redis and OpenSearch answer;
    else 503 naming what is down."""
    checks = await services.check_dependencies() | await _search_backend(services)
    down = sorted(name for name, ok in checks.items() if not ok)
    if down:
        message = f"Not ready: {', '.join(down)} unavailable."
        body = {"status": "unavailable", "checks": checks,
                "error": {"code": "dependency_unavailable", "message": message}}  # fmt: skip
        return JSONResponse(body, status_code=503)
    return JSONResponse({"status": "ready", "checks": checks})


@runtime_checkable
class _Pingable(Protocol):
    def ping(self) -> bool: ...


async def _search_backend(services: Services) -> dict[str, bool]:
    """{"opensearch": answers} when OpenSearch holds the indexes; the embedded ones need none."""
    keyword = services.rag.keyword if services.rag is not None else None
    if services.settings.search_backend != "opensearch" or not isinstance(keyword, _Pingable):
        return {}
    up = await asyncio.to_thread(keyword.ping)
    metrics.DEPENDENCY_UP.labels(dependency="opensearch").set(int(up))
    return {"opensearch": up}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus_metrics(request: Request, services: ServicesDep) -> Response:
    """Prometheus text format; a bearer token is required when TENANTRAG_METRICS_TOKEN is set."""
    expected = services.settings.metrics_token
    if expected is not None:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
            raise AuthenticationError("Send the metrics token as a bearer token.")
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
