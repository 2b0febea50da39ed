"""Erasure with Redis: the tenant's cache entries and rate windows leave the shared Redis.

A private redis-server on a free port (tests/faults/support.py), so the test may inspect every
key and kill it, never touching the shared one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from pydantic import SecretStr
from tests.api.conftest import SECRET, TokenFactory
from tests.faults.support import RedisServer

from tenantrag.app import create_app
from tenantrag.auth import issue_platform_token
from tenantrag.backends import Embedder
from tenantrag.models import Tenant
from tenantrag.services import Services, open_services
from tenantrag.settings import Settings

CANARY = "redis-canary-91c4"
PLATFORM = {"Authorization": "Bearer " + issue_platform_token(SECRET, user_id="ops")}


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A redis-server of this test's own."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def settings(tmp_path: Path, model_dir: Path, private_redis: RedisServer) -> Settings:
    """Embedded store, shared cache and limits in the private Redis."""
    return Settings(
        data_dir=tmp_path / "data",
        jwt_secret=SecretStr(SECRET),
        redis_url=private_redis.url(),
        model_dir=model_dir.parent,
    )


@pytest.fixture
async def services(settings: Settings, embedder: Embedder) -> AsyncIterator[Services]:
    """Opened services with acme and globex."""
    built = await open_services(settings, embedder=embedder)
    built.store.create_tenant(Tenant(id="acme"))
    built.store.create_tenant(Tenant(id="globex"))
    yield built
    await built.close()


@pytest.fixture
async def client(settings: Settings, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process."""
    transport = httpx.ASGITransport(app=create_app(settings, services))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


def keys_with(server: RedisServer, text: str) -> list[bytes]:
    """Every key whose name or string value holds `text`."""
    found = []
    client = redis.Redis.from_url(server.url())
    try:
        for key in client.scan_iter(count=1000):
            value = client.get(key) if client.type(key) == b"string" else b""
            if text.encode() in key or text.encode() in (value or b""):
                found.append(key)
    finally:
        client.close()
    return found


@pytest.mark.redis
async def test_erasure_removes_the_tenants_redis_entries_only(
    client: httpx.AsyncClient, auth: TokenFactory, private_redis: RedisServer
) -> None:
    """Cached answers and rate windows of acme go; globex's stay; a Redis outage is a 503."""
    docs = [{"id": "d", "title": CANARY, "text": f"The lockers open with {CANARY}."}]
    await client.post("/api/documents", headers=auth(), json={"documents": docs})
    await client.post("/api/query", headers=auth(), json={"query": "What opens the lockers?"})
    await client.post(
        "/api/documents",
        headers=auth("globex"),
        json={"documents": [{"id": "g", "text": "Globex lockers are blue."}]},
    )
    await client.post("/api/query", headers=auth("globex"), json={"query": "Locker colour?"})
    assert keys_with(private_redis, CANARY)  # the check sees the cached answer
    assert keys_with(private_redis, "RL:acme")
    r = await client.delete("/api/admin/tenants/acme", headers=PLATFORM)
    assert r.status_code == 202, r.text
    assert r.json()["removed"]["cache_entries"] >= 2
    assert keys_with(private_redis, CANARY) == []
    assert keys_with(private_redis, "acme") == []
    assert keys_with(private_redis, "globex")  # another tenant's entries stay
    private_redis.kill()
    r = await client.delete("/api/admin/tenants/globex", headers=PLATFORM)
    assert r.status_code == 503 and r.json()["error"]["code"] == "dependency_unavailable"
    assert "send the DELETE again" in r.json()["error"]["message"]
