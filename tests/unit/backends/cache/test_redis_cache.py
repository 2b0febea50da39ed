"""RedisCache against real Redis servers: keys and TTLs on the server, cancellation safety,
an outage with automatic recovery, and a server too slow to answer."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import pytest
import redis
from structlog.testing import capture_logs

from tenantrag.backends.breaker import BreakerState
from tenantrag.backends.cache.redis import RedisCache

if TYPE_CHECKING:
    from conftest import FakeClock, RedisProcess

pytestmark = pytest.mark.redis


@pytest.fixture
def raw(shared_redis_url: str) -> redis.Redis:
    """A plain client to look at what the server holds."""
    return redis.Redis.from_url(shared_redis_url)


def connections_received(raw: redis.Redis) -> int:
    """How many connections the server has accepted since it started."""
    stats = raw.info("stats")
    assert isinstance(stats, dict)
    return int(stats["total_connections_received"])


def state_of(cache: RedisCache) -> BreakerState:
    """The breaker's state now (a call, so the type checker does not pin it)."""
    return cache.breaker.state("", cache.name)


@pytest.fixture
async def cache(shared_redis_url: str) -> AsyncIterator[RedisCache]:
    cache = RedisCache(shared_redis_url, socket_timeout=1.0)
    yield cache
    await cache.close()


class TestRedisCacheOnServer:
    async def test_stores_under_tenant_prefix_with_ttl(
        self, cache: RedisCache, raw: redis.Redis, new_tenant: Callable[[], str]
    ) -> None:
        """The server holds the value at `tenant:key` with the requested TTL."""
        tenant = new_tenant()
        await cache.set(tenant, "q1", b"answer", ttl_s=30)
        assert raw.get(f"{tenant}:q1") == b"answer"
        assert 0 < int(raw.ttl(f"{tenant}:q1")) <= 30  # type: ignore[arg-type]  # sync client

    async def test_every_key_has_a_ttl(
        self, cache: RedisCache, raw: redis.Redis, new_tenant: Callable[[], str]
    ) -> None:
        """No key the cache writes lives forever: each has a TTL on the server."""
        tenant = new_tenant()
        for i in range(5):
            await cache.set(tenant, f"k{i}", b"v", ttl_s=10 + i)
        ttls = [int(raw.ttl(key)) for key in raw.scan_iter(match=f"{tenant}:*")]  # type: ignore[arg-type]
        assert len(ttls) == 5
        assert all(0 < ttl <= 14 for ttl in ttls)

    async def test_server_expiry_is_a_miss(
        self, cache: RedisCache, raw: redis.Redis, new_tenant: Callable[[], str]
    ) -> None:
        """Once the server has expired an entry, get reads None."""
        tenant = new_tenant()
        await cache.set(tenant, "k", b"v", ttl_s=60)
        raw.pexpire(f"{tenant}:k", 1)  # expire now rather than sleep a second
        await asyncio.sleep(0.01)
        assert await cache.get(tenant, "k") is None

    async def test_cancelled_gets_never_return_another_keys_value(
        self, shared_redis_url: str, raw: redis.Redis, new_tenant: Callable[[], str]
    ) -> None:
        """Many concurrent gets over a small pool, cancelled at random moments, each return their
        own tenant's value or nothing, never a reply meant for another request."""
        tenants = [new_tenant() for _ in range(40)]
        # Large values take several reads, so cancellations land between send and full reply.
        expected = {t: (t.encode() + b"|") * 3000 for t in tenants}
        for tenant, value in expected.items():
            raw.set(f"{tenant}:doc", value, ex=120)
        received_before = connections_received(raw)
        cache = RedisCache(
            shared_redis_url, socket_timeout=1.0, max_connections=4, breaker_threshold=10_000
        )
        rng = random.Random(7)
        completed = cancelled = 0
        try:
            for _ in range(8):
                wave = [rng.choice(tenants) for _ in range(150)]
                tasks = [asyncio.ensure_future(cache.get(t, "doc")) for t in wave]
                loop = asyncio.get_running_loop()
                for task in tasks:
                    if rng.random() < 0.5:
                        loop.call_later(rng.uniform(0, 0.004), task.cancel)
                outcomes = await asyncio.gather(*tasks, return_exceptions=True)
                for tenant, outcome in zip(wave, outcomes, strict=True):
                    if isinstance(outcome, asyncio.CancelledError):
                        cancelled += 1
                        continue
                    assert not isinstance(outcome, BaseException), outcome
                    assert outcome == expected[tenant]
                    completed += 1
            for tenant in tenants:  # the pool is clean afterwards too
                assert await cache.get(tenant, "doc") == expected[tenant]
        finally:
            await cache.close()
        assert completed > 100
        assert cancelled > 100
        # Connections cancelled mid-command were closed, not reused: more were opened than 4.
        assert connections_received(raw) - received_before > 4
        assert cache.errors == 0


class TestRedisOutage:
    async def test_outage_degrades_silently_and_recovers(
        self, redis_process: RedisProcess, clock: FakeClock
    ) -> None:
        """With the server killed, get answers None and set does nothing, errors are counted, the
        breaker opens with one ERROR line; after a restart the half-open trial closes it."""
        changes: list[BreakerState] = []
        cache = RedisCache(
            redis_process.url,
            socket_timeout=0.25,
            breaker_threshold=3,
            breaker_reset_s=10,
            clock=clock,
            on_state_change=lambda _tenant, _dep, state: changes.append(state),
        )
        try:
            await cache.set("acme", "k", b"before", ttl_s=60)
            assert await cache.get("acme", "k") == b"before"

            redis_process.kill()
            with capture_logs() as logs:
                for _ in range(10):
                    assert await cache.get("acme", "k") is None
                    await cache.set("acme", "k", b"during", ttl_s=60)
            assert state_of(cache) == "open"
            assert cache.errors == 20
            assert [e["log_level"] for e in logs if e["log_level"] == "error"] == ["error"]
            assert await cache.ping() is False

            redis_process.start()
            assert await cache.get("acme", "k") is None  # still open: no call is tried yet
            assert state_of(cache) == "open"

            clock.advance(10)
            assert await cache.get("acme", "k") is None  # the trial: a miss on the fresh server
            assert state_of(cache) == "closed"
            await cache.set("acme", "k", b"after", ttl_s=60)
            assert await cache.get("acme", "k") == b"after"
            assert changes == ["open", "half_open", "closed"]
            assert (cache.hits, cache.misses, cache.errors) == (2, 1, 21)
        finally:
            await cache.close()

    async def test_slow_server_times_out_then_is_skipped(self, clock: FakeClock) -> None:
        """A server that accepts but never answers costs a timeout per call until the breaker
        opens; after that calls are not sent at all."""
        connections = 0

        async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            nonlocal connections
            connections += 1  # each timed-out call drops its connection; the next dials again
            while await reader.read(65536):
                pass  # read and discard until the client hangs up
            writer.close()

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        cache = RedisCache(
            f"redis://127.0.0.1:{port}/0",
            socket_timeout=0.05,
            breaker_threshold=2,
            clock=clock,
        )
        try:
            for _ in range(6):
                assert await cache.get("acme", "k") is None
            await cache.set("acme", "k", b"v", ttl_s=5)
            assert state_of(cache) == "open"
            assert cache.errors == 7
            assert connections == 2
        finally:
            await cache.close()
            server.close()
            await server.wait_closed()
