"""Transport hygiene: headers on every response, the error shape on every status, body limits."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from tests.api.conftest import TokenFactory

from tenantrag.app import create_app
from tenantrag.services import Services
from tenantrag.settings import Settings

SECURITY = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


def assert_secure(r: httpx.Response) -> None:
    for name, value in SECURITY.items():
        assert r.headers.get(name) == value, (name, r.status_code)
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert len(r.headers["x-request-id"]) >= 8
    assert len(r.headers["x-trace-id"]) == 32


def assert_error_shape(r: httpx.Response, status: int) -> None:
    assert r.status_code == status
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["code"].replace("_", "").isalpha()
    assert body["error"]["message"]


async def test_security_headers_on_success_errors_and_404(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """Health, an API success, a 401, a 404 and a 405 all carry the security headers."""
    responses = [
        await client.get("/health"),
        await client.get("/api/me", headers=auth()),
        await client.get("/api/me"),
        await client.get("/nowhere"),
        await client.delete("/health"),
    ]
    for r in responses:
        assert_secure(r)
    assert responses[1].headers["cache-control"] == "no-store"
    assert responses[2].headers["cache-control"] == "no-store"


async def test_error_statuses_share_one_shape(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """400, 401, 403, 404 and 405 bodies are all {"error": {"code", "message"}}."""
    bad_tenant = auth()
    bad_tenant["X-Tenant-ID"] = "ACME"
    assert_error_shape(await client.get("/api/me", headers=bad_tenant), 400)
    assert_error_shape(await client.get("/api/me"), 401)
    assert_error_shape(await client.get("/api/me", headers=auth("initech")), 403)
    assert_error_shape(await client.get("/api/nowhere", headers=auth()), 404)
    assert_error_shape(await client.delete("/health"), 405)


async def test_request_id_is_kept_when_well_formed(client: httpx.AsyncClient) -> None:
    """A well-formed X-Request-ID comes back unchanged; a hostile one is replaced."""
    r = await client.get("/health", headers={"X-Request-ID": "req-12345678"})
    assert r.headers["x-request-id"] == "req-12345678"
    r = await client.get("/health", headers={"X-Request-ID": "<script>alert(1)</script>"})
    assert r.headers["x-request-id"] != "<script>alert(1)</script>"


async def test_traceparent_trace_id_is_returned(client: httpx.AsyncClient) -> None:
    """An incoming W3C traceparent's trace id is the one returned in X-Trace-ID."""
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    r = await client.get("/health", headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    assert r.headers["x-trace-id"] == trace_id


async def test_declared_body_over_limit_is_413(
    settings: Settings, services: Services, auth: TokenFactory
) -> None:
    """A Content-Length over the limit is refused before the body is read."""
    small = settings.model_copy(update={"max_body_bytes": 1024})
    app = create_app(small, services)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post("/api/me", headers=auth(), content=b"x" * 2048)
    assert_error_shape(r, 413)
    assert_secure(r)


async def test_cors_is_off_by_default(client: httpx.AsyncClient) -> None:
    """Without configured origins no Access-Control-Allow-Origin is sent."""
    r = await client.options(
        "/api/me",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in r.headers


async def test_metrics_exposes_request_counter_and_histogram(
    client: httpx.AsyncClient, auth: TokenFactory
) -> None:
    """/metrics shows requests by route template and status, and the latency histogram."""
    await client.get("/api/me", headers=auth())
    text = (await client.get("/metrics")).text
    assert 'tenantrag_http_requests_total{method="GET",route="/api/me",status="200"}' in text
    assert "tenantrag_http_request_duration_seconds_bucket" in text


@pytest.mark.parametrize("path", ["/health", "/ready"])
async def test_health_and_ready(client: httpx.AsyncClient, path: str) -> None:
    """Health and readiness answer 200 on a working data folder."""
    r = await client.get(path)
    assert r.status_code == 200


async def test_chunked_body_over_limit_is_413(
    settings: Settings, services: Services, auth: TokenFactory
) -> None:
    """A chunked body without Content-Length is cut off at the limit with 413, not parsed whole."""
    small = settings.model_copy(update={"max_body_bytes": 1024})
    app = create_app(small, services)
    sent = 0

    async def stream() -> AsyncIterator[bytes]:
        nonlocal sent
        for _ in range(1000):
            sent += 512
            yield b" " * 512

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        r = await c.post(
            "/api/documents",
            headers={**auth(), "Content-Type": "application/json"},
            content=stream(),
        )
    assert_error_shape(r, 413)
    assert sent < 1000 * 512  # reading stopped early


async def test_openapi_documents_auth_tenant_header_and_error_body(
    client: httpx.AsyncClient,
) -> None:
    """The schema declares bearer auth, X-Tenant-ID and the error body on every /api operation."""
    schema = (await client.get("/openapi.json")).json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    search = schema["paths"]["/api/search"]["post"]
    assert search["security"] == [{"bearer": []}]
    assert any(p["name"] == "X-Tenant-ID" for p in search["parameters"])
    for status in ("401", "403", "422", "429"):
        ref = search["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        assert ref == "#/components/schemas/Error"
