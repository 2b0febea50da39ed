"""One log line and the golden metrics per request, labelled by route template, never raw path."""

from __future__ import annotations

import time

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantrag.observability import metrics

log = structlog.get_logger("tenantrag.access")


def _route(scope: Scope) -> str:
    """The route template, or "unmatched".

    404s and requests refused before routing (401, 403, 429) are "unmatched", so their paths
    never become labels.
    """
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "unmatched"


class AccessLogMiddleware:
    """Times the request; counts it by route, method and status; logs it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        metrics.IN_FLIGHT.inc()

        async def recording_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        finally:
            metrics.IN_FLIGHT.dec()
            elapsed = time.perf_counter() - start
            labels = {"route": _route(scope), "method": scope["method"], "status": str(status)}
            metrics.HTTP_REQUESTS.labels(**labels).inc()
            metrics.HTTP_LATENCY.labels(**labels).observe(elapsed)
            level = "warning" if status >= 500 else "info"
            principal = scope.get("state", {}).get("principal")  # set by auth, inside us
            who = (
                {"tenant_id": principal.tenant_id, "user_id": principal.user_id}
                if principal
                else {}
            )
            getattr(log, level)(
                "request",
                path=labels["route"],
                method=labels["method"],
                status=status,
                duration_ms=round(elapsed * 1000, 2),
                **who,
            )
