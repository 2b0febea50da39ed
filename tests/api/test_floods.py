"""Floods of refused requests: per client address, 429 before any token is checked.

The app runs in-process; httpx's ASGI transport names the client address, so an attacker and a
good tenant can come from different (or the same) addresses.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from tests.api.conftest import TokenFactory, build_services

from tenantrag.app import create_app
from tenantrag.backends import Embedder
from tenantrag.middleware.floods import RefusalLimiter
from tenantrag.services import Services
from tenantrag.settings import Settings

ATTACKER = ("203.0.113.7", 40000)
OFFICE = ("198.51.100.20", 40001)
BAD = {"Authorization": "Bearer not-a-token", "X-Tenant-ID": "acme"}


@pytest.fixture
async def clients(
    settings: Settings, services: Services
) -> AsyncIterator[dict[str, httpx.AsyncClient]]:
    """Two clients of one app, from two addresses."""
    app = create_app(settings, services)
    out: dict[str, httpx.AsyncClient] = {}
    for name, address in (("attacker", ATTACKER), ("office", OFFICE)):
        transport = httpx.ASGITransport(app=app, client=address)
        out[name] = httpx.AsyncClient(transport=transport, base_url="http://testserver")
    yield out
    for http in out.values():
        await http.aclose()


async def test_a_burst_of_bad_tokens_gets_429_while_a_good_tenant_is_served(
    clients: dict[str, httpx.AsyncClient], auth: TokenFactory, services: Services
) -> None:
    """Past the burst the attacker gets 429 + Retry-After; acme and globex elsewhere are served."""
    attacker, office = clients["attacker"], clients["office"]
    burst = services.settings.server.refusal_burst
    statuses = [(await attacker.get("/api/me", headers=BAD)).status_code for _ in range(burst + 30)]
    assert statuses == [401] * burst + [429] * 30
    r = await attacker.post("/api/search", headers=BAD, json={"query": "x"})
    assert r.status_code == 429
    assert r.json()["error"]["code"] == "too_many_refusals"
    assert int(r.headers["Retry-After"]) >= 1
    # the OpenAI-compatible routes refuse the same way, in OpenAI's error shape
    v1 = await attacker.get("/v1/models", headers={"Authorization": "Bearer nope"})
    assert v1.status_code == 429 and v1.headers["Retry-After"]
    # a bad header or a foreign tenant counts as a refusal too: still 429, nothing checked
    foreign = auth("globex") | {"X-Tenant-ID": "acme"}
    assert (await attacker.get("/api/me", headers=foreign)).status_code == 429
    for tenant in ("acme", "globex"):
        for _ in range(5):
            ok = await office.get("/api/me", headers=auth(tenant))
            assert ok.status_code == 200, ok.text
    services.security_log.flush()
    rows = {r.client: r for r in services.store.security_log(limit=10)}
    assert rows[ATTACKER[0]].count == burst + 30 + 3
    assert rows[ATTACKER[0]].detail["codes"]["refusals_rate_limited"] == 33  # type: ignore[index]
    assert OFFICE[0] not in rows


async def test_a_token_already_verified_passes_from_a_flooded_address(
    clients: dict[str, httpx.AsyncClient], auth: TokenFactory, services: Services
) -> None:
    """Behind one NAT: a user whose token this process has verified keeps working; new ones wait."""
    attacker = clients["attacker"]
    known = auth("acme")
    assert (await attacker.get("/api/me", headers=known)).status_code == 200
    for _ in range(services.settings.server.refusal_burst):
        await attacker.get("/api/me", headers=BAD)
    assert (await attacker.get("/api/me", headers=BAD)).status_code == 429
    assert (await attacker.get("/api/me", headers=known)).status_code == 200
    unverified = auth("acme", user="bob")  # valid, but never seen: not checked while flooded
    assert (await attacker.get("/api/me", headers=unverified)).status_code == 429


async def test_authenticated_traffic_never_builds_a_bucket(
    clients: dict[str, httpx.AsyncClient], auth: TokenFactory, services: Services
) -> None:
    """Many good requests, and refusals after auth (a missing permission), charge nothing."""
    office = clients["office"]
    viewer = auth("acme", permissions=["query"])
    burst = services.settings.server.refusal_burst
    for _ in range(burst + 5):
        assert (await office.get("/api/me", headers=auth("acme"))).status_code == 200
        r = await office.delete("/api/documents/nope", headers=viewer)
        assert r.status_code == 403  # authenticated: the tenant's own limit applies, not ours
    assert (await office.get("/api/me", headers=BAD)).status_code == 401


def test_the_bucket_refills_at_its_rate_and_names_the_wait() -> None:
    """A fake clock: `burst` refusals, then a wait of one token's refill time."""
    now = [1000.0]
    limiter = RefusalLimiter(burst=3, per_minute=6, clock=lambda: now[0])  # one per 10 s
    assert limiter.retry_after("a") is None
    for _ in range(3):
        limiter.charge("a")
    assert limiter.retry_after("a") == 10
    now[0] += 4
    assert limiter.retry_after("a") == 6
    now[0] += 6
    assert limiter.retry_after("a") is None
    assert limiter.retry_after("b") is None  # one address's debt is its own


def test_the_buckets_are_bounded() -> None:
    """A flood from many addresses keeps at most `max_addresses` buckets."""
    now = [0.0]
    limiter = RefusalLimiter(burst=2, per_minute=60, clock=lambda: now[0], max_addresses=100)
    for i in range(1000):
        limiter.charge(f"10.0.{i // 256}.{i % 256}")
        now[0] += 0.001
    assert len(limiter) <= 100


REDIS = "redis://127.0.0.1:6379/15"


@pytest.mark.redis
async def test_with_redis_two_processes_share_one_refusal_budget(
    settings: Settings, embedder: Embedder
) -> None:
    """A flood alternating between two app instances over one Redis: about one burst in all.

    Each instance alone would refuse a whole burst with 401 before its 429s; sharing, the two
    together let through at most one burst plus one (the other instance learns the bucket is
    empty on its next refusal). The address is random, so no other test shares its key.
    """
    shared = settings.model_copy(update={"redis_url": REDIS, "metrics_public": True})
    first = await build_services(shared, embedder)
    second = await build_services(shared, embedder)
    address = (f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(256)}", 5000)
    burst = shared.server.refusal_burst
    statuses: list[int] = []
    try:
        apps = [create_app(shared, first), create_app(shared, second)]
        clients = [
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app, client=address), base_url="http://t"
            )
            for app in apps
        ]
        for i in range(2 * burst + 10):
            r = await clients[i % 2].get("/api/me", headers=BAD)
            statuses.append(r.status_code)
        for http in clients:
            await http.aclose()
    finally:
        await first.close()
        await second.close()
    assert set(statuses) == {401, 429}
    assert burst <= statuses.count(401) <= burst + 1
    assert statuses[-10:] == [429] * 10
