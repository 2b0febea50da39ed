"""Last line of defence: any unexpected exception becomes a JSON 500 without a stack trace."""

from __future__ import annotations

import errno

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantrag.errors import InsufficientStorage, TenantRagError
from tenantrag.middleware.respond import send_error

log = structlog.get_logger("tenantrag.errors")
DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def disk_full(exc: BaseException) -> InsufficientStorage | None:
    """InsufficientStorage when `exc` or one of its causes is the disk refusing a write."""
    current: BaseException | None = exc
    while current is not None:
        if isinstance(current, OSError) and current.errno in DISK_FULL:
            return InsufficientStorage(
                "The data folder's disk is full; the request could not be completed."
                " Free space and retry."
            )
        current = current.__cause__
    return None


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
                else disk_full(exc)  # e.g. the audit log of a denial could not be appended
                or TenantRagError(
                    "Something went wrong on our side; it has been logged."
                    " Retry, or report the X-Request-ID."
                )
            )
            await send_error(send, error)
