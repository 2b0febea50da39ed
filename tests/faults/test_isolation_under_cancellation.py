"""Ten tenants at once over one shared Redis cache, requests cancelled at random mid-flight.

In-process, a client-side timeout cancels the very task running the app, so the cancellation
lands inside whatever the request awaits at that moment (a Redis GET, a thread hop, the model):
the case where a pooled connection could hand one tenant's reply to another.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from tests.api.conftest import TokenFactory, build_services

from tenantrag.app import create_app
from tenantrag.backends import Embedder
from tenantrag.models import Tenant
from tenantrag.services import Services
from tenantrag.settings import Settings

pytestmark = pytest.mark.redis
REDIS_URL = "redis://127.0.0.1:6379/13"
TENANTS = 10
REQUESTS = 400
QUESTIONS = ["What is the vault access code?", "Which code opens the vault?", "vault access code"]
SHARED = {"id": "handbook", "text": "Staff must never share the vault access code by e-mail."}


@pytest.fixture
async def shared_cache_app(
    settings: Settings, embedder: Embedder
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    """The app with answers cached in Redis; ten tenants, each with its own canary code."""
    configured = settings.model_copy(update={"redis_url": REDIS_URL})
    services: Services = await build_services(configured, embedder)
    run = uuid.uuid4().hex[:6]
    canaries = {
        f"iso{i}-{run}": f"CANARY{i}X{uuid.uuid4().hex[:8].upper()}" for i in range(TENANTS)
    }
    for tenant in canaries:
        services.store.create_tenant(Tenant(id=tenant, rate_limit=100_000))
    app = create_app(configured, services)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver", timeout=60
    ) as http:
        yield http, canaries
    await services.close()


async def test_no_response_carries_another_tenants_canary(
    shared_cache_app: tuple[httpx.AsyncClient, dict[str, str]], auth: TokenFactory
) -> None:
    """400 concurrent queries, streams and searches, a third with 0.2-20 ms deadlines: no leak."""
    http, canaries = shared_cache_app
    headers = {t: auth(t) for t in canaries}
    for tenant, canary in canaries.items():
        doc = {"id": "vault", "text": f"The vault access code is {canary}. Keep it secret."}
        r = await http.post(
            "/api/documents", headers=headers[tenant], json={"documents": [doc, SHARED]}
        )
        assert r.status_code == 201, r.text
    rng = random.Random(13)
    seen: dict[str, list[str]] = {t: [] for t in canaries}
    stats = {"cancelled": 0, "cached": 0, "done": 0}

    async def one(tenant: str) -> None:
        kind = rng.choice(["query", "query", "stream", "search"])
        body = {"query": rng.choice(QUESTIONS), "stream": kind == "stream"}
        path = "/api/search" if kind == "search" else "/api/query"
        if kind == "search":
            body.pop("stream")
        call = http.post(path, headers=headers[tenant], json=body)
        try:
            if rng.random() < 1 / 3:  # cancelled after a random slice of its work
                r = await asyncio.wait_for(call, timeout=rng.uniform(0.0002, 0.02))
            else:
                r = await call
        except TimeoutError:
            stats["cancelled"] += 1
            return
        assert r.status_code == 200, r.text
        stats["done"] += 1
        stats["cached"] += '"cached": true' in r.text or '"cached":true' in r.text
        seen[tenant].append(r.text)

    tenants = list(canaries)
    for start in range(0, REQUESTS, 40):  # 40 in flight at a time
        await asyncio.gather(*(one(rng.choice(tenants)) for _ in range(start, start + 40)))

    for tenant, bodies in seen.items():
        foreign = [c for t, c in canaries.items() if t != tenant]
        for text in bodies:
            assert not [c for c in foreign if c in text], f"{tenant} received {text[:300]}"
        assert any(canaries[tenant] in text for text in bodies)  # it did see its own
    assert stats["cancelled"] >= 20 and stats["cached"] >= 20, stats
