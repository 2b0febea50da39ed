"""Refused requests, rate-limited per client address before any credential is checked.

A request refused at the gate (no or a bad token, a bad or foreign X-Tenant-ID, a suspended
tenant) costs the parse of its headers and, for a token, an HMAC. A flood of them is cheap to
send and, without a limit, free to keep sending: guessing tokens, filling logs. Each client
address (an IPv6 client by its /64, as the security log counts it) has a token bucket of
`burst` refusals refilled at `per_minute`; every refusal takes one. An address whose bucket is
empty is answered 429 with Retry-After before its token is read, unless the token is one this
process has already verified (a dictionary lookup, no HMAC): people behind the same NAT as a
misbehaving client keep working.

Only refusals are counted, so a client that never fails has no bucket at all: the happy path
costs one dictionary lookup. The buckets live in this process. With Redis configured, each
refusal is also charged to a bucket there shared by every process (one round trip, on the
refusal path only); when the shared bucket is empty this process's bucket is emptied too, so a
flood spread over many pods is stopped after about one burst in all, not one burst per pod. The
happy path never asks Redis. docs/security.md, "Floods".
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from tenantrag.observability.security_log import client_key

MAX_ADDRESSES = 100_000  # buckets kept; past it, full ones are dropped (they hold no debt)


@functools.lru_cache(maxsize=8192)
def address_key(host: str | None) -> str:
    """The key a client's refusals are counted under (cached: parsing an address is not free)."""
    return client_key(host)


class SharedRefusals(Protocol):
    """A bucket per address shared by every process (the rate limiter's Redis)."""

    async def charge_refusal(self, address: str, burst: float, per_second: float) -> float | None:
        """Tokens left after one refusal; None when there is no shared store or it is down."""
        ...


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class RefusalLimiter:
    """A token bucket of refusals per client address."""

    def __init__(
        self,
        *,
        burst: int,
        per_minute: float,
        clock: Callable[[], float] = time.monotonic,
        max_addresses: int = MAX_ADDRESSES,
        shared: SharedRefusals | None = None,
    ) -> None:
        self.burst = float(burst)
        self.rate = per_minute / 60.0  # tokens per second
        self.clock = clock
        self.max_addresses = max_addresses
        self.shared = shared
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _refilled(self, bucket: _Bucket, now: float) -> float:
        return min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)

    def retry_after(self, key: str) -> float | None:
        """Seconds until `key` may be refused again, or None when it may send now."""
        bucket = self._buckets.get(key)
        if bucket is None:  # the happy path: an address that has never been refused
            return None
        with self._lock:
            tokens = self._refilled(bucket, self.clock())
        if tokens >= 1.0:
            return None
        return math.ceil((1.0 - tokens) / self.rate)

    def charge(self, key: str) -> None:
        """Take one refusal from `key`'s bucket."""
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                if len(self._buckets) >= self.max_addresses:
                    self._forget_full(now)
                bucket = self._buckets[key] = _Bucket(self.burst, now)
            bucket.tokens = max(0.0, self._refilled(bucket, now) - 1.0)
            bucket.at = now

    async def acharge(self, key: str) -> None:
        """Take one refusal here and, with a shared store, there; the lower count holds here."""
        self.charge(key)
        if self.shared is None:
            return
        left = await self.shared.charge_refusal(key, self.burst, self.rate)
        if left is None:
            return
        now = self.clock()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is not None and left < self._refilled(bucket, now):
                bucket.tokens, bucket.at = left, now

    def _forget_full(self, now: float) -> None:
        """Drop refilled buckets; if every one is in debt, the oldest half (bounded memory)."""
        full = [k for k, b in self._buckets.items() if self._refilled(b, now) >= self.burst]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_addresses:
            by_age = sorted(self._buckets, key=lambda k: self._buckets[k].at)
            for key in by_age[: len(by_age) // 2]:
                del self._buckets[key]

    def __len__(self) -> int:
        """How many addresses hold a bucket."""
        return len(self._buckets)
