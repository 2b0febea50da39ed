"""Tenant-scoped byte caches: the `Cache` protocol, key helpers, counters and a circuit breaker.

Every stored key is `f"{tenant}:{key}"`; the implementation adds the prefix, so a caller's key
never names the tenant and two tenants can never read each other's entries. `MemoryCache` lives
in memory.py and `RedisCache` (behind a `DependencyBreaker`) in redis.py.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import Literal, Protocol, runtime_checkable

import structlog

from tenantrag.models import is_valid_tenant_id

CacheResult = Literal["hit", "miss", "error"]
ResultCallback = Callable[[str, CacheResult], None]
BreakerState = Literal["closed", "open", "half_open"]
StateCallback = Callable[[str, BreakerState], None]

log = structlog.get_logger(__name__)


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


class DependencyBreaker:
    """A circuit breaker: closed, open after `threshold` consecutive failures, half-open after
    `reset_s`, when one trial call decides whether it closes again or re-opens.

    Callers ask `allow()` before each call and report `success()`, `failure()` or, for a call
    that ended with no outcome (cancelled), `abandon()`.
    """

    def __init__(
        self,
        dependency: str,
        *,
        threshold: int = 5,
        reset_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        on_state_change: StateCallback | None = None,
    ) -> None:
        if threshold < 1 or reset_s <= 0:
            raise ValueError("threshold must be >= 1 and reset_s > 0")
        self.dependency = dependency
        self.threshold = threshold
        self.reset_s = reset_s
        self.clock = clock
        self.on_state_change = on_state_change
        self._state: BreakerState = "closed"
        self._failures = 0
        self._opened_at = 0.0
        self._trial_running = False
        self._lock = threading.Lock()

    @property
    def state(self) -> BreakerState:
        """The current state: `closed`, `open` or `half_open`."""
        return self._state

    def allow(self) -> bool:
        """True when a call may go to the dependency now."""
        with self._lock:
            if self._state == "closed":
                return True
            if self._state == "open":
                if self.clock() - self._opened_at < self.reset_s:
                    return False
                changed = self._move("half_open")
            elif self._trial_running:
                return False  # half-open lets exactly one trial through at a time
            else:
                changed = None
            self._trial_running = True
        self._announce(changed)
        return True

    def success(self) -> None:
        """Record a call that worked; a half-open breaker closes."""
        with self._lock:
            self._failures = 0
            self._trial_running = False
            changed = self._move("closed")
        self._announce(changed)

    def failure(self) -> None:
        """Record a call that failed; the threshold or a failed trial opens the breaker."""
        with self._lock:
            self._failures += 1
            self._trial_running = False
            changed = None
            if self._state == "half_open" or self._failures >= self.threshold:
                self._opened_at = self.clock()
                changed = self._move("open")
        self._announce(changed)

    def abandon(self) -> None:
        """Record a permitted call that ended without an outcome, freeing the half-open trial."""
        with self._lock:
            self._trial_running = False

    def _move(self, state: BreakerState) -> BreakerState | None:
        """Switch to `state` (lock held); the new state if it changed, else None."""
        if self._state == state:
            return None
        self._state = state
        return state

    def _announce(self, state: BreakerState | None) -> None:
        """Log one line and call the callback for a state change (lock released)."""
        if state is None:
            return
        if state == "open":
            log.error(
                "dependency breaker opened; calls are skipped",
                dependency=self.dependency,
                breaker_state=state,
                failures=self._failures,
                retry_in_s=self.reset_s,
            )
        else:
            log.info("dependency breaker changed", dependency=self.dependency, breaker_state=state)
        if self.on_state_change is not None:
            self.on_state_change(self.dependency, state)


__all__ = [
    "BreakerState",
    "Cache",
    "CacheCounters",
    "CacheResult",
    "DependencyBreaker",
    "ResultCallback",
    "StateCallback",
    "check_ttl",
    "make_key",
    "tenant_key",
]
