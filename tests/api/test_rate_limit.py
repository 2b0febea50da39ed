"""Per-tenant rate limits: exact, shared through Redis, with the documented headers."""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.api.conftest import TokenFactory, audit_text, build_services

from tenantrag.app import create_app
from tenantrag.backends import Embedder
from tenantrag.backends.ratelimit import TenantRateLimiter
from tenantrag.models import Tenant
from tenantrag.services import Services
from tenantrag.settings import Settings

REDIS = "redis://127.0.0.1:6379/15"


def _client(settings: Settings, services: Services) -> httpx.AsyncClient:
    app = create_app(settings, services)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")


async def test_headers_and_429_in_process(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """With a limit of 5, five requests pass with falling `remaining`, the sixth gets 429."""
    services.store.update_tenant("acme", rate_limit=5)
    remaining = []
    for _ in range(5):
        r = await client.get("/api/me", headers=auth())
        assert r.status_code == 200
        assert r.headers["ratelimit-policy"] == "5;w=60"
        remaining.append(int(r.headers["ratelimit"].split("remaining=")[1].split(",")[0]))
    assert remaining == [4, 3, 2, 1, 0]
    r = await client.get("/api/me", headers=auth())
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["ratelimit-policy"] == "5;w=60"


async def test_one_tenant_exhausting_its_limit_does_not_touch_another(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """acme's 429s never count against globex."""
    services.store.update_tenant("acme", rate_limit=2)
    for _ in range(3):
        await client.get("/api/me", headers=auth("acme"))
    r = await client.get("/api/me", headers=auth("globex"))
    assert r.status_code == 200
    assert "remaining=99" in r.headers["ratelimit"]


async def test_rate_limit_hits_are_audited(
    client: httpx.AsyncClient, auth: TokenFactory, services: Services
) -> None:
    """A 429 leaves a rate_limited audit record for the tenant."""
    services.store.update_tenant("acme", rate_limit=1)
    await client.get("/api/me", headers=auth())
    await client.get("/api/me", headers=auth())
    text = audit_text(services)
    assert '"action":"rate_limited"' in text.replace(" ", "")


@pytest.fixture
async def redis_settings(tmp_path: Path, settings: Settings) -> AsyncIterator[Settings]:
    """Settings whose limiter keeps windows in the real Redis (db 15, cleaned)."""
    shared = settings.model_copy(update={"redis_url": REDIS})
    yield shared
    cleaner = TenantRateLimiter(REDIS)
    await cleaner.reset()
    await cleaner.close()


@pytest.mark.redis
async def test_two_app_instances_share_one_window_in_redis(
    redis_settings: Settings, auth: TokenFactory, embedder: Embedder
) -> None:
    """Two independent app instances over one Redis let exactly `limit` of limit+1 through."""
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    first = await build_services(redis_settings, embedder)
    second = await build_services(redis_settings, embedder)
    first.store.create_tenant(Tenant(id=tenant, rate_limit=20))
    statuses = []
    try:
        async with _client(redis_settings, first) as a, _client(redis_settings, second) as b:
            for i in range(21):
                r = await (a if i % 2 else b).get("/api/me", headers=auth(tenant))
                statuses.append(r.status_code)
    finally:
        await first.close()
        await second.close()
    assert statuses.count(200) == 20
    assert statuses[-1] == 429


def _counter(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.integration
@pytest.mark.redis
async def test_redis_down_fails_open_and_is_counted(
    settings: Settings, auth: TokenFactory, tmp_path: Path, embedder: Embedder
) -> None:
    """With Redis stopped the process enforces its share of the limit (fail open falls back),
    counts each local check, reports the fallback in metrics, and /ready says degraded (200)."""
    port = _free_port()
    server = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(50):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        own = settings.model_copy(
            update={"redis_url": f"redis://127.0.0.1:{port}/0", "metrics_public": True}
        )
        services = await build_services(own, embedder)
        services.store.create_tenant(Tenant(id="acme", rate_limit=3))
        async with _client(own, services) as c:
            assert (await c.get("/api/me", headers=auth())).status_code == 200
            before = _counter((await c.get("/metrics")).text, "tenantrag_rate_limiter_errors_total")
            server.kill()
            server.wait()
            # one counted in Redis before; now 3 in this process's own window (one process)
            answers = [await c.get("/api/me", headers=auth()) for _ in range(4)]
            assert [a.status_code for a in answers] == [200, 200, 200, 429]
            assert answers[0].headers["ratelimit"] == "limit=3, remaining=2, reset=60"
            text = (await c.get("/metrics")).text
            assert _counter(text, "tenantrag_rate_limiter_errors_total") == before + 4
            assert _counter(text, "tenantrag_redis_fallback") == 1
            ready = await c.get("/ready")
            assert ready.status_code == 200, ready.text
            body = ready.json()
            assert body["status"] == "degraded" and body["degraded"] == ["redis"]
            assert body["checks"]["redis"] is False and "redis" in body["detail"]
        await services.close()  # with Redis gone: closing must not raise
    finally:
        server.kill()
        server.wait()


@pytest.mark.redis
async def test_redis_down_fails_closed_when_configured(
    settings: Settings, auth: TokenFactory, embedder: Embedder
) -> None:
    """With fail-open off, an unreachable Redis gives 503 with Retry-After instead of passing,
    and /ready is 503 naming redis (the node cannot serve /api without it)."""
    own = settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{_free_port()}/0", "rate_limit_fail_open": False}
    )
    services = await build_services(own, embedder)
    services.store.create_tenant(Tenant(id="acme"))
    try:
        async with _client(own, services) as c:
            r = await c.get("/api/me", headers=auth())
            ready = await c.get("/ready")
    finally:
        await services.close()
    assert ready.status_code == 503 and ready.json()["status"] == "unavailable"
    assert "redis" in ready.json()["error"]["message"]
    assert r.status_code == 503
    assert r.json()["error"]["code"] == "dependency_unavailable"
    assert r.headers["retry-after"] == "5"


@pytest.mark.redis
async def test_redis_window_reports_remaining_and_reset_in_one_call() -> None:
    """The Redis limiter counts down `remaining`, refuses at the limit, names a reset within
    the window, and keeps each tenant's window apart (one tenant's 429s leave another untouched).
    """
    limiter = TenantRateLimiter(REDIS)
    first, second = (f"t-{uuid.uuid4().hex[:10]}" for _ in range(2))
    try:
        decisions = [await limiter.hit(first, 3) for _ in range(5)]
        assert [d.allowed for d in decisions] == [True, True, True, False, False]
        assert [d.remaining for d in decisions] == [2, 1, 0, 0, 0]
        assert all(1 <= d.reset_s <= 60 for d in decisions)
        other = await limiter.hit(second, 3)
        assert (other.allowed, other.remaining) == (True, 2)
    finally:
        await limiter.reset()
        await limiter.close()


@pytest.mark.redis
async def test_redis_window_names_the_right_reset_after_the_limit_is_lowered() -> None:
    """A window holding more requests than a lowered limit frees a slot only when enough have
    left: Retry-After points at that request, not at the oldest one."""
    import redis.asyncio as aioredis

    from tenantrag.backends.ratelimit import KEY_PREFIX

    limiter = TenantRateLimiter(REDIS)
    tenant = f"t-{uuid.uuid4().hex[:10]}"
    raw = aioredis.Redis.from_url(REDIS)
    try:
        seconds, micros = await raw.time()
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        # three counted requests, 50 s, 40 s and 10 s ago
        await raw.zadd(
            KEY_PREFIX + tenant, {"a": now_ms - 50_000, "b": now_ms - 40_000, "c": now_ms - 10_000}
        )
        decision = await limiter.hit(tenant, 1)
        assert not decision.allowed and decision.remaining == 0
        assert 49 <= decision.reset_s <= 51  # when "c" leaves; the oldest leaves in 10 s
        assert await raw.zcard(KEY_PREFIX + tenant) == 3  # the refusal was not counted
    finally:
        await raw.delete(KEY_PREFIX + tenant)
        await raw.aclose()
        await limiter.close()
