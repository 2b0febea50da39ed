"""A Redis cache shared by every worker: pooled, short timeouts, behind a circuit breaker.

The cache is an optimisation, never a dependency: with Redis down or slow, `get` answers None
and `set` does nothing, so the request is served without the cache. Failures are counted, and
the breaker stops calls for `reset_s` after `threshold` consecutive failures, so a dead Redis
costs one fast refusal per call instead of a timeout. One trial call after `reset_s` closes it.

With a `RedisLink` (backends/redis_link.py, shared with the rate limiter), the first failure
marks Redis lost for the whole process: calls go to `fallback` (the in-process answer cache;
None for a cache whose caller keeps its own local tier) without touching Redis, until the link's
background probe finds Redis back. Entries written to the fallback stay in this process; the
first calls after the return are misses in Redis, as after any restart.

Cancellation safety: a task cancelled between sending a command and reading its reply would,
if its connection went back to the pool, leave the reply for the next borrower, which would
read another tenant's value (the March 2023 redis-py incident). redis-py 7 disconnects a
connection on any BaseException (CancelledError included) in send and read, and the pool
refuses a connection with unread data; tests/unit/backends/cache/test_redis.py proves it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tenantrag.backends.breaker import Admission, CircuitBreaker, CircuitOpen, StateListener
from tenantrag.backends.cache import Cache, CacheCounters, ResultCallback, check_ttl, tenant_key
from tenantrag.backends.redis_link import RedisLink

log = structlog.get_logger(__name__)


class RedisCache(CacheCounters):
    """Values in Redis under `tenant:key`, each written with `SET ... EX ttl`."""

    def __init__(
        self,
        url: str,
        *,
        name: str = "redis",
        socket_timeout: float = 0.1,
        max_connections: int = 32,
        breaker_threshold: int = 5,
        breaker_reset_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_result: ResultCallback | None = None,
        on_state_change: StateListener | None = None,
        link: RedisLink | None = None,
        fallback: Cache | None = None,
    ) -> None:
        if not 0 < socket_timeout <= 1:
            raise ValueError("socket_timeout must be in (0, 1] seconds: a cache must answer fast")
        super().__init__(name, on_result)
        # One circuit for the whole cache (tenant ""): Redis is down for everyone or no one.
        self.breaker = CircuitBreaker(
            what=f"The {name} cache",
            threshold=breaker_threshold,
            reset_s=breaker_reset_s,
            clock=clock,
            on_state_change=on_state_change,
        )
        # No connection is opened here; the pool connects on first use.
        self._pool: BlockingConnectionPool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=socket_timeout,  # waiting for a free pooled connection is bounded too
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            # A retry would double the time a dead Redis costs; the breaker is the policy.
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._client = Redis(connection_pool=self._pool)
        self.link = link
        self.fallback = fallback

    def _away(self) -> bool:
        """True while the shared link says Redis is lost (callers use the fallback)."""
        return self.link is not None and not self.link.up

    async def get(self, tenant: str, key: str) -> bytes | None:
        """The tenant's value for `key`; None when absent or Redis is unavailable.

        While Redis is away the fallback answers (a miss when there is none).
        """
        stored = tenant_key(tenant, key)
        if self._away():
            return await self._fallback_get(tenant, key)
        try:
            admission = self.breaker.admit("", self.name)
        except CircuitOpen:
            self.count("error")
            return None
        try:
            value = await self._client.get(stored)
        except asyncio.CancelledError:
            self.breaker.release(admission)
            raise
        except Exception as exc:  # any failure of the optional cache is served as a miss
            self._failed("get", exc, admission)
            return await self._fallback_get(tenant, key) if self._away() else None
        self.breaker.success(admission)
        self.count("miss" if value is None else "hit")
        return None if value is None else bytes(value)

    async def set(self, tenant: str, key: str, value: bytes, *, ttl_s: int) -> None:
        """Store `value` for `ttl_s` seconds; does nothing when Redis is unavailable."""
        check_ttl(ttl_s)
        stored = tenant_key(tenant, key)
        if self._away():
            if self.fallback is not None:
                await self.fallback.set(tenant, key, value, ttl_s=ttl_s)
            return
        try:
            admission = self.breaker.admit("", self.name)
        except CircuitOpen:
            self.count("error")
            return
        try:
            await self._client.set(stored, value, ex=ttl_s)
        except asyncio.CancelledError:
            self.breaker.release(admission)
            raise
        except Exception as exc:  # a lost write only costs a later miss
            self._failed("set", exc, admission)
            if self._away() and self.fallback is not None:
                await self.fallback.set(tenant, key, value, ttl_s=ttl_s)
            return
        self.breaker.success(admission)

    async def forget_tenant(self, tenant: str) -> int:
        """Delete every entry of the tenant (`<tenant>:*`); how many went. Raises if Redis is down.

        Unlike get and set this is not best effort: an erasure must know it happened.
        """
        pattern = tenant_key(tenant, "*")
        removed = 0
        batch: list[bytes] = []
        async for key in self._client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 500:
                removed += int(await self._client.unlink(*batch))
                batch = []
        if batch:
            removed += int(await self._client.unlink(*batch))
        return removed

    async def ping(self) -> bool:
        """True when Redis answers PING now (the breaker is neither consulted nor fed)."""
        try:
            answer = self._client.ping()
            # redis-py types ping() for both its sync and async clients; ours is async.
            return bool(await answer) if not isinstance(answer, bool) else answer
        except Exception:  # readiness reports the failure; it must not raise
            return False

    async def close(self) -> None:
        """Close the client, every pooled connection and the fallback."""
        await self._client.aclose()
        await self._pool.disconnect()
        if self.fallback is not None:
            await self.fallback.close()

    async def _fallback_get(self, tenant: str, key: str) -> bytes | None:
        """The fallback's answer (it counts its own hit or miss); a miss without one."""
        if self.fallback is None:
            self.count("miss")
            return None
        return await self.fallback.get(tenant, key)

    def _failed(self, operation: str, exc: Exception, admission: Admission) -> None:
        """Count a failed call and feed the breaker; the breaker logs state changes, not this."""
        self.count("error")
        self.breaker.failure(admission)
        if self.link is not None:
            self.link.lost(f"{self.name} cache {operation}: {type(exc).__name__}")
        log.debug("cache call failed", cache=self.name, operation=operation, error=repr(exc))
