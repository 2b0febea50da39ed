"""Per-tenant rate limits in a 60-second moving window, in-process or in Redis.

In-process (embedded mode) `MemoryWindows` keeps the windows (the same moving window as the
Lua script below, on this process's monotonic clock). With Redis every worker and
pod shares one window per tenant, kept by one Lua script that counts the request and reports what
the response headers need (remaining, seconds to the next free slot) in a single round trip:
`limits` needs two for that (`hit`, then `get_window_stats`), and on the hot path the second
doubled the limiter's cost. The script reads the clock of the Redis server, so pods whose clocks
drift still share one exact window: `limit` requests pass per window however many processes serve
them (tests/api/test_rate_limit.py, tests/integration).

Redis away (docs/security.md, "Rate limits"): with `fallback` the limiter counts in this
process's own `MemoryWindows` and enforces `limit // expected_processes` (at least 1), so the
whole fleet stays near the limit without talking to each other: `expected_processes` is what
the operator says serves the traffic (pods x workers). It uses the shared `RedisLink`, so after
the first failure no request waits for Redis; the link's probe switches back when it answers.
Without `fallback` the middleware refuses with 503 (fail closed).
"""

from __future__ import annotations

import math
import os
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from tenantrag.backends.redis_link import RedisLink

WINDOW_S = 60
log = structlog.get_logger("tenantrag.ratelimit")
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


# Refusals before auth, per client address (middleware/floods.py): a token bucket in a hash,
# {tokens, at} on the Redis server's clock, charged one refusal; returns the tokens left as a
# string (Lua numbers become integers on the way out). Only refused requests run it.
REFUSAL_PREFIX = "RF:"
_REFUSAL_SCRIPT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
tokens = math.max(0, tokens - 1)
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(tokens)
"""


@dataclass(frozen=True, slots=True)
class RateDecision:
    """The outcome of one rate-limit check."""

    allowed: bool
    limit: int
    remaining: int
    reset_s: int  # seconds until the window frees a slot
    # decided by this process alone, on its share of the limit, because Redis was away
    local: bool = False


def fallback_limit(limit: int, expected_processes: int) -> int:
    """The share of `limit` one process enforces while Redis is away: floor, at least 1.

    Floor, so N processes together never pass more than `limit` (deny by default); at least 1,
    so a tiny limit over many processes still serves (then up to N per minute pass in total).
    """
    return max(1, limit // max(1, expected_processes))


class StorageUnavailable(Exception):
    """The rate-limit storage (Redis) could not be reached."""


class MemoryWindows:
    """Per-tenant moving windows in this process, with exactly the Lua script's rules.

    Each tenant has a deque of the times of its counted requests, oldest first; a hit drops
    those older than the window, counts the request if fewer than `limit` remain, and names
    when the next slot frees. The `limits` library's memory storage, used before, copied the
    whole window and handed a task to a worker thread on every request.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, deque[float]] = {}
        self._hits = 0

    def hit(self, tenant: str, limit: int) -> RateDecision:
        """Count one request for `tenant` unless its window is full."""
        now = self._clock()
        window = self._windows.setdefault(tenant, deque())
        while window and window[0] <= now - WINDOW_S:
            window.popleft()
        allowed = len(window) < limit
        if allowed:
            window.append(now)
        count = len(window)
        # a slot frees when the entry at (count - limit) leaves: the oldest one, unless the
        # limit was lowered below what the window already holds
        frees = max(0, count - limit)
        reset = window[frees] + WINDOW_S - now if frees < count else WINDOW_S
        self._hits += 1
        if self._hits % 4096 == 0:
            self._forget_idle(now)
        reset_s = min(WINDOW_S, max(1, math.ceil(reset)))
        return RateDecision(allowed, limit, max(0, limit - count), reset_s)

    def reset(self) -> None:
        """Forget every window."""
        self._windows.clear()

    def _forget_idle(self, now: float) -> None:
        """Drop the windows whose newest request left them: tenants come and go."""
        for tenant in [t for t, w in self._windows.items() if not w or w[-1] <= now - WINDOW_S]:
            del self._windows[tenant]


class TenantRateLimiter:
    """Counts requests per tenant in a 60-second moving window."""

    def __init__(
        self,
        redis_url: str | None,
        *,
        timeout_s: float = 0.25,
        fallback: bool = True,
        expected_processes: int = 1,
        link: RedisLink | None = None,
    ) -> None:
        self.distributed = bool(redis_url)
        self.fallback = fallback
        self.expected_processes = max(1, expected_processes)
        self._redis: Redis | None = None
        self._memory: MemoryWindows | None = None
        # the per-process windows used while Redis is away (distributed mode only)
        self._fallback_windows = MemoryWindows()
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
            self._refusal = self._redis.register_script(_REFUSAL_SCRIPT)
        else:
            self._memory = MemoryWindows()
        self.link = link if link is not None else RedisLink(self.ping)

    async def hit(self, tenant: str, limit: int) -> RateDecision:
        """Count one request for `tenant`.

        With Redis away: the per-process share when `fallback`, else StorageUnavailable.
        """
        if self._memory is not None:
            return self._memory.hit(tenant, limit)
        if not self.link.up:
            return self._without_redis(tenant, limit, "Redis is away")
        member = f"{time.time_ns()}-{os.urandom(6).hex()}"  # unique across workers and pods
        try:
            allowed, remaining, reset_ms = await self._hit(
                keys=[KEY_PREFIX + tenant], args=[limit, WINDOW_S * 1000, member]
            )
        except Exception as exc:  # redis-py raises several unrelated types when Redis is down
            reason = str(exc) or type(exc).__name__
            self.link.lost(reason)
            return self._without_redis(tenant, limit, reason)
        # whole seconds, rounded up, within the window (a clock step on Redis cannot stretch it)
        reset = min(WINDOW_S, max(1, -(-int(reset_ms) // 1000)))
        return RateDecision(bool(allowed), limit, max(0, int(remaining)), reset)

    def _without_redis(self, tenant: str, limit: int, reason: str) -> RateDecision:
        """This process's share of the limit, or StorageUnavailable when failing closed."""
        if not self.fallback:
            raise StorageUnavailable(reason)
        share = fallback_limit(limit, self.expected_processes)
        return replace(self._fallback_windows.hit(tenant, share), local=True)

    async def charge_refusal(self, address: str, burst: float, per_second: float) -> float | None:
        """Refusal tokens `address` has left across every process after one more refusal.

        None without Redis, or when Redis cannot answer (the caller's own bucket then decides).
        """
        if self._redis is None or not self.link.up:
            return None
        try:
            left = await self._refusal(keys=[REFUSAL_PREFIX + address], args=[burst, per_second])
        except Exception as exc:  # a refusal must not fail because Redis did
            log.warning("refusal_share_failed", error=str(exc) or type(exc).__name__)
            return None
        return float(left)

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
        self._fallback_windows.reset()
        if self._memory is not None:
            self._memory.reset()
            return
        assert self._redis is not None
        async for key in self._redis.scan_iter(match=KEY_PREFIX + "*", count=500):
            await self._redis.delete(key)

    async def close(self) -> None:
        """Stop the link's probe and release the Redis connections."""
        await self.link.close()
        if self._redis is not None:
            await self._redis.aclose(close_connection_pool=True)
