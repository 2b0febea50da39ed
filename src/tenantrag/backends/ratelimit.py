"""Per-tenant rate limits through the `limits` library: a moving window, in-process or in Redis.

With Redis every worker and pod shares one window per tenant (an atomic Lua script), so exactly
`limit` requests pass per minute however many processes serve them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import cast

from limits import RateLimitItemPerMinute
from limits.aio.storage import Storage as AsyncStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string

WINDOW_S = 60


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
        if redis_url:
            uri = "async+" + redis_url if not redis_url.startswith("async+") else redis_url
            storage = storage_from_string(
                uri,
                implementation="redispy",
                key_prefix="tenantrag-rl",
                socket_timeout=timeout_s,
                socket_connect_timeout=timeout_s,
            )
        else:
            storage = storage_from_string("async+memory://")
        self.storage = cast(AsyncStorage, storage)  # an async+ scheme gives an async storage
        self.limiter = MovingWindowRateLimiter(self.storage)
        self.distributed = bool(redis_url)

    async def hit(self, tenant: str, limit: int) -> RateDecision:
        """Count one request for `tenant`; StorageUnavailable when Redis cannot be reached."""
        item = RateLimitItemPerMinute(limit)
        try:
            allowed = await self.limiter.hit(item, "tenant", tenant)
            stats = await self.limiter.get_window_stats(item, "tenant", tenant)
        except Exception as exc:  # redis-py raises several unrelated types when Redis is down
            raise StorageUnavailable(str(exc) or type(exc).__name__) from exc
        reset = max(0, int(stats.reset_time - time.time() + 0.999))
        return RateDecision(allowed, limit, max(0, stats.remaining), reset or WINDOW_S)

    async def ping(self) -> bool:
        """True when the storage answers."""
        try:
            return bool(await self.storage.check())
        except Exception:
            return False

    async def reset(self) -> None:
        """Forget every window (tests and admin only)."""
        await self.storage.reset()
