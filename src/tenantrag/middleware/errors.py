"""Last line of defence: any unexpected exception becomes a JSON 500 without a stack trace."""

from __future__ import annotations

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantrag.errors import TenantRagError
from tenantrag.middleware.respond import send_error

log = structlog.get_logger("tenantrag.errors")


class CatchAllMiddleware:
    """Sits inside the request-id and header middleware, so even a crash carries both."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.exception("unhandled_error", error_type=type(exc).__name__)
            if started:
                raise
            error = (
                exc
                if isinstance(exc, TenantRagError)
                else TenantRagError(
                    "Something went wrong on our side; it has been logged."
                    " Retry, or report the X-Request-ID."
                )
            )
            await send_error(send, error)
