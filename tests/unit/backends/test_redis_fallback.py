"""Redis away: the limiter enforces this process's share, the cache serves from memory, both return.

Each test runs its own redis-server on a free port and kills it; the shared one is never touched.
"""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from tests.faults.support import RedisServer

from tenantrag.backends.cache import build_cache
from tenantrag.backends.ratelimit import StorageUnavailable, TenantRateLimiter, fallback_limit
from tenantrag.backends.redis_link import RedisLink

pytestmark = pytest.mark.integration  # starts its own redis-server


def test_fallback_limit_is_the_floor_share_and_at_least_one() -> None:
    """Three processes share 100 as 33 each (99 in all, never above); 2 over 3 is still 1."""
    assert fallback_limit(100, 3) == 33
    assert fallback_limit(100, 1) == 100
    assert fallback_limit(2, 3) == 1
    assert fallback_limit(100, 0) == 100  # a nonsense divisor is read as one process


async def _until(check: object, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.05)
    return False


async def test_limiter_and_cache_fall_back_without_stalls_and_return() -> None:
    """Kill Redis: the first call notices, the rest skip Redis (fast), limits are the share;
    restart it: the probe switches back, the shared window counts again."""
    changes: list[bool] = []
    fallback_s: list[float] = []
    with RedisServer() as redis:

        async def ping() -> bool:
            return await limiter.ping()

        link = RedisLink(
            ping,
            first_delay_s=0.1,
            max_delay_s=0.4,
            on_change=changes.append,
            on_fallback_seconds=fallback_s.append,
        )
        limiter = TenantRateLimiter(redis.url(), expected_processes=3, link=link)
        cache = build_cache(redis.url(), name="answers", link=link, local_fallback=True)
        tenant = f"t-{uuid.uuid4().hex[:10]}"
        try:
            first = await limiter.hit(tenant, 10)
            assert first.allowed and not first.local and first.limit == 10
            await cache.set(tenant, "k", b"from-redis", ttl_s=60)
            assert await cache.get(tenant, "k") == b"from-redis"

            redis.kill()
            decisions = [await limiter.hit(tenant, 10)]  # this one fails over
            assert not link.up and changes == [False]
            started = time.monotonic()
            decisions += [await limiter.hit(tenant, 10) for _ in range(4)]
            assert time.monotonic() - started < 0.2  # no call waits on the dead Redis
            # 10 // 3 = 3 per process while Redis is away, in this process's own window
            assert [d.allowed for d in decisions] == [True, True, True, False, False]
            assert all(d.local and d.limit == 3 for d in decisions)
            assert decisions[-1].reset_s >= 1

            assert await cache.get(tenant, "k") is None  # Redis's entries are out of reach
            await cache.set(tenant, "k", b"in-process", ttl_s=60)
            assert await cache.get(tenant, "k") == b"in-process"
            other = f"t-{uuid.uuid4().hex[:10]}"
            assert await cache.get(other, "k") is None  # the fallback is per tenant too

            await asyncio.sleep(0.5)  # probes fail with a growing delay while it is away
            assert not link.up
            redis.start()
            assert await _until(lambda: link.up, timeout_s=5), "the probe never switched back"
            assert changes == [False, True]
            assert sum(fallback_s) >= 0.5

            back = await limiter.hit(tenant, 10)
            # the shared window again (the restarted Redis kept nothing: it runs without saving)
            assert back.allowed and not back.local and back.remaining == 9
            assert (await limiter.hit(tenant, 10)).remaining == 8
            await cache.set(tenant, "k2", b"redis-again", ttl_s=60)
            assert await cache.get(tenant, "k2") == b"redis-again"
        finally:
            await cache.close()
            await limiter.close()


async def test_fail_closed_raises_while_redis_is_away() -> None:
    """Without the fallback (fail closed) a check with Redis away raises, every time, fast."""
    with RedisServer() as redis:
        limiter = TenantRateLimiter(redis.url(), fallback=False)
        try:
            redis.kill()
            for _ in range(3):
                with pytest.raises(StorageUnavailable):
                    await limiter.hit("acme", 5)
            assert not limiter.link.up
        finally:
            await limiter.close()
