"""Security headers on every response, errors and 404s included.

The Content-Security-Policy is closed (`default-src 'none'`) everywhere. Three kinds of page need
to load something, so their paths get the closed policy plus exactly what they load:

- `/console`: its own scripts, styles, images and API calls, all from 'self'; no inline script or
  style, and Trusted Types required, so no string can reach `innerHTML` or another HTML sink.
- `/docs` (Swagger UI): its bundle and styles from 'self', and `data:` images (its stylesheet
  draws the icons as data: SVGs).
- `/redoc` (ReDoc): the same, plus inline styles (styled-components writes <style> tags) and a
  `blob:` worker (its search index). Measured by loading each page under narrower policies in
  Chromium: each relaxation here is one the page fails or logs CSP errors without (docs/console.md).

No page gets inline script, eval, or any other origin.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tenantrag.middleware.openai_errors import is_openai_path

CLOSED_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
CONSOLE_CSP = (
    f"{CLOSED_CSP}; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "require-trusted-types-for 'script'; trusted-types 'none'"
)
SWAGGER_CSP = (
    f"{CLOSED_CSP}; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'"
)
REDOC_CSP = (
    f"{CLOSED_CSP}; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; worker-src blob:"
)
# (path prefix, policy), first match wins; a prefix matches the path itself or a path below it.
# The docs pages' assets live under /docs/assets/, so they carry Swagger's policy; a script's
# or stylesheet's own CSP header does not apply to the page that loads it.
PAGE_CSP = [("/console", CONSOLE_CSP), ("/docs", SWAGGER_CSP), ("/redoc", REDOC_CSP)]

BASE_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]
HSTS = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")


def csp_for(path: str) -> str:
    """The Content-Security-Policy for a request path: closed unless a page needs more."""
    for prefix, policy in PAGE_CSP:
        if path == prefix or path.startswith(prefix + "/"):
            return policy
    return CLOSED_CSP


class SecurityHeadersMiddleware:
    """Adds nosniff, DENY framing, no-referrer and the path's CSP; no-store on /api and /v1."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.headers = BASE_HEADERS + ([HSTS] if hsts else [])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        api = path.startswith("/api") or is_openai_path(path)  # tenant data: never cached
        csp = (b"content-security-policy", csp_for(path).encode())

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0] != b"server"]
                headers.extend(self.headers)
                headers.append(csp)
                if api:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
