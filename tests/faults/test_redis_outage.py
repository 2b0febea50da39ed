"""Redis killed and restarted under load: the node falls back to per-process limits and cache
(every answer still limited, /ready degraded), then returns to Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import pytest
from tests.faults.support import RedisServer
from tests.integration.conftest import METRICS_TOKEN, Server

pytestmark = pytest.mark.integration  # starts servers or subprocesses

TenantFactory = Callable[..., tuple[str, dict[str, str]]]
DOCS = [
    {"id": "garage", "text": "The parking garage opens at seven in the morning on weekdays."},
    {"id": "canteen", "text": "The canteen serves lunch from noon until two in the afternoon."},
    {"id": "badges", "text": "Lost access badges are replaced by the security desk in lobby B."},
]
QUESTIONS = [
    "When does the parking garage open?",
    "When is lunch served?",
    "Who replaces lost badges?",
    "parking garage",
    "canteen lunch",
]


@dataclass
class LoadResult:
    """What a bounded load saw."""

    statuses: list[int] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # transport errors
    unlimited: int = 0  # 2xx answers without RateLimit headers (none: the fallback limits too)
    done: int = 0
    degraded_ready: list[dict[str, object]] = field(default_factory=list)  # /ready while down


async def drive(
    http: httpx.AsyncClient,
    headers: dict[str, str],
    result: LoadResult,
    *,
    total: int,
    concurrency: int,
) -> None:
    """`total` searches and queries from `concurrency` tasks, each outcome noted in `result`."""

    async def one(n: int) -> None:
        question = QUESTIONS[n % len(QUESTIONS)]
        try:
            if n % 3 == 0:
                r = await http.post("/api/query", headers=headers, json={"query": question})
            else:
                mode = "bm25" if n % 2 else "hybrid"
                r = await http.post(
                    "/api/search", headers=headers, json={"query": question, "mode": mode}
                )
        except httpx.HTTPError as exc:
            result.failures.append(repr(exc))
            return
        finally:
            result.done += 1
        result.statuses.append(r.status_code)
        if r.is_success and "ratelimit" not in r.headers:
            result.unlimited += 1

    async def worker(start: int) -> None:
        for n in range(start, total, concurrency):
            await one(n)

    await asyncio.gather(*(worker(i) for i in range(concurrency)))


async def chaos(
    http: httpx.AsyncClient, redis: RedisServer, result: LoadResult, total: int
) -> None:
    """Kill Redis a third of the way through the load; restart it on its port at two thirds.

    While it is down, /ready is asked once (it must say degraded, 200, naming redis).
    """
    while result.done < total // 3:
        await asyncio.sleep(0.01)
    await asyncio.to_thread(redis.kill)
    ready = await http.get("/ready")
    result.degraded_ready.append({"status_code": ready.status_code, **ready.json()})
    while result.done < 2 * total // 3:
        await asyncio.sleep(0.01)
    await asyncio.to_thread(redis.start)


async def test_redis_killed_and_restarted_under_load(
    cluster: Callable[..., Server], tenant: TenantFactory, redis_server: RedisServer
) -> None:
    """Under 300 mixed requests Redis dies and returns: <1% errors, then limits and cache resume."""
    server = cluster(redis=False, env={"TENANTRAG_REDIS_URL": redis_server.url()})
    _, headers = tenant(rate_limit=100_000)
    total = 300
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        r = await http.post("/api/documents", headers=headers, json={"documents": DOCS})
        assert r.status_code == 201, r.text
        result = LoadResult()
        await asyncio.gather(
            drive(http, headers, result, total=total, concurrency=6),
            chaos(http, redis_server, result, total),
        )
        errors = [s for s in result.statuses if s >= 400] + result.failures
        assert not errors, errors
        assert result.unlimited == 0  # the per-process fallback limited every answer
        [down] = result.degraded_ready
        assert down["status_code"] == 200 and down["status"] == "degraded", down
        assert down["degraded"] == ["redis"]

        assert await _cache_hits_again(http, headers)
        assert await _redis_ready_again(http)
        metrics = await http.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
        values = _samples(metrics.text)
        assert values["tenantrag_redis_fallback"] == 0  # back on Redis
        assert values["tenantrag_redis_fallback_seconds_total"] > 0

    _, strict = tenant(rate_limit=5)  # a fresh window in the restarted Redis
    async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as http:
        answers = [await http.get("/api/me", headers=strict) for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert all("ratelimit" in a.headers and "ratelimit-policy" in a.headers for a in answers)
    assert answers[-1].headers["retry-after"].isdigit()


async def _redis_ready_again(http: httpx.AsyncClient) -> bool:
    """True once /ready reports Redis up and the node off its fallback (the probe's delay)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        r = await http.get("/ready")
        if r.status_code == 200 and r.json()["status"] == "ready":
            return bool(r.json()["checks"]["redis"])
        await asyncio.sleep(0.25)
    return False


def _samples(text: str) -> dict[str, float]:
    """Unlabelled samples of a Prometheus exposition, by name."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.split()[:2]
            out[name] = float(value)
    return out


async def _cache_hits_again(http: httpx.AsyncClient, headers: dict[str, str]) -> bool:
    """True once a repeated query is answered from the cache (the cache breaker waits 10 s)."""
    deadline = time.monotonic() + 25
    body = {"query": "When does the parking garage open? (after the outage)"}
    while time.monotonic() < deadline:
        r = await http.post("/api/query", headers=headers, json=body)
        assert r.status_code == 200, r.text
        if r.json()["cached"]:
            return True
        await asyncio.sleep(0.5)
    return False
