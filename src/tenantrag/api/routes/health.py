"""Liveness, readiness and the Prometheus exposition."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response

from tenantrag.api.deps import ServicesDep
from tenantrag.api.schemas import ErrorDetail, HealthOut, ReadyOut, ReplicationOut
from tenantrag.errors import AuthenticationError, Forbidden
from tenantrag.observability import metrics

router = APIRouter(tags=["operations"])


@router.get("/health", summary="Liveness: 200 while the process lives")
async def health() -> HealthOut:
    """Always ok while the process can answer."""
    return HealthOut(status="ok")


@router.get(
    "/ready",
    summary="Readiness: 503 naming the dependency that is down",
    response_model_exclude_none=True,
)
async def ready(services: ServicesDep, response: Response) -> ReadyOut:
    """200 when the data folder, the store and (if configured) Redis and OpenSearch answer.

    Else 503 naming what is down; but with only Redis away (and the rate limiter failing open)
    200 with status `degraded`, `degraded: ["redis"]` and a `detail`: the node serves on its
    per-process limits and cache.

    With a database, `replica` is false until this node's first copy of it is done, and
    `replication` gives its lag (a node that falls behind stays ready: it serves what it has).
    """
    checks = await services.check_dependencies()
    status = services.replication()
    replication = (
        ReplicationOut(applied_seq=status.applied_seq, lag_s=round(status.lag_s, 3))
        if status is not None
        else None
    )
    down = sorted(name for name, ok in checks.items() if not ok)
    if not down:
        return ReadyOut(status="ready", checks=checks, replication=replication)
    if set(down) <= services.degradable():
        # serving continues on per-process fallbacks: a 503 would only pull every pod out of
        # the load balancer at once for an outage the pods survive
        detail = (
            f"Degraded: {', '.join(down)} unavailable; rate limits and the answer cache are"
            " per process until it returns."
        )
        return ReadyOut(
            status="degraded", checks=checks, replication=replication, degraded=down, detail=detail
        )
    response.status_code = 503
    message = f"Not ready: {', '.join(down)} unavailable."
    error = ErrorDetail(code="dependency_unavailable", message=message)
    return ReadyOut(status="unavailable", checks=checks, replication=replication, error=error)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus_metrics(request: Request, services: ServicesDep) -> Response:
    """Prometheus text format; a bearer token is required when TENANTRAG_METRICS_TOKEN is set.

    In distributed mode without a token (and without TENANTRAG_METRICS_PUBLIC) it is refused
    outright: `serve` will not start so, but an app started some other way must not fall open.
    """
    settings = services.settings
    if problem := settings.metrics_token_missing():
        raise Forbidden(problem, code="metrics_token_required")
    expected = settings.metrics_token
    if expected is not None:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), expected.get_secret_value().encode()):
            raise AuthenticationError("Send the metrics token as a bearer token.")
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)
