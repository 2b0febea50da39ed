"""Render any error as the contract's JSON body: {"error": {"code", "message"}}."""

from __future__ import annotations

import json

from starlette.types import Send

from tenantrag.errors import TenantRagError


def error_body(code: str, message: str) -> bytes:
    """The wire body of an error."""
    return json.dumps({"error": {"code": code, "message": message}}).encode()


async def send_error(send: Send, exc: TenantRagError, extra: dict[str, str] | None = None) -> None:
    """Answer a request from inside a middleware with `exc` as the contract's error body."""
    body = error_body(exc.code, exc.message)
    headers = {"content-type": "application/json", "content-length": str(len(body))}
    headers.update(exc.headers())
    headers.update(extra or {})
    await send(
        {
            "type": "http.response.start",
            "status": exc.status_code,
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }
    )
    await send({"type": "http.response.body", "body": body})
