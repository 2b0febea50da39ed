"""Per-tenant rate limits in a 60-second moving window, in-process or in Redis.

In-process (embedded mode) the `limits` library keeps the windows. With Redis every worker and
pod shares one window per tenant, kept by one Lua script that counts the request and reports what
the response headers need (remaining, seconds to the next free slot) in a single round trip:
`limits` needs two for that (`hit`, then `get_window_stats`), and on the hot path the second
doubled the limiter's cost. The script reads the clock of the Redis server, so pods whose clocks
drift still share one exact window: `limit` requests pass per window however many processes serve
them (tests/api/test_rate_limit.py, tests/integration).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import cast

from limits import RateLimitItemPerMinute
from limits.aio.storage import Storage as AsyncStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

WINDOW_S = 60
# Upper case, so it can never be the start of a tenant's own keys (tenant ids are [a-z0-9-]).
KEY_PREFIX = "RL:"

# A sorted set per tenant: one member per counted request, scored by its time in milliseconds.
# Refused requests are not counted (as in `limits`' moving window). Returns
# {allowed (0/1), remaining, milliseconds until the oldest counted request leaves the window}.
_HIT_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local window_ms = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window_ms)
local count = redis.call('ZCARD', KEYS[1])
local allowed = 0
if count < limit then
    redis.call('ZADD', KEYS[1], now, ARGV[3])
    count = count + 1
    allowed = 1
end
redis.call('PEXPIRE', KEYS[1], window_ms)
-- a slot frees when the entry at (count - limit) leaves: the oldest one, unless the limit was
-- lowered below what the window already holds
local oldest = redis.call('ZRANGE', KEYS[1], math.max(0, count - limit), math.max(0, count - limit),
                          'WITHSCORES')
local reset_ms = window_ms
if oldest[2] then
    reset_ms = tonumber(oldest[2]) + window_ms - now
end
return {allowed, limit - count, reset_ms}
"""


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome of one rate-limit check."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until the window frees a slot


class StorageUnavailable(Exception):
    """The rate-limit storage (Redis) could not be reached."""


class TenantRateLimiter:
    """Counts requests per tenant in a 60-second moving window."""

    def __init__(self, redis_url: str | None, *, timeout_s: float = 0.25) -> None:
        self.distributed = bool(redis_url)
        self._redis: Redis | None = None
        self._memory: MovingWindowRateLimiter | None = None
        if redis_url:
            pool = BlockingConnectionPool.from_url(
                redis_url.removeprefix("async+"),
                # every request of the worker takes one for a moment: room for bursts, and
                # waiting for a free one is bounded too
                max_connections=256,
                timeout=timeout_s,
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
                # one retry, on a broken connection only (a Redis restart or an idle connection
                # dropped by a proxy); a timeout is not retried, the middleware's fail-open or
                # fail-closed is the policy
                retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
                health_check_interval=30,  # ping a connection idle that long before using it
            )
            self._redis = Redis(connection_pool=pool)
            self._hit = self._redis.register_script(_HIT_SCRIPT)
        else:
            storage = cast(AsyncStorage, storage_from_string("async+memory://"))
            self._memory = MovingWindowRateLimiter(storage)

    async def hit(self, tenant: str, limit: int) -> RateDecision:
        """Count one request for `tenant`; StorageUnavailable when Redis cannot be reached."""
        if self._memory is not None:
            return await self._hit_memory(tenant, limit)
        member = f"{time.time_ns()}-{os.urandom(6).hex()}"  # unique across workers and pods
        try:
            allowed, remaining, reset_ms = await self._hit(
                keys=[KEY_PREFIX + tenant], args=[limit, WINDOW_S * 1000, member]
            )
        except Exception as exc:  # redis-py raises several unrelated types when Redis is down
            raise StorageUnavailable(str(exc) or type(exc).__name__) from exc
        # whole seconds, rounded up, within the window (a clock step on Redis cannot stretch it)
        reset = min(WINDOW_S, max(1, -(-int(reset_ms) // 1000)))
        return RateDecision(bool(allowed), limit, max(0, int(remaining)), reset)

    async def _hit_memory(self, tenant: str, limit: int) -> RateDecision:
        assert self._memory is not None
        item = RateLimitItemPerMinute(limit)
        allowed = await self._memory.hit(item, "tenant", tenant)
        stats = await self._memory.get_window_stats(item, "tenant", tenant)
        reset = max(0, int(stats.reset_time - time.time() + 0.999))
        return RateDecision(allowed, limit, max(0, stats.remaining), reset or WINDOW_S)

    async def ping(self) -> bool:
        """True when the storage answers."""
        if self._redis is None:
            return True
        try:
            return bool(await self._redis.ping())  # type: ignore[misc]  # async client
        except Exception:
            return False

    async def reset(self) -> None:
        """Forget every window (tests and admin only)."""
        if self._memory is not None:
            await self._memory.storage.reset()
            return
        assert self._redis is not None
        async for key in self._redis.scan_iter(match=KEY_PREFIX + "*", count=500):
            await self._redis.delete(key)

    async def close(self) -> None:
        """Release the Redis connections."""
        if self._redis is not None:
            await self._redis.aclose(close_connection_pool=True)
