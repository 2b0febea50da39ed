"""Tenant-scoped byte caches: the `Cache` protocol, key helpers and hit/miss counters.

Every stored key is `f"{tenant}:{key}"`; the implementation adds the prefix, so a caller's key
never names the tenant and two tenants can never read each other's entries. `MemoryCache` lives
in memory.py and `RedisCache` (behind a circuit breaker, backends/breaker.py) in redis.py.
lru.py's `TenantLRU` is of another kind: Python objects kept in one process, keyed by tenant.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

from tenantrag.backends.breaker import StateListener
from tenantrag.backends.redis_link import RedisLink
from tenantrag.models import is_valid_tenant_id

CacheResult = Literal["hit", "miss", "error"]
ResultCallback = Callable[[str, CacheResult], None]


@runtime_checkable
class Cache(Protocol):
    """Bytes by (tenant, key), each entry with its own time to live."""

    name: str
    hits: int
    misses: int
    errors: int

    async def get(self, tenant: str, key: str) -> bytes | None:
        """The tenant's value for `key`, or None when absent, expired or the cache is down."""
        ...

    async def set(self, tenant: str, key: str, value: bytes, *, ttl_s: int) -> None:
        """Store `value` for the tenant under `key` for `ttl_s` seconds (best effort)."""
        ...

    async def ping(self) -> bool:
        """True when the cache answers now."""
        ...

    async def forget_tenant(self, tenant: str) -> int:
        """Delete every entry of the tenant (its erasure); how many went."""
        ...

    async def close(self) -> None:
        """Release connections and memory."""
        ...


def make_key(*parts: str) -> str:
    """A fixed-length key for `parts`: the sha256 hex of their canonical JSON array."""
    canonical = json.dumps(list(parts), ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def tenant_key(tenant: str, key: str) -> str:
    """The stored key `tenant:key`; ValueError for a malformed tenant or an empty key."""
    # Tenant ids cannot contain ":", so the prefix is unambiguous: no tenant's key can be
    # spelled to land in another tenant's namespace.
    if not is_valid_tenant_id(tenant):
        raise ValueError(f"not a tenant id: {tenant!r}")
    if not key:
        raise ValueError("a cache key must not be empty")
    return f"{tenant}:{key}"


def check_ttl(ttl_s: int) -> None:
    """ValueError unless `ttl_s` is a whole number of seconds, at least 1."""
    if isinstance(ttl_s, bool) or not isinstance(ttl_s, int) or ttl_s < 1:
        raise ValueError(f"ttl_s must be a whole number of seconds >= 1, not {ttl_s!r}")


class CacheCounters:
    """Hit, miss and error counts of one cache, reported to an optional callback."""

    def __init__(self, name: str, on_result: ResultCallback | None = None) -> None:
        self.name = name
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.on_result = on_result
        self._counter_lock = threading.Lock()

    def count(self, result: CacheResult) -> None:
        """Add one `result` to the counters and tell the callback."""
        with self._counter_lock:
            if result == "hit":
                self.hits += 1
            elif result == "miss":
                self.misses += 1
            else:
                self.errors += 1
        if self.on_result is not None:
            self.on_result(self.name, result)


def build_cache(
    redis_url: str | None,
    *,
    name: str,
    on_result: ResultCallback | None = None,
    on_state_change: StateListener | None = None,
    link: RedisLink | None = None,
    local_fallback: bool = False,
) -> Cache:
    """Redis (shared by every worker) when `redis_url` is set, else an in-process LRU.

    With `link` and `local_fallback`, an in-process LRU serves while the link says Redis is away.
    """
    from tenantrag.backends.cache.memory import MemoryCache

    if redis_url:
        from tenantrag.backends.cache.redis import RedisCache

        fallback = MemoryCache(name=name, on_result=on_result) if local_fallback else None
        return RedisCache(
            redis_url,
            name=name,
            on_result=on_result,
            on_state_change=on_state_change,
            link=link,
            fallback=fallback,
        )
    return MemoryCache(name=name, on_result=on_result)


__all__ = [
    "build_cache",
    "Cache",
    "CacheCounters",
    "CacheResult",
    "ResultCallback",
    "check_ttl",
    "make_key",
    "tenant_key",
]
